//! The Flyway migrations of `migrations/sql`, applied once per `up` straight to Postgres (not
//! through PgBouncer), as `flyway.url` does.

use anyhow::Context;

use super::{Kind, Program, Unit, postgres};
use crate::config::StackConfig;
use crate::stack::check::Check;
use crate::stack::compose::{self, Condition, Image, Service, Volume};
use crate::stack::contract::Contract;
use crate::stack::programs::Installed;

pub(crate) const UNIT: Unit = Unit {
    name: "migrations",
    program: Program::Xtask {
        crate_name: "amtp-migrate",
    },
    depends_on: &["postgres"],
    checks,
    compose: Some(compose),
    kind: Kind::Task(migrate),
    ..Unit::DEFAULT
};

/// The seed's Flyway configuration (`flyway.*`), as the image's environment variables; no
/// `infra/` file holds it. The URL, user and password follow from the Postgres service.
const FLYWAY: [(&str, &str); 5] = [
    ("FLYWAY_SCHEMAS", "public"),
    ("FLYWAY_LOCATIONS", "filesystem:/flyway/sql"),
    ("FLYWAY_BASELINE_ON_MIGRATE", "true"),
    ("FLYWAY_VALIDATE_ON_MIGRATE", "true"),
    ("FLYWAY_CLEAN_DISABLED", "true"),
];

/// The seed's `flyway` service, opt-in: `docker compose --profile migrate run --rm flyway`.
fn compose(_: &Contract) -> anyhow::Result<Service> {
    let url = format!("jdbc:postgresql://postgres:5432/{}", postgres::COMPOSE_DB);
    let mut environment = compose::env(FLYWAY);
    environment.extend(compose::env([
        ("FLYWAY_URL", url.as_str()),
        ("FLYWAY_USER", postgres::COMPOSE_USER),
        ("FLYWAY_PASSWORD", postgres::COMPOSE_PASSWORD),
    ]));
    Ok(Service {
        profiles: vec!["migrate"],
        command: vec!["migrate".to_owned()],
        environment,
        volumes: vec![Volume::Repo {
            path: "migrations/sql",
            target: "/flyway/sql",
        }],
        depends_on: vec![("postgres", Condition::Healthy)],
        ..Service::new("flyway", Image::Pull("flyway/flyway:10-alpine"))
    })
}

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
