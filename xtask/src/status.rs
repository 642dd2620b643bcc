//! `cargo xtask status`: each service's pid, port, live health, uptime, version and drift.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::Output;
use crate::config::StackConfig;
use crate::repo::Repo;
use crate::run_state::{RunState, Status, UnitState};
use crate::stack::{self, Kind, github_standin};

/// Exit code when the stack is not running at all (distinct from "running but unhealthy").
const NOT_RUNNING: u8 = 3;

#[derive(serde::Serialize)]
struct ServiceStatus {
    name: String,
    pid: Option<i32>,
    port: Option<u16>,
    healthy: bool,
    health: String,
    uptime_s: Option<u64>,
    version: Option<String>,
    restarts: u32,
    drift: Vec<String>,
}

pub(crate) fn run(repo: &Repo, output: Output) -> anyhow::Result<ExitCode> {
    let Some(cfg) = repo.existing_config()? else {
        return Ok(not_running(None, output));
    };
    match RunState::read_live(&cfg.state_dir) {
        Some(state) => print(&cfg, &state, output),
        None => Ok(not_running(Some(&cfg.state_dir), output)),
    }
}

/// Says that nothing runs (in `state_dir`, if the stack was ever started there).
fn not_running(state_dir: Option<&Path>, output: Output) -> ExitCode {
    if output == Output::Json {
        println!(
            "{}",
            serde_json::json!({ "running": false, "services": [] })
        );
    } else {
        let place = state_dir.map_or_else(
            || "never started".to_owned(),
            |dir| format!("state dir {}", dir.display()),
        );
        println!("the stack is not running ({place}); start it with `cargo xtask up`");
    }
    ExitCode::from(NOT_RUNNING)
}

pub(crate) fn print(
    cfg: &StackConfig,
    state: &RunState,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Probe every daemon at once: a dead one may take a timeout to answer. The contract is
    // not checked again: the supervisor did that once the stack was ready (`verify` checks it
    // live).
    let services = std::thread::scope(|scope| {
        let handles: Vec<_> = state
            .units
            .iter()
            .map(|unit| {
                scope.spawn(move || {
                    let (healthy, health) = health(cfg, unit);
                    ServiceStatus {
                        name: unit.name.clone(),
                        pid: unit.pid.filter(|p| p.is_alive()).map(|p| p.pid),
                        port: unit.port,
                        healthy,
                        health,
                        uptime_s: unit
                            .started_at
                            .filter(|_| unit.daemon)
                            .map(|t| now.saturating_sub(t)),
                        version: unit.installed.as_ref().map(|i| i.version.clone()),
                        restarts: unit.restarts,
                        drift: unit
                            .installed
                            .as_ref()
                            .map(|i| i.drift.clone())
                            .unwrap_or_default(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("status probe panicked"))
            .collect::<Vec<ServiceStatus>>()
    });
    let contract = &state.contract;
    let all_healthy = services.iter().all(|s| s.healthy);
    if output == Output::Json {
        let report = serde_json::json!({
            "running": true,
            "phase": state.phase,
            "supervisor_pid": state.supervisor.pid,
            "github": if github_standin::in_use(cfg) { "stand-in" } else { "github app" },
            "services": services,
            "contract": contract,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<15} {:>7} {:>6}  {:<10} {:>8}  {:<9} drift",
            "SERVICE", "PID", "PORT", "HEALTH", "UPTIME", "VERSION"
        );
        for s in &services {
            println!(
                "{:<15} {:>7} {:>6}  {:<10} {:>8}  {:<9} {}",
                s.name,
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.health,
                s.uptime_s.map(format_uptime).unwrap_or_else(|| "-".into()),
                s.version.as_deref().unwrap_or("-"),
                if s.drift.is_empty() {
                    "none".to_owned()
                } else {
                    s.drift.join("; ")
                },
            );
        }
        match contract {
            Some(summary) => println!(
                "contract: {summary}, as checked at the start (live: `cargo xtask verify`)"
            ),
            None => println!("contract: still being checked (live: `cargo xtask verify`)"),
        }
        if github_standin::in_use(cfg) {
            println!("github-mcp talks to the local GitHub stand-in (no GITHUB_APP_ID set)");
        }
    }
    Ok(if all_healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A fresh probe of a daemon; a task reports how it ended.
fn health(cfg: &StackConfig, unit: &UnitState) -> (bool, String) {
    let Some(Kind::Daemon(daemon)) = stack::unit(&unit.name).map(|u| &u.kind) else {
        let ok = unit.status == Status::Ready;
        return (
            ok,
            if ok {
                "done".into()
            } else {
                format!("{:?}", unit.status).to_lowercase()
            },
        );
    };
    if unit.status != Status::Ready {
        return (false, format!("{:?}", unit.status).to_lowercase());
    }
    match (daemon.probe)(cfg) {
        Ok(()) => (true, "healthy".into()),
        Err(_) => (false, "unhealthy".into()),
    }
}

/// A unit that is not ready, in words: its status, and why when the supervisor knows.
pub(crate) fn not_ready(unit: &UnitState) -> String {
    let status = format!("{:?}", unit.status).to_lowercase();
    match &unit.message {
        Some(reason) => format!("{status}: {reason}"),
        None => status,
    }
}

fn format_uptime(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
