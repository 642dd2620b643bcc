//! `verify`'s checks of Postgres: the documented settings, pg_hba's auth methods and how the
//! role's password is stored, read back from the server.

use super::{CONF, PORT, UNIT, connect};
use crate::config::StackConfig;
use crate::stack::check::{Check, settings_checks};
use crate::stack::contract::Setting;
use crate::stack::programs::Installed;

/// Each documented setting as the running server reports it (`SHOW`).
fn live_settings(cfg: &StackConfig) -> anyhow::Result<Vec<(Setting, String)>> {
    let mut client = connect(cfg, cfg.port(PORT), &cfg.postgres_db)?;
    CONF.settings(&cfg.repo_root)?
        .into_iter()
        .map(|setting| {
            let live: String = client
                .query_one(&format!("SHOW {}", setting.key), &[])?
                .get(0);
            Ok((setting, live))
        })
        .collect()
}

/// How the role's password is stored (`SCRAM-SHA-256` or `md5`), never the password itself.
fn stored_password_kind(cfg: &StackConfig) -> anyhow::Result<String> {
    let mut client = connect(cfg, cfg.port(PORT), &cfg.postgres_db)?;
    let stored: Option<String> = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&cfg.postgres_user],
        )?
        .get(0);
    Ok(match stored {
        Some(s) if s.starts_with("SCRAM-SHA-256$") => "SCRAM-SHA-256".into(),
        Some(s) if s.starts_with("md5") => "md5".into(),
        Some(_) => "other".into(),
        None => "none".into(),
    })
}

/// The auth methods in `pg_hba.conf` for host and local connections, as the server loaded them.
fn live_auth_methods(cfg: &StackConfig) -> anyhow::Result<Vec<(String, String)>> {
    let mut client = connect(cfg, cfg.port(PORT), &cfg.postgres_db)?;
    Ok(client
        .query(
            "SELECT DISTINCT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// The documented settings, pg_hba's auth methods and how the role's password is stored,
/// read back from the server.
pub(super) fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    let mut checks = settings_checks(UNIT.name, live_settings(cfg));
    match live_auth_methods(cfg) {
        Ok(rules) => checks.extend(rules.into_iter().map(|(kind, method)| {
            Check::new(
                format!("postgres pg_hba {kind} auth"),
                "scram-sha-256",
                &method,
                method == "scram-sha-256",
            )
        })),
        Err(err) => checks.push(Check::failed("postgres pg_hba auth", "scram-sha-256", &err)),
    }
    checks.push(match stored_password_kind(cfg) {
        Ok(kind) => Check::new(
            "postgres role password storage",
            "SCRAM-SHA-256",
            &kind,
            kind == "SCRAM-SHA-256",
        ),
        Err(err) => Check::failed("postgres role password storage", "SCRAM-SHA-256", &err),
    });
    checks
}
