//! The Flyway migrations of `migrations/sql`, applied once per `up` straight to Postgres (not
//! through PgBouncer), as `flyway.url` does.

use anyhow::Context;

use super::{Kind, Program, Unit, postgres};
use crate::config::StackConfig;
use crate::stack::check::Check;
use crate::stack::programs::Installed;

pub(crate) const UNIT: Unit = Unit {
    name: "migrations",
    program: Program::Xtask {
        crate_name: "amtp-migrate",
    },
    depends_on: &["postgres"],
    checks,
    kind: Kind::Task(migrate),
    ..Unit::DEFAULT
};

/// Flyway's rules, applied directly.
fn migrate(cfg: &StackConfig) -> anyhow::Result<String> {
    let settings = settings(cfg);
    let report = amtp_migrate::migrate(&settings).context("migrations failed")?;
    let version = report.schema_version.as_deref().unwrap_or("none");
    Ok(match report.applied.len() {
        0 => format!("schema up to date at version {version}"),
        n => format!("applied {n} migrations, schema now at version {version}"),
    })
}

/// Where `cargo xtask migrate` and `up` apply the migrations from, and to.
pub(crate) fn settings(cfg: &StackConfig) -> amtp_migrate::Settings {
    amtp_migrate::Settings {
        url: postgres::url(cfg, cfg.port(postgres::PORT)),
        location: cfg.repo_root.join("migrations/sql"),
    }
}

/// The history table matches `migrations/sql` (Flyway's validate).
fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    let check = "migration history matches migrations/sql";
    vec![match amtp_migrate::validate(&settings(cfg)) {
        Ok(()) => Check::new(check, "valid", "valid", true),
        Err(err) => Check::failed(check, "valid", &err.into()),
    }]
}
