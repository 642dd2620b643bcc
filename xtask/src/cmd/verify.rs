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
use crate::stack::check::{self, Check, ContractSummary, Verdict};
use crate::supervisor::run_state::{RunState, Status};

pub(crate) fn run(cfg: &StackConfig, output: Output) -> anyhow::Result<ExitCode> {
    let Some(state) = RunState::read_live(&cfg.state_dir) else {
        anyhow::bail!("the stack is not running; start it with `cargo xtask up`");
    };
    let checks = live_checks(cfg, &state);
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for line in table(&checks) {
            println!("{line}");
        }
    }
    let summary = ContractSummary::of(&checks);
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

/// Every check of the running stack's services (those not stopped on request), read from the
/// ports they run on.
pub(crate) fn live_checks(cfg: &StackConfig, state: &RunState) -> Vec<Check> {
    check::collect(&state.live_config(cfg), &state.checked_units())
}

/// The checks as `verify` prints them (and `ui` shows them): verdict first and the live value
/// last, so long values never push a column out of line.
pub(crate) fn table(checks: &[Check]) -> Vec<String> {
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
    let header = format!(
        "{:<11}  {:<check_width$}  {:<expected_width$}  LIVE",
        "VERDICT", "CHECK", "EXPECTED"
    );
    let rows = checks.iter().map(|c| {
        let verdict = match c.verdict {
            Verdict::Ok => "ok",
            Verdict::Drift => "DRIFT",
            Verdict::Unsupported => "unsupported",
            Verdict::Unpinned => "unpinned",
        };
        format!(
            "{verdict:<11}  {:<check_width$}  {:<expected_width$}  {}",
            c.check,
            shown(&c.expected),
            shown(&c.live)
        )
    });
    std::iter::once(header).chain(rows).collect()
}
