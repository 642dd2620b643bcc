//! `cargo xtask verify`: every documented setting read back from the live stack and compared
//! with `infra/`, the pins and the healthcheck contract.
//!
//! Verdicts: `ok`; `drift` (the live value differs: exit non-zero); `unsupported` (this
//! program's version does not have the setting, e.g. PgBouncer < 1.21 and
//! `max_prepared_statements`); `unpinned` (the program's version differs from the flake's pin:
//! reported, not failed, since only `nix develop` can provide the pinned builds).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::StackConfig;
use crate::contract::{self, Setting};
use crate::run_state::{ContractSummary, RunState};
use crate::stack::{self, Program, healthcheck, nginx, pgbouncer, postgres, valkey};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Ok,
    Drift,
    Unsupported,
    Unpinned,
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct Check {
    pub(crate) check: String,
    pub(crate) expected: String,
    pub(crate) live: String,
    pub(crate) verdict: Verdict,
}

impl Check {
    fn new(
        check: impl Into<String>,
        expected: impl Into<String>,
        live: impl Into<String>,
        ok: bool,
    ) -> Check {
        Check {
            check: check.into(),
            expected: expected.into(),
            live: live.into(),
            verdict: if ok { Verdict::Ok } else { Verdict::Drift },
        }
    }

    /// A check that could not be made: its error is the live value, and that is drift.
    fn failed(check: impl Into<String>, expected: impl Into<String>, err: &anyhow::Error) -> Check {
        Check::new(check, expected, format!("error: {err:#}"), false)
    }
}

pub(crate) fn run(cfg: &StackConfig, json: bool) -> anyhow::Result<ExitCode> {
    let Some(state) = RunState::read_live(&cfg.state_dir) else {
        anyhow::bail!("the stack is not running; start it with `cargo xtask up`");
    };
    let checks = collect(cfg, &state);
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print_table(&checks);
    }
    let summary = summary(&checks);
    if !json {
        println!("{summary}");
    }
    Ok(if summary.drift == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Counts by verdict: `status` shows them (as the supervisor recorded them at the start),
/// `verify` ends with them.
pub(crate) fn summary(checks: &[Check]) -> ContractSummary {
    let count = |verdict| checks.iter().filter(|c| c.verdict == verdict).count();
    ContractSummary {
        checks: checks.len(),
        drift: count(Verdict::Drift),
        unsupported: count(Verdict::Unsupported),
        unpinned: count(Verdict::Unpinned),
    }
}

/// All checks against the running stack.
pub(crate) fn collect(cfg: &StackConfig, state: &RunState) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(versions(state));
    checks.extend(postgres_checks(cfg));
    checks.extend(pgbouncer_checks(cfg, state));
    checks.extend(valkey_checks(cfg));
    checks.extend(nginx_checks(cfg));
    checks.push(migrations_check(cfg));
    checks.push(healthcheck_check(cfg));
    checks.extend(listener_checks(state));
    checks.extend(secret_file_checks(cfg));
    checks
}

fn versions(state: &RunState) -> Vec<Check> {
    state
        .units
        .iter()
        .filter_map(|unit| {
            let Program::External(pin) = &stack::unit(&unit.name)?.program else {
                return None;
            };
            let installed = unit.installed.as_ref()?;
            let program = installed.path.file_name()?.to_string_lossy().into_owned();
            let pinned = installed
                .drift
                .iter()
                .all(|d| !d.starts_with("version ") && !d.contains("stands in"));
            Some(Check {
                check: format!("{} version", unit.name),
                expected: format!("{} {}", pin.names[0], pin.pin),
                live: format!("{program} {}", installed.version),
                verdict: if pinned {
                    Verdict::Ok
                } else {
                    Verdict::Unpinned
                },
            })
        })
        .collect()
}

