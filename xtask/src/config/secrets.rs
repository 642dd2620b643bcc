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

/// The generated secrets, read from the state dir (or created there), and whether the file
/// was found damaged.
pub(super) struct Stored {
    pub(super) values: BTreeMap<String, String>,
    /// A damaged file is refused by `up` (which would otherwise generate a password the
    /// cluster was not made with); `status`, `down` and `reset` go on without its passwords.
    pub(super) damaged: bool,
}

/// The generated secrets the user did not set, read from the state dir (or created there).
/// A file that exists but is cut short (its last line unfinished) or lacks a generated key
/// the user does not set is damaged: every generated key is written at once, with a newline.
pub(super) fn secrets_for(
    state_dir: &Path,
    vars: &BTreeMap<String, String>,
    secrets: Secrets,
) -> anyhow::Result<Stored> {
    let path = state_dir.join(SECRETS_FILE);
    let text = fs::read(&path).ok();
    let parsed = read_dotenv(&path);
    let unset = |key: &str| vars.get(key).is_none_or(|v| v.is_empty());
    let problem = match (&text, &parsed) {
        (None, _) => None,
        (Some(_), Err(err)) => Some(format!("{err:#}")),
        (Some(bytes), Ok(_)) if bytes.last().is_some_and(|b| *b != b'\n') || bytes.is_empty() => {
            Some(format!("{} is truncated", path.display()))
        }
        (Some(_), Ok(stored)) => GENERATED_SECRETS
            .into_iter()
            .find(|key| unset(key) && !stored.contains_key(*key))
            .map(|key| format!("{} has no {key}", path.display())),
    };
    if let Some(problem) = problem {
        if secrets == Secrets::Generate {
            anyhow::bail!(
                "{problem}: it holds the passwords the stack's data was made with, and a new one \
                 would lock you out of the database; restore it (or set POSTGRES_PASSWORD and \
                 VALKEY_PASSWORD to the passwords it held), or `cargo xtask reset` to start over \
                 (deletes the database)"
            );
        }
        return Ok(Stored {
            values: parsed.unwrap_or_default(),
            damaged: true,
        });
    }
    let mut stored = parsed?;
    let missing: Vec<&str> = GENERATED_SECRETS
        .into_iter()
        .filter(|key| unset(key) && !stored.contains_key(*key))
        .collect();
    if secrets == Secrets::Generate && !missing.is_empty() {
        for key in missing {
            stored.insert(key.to_owned(), random_password()?);
        }
        write_secret_file(&path, &stored)?;
    }
    Ok(Stored {
        values: stored,
        damaged: false,
    })
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
