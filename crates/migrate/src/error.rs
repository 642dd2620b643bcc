//! Everything that can stop a migration, each message naming the thing and the fix.
//!
//! Messages are complete on their own (the underlying error is part of the text, not a
//! `source`), so a caller printing the chain with `{:#}` does not repeat it.

use std::path::PathBuf;

/// An error from reading migrations, talking to the database, or applying a script.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the database URL is not valid ({reason}); pass one like postgres://user:password@127.0.0.1:5432/amtp"
    )]
    InvalidUrl { reason: String },

    #[error(
        "cannot connect to {url}: {}; start the stack with `cargo xtask up` or check --url",
        db_message(.cause)
    )]
    Connect { url: String, cause: postgres::Error },

    #[error("{action} failed on {url}: {}", db_message(.cause))]
    Database {
        action: &'static str,
        url: String,
        cause: postgres::Error,
    },

    #[error(
        "migration folder {} does not exist; pass --location with the folder of V<version>__<description>.sql files",
        .path.display()
    )]
    LocationMissing { path: PathBuf },

    #[error("cannot read {}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{} is not valid UTF-8 (first bad byte on line {line}); save it as UTF-8", .path.display())]
    NotUtf8 { path: PathBuf, line: usize },

    #[error("{} is not a valid migration file name: {reason}", .path.display())]
    BadFileName { path: PathBuf, reason: String },

    #[error(
        "found more than one migration with version {version}: {first} and {second}; give one of them a higher version"
    )]
    DuplicateVersion {
        version: String,
        first: String,
        second: String,
    },

    #[error(
        "{} line {line} uses placeholder {placeholder}, which Flyway would replace (placeholderReplacement is on) and this runner does not; write the value itself",
        .path.display()
    )]
    Placeholder {
        path: PathBuf,
        line: usize,
        placeholder: String,
    },

    #[error("{}: {reason}", .path.display())]
    ScriptConfig { path: PathBuf, reason: String },

    #[error(
        "Detected both transactional and non-transactional statements within the same migration \
         (even though mixed is false). Offending statement found at line {line}: {statement}; \
         in {script}: move the statements that cannot run in a transaction \
         (CREATE INDEX CONCURRENTLY, VACUUM, …) into a migration of their own"
    )]
    MixedStatements {
        script: String,
        line: usize,
        statement: String,
    },

    #[error("validate failed: migrations have failed validation\n{}", .problems.join("\n"))]
    Validation { problems: Vec<String> },

    #[error(
        "migration {script} failed at line {line}: {message}\n  statement (line {statement_line}): {statement}\n  {consequence}"
    )]
    Sql {
        script: String,
        /// The line of the error inside the file, when PostgreSQL says where; else the statement's.
        line: usize,
        statement_line: usize,
        statement: String,
        message: String,
        consequence: &'static str,
    },

    #[error(
        "timed out after {seconds} s waiting for the migration lock (advisory lock {key}) on {url}; \
         another migration is running there (see pg_stat_activity); wait for it or stop it"
    )]
    LockTimeout { seconds: u64, key: i64, url: String },

    #[error("schema public does not exist in {url}; create it with `CREATE SCHEMA public`")]
    NoPublicSchema { url: String },
}

/// PostgreSQL's own message for a database error, or the driver's description of other failures.
pub(crate) fn db_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut message = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                message.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!("; hint: {hint}"));
            }
            message
        }
        None => {
            // The driver keeps the cause (e.g. "Connection refused") out of its own message.
            let mut message = error.to_string();
            let mut cause = std::error::Error::source(error);
            while let Some(inner) = cause {
                message.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            message
        }
    }
}