fn postgres_checks(cfg: &StackConfig) -> Vec<Check> {
    let mut checks = settings_checks("postgres", postgres::live_settings(cfg));
    match postgres::live_auth_methods(cfg) {
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
    checks.push(match postgres::stored_password_kind(cfg) {
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

fn pgbouncer_checks(cfg: &StackConfig, state: &RunState) -> Vec<Check> {
    let version = state
        .units
        .iter()
        .find(|u| u.name == "pgbouncer")
        .and_then(|u| u.installed.as_ref())
        .map(|i| i.version.clone())
        .unwrap_or_default();
    let live = match pgbouncer::live_settings(cfg) {
        Ok(live) => live,
        Err(err) => {
            return vec![Check::failed(
                "pgbouncer SHOW CONFIG",
                "the contract's keys",
                &err,
            )];
        }
    };
    let settings: Vec<Setting> = live.iter().map(|(s, _)| s.clone()).collect();
    let unsupported = pgbouncer::unsupported(&settings, &version);
    live.into_iter()
        .map(|(setting, value)| {
            let name = format!("pgbouncer {}", setting.key);
            match value {
                None if unsupported.contains(&setting) => Check {
                    check: name,
                    expected: setting.value,
                    live: format!("(not in PgBouncer {version})"),
                    verdict: Verdict::Unsupported,
                },
                None => Check::new(name, setting.value, "(missing)", false),
                Some(value) => {
                    let ok = equivalent(&setting.value, &value);
                    Check::new(name, setting.value, value, ok)
                }
            }
        })
        .collect()
}

fn valkey_checks(cfg: &StackConfig) -> Vec<Check> {
    let mut checks = settings_checks("valkey", valkey::live_settings(cfg));
    checks.push(match valkey::unauthenticated_reply(cfg) {
        Ok(reply) => Check::new(
            "valkey unauthenticated access",
            "NOAUTH",
            &reply,
            reply == "NOAUTH",
        ),
        Err(err) => Check::failed("valkey unauthenticated access", "NOAUTH", &err),
    });
    checks
}

/// `SHOW`/`CONFIG GET` results beside the contract.
fn settings_checks(service: &str, live: anyhow::Result<Vec<(Setting, String)>>) -> Vec<Check> {
    match live {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(setting, value)| {
                let ok = equivalent(&setting.value, &value);
                Check::new(
                    format!("{service} {}", setting.key),
                    setting.value,
                    value,
                    ok,
                )
            })
            .collect(),
        Err(err) => vec![Check::failed(
            format!("{service} settings"),
            "the contract's values",
            &err,
        )],
    }
}

fn nginx_checks(cfg: &StackConfig) -> Vec<Check> {
    let block = match contract::nginx_server_block(&cfg.repo_root) {
        Ok(block) => block,
        Err(err) => return vec![Check::failed("nginx default.conf", "readable", &err)],
    };
    let port = cfg.port(nginx::PORT);
    let mut checks = Vec::new();
    match nginx::get(port, "/healthz", false) {
        Ok(response) => {
            checks.push(Check::new(
                "nginx /healthz",
                "200 ok",
                format!("{} {}", response.status, response.body),
                response.status == 200 && response.body == "ok",
            ));
            for header in contract::nginx_headers(&block) {
                let live = response
                    .header(&header.key)
                    .unwrap_or("(missing)")
                    .to_owned();
                checks.push(Check::new(
                    format!("nginx header {} on /healthz", header.key),
                    &header.value,
                    &live,
                    live == header.value,
                ));
            }
        }
        Err(err) => checks.push(Check::failed("nginx /healthz", "200 ok", &err)),
    }
    for content_type in contract::nginx_gzip_types(&block) {
        let name = format!("nginx gzip {content_type}");
        let Some(path) = site_file_of_type(cfg, &content_type) else {
            checks.push(Check {
                check: name,
                expected: "Content-Encoding: gzip".into(),
                live: "(the site has no such file to check)".into(),
                verdict: Verdict::Unsupported,
            });
            continue;
        };
        checks.push(match nginx::get(port, &path, true) {
            Ok(response) => {
                let encoding = response
                    .header("content-encoding")
                    .unwrap_or("(none)")
                    .to_owned();
                let headers_ok = contract::nginx_headers(&block)
                    .iter()
                    .all(|h| response.header(&h.key) == Some(h.value.as_str()));
                Check::new(
                    format!("{name} + headers: {path}"),
                    "200, gzip, 3 headers",
                    format!(
                        "{}, {encoding}, headers {}",
                        response.status,
                        if headers_ok { "present" } else { "missing" }
                    ),
                    response.status == 200 && encoding == "gzip" && headers_ok,
                )
            }
            Err(err) => Check::failed(name, "gzip", &err),
        });
    }
    checks
}

/// A file of the served site with the given content type, as a URL path.
fn site_file_of_type(cfg: &StackConfig, content_type: &str) -> Option<String> {
    let extension = match content_type {
        "text/html" => "html",
        "text/css" => "css",
        "application/javascript" => "js",
        "application/json" => "json",
        "image/svg+xml" => "svg",
        _ => return None,
    };
    let root = nginx::docs_root(cfg);
    let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(&root)
        .build()
        .flatten()
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        // nginx compresses only responses of gzip_min_length (20 bytes) or more.
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.len() >= 64))
        .collect();
    files.sort();
    let relative = files
        .first()?
        .strip_prefix(&root)
        .ok()?
        .to_string_lossy()
        .into_owned();
    Some(format!("/{relative}"))
}

fn migrations_check(cfg: &StackConfig) -> Check {
    let check = "migration history matches migrations/sql";
    match amtp_migrate::validate(&stack::migrations::settings(cfg)) {
        Ok(()) => Check::new(check, "valid", "valid", true),
        Err(err) => Check::failed(check, "valid", &err.into()),
    }
}

fn healthcheck_check(cfg: &StackConfig) -> Check {
    let check = "healthcheck /health";
    let expected = r#"200 {"status":"ok","valkey":"up","latency_ms":<n>}"#;
    match stack::http_ok(cfg.port(healthcheck::PORT), "/health") {
        Ok(body) => {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let keys: BTreeSet<&str> = value
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let ok = value["status"] == "ok"
                && value["valkey"] == "up"
                && value["latency_ms"].is_number()
                && keys == BTreeSet::from(["status", "valkey", "latency_ms"]);
            Check::new(check, expected, body, ok)
        }
        Err(err) => Check::failed(check, expected, &err),
    }
}

/// Every listening socket of the stack's processes is on 127.0.0.1.
fn listener_checks(state: &RunState) -> Vec<Check> {
    state
        .units
        .iter()
        .filter_map(|unit| Some((unit, unit.pid?)))
        .map(|(unit, pid)| {
            let listeners = crate::ports::listeners_of(pid.pid);
            let ok = !listeners.is_empty() && listeners.iter().all(|l| l.starts_with("127.0.0.1:"));
            Check::new(
                format!("{} listens on loopback only", unit.name),
                "127.0.0.1",
                listeners.join(", "),
                ok,
            )
        })
        .collect()
}

fn secret_file_checks(cfg: &StackConfig) -> Vec<Check> {
    let files = [
        cfg.state_dir.join("secrets.env"),
        cfg.service_dir("valkey").join("valkey.conf"),
        cfg.service_dir("pgbouncer").join("userlist.txt"),
        cfg.service_dir("github-standin").join("app_key.pem"),
    ];
    files
        .iter()
        .filter(|path| path.exists())
        .map(|path| {
            let mode = fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            let shown = path.strip_prefix(&cfg.state_dir).unwrap_or(path).display();
            Check::new(
                format!("secret file {shown} mode"),
                "0600",
                format!("{mode:04o}"),
                mode == 0o600,
            )
        })
        .collect()
}

/// Whether a live value means the documented one: the same text, or the same quantity once
/// units are applied (`512mb` = `536870912`, `500` = `500ms`, `3` = `3.0`).
fn equivalent(expected: &str, live: &str) -> bool {
    if expected.eq_ignore_ascii_case(live) {
        return true;
    }
    let (Some((a, unit_a)), Some((b, unit_b))) = (quantity(expected), quantity(live)) else {
        return false;
    };
    let same = |x: f64, y: f64| (x - y).abs() < 1e-9;
    match (unit_a, unit_b) {
        (Some(ua), Some(ub)) => same(a * ua, b * ub),
        (None, None) => same(a, b),
        // A bare number is either in the setting's own unit (Postgres: `500` = `500ms`) or in
        // the base unit (Valkey: `536870912` = `512mb`).
        (Some(unit), None) => same(a, b) || same(a * unit, b),
        (None, Some(unit)) => same(a, b) || same(a, b * unit),
    }
}

/// A number with an optional unit, as (value, multiplier to the base unit: bytes or seconds).
fn quantity(text: &str) -> Option<(f64, Option<f64>)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" => return Some((value, None)),
        "b" | "s" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        "ms" => 1e-3,
        "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some((value, Some(multiplier)))
}

