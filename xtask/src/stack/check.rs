//! One check of `verify`: what was checked, what the contract expects, what the live stack
//! says, and the verdict. Each unit's row reads its own live settings into checks; [`collect`]
//! gathers them with the checks every unit gets, for `verify` and for the supervisor's check
//! once the stack is ready.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::StackConfig;
use crate::stack::contract::Setting;
use crate::stack::programs::{Drift, Installed};
use crate::stack::{Program, Unit};

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
    pub(crate) fn new(
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
    pub(crate) fn failed(
        check: impl Into<String>,
        expected: impl Into<String>,
        err: &anyhow::Error,
    ) -> Check {
        Check::new(check, expected, format!("error: {err:#}"), false)
    }
}

/// A unit of the running stack, as the checks see it.
pub(crate) struct Running<'a> {
    pub(crate) unit: &'static Unit,
    pub(crate) installed: Option<&'a Installed>,
    pub(crate) pid: Option<i32>,
}

/// All checks against these running units: each program's version against its pin, each
/// unit's own live settings (in the order given), its listeners, and the secrets file.
pub(crate) fn collect(cfg: &StackConfig, units: &[Running]) -> Vec<Check> {
    let mut checks: Vec<Check> = units.iter().filter_map(version).collect();
    // Every unit's at once, each within its bound: a hung service costs one bound, not one
    // per service.
    let live = std::thread::scope(|scope| {
        let handles: Vec<_> = units
            .iter()
            .map(|running| scope.spawn(|| live_checks(cfg, running)))
            .collect();
        let joined = handles.into_iter().map(|h| h.join());
        joined.collect::<Vec<_>>()
    });
    for unit_checks in live {
        checks.extend(unit_checks.expect("a unit's checks panicked"));
    }
    checks.extend(units.iter().filter_map(listeners));
    checks.extend(private_file(&cfg.state_dir, &cfg.secrets_file()));
    checks
}

/// How long one unit's live settings may take to read back, in all.
const CHECKS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A unit's own checks of its live settings, or one failed check that names it when it does
/// not answer within [`CHECKS_TIMEOUT`] (stopped, or hung: its client may wait forever).
fn live_checks(cfg: &StackConfig, running: &Running) -> Vec<Check> {
    let (unit, installed, read) = (running.unit, running.installed.cloned(), cfg.clone());
    let checks = crate::os::poll::within(CHECKS_TIMEOUT, move || {
        (unit.checks)(&read, installed.as_ref())
    });
    checks.unwrap_or_else(|| {
        let err = anyhow::anyhow!(
            "{} does not answer: its settings could not be read within {CHECKS_TIMEOUT:?} \
             (stopped, or hung?)",
            unit.name
        );
        vec![Check::failed(
            format!("{} answers", unit.name),
            "an answer",
            &err,
        )]
    })
}

/// The program's version against the flake's pin: `unpinned` when it is another one.
fn version(running: &Running) -> Option<Check> {
    let Program::External(pin) = &running.unit.program else {
        return None;
    };
    let installed = running.installed?;
    let program = installed.path.file_name()?.to_string_lossy().into_owned();
    let pinned = !installed.drift.iter().any(Drift::is_unpinned);
    Some(Check {
        check: format!("{} version", running.unit.name),
        expected: format!("{} {}", pin.names[0], pin.pin),
        live: format!("{program} {}", installed.version),
        verdict: if pinned {
            Verdict::Ok
        } else {
            Verdict::Unpinned
        },
    })
}

/// Every listening socket of the unit's process is on 127.0.0.1.
fn listeners(running: &Running) -> Option<Check> {
    let listeners = crate::os::ports::listeners_of(running.pid?);
    let ok = !listeners.is_empty() && listeners.iter().all(|l| l.starts_with("127.0.0.1:"));
    Some(Check::new(
        format!("{} listens on loopback only", running.unit.name),
        "127.0.0.1",
        listeners.join(", "),
        ok,
    ))
}

/// Counts of checks by verdict: `status` shows them (as the supervisor recorded them at the
/// start), `verify` ends with them.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ContractSummary {
    pub(crate) checks: usize,
    pub(crate) drift: usize,
    pub(crate) unsupported: usize,
    pub(crate) unpinned: usize,
}

impl ContractSummary {
    pub(crate) fn of(checks: &[Check]) -> ContractSummary {
        let count = |verdict| checks.iter().filter(|c| c.verdict == verdict).count();
        ContractSummary {
            checks: checks.len(),
            drift: count(Verdict::Drift),
            unsupported: count(Verdict::Unsupported),
            unpinned: count(Verdict::Unpinned),
        }
    }
}

impl std::fmt::Display for ContractSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} checks, {} drift, {} unsupported by this binary, {} versions off the pins",
            self.checks, self.drift, self.unsupported, self.unpinned
        )
    }
}

/// `SHOW`/`CONFIG GET` results beside the contract.
pub(crate) fn settings_checks(
    service: &str,
    live: anyhow::Result<Vec<(Setting, String)>>,
) -> Vec<Check> {
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

/// A file that holds a secret is readable by its owner only (mode 0600); `None` while it does
/// not exist. Shown relative to the state dir.
pub(crate) fn private_file(state_dir: &Path, path: &Path) -> Option<Check> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    let shown = path.strip_prefix(state_dir).unwrap_or(path).display();
    Some(Check::new(
        format!("secret file {shown} mode"),
        "0600",
        format!("{mode:04o}"),
        mode == 0o600,
    ))
}

/// Whether a live value means the documented one: the same text, or the same quantity once
/// units are applied (`512mb` = `536870912`, `500` = `500ms`, `3` = `3.0`).
pub(crate) fn equivalent(expected: &str, live: &str) -> bool {
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
