//! The passwords a user leaves unset: generated once into `<state>/secrets.env` (mode 0600),
//! and the one way every secret file of the stack is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

use super::{Secrets, read_dotenv};

/// Generated secrets live here, inside the state dir.
pub(super) const SECRETS_FILE: &str = "secrets.env";
/// Keys whose values are generated when the user sets none.
const GENERATED_SECRETS: [&str; 2] = ["POSTGRES_PASSWORD", "VALKEY_PASSWORD"];

/// The generated secrets the user did not set, read from the state dir (or created there).
pub(super) fn secrets_for(
    state_dir: &Path,
    vars: &BTreeMap<String, String>,
    secrets: Secrets,
) -> anyhow::Result<BTreeMap<String, String>> {
    let path = state_dir.join(SECRETS_FILE);
    let mut stored = read_dotenv(&path)?;
    let missing: Vec<&str> = GENERATED_SECRETS
        .into_iter()
        .filter(|key| vars.get(*key).is_none_or(|v| v.is_empty()) && !stored.contains_key(*key))
        .collect();
    if secrets == Secrets::Generate && !missing.is_empty() {
        for key in missing {
            stored.insert(key.to_owned(), random_password()?);
        }
        write_secret_file(&path, &stored)?;
    }
    Ok(stored)
}

fn write_secret_file(path: &Path, values: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let dir = path.parent().expect("secrets file has a parent");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let body: String = values.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    write_private(path, body.as_bytes())
}

/// Writes a file readable by its owner only (mode 0600), replacing any previous one.
pub(crate) fn write_private(path: &Path, body: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(body)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // An existing file keeps its mode through `open`; force 0600.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// 24 random alphanumeric characters: safe in URLs, config files and connection strings.
fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|err| anyhow::anyhow!("no system randomness: {err}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}
