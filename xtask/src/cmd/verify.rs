//! `cargo xtask verify`: every documented setting read back from the live stack and compared
//! with `infra/`, the pins and the healthcheck contract.
//!
//! Verdicts: `ok`; `drift` (the live value differs: exit non-zero); `unsupported` (this
//! program's version does not have the setting, e.g. PgBouncer < 1.21 and
//! `max_prepared_statements`); `unpinned` (the program's version differs from the flake's pin:
//! reported, not failed, since only `nix develop` can provide the pinned builds).

use std::process::ExitCode;

use crate::cli::Output;
use crate::config::StackConfig;
use crate::stack::check::{Check, Verdict, private_file};
use crate::stack::programs::Drift;
use crate::stack::{self, Program};
use crate::supervisor::run_state::{ContractSummary, RunState, Status};

pub(crate) fn run(cfg: &StackConfig, output: Output) -> anyhow::Result<ExitCode> {
    let Some(state) = RunState::read_live(&cfg.state_dir) else {
        anyhow::bail!("the stack is not running; start it with `cargo xtask up`");
    };
    let checks = collect(cfg, &state);
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print_table(&checks);
    }
    let summary = summary(&checks);
    if output == Output::Table {
        println!("{summary}");
        for unit in state.units.iter().filter(|u| u.status == Status::Stopped) {
            println!("{} is stopped: not checked", unit.name);
        }
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
    // A stopped service (`stop`, `up SERVICE`) has no live settings to read back.
    let state = &RunState {
        units: state
            .units
            .iter()
            .filter(|unit| unit.status != Status::Stopped)
            .cloned()
            .collect(),
        ..state.clone()
    };
    let mut checks = Vec::new();
    checks.extend(versions(state));
    // Each unit's own live settings, in table order.
    for unit in &state.units {
        if let Some(row) = stack::unit(&unit.name) {
            checks.extend((row.checks)(cfg, unit.installed.as_ref()));
        }
    }
    checks.extend(listener_checks(state));
    checks.extend(private_file(&cfg.state_dir, &cfg.secrets_file()));
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
            let pinned = !installed.drift.iter().any(Drift::is_unpinned);
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

/// Every listening socket of the stack's processes is on 127.0.0.1.
fn listener_checks(state: &RunState) -> Vec<Check> {
    state
        .units
        .iter()
        .filter_map(|unit| Some((unit, unit.pid?)))
        .map(|(unit, pid)| {
            let listeners = crate::os::ports::listeners_of(pid.pid);
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
