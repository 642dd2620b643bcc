//! The role and its password on a cluster that exists: initdb makes `POSTGRES_USER` the
//! cluster's superuser with `POSTGRES_PASSWORD`; when either changes later, the next start of
//! Postgres gives the password to the role again, creating the role first if it is new, so
//! that the configuration and the cluster never disagree in silence (the Compose volume keeps
//! the old role and password; the stack does not).
//!
//! To know what changed without the old password, the state dir keeps the role and a salted
//! SHA-256 of the password it was last given (`postgres/password.sha256`, mode 0600; the
//! password itself is only in `.env` or `secrets.env`). To act without the old password,
//! Postgres runs once in single-user mode before its start (no socket, no login: the account
//! that owns the data dir is the superuser there), reading its statements from a file: the
//! password never reaches a command line, a log or Postgres in clear. A new role is made as
//! initdb made the first (a superuser that logs in) and given `POSTGRES_DB`, which the first
//! owned; the old role is kept, with whatever it owns.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use postgres_protocol::escape::{escape_identifier, escape_literal};
use sha2::{Digest, Sha256};

use crate::config::{StackConfig, write_private};
use crate::os::account::Account;
use crate::os::process::{self, Launch};
use crate::stack::programs::Installed;

/// The digest of the password the role was last given, and the role.
fn record_path(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(super::UNIT.name).join("password.sha256")
}

/// What the record file says: the digest on its first line, the role on the second (a record
/// written before the role was kept has none).
struct Given<'a> {
    digest: &'a str,
    role: Option<&'a str>,
}

/// Reads a record file's text. Pure.
fn given(record: &str) -> Given<'_> {
    let (digest, role) = match record.split_once('\n') {
        Some((digest, role)) => (digest, role.strip_suffix('\n').unwrap_or(role)),
        None => (record, ""),
    };
    Given {
        digest,
        role: (!role.is_empty()).then_some(role),
    }
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

/// Notes that the role exists with the configured password (after initdb, or after setting
/// it).
pub(super) fn record(cfg: &StackConfig) -> anyhow::Result<()> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|err| anyhow::anyhow!("no system randomness: {err}"))?;
    let record = format!(
        "{}\n{}\n",
        digest(&salt, &cfg.postgres_password),
        cfg.postgres_user
    );
    write_private(&record_path(cfg), record.as_bytes())
}

/// What [`apply_if_changed`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Unchanged,
    /// A cluster made before the digest (or the role) was kept: its role is taken to be the
    /// configured one with the configured password, as before (only the cluster's creator
    /// knows).
    Recorded,
    /// `POSTGRES_PASSWORD` changed: the role has the new one.
    PasswordApplied,
    /// `POSTGRES_USER` changed: the role exists (created if it was new), logs in with the
    /// password and owns `POSTGRES_DB`.
    RoleApplied,
}

/// Before Postgres starts on an existing cluster (`data`, its lock files cleared): gives the
/// configured role the configured password (creating the role first) when either is not the
/// one last given.
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
    let given = given(&record);
    let same_password = matches(given.digest, &cfg.postgres_password);
    let (statements, outcome) = match given.role {
        Some(role) if role != cfg.postgres_user => {
            (ensure_role(cfg) + &alter_role(cfg), Outcome::RoleApplied)
        }
        _ if !same_password => (alter_role(cfg), Outcome::PasswordApplied),
        Some(_) => return Ok(Outcome::Unchanged),
        None => {
            self::record(cfg)?;
            return Ok(Outcome::Recorded);
        }
    };
    let sql = cfg.service_dir(super::UNIT.name).join("password.sql");
    write_private(&sql, statements.as_bytes())?;
    let log = cfg.log_file(super::UNIT.name);
    let status = process::run_once(
        &single_user(installed, data)
            .stdin_from(&sql)
            .run_as(account.cloned()),
        &log,
    );
    let _ = fs::remove_file(&sql);
    if !status.context("cannot run postgres --single")?.success() {
        let what = match outcome {
            Outcome::RoleApplied => "POSTGRES_USER changed, and creating that role",
            _ => "POSTGRES_PASSWORD changed, and setting it on the role",
        };
        bail!(
            "{what} {} failed (postgres --single); its output:\n{}",
            cfg.postgres_user,
            process::log_tail(&log, 20)
        );
    }
    self::record(cfg)?;
    Ok(outcome)
}

/// Creates `POSTGRES_USER` if no role has that name, a superuser as initdb made the first
/// one, and gives it `POSTGRES_DB` if that exists (else `on_ready` creates it as this role).
/// The names travel in settings of the session, read back by `format('%I')`: no name is ever
/// spliced into the code. One statement a line (single-user mode ends one at a newline).
fn ensure_role(cfg: &StackConfig) -> String {
    format!(
        "SET amtp.role = {};\n\
         SET amtp.database = {};\n\
         DO $$BEGIN \
         IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_setting('amtp.role')) THEN \
         EXECUTE format('CREATE ROLE %I SUPERUSER', current_setting('amtp.role')); END IF; \
         IF EXISTS (SELECT FROM pg_database WHERE datname = current_setting('amtp.database')) \
         THEN EXECUTE format('ALTER DATABASE %I OWNER TO %I', \
         current_setting('amtp.database'), current_setting('amtp.role')); END IF; \
         END$$;\n",
        escape_literal(&cfg.postgres_user),
        escape_literal(&cfg.postgres_db)
    )
}

/// `ALTER ROLE "<user>" LOGIN PASSWORD '<SCRAM-SHA-256 verifier>'` on one line (single-user
/// mode ends a statement at a newline). Postgres stores a verifier it is given as it is.
fn alter_role(cfg: &StackConfig) -> String {
    let role = escape_identifier(&cfg.postgres_user);
    let verifier = postgres_protocol::password::scram_sha_256(cfg.postgres_password.as_bytes());
    format!("ALTER ROLE {role} LOGIN PASSWORD '{verifier}';\n")
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
    fn a_record_gives_its_role_and_an_old_record_none() {
        let record = format!("{}\nnew user\n", digest(b"0123456789abcdef", "pw"));
        let read = given(&record);
        assert!(matches(read.digest, "pw"));
        assert_eq!(read.role, Some("new user"));
        let old = digest(b"0123456789abcdef", "pw");
        assert_eq!(given(&old).role, None);
        assert!(matches(given(&old).digest, "pw"));
    }

    #[test]
    fn a_new_role_s_names_are_quoted_as_literals_one_statement_a_line() {
        let mut cfg = crate::config::tests::config_in(Path::new("/tmp/amtp-role-test"));
        cfg.postgres_user = "o'neil".into();
        cfg.postgres_db = "db".into();
        let sql = ensure_role(&cfg);
        let lines: Vec<&str> = sql.lines().collect();
        assert_eq!(
            lines[..2],
            ["SET amtp.role = 'o''neil';", "SET amtp.database = 'db';"]
        );
        assert_eq!(lines.len(), 3, "{sql}");
        assert!(
            lines[2].starts_with("DO $$BEGIN") && !lines[2].contains("neil"),
            "{sql}"
        );
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
            sql.starts_with("ALTER ROLE \"a\"\"b\" LOGIN PASSWORD 'SCRAM-SHA-256$4096:"),
            "{sql}"
        );
        assert!(!sql.contains("pg-secret"), "{sql}");
        assert_eq!(sql.lines().count(), 1);
    }
}
