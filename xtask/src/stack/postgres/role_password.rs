//! The role's password on a cluster that exists: `POSTGRES_PASSWORD` is given to the role by
//! initdb, and when it changes later the next start of Postgres gives it to the role again, so
//! that the configuration and the cluster never disagree in silence (the Compose volume keeps
//! the old password; the stack does not).
//!
//! To know that it changed without the old password, the state dir keeps a salted SHA-256 of
//! the password the role was last given (`postgres/password.sha256`, mode 0600; the password
//! itself is only in `.env` or `secrets.env`). To set it without the old password, Postgres
//! runs once in single-user mode before its start (no socket, no login: the account that owns
//! the data dir is the superuser there), reading `ALTER ROLE … PASSWORD '<SCRAM verifier>'`
//! from a file: the password never reaches a command line, a log or Postgres in clear.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::config::{StackConfig, write_private};
use crate::os::account::Account;
use crate::os::process::{self, Launch};
use crate::stack::programs::Installed;

/// The digest of the password the role was last given.
fn record_path(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(super::UNIT.name).join("password.sha256")
}

/// `salt:sha256(salt ‖ password)`, both in hex. Pure.
fn digest(salt: &[u8], password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    format!("{}:{}", hex(salt), hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `password` is the one `record` holds. Pure.
fn matches(record: &str, password: &str) -> bool {
    let Some((salt, _)) = record.trim().split_once(':') else {
        return false;
    };
    let salt: Option<Vec<u8>> = (0..salt.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(salt.get(at..at + 2)?, 16).ok())
        .collect();
    salt.is_some_and(|salt| digest(&salt, password) == record.trim())
}

/// Notes that the role now has the configured password (after initdb, or after setting it).
pub(super) fn record(cfg: &StackConfig) -> anyhow::Result<()> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|err| anyhow::anyhow!("no system randomness: {err}"))?;
    write_private(
        &record_path(cfg),
        digest(&salt, &cfg.postgres_password).as_bytes(),
    )
}

/// What [`apply_if_changed`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Unchanged,
    /// A cluster made before the digest was kept: its role is taken to have the configured
    /// password, as it did before (only the cluster's creator knows).
    Recorded,
    Applied,
}

/// Before Postgres starts on an existing cluster (`data`, its lock files cleared): gives the
/// role the configured password when it is not the one it was last given.
pub(super) fn apply_if_changed(
    cfg: &StackConfig,
    installed: &Installed,
    data: &Path,
    account: Option<&Account>,
) -> anyhow::Result<Outcome> {
    let path = record_path(cfg);
    let Ok(record) = fs::read_to_string(&path) else {
        self::record(cfg)?;
        return Ok(Outcome::Recorded);
    };
    if matches(&record, &cfg.postgres_password) {
        return Ok(Outcome::Unchanged);
    }
    let sql = cfg.service_dir(super::UNIT.name).join("password.sql");
    write_private(&sql, alter_role(cfg).as_bytes())?;
    let log = cfg.log_file(super::UNIT.name);
    let status = process::run_once(
        &single_user(installed, data)
            .stdin_from(&sql)
            .run_as(account.cloned()),
        &log,
    );
    let _ = fs::remove_file(&sql);
    if !status.context("cannot run postgres --single")?.success() {
        bail!(
            "POSTGRES_PASSWORD changed, and setting it on role {} failed (postgres --single); \
             its output:\n{}",
            cfg.postgres_user,
            process::log_tail(&log, 20)
        );
    }
    self::record(cfg)?;
    Ok(Outcome::Applied)
}

/// `ALTER ROLE "<user>" PASSWORD '<SCRAM-SHA-256 verifier>'` on one line (single-user mode ends
/// a statement at a newline). Postgres stores a verifier it is given as it is.
fn alter_role(cfg: &StackConfig) -> String {
    let role = cfg.postgres_user.replace('"', "\"\"");
    let verifier = postgres_protocol::password::scram_sha_256(cfg.postgres_password.as_bytes());
    format!("ALTER ROLE \"{role}\" PASSWORD '{verifier}';\n")
}

/// `postgres --single` on the cluster, connected to its `postgres` database. A failed
/// statement ends it with exit code 1 (`exit_on_error`): otherwise single-user mode reports
/// the error and exits 0 at the end of its input.
fn single_user(installed: &Installed, data: &Path) -> Launch {
    Launch::new(&installed.path)
        .arg("--single")
        .arg("-c")
        .arg("exit_on_error=on")
        .arg("-D")
        .arg(data)
        .arg("postgres")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_matches_its_password_only() {
        let record = digest(b"0123456789abcdef", "first");
        assert!(matches(&record, "first"));
        assert!(matches(&format!("{record}\n"), "first"));
        assert!(!matches(&record, "second"));
        assert!(!matches(&record, ""));
        assert!(!matches("", "first"));
        assert!(!matches("zz:00", "first"));
        assert!(!record.contains("first"), "the password in clear: {record}");
    }

    #[test]
    fn single_user_mode_fails_on_a_failed_statement() {
        let launch = single_user(
            &crate::stack::tests::installed("/pg/postgres"),
            Path::new("/s/postgres/data"),
        );
        assert_eq!(
            crate::stack::tests::args(&launch),
            [
                "--single",
                "-c",
                "exit_on_error=on",
                "-D",
                "/s/postgres/data",
                "postgres"
            ]
        );
    }

    #[test]
    fn the_statement_carries_a_verifier_never_the_password() {
        let mut cfg = crate::config::tests::config_in(Path::new("/tmp/amtp-password-test"));
        cfg.postgres_user = "a\"b".into();
        cfg.postgres_password = "pg-secret".into();
        let sql = alter_role(&cfg);
        assert!(
            sql.starts_with("ALTER ROLE \"a\"\"b\" PASSWORD 'SCRAM-SHA-256$4096:"),
            "{sql}"
        );
        assert!(!sql.contains("pg-secret"), "{sql}");
        assert_eq!(sql.lines().count(), 1);
    }
}
