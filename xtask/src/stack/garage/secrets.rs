//! The node's secrets (RPC secret, admin token) and the stack's S3 access key: files of mode
//! 0600 in `<state>/garage`, generated at the first `up` and kept.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::dir;
use crate::config::{StackConfig, write_private};

pub(super) fn rpc_secret_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("rpc_secret")
}

pub(super) fn admin_token_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("admin_token")
}

/// The stack's S3 access key, `AWS_ACCESS_KEY_ID=` and `AWS_SECRET_ACCESS_KEY=` lines.
pub(super) fn access_key_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("access_key.env")
}

/// The node's RPC secret and admin token (32 random bytes, hex) and the stack's access key,
/// each written once (mode 0600) and kept across `up`s.
///
/// The RPC secret and the admin token guard a node of one and hold no data, so a damaged one
/// (not 64 hex digits: truncated, overwritten) is made again, saying so. The access key was
/// imported into the node, and S3 clients hold it: a damaged one is refused, naming the fix.
pub(super) fn generate_once(cfg: &StackConfig) -> anyhow::Result<()> {
    for path in [rpc_secret_file(cfg), admin_token_file(cfg)] {
        if fs::read_to_string(&path).is_ok_and(|text| !is_hex_32(&text)) {
            println!(
                "garage: {} was damaged (not 64 hex digits); made a new one",
                path.display()
            );
            fs::remove_file(&path).with_context(|| format!("cannot replace {}", path.display()))?;
        }
        keep_or_generate(&path, || random_hex(32))?;
    }
    keep_or_generate(&access_key_file(cfg), || {
        let key = AccessKey::generate()?;
        Ok(format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            key.id, key.secret
        ))
    })?;
    AccessKey::read(cfg).map(drop)
}

/// 32 bytes in hex, as [`random_hex`] writes them (and Garage reads them).
fn is_hex_32(text: &str) -> bool {
    let text = text.trim();
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The stack's access key to the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccessKey {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl AccessKey {
    /// `None` until the first `up` generated it.
    pub(crate) fn read(cfg: &StackConfig) -> anyhow::Result<Option<AccessKey>> {
        let path = access_key_file(cfg);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let value = |key: &str, len: usize| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .filter(|value| value.len() == len && value.is_ascii())
                .map(str::to_owned)
                .with_context(|| {
                    format!(
                        "{} has no whole {key} (damaged or truncated): the node knows the key \
                         by it; restore the file, or `cargo xtask reset` to start over \
                         (deletes every object)",
                        path.display()
                    )
                })
        };
        Ok(Some(AccessKey {
            id: value("AWS_ACCESS_KEY_ID", 26)?,
            secret: value("AWS_SECRET_ACCESS_KEY", 64)?,
        }))
    }

    /// Garage's own shape of a key: `GK` and 12 random bytes, a secret of 32 random bytes.
    fn generate() -> anyhow::Result<AccessKey> {
        Ok(AccessKey {
            id: format!("GK{}", random_hex(12)?),
            secret: random_hex(32)?,
        })
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|err| anyhow::anyhow!("no system randomness: {err}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a secret file (mode 0600) unless it exists: generated once, kept across `up`s.
fn keep_or_generate(
    path: &Path,
    generate: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    write_private(path, generate()?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_garage_s_shape() {
        let key = AccessKey::generate().unwrap();
        assert_eq!(key.id.len(), 26);
        assert!(key.id.starts_with("GK"));
        assert_eq!(key.secret.len(), 64);
        assert_ne!(key.secret, AccessKey::generate().unwrap().secret);
    }
}