/// Verdict first and the live value last, so long values never push a column out of line.
fn print_table(checks: &[Check]) {
    let shown = |value: &str| {
        if value.is_empty() {
            "\"\"".to_owned()
        } else {
            value.to_owned()
        }
    };
    let width = |column: fn(&Check) -> &str, most: usize| {
        checks
            .iter()
            .map(|c| column(c).len())
            .max()
            .unwrap_or(0)
            .min(most)
    };
    let check_width = width(|c| &c.check, 52);
    let expected_width = width(|c| &c.expected, 32);
    println!(
        "{:<11}  {:<check_width$}  {:<expected_width$}  LIVE",
        "VERDICT", "CHECK", "EXPECTED"
    );
    for c in checks {
        let verdict = match c.verdict {
            Verdict::Ok => "ok",
            Verdict::Drift => "DRIFT",
            Verdict::Unsupported => "unsupported",
            Verdict::Unpinned => "unpinned",
        };
        println!(
            "{verdict:<11}  {:<check_width$}  {:<expected_width$}  {}",
            c.check,
            shown(&c.expected),
            shown(&c.live)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_values_with_units_match_the_documented_ones() {
        assert!(equivalent("512mb", "536870912"));
        assert!(equivalent("256MB", "256MB"));
        assert!(equivalent("500", "500ms"));
        assert!(equivalent("3", "3.0"));
        assert!(equivalent("240", "240"));
        assert!(equivalent("", ""));
        assert!(equivalent("allkeys-lru", "allkeys-lru"));
        assert!(!equivalent("allkeys-lru", "noeviction"));
        assert!(!equivalent("512mb", "1073741824"));
        assert!(!equivalent("200", "100"));
        assert!(!equivalent("16MB", "4MB"));
    }
}
