//! A Flyway-compatible migration runner for PostgreSQL, so developers need no Java.
//!
//! # Theory of operation
//!
//! A database migrated here must look exactly as if Flyway 10 had migrated it (with the
//! settings of the production stack: `schemas=public`, `baselineOnMigrate=true`,
//! `validateOnMigrate=true`, `outOfOrder=false`, `cleanDisabled=true`), so either tool can take
//! over from the other on the same database:
//!
//! - [`source`] reads `V<version>__<description>.sql` files and their `.sql.conf`;
//!   [`checksum`] computes Flyway's CRC-32 of each; [`split`] cuts a script into statements.
//! - [`history`] owns `flyway_schema_history`: Flyway's DDL, rows and advisory lock key.
//! - [`state`] lays files and history rows side by side and names each migration's state
//!   (Pending, Success, Failed, Missing, …) and what validation makes of it.
//! - `migrator` runs the commands: connect → lock → ensure history (or baseline) → validate →
//!   apply → unlock. Each migration runs in its own transaction with its history row unless its
//!   `.sql.conf` says `executeInTransaction=false` or all its statements refuse a transaction.
//!
//! There is no `clean`: dropping the development database is `cargo xtask reset`'s job alone.
//! Migrations connect straight to PostgreSQL, never through PgBouncer, because session-level
//! advisory locks and `CREATE INDEX CONCURRENTLY` need a session of their own.

pub mod checksum;
pub mod cli;
mod error;
pub mod history;
mod migrator;
pub mod source;
pub mod split;
pub mod state;

use std::path::PathBuf;

use serde::Serialize;

pub use error::Error;
pub use state::State;

/// Where to migrate: the database (like `flyway.url`) and the folder of scripts
/// (like `flyway.locations`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// A `postgres://` URL straight to PostgreSQL (not PgBouncer).
    pub url: String,
    pub location: PathBuf,
}

/// What `migrate` did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// The database URL without its password.
    pub database: String,
    /// Whether the run put Flyway's baseline row on a non-empty schema.
    pub baselined: bool,
    /// The migrations this run applied, in order.
    pub applied: Vec<AppliedMigration>,
    /// The schema version after the run; `None` when nothing was ever applied.
    pub schema_version: Option<String>,
}

/// One migration applied by a run.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedMigration {
    pub version: String,
    pub description: String,
    pub script: String,
    /// What Flyway records as `execution_time`: milliseconds spent running the script.
    pub execution_ms: i32,
}

/// One line of `info`.
#[derive(Debug, Clone, Serialize)]
pub struct InfoRow {
    pub version: String,
    pub description: String,
    /// The history row's `type` (`SQL`, `BASELINE`, …); `SQL` for a file not yet applied.
    #[serde(rename = "type")]
    pub kind: String,
    pub script: String,
    pub installed_on: Option<String>,
    pub installed_by: Option<String>,
    pub execution_time_ms: Option<i32>,
    pub state: State,
    /// The checksum of the file on disk, when there is one.
    pub file_checksum: Option<i32>,
    /// The checksum recorded in the history table, when the migration was applied.
    pub applied_checksum: Option<i32>,
}

/// What `repair` changed, by version.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Failed migrations whose rows were removed.
    pub removed_failed: Vec<String>,
    /// Applied migrations whose checksum, description or type now match their files.
    pub realigned: Vec<String>,
    /// Applied migrations whose files are gone, now marked deleted.
    pub marked_deleted: Vec<String>,
}

/// Applies every pending migration, after validating the applied ones against their files.
pub fn migrate(settings: &Settings) -> Result<MigrateReport, Error> {
    migrator::migrate(settings)
}

/// Every migration known to the files or the history table, with its state.
pub fn info(settings: &Settings) -> Result<Vec<InfoRow>, Error> {
    migrator::info(settings)
}

/// Checks applied migrations against the files; pending migrations fail validation too.
pub fn validate(settings: &Settings) -> Result<(), Error> {
    migrator::validate(settings)
}

/// Removes failed rows and realigns the history table with the files.
pub fn repair(settings: &Settings) -> Result<RepairReport, Error> {
    migrator::repair(settings)
}
