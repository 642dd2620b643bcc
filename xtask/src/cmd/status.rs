//! `cargo xtask status`: each service's pid, port, live health, uptime, version and drift.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::Output;
use crate::config::StackConfig;
use crate::os::disk;
use crate::repo::Repo;
use crate::stack::{self, Kind, github_standin};
use crate::supervisor::rates::{self, RequestRate};
use crate::supervisor::run_state::{RunState, Status, UnitState};

/// Exit code when the stack is not running at all (distinct from "running but unhealthy").
const NOT_RUNNING: u8 = 3;

/// The version of `status --json`'s shape; raised when a field changes meaning or goes away
/// (a new field is no change).
const SCHEMA_VERSION: u32 = 1;

/// One service as `status` shows it (and `ui`'s table).
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ServiceStatus {
    pub(crate) name: String,
    pub(crate) pid: Option<i32>,
    pub(crate) port: Option<u16>,
    pub(crate) healthy: bool,
    pub(crate) health: String,
    /// Why the service is not healthy: its last error, how its process ended, or what the
    /// probe answered (`None` when healthy).
    pub(crate) reason: Option<String>,
    pub(crate) uptime_s: Option<u64>,
    pub(crate) version: Option<String>,
    pub(crate) restarts: u32,
    /// Why the supervisor last restarted it on its own (it exited, or did not answer).
    pub(crate) last_restart: Option<String>,
    /// The requests it served per second over the last 30 s, for an app with a Prometheus
    /// endpoint (the supervisor reads its counter every 2 s).
    pub(crate) requests: Option<RequestRate>,
    pub(crate) drift: Vec<String>,
}

pub(crate) fn run(repo: &Repo, output: Output) -> anyhow::Result<ExitCode> {
    let cfg = match repo.existing_config() {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return Ok(not_running(None, output)),
        // The probes need the passwords and names; whether a stack runs needs only its state
        // dir, and a stack that runs is never reported as not running.
        Err(err) => {
            let state_dir = StackConfig::state_dir_from(&repo.root, std::env::vars())?;
            return match RunState::read_live(&state_dir) {
                // The error names the state dir.
                Some(state) => Err(err.context(format!(
                    "the stack runs (supervisor pid {}), but its services cannot be probed",
                    state.supervisor.pid
                ))),
                None => Ok(not_running(Some(&state_dir), output)),
            };
        }
    };
    match RunState::read_live(&cfg.state_dir) {
        Some(state) => print(&cfg, &state, output, Judged::Every),
        None => Ok(not_running(Some(&cfg.state_dir), output)),
    }
}

/// Says that nothing runs (in `state_dir`, if the stack was ever started there).
fn not_running(state_dir: Option<&Path>, output: Output) -> ExitCode {
    if output == Output::Json {
        println!(
            "{}",
            serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "running": false,
                "services": [],
            })
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

/// The services whose health decides [`print`]'s exit code.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Judged<'a> {
    /// Every unit of the stack (`status`).
    Every,
    /// These only: what a converging `up SERVICE…` asked for and what they need. A service
    /// nobody asked for may be stopped, as Compose's `up -d SERVICE` leaves the others; the
    /// table still shows it.
    Only(&'a [&'static str]),
}

/// Prints the stack's status; exit 0 when every judged service is healthy (and the disk not
/// full), else 1.
pub(crate) fn print(
    cfg: &StackConfig,
    state: &RunState,
    output: Output,
    judged: Judged<'_>,
) -> anyhow::Result<ExitCode> {
    let services = services(cfg, state);
    let contract = &state.contract;
    let disk_full = disk_full(&cfg.state_dir);
    let all_healthy = judged_healthy(&services, judged) && disk_full.is_none();
    if output == Output::Json {
        let report = serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "running": true,
            "phase": state.phase,
            "supervisor_pid": state.supervisor.pid,
            "control_socket": crate::supervisor::socket::socket_path(cfg),
            "github": if github_standin::in_use(cfg) { "stand-in" } else { "github app" },
            "services": services,
            "contract": contract,
            "disk_full": disk_full.as_ref().map(|full| &full.path),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<15} {:>7} {:>6}  {:<10} {:>8} {:>7}  {:<9} drift",
            "SERVICE", "PID", "PORT", "HEALTH", "UPTIME", "REQ/S", "VERSION"
        );
        for s in &services {
            println!(
                "{:<15} {:>7} {:>6}  {:<10} {:>8} {:>7}  {:<9} {}",
                s.name,
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.health,
                s.uptime_s.map(format_uptime).unwrap_or_else(|| "-".into()),
                s.requests
                    .as_ref()
                    .map_or_else(|| "-".into(), |r| format!("{:.1}", r.per_second)),
                s.version.as_deref().unwrap_or("-"),
                if s.drift.is_empty() {
                    "none".to_owned()
                } else {
                    s.drift.join("; ")
                },
            );
        }
        for s in &services {
            if let Some(reason) = &s.reason {
                println!("{} is {}: {reason}", s.name, s.health);
            }
            if let Some(why) = &s.last_restart {
                println!(
                    "{} was restarted {} time(s) by the supervisor, the last because {why}",
                    s.name, s.restarts
                );
            }
        }
        if let Some(full) = &disk_full {
            println!(
                "disk full at {}: {} free; Postgres and Garage cannot write until space is \
                 freed there, then they serve again (what they committed is kept)",
                full.path.display(),
                disk::show_bytes(full.free)
            );
        }
        match contract {
            Some(summary) => println!(
                "contract: {summary}, as checked at the start (live: `cargo xtask verify`)"
            ),
            None => println!("contract: still being checked (live: `cargo xtask verify`)"),
        }
        let counted: Vec<String> = services
            .iter()
            .filter_map(|s| Some(format!("{} {}", s.name, s.requests.as_ref()?.of)))
            .collect();
        if !counted.is_empty() {
            println!(
                "REQ/S: over the last 30 s, of {} (`cargo xtask metrics` for every counter)",
                counted.join(", ")
            );
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

/// Whether every service that `judged` names is healthy. Pure.
fn judged_healthy(services: &[ServiceStatus], judged: Judged<'_>) -> bool {
    services
        .iter()
        .filter(|s| match judged {
            Judged::Every => true,
            Judged::Only(names) => names.contains(&s.name.as_str()),
        })
        .all(|s| s.healthy)
}

/// The state dir's file system with (almost) no room left.
struct DiskFull {
    path: PathBuf,
    free: u64,
}

fn disk_full(state_dir: &Path) -> Option<DiskFull> {
    let free = disk::free_bytes(state_dir).ok()?;
    (free < disk::FULL_BELOW).then(|| DiskFull {
        path: state_dir.to_owned(),
        free,
    })
}

/// Each unit of the running stack as `status` shows it, every daemon probed afresh.
pub(crate) fn services(cfg: &StackConfig, state: &RunState) -> Vec<ServiceStatus> {
    // Probe the ports the services listen on, which a changed setting may not have moved yet
    // (`up --no-recreate`).
    let cfg = &state.live_config(cfg);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rates = &rates::read(&cfg.state_dir);
    // Probe every daemon at once: a dead one may take a timeout to answer. The contract is
    // not checked again: the supervisor did that once the stack was ready (`verify` checks it
    // live).
    std::thread::scope(|scope| {
        let handles: Vec<_> = state
            .units
            .iter()
            .map(|unit| {
                scope.spawn(move || {
                    let Health {
                        healthy,
                        health,
                        reason,
                    } = health(cfg, unit);
                    ServiceStatus {
                        name: unit.name.clone(),
                        pid: unit.pid.filter(|p| p.is_alive()).map(|p| p.pid),
                        port: unit.port,
                        healthy,
                        health,
                        reason,
                        uptime_s: unit
                            .started_at
                            .filter(|_| unit.daemon && unit.pid.is_some())
                            .map(|t| now.saturating_sub(t)),
                        version: unit.installed.as_ref().map(|i| i.version.clone()),
                        restarts: unit.restarts,
                        last_restart: unit.last_restart.clone(),
                        requests: rates.get(&unit.name).cloned(),
                        drift: unit
                            .installed
                            .as_ref()
                            .map(|i| i.drift.iter().map(ToString::to_string).collect())
                            .unwrap_or_default(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("status probe panicked"))
            .collect::<Vec<ServiceStatus>>()
    })
}

/// A unit's health, in words, and why it is not healthy.
struct Health {
    healthy: bool,
    health: String,
    reason: Option<String>,
}

/// A fresh probe of a ready daemon; a task reports how it ended, any other unit its status
/// and why.
fn health(cfg: &StackConfig, unit: &UnitState) -> Health {
    if unit.status != Status::Ready {
        return Health {
            healthy: false,
            health: status_word(unit.status),
            reason: unit.message.clone(),
        };
    }
    let Some(row) = stack::unit(&unit.name).filter(|u| matches!(u.kind, Kind::Daemon(_))) else {
        return Health {
            healthy: true,
            health: "done".into(),
            reason: None,
        };
    };
    match row.answers(cfg) {
        Ok(()) => Health {
            healthy: true,
            health: "healthy".into(),
            reason: None,
        },
        Err(err) => Health {
            healthy: false,
            health: "unhealthy".into(),
            // With what the supervisor's liveness probes found, when they found something.
            reason: Some(match &unit.message {
                Some(note) => format!("{err:#}; the supervisor: {note}"),
                None => format!("{err:#}"),
            }),
        },
    }
}

pub(crate) fn status_word(status: Status) -> String {
    format!("{status:?}").to_lowercase()
}

/// A unit that is not ready, in words: its status, and why when the supervisor knows.
pub(crate) fn not_ready(unit: &UnitState) -> String {
    match &unit.message {
        Some(reason) => format!("{}: {reason}", status_word(unit.status)),
        None => status_word(unit.status),
    }
}

pub(crate) fn format_uptime(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A unit of the published state, as the supervisor writes it.
    pub(crate) fn unit(name: &str, status: Status, message: Option<&str>) -> UnitState {
        UnitState {
            name: name.into(),
            status,
            daemon: true,
            pid: None,
            port: None,
            installed: None,
            started_at: None,
            ready_ms: None,
            restarts: 1,
            message: message.map(str::to_owned),
            last_restart: None,
            timings: Default::default(),
        }
    }

    #[test]
    fn a_service_that_is_not_ready_says_why() {
        let cfg = crate::config::tests::config_in(Path::new("/tmp/amtp-status-test"));
        let exited = "valkey exited (signal: 9 (SIGKILL))";
        let restarting = health(&cfg, &unit("valkey", Status::Restarting, Some(exited)));
        assert!(!restarting.healthy);
        assert_eq!(restarting.health, "restarting");
        assert_eq!(restarting.reason.as_deref(), Some(exited));

        let failed = unit("postgres", Status::Failed, Some("postgres: not ready"));
        assert_eq!(health(&cfg, &failed).health, "failed");
        assert_eq!(not_ready(&failed), "failed: postgres: not ready");
        assert_eq!(not_ready(&unit("nginx", Status::Waiting, None)), "waiting");

        let task = unit("migrations", Status::Ready, Some("6 migrations applied"));
        let done = health(&cfg, &task);
        assert!(done.healthy && done.reason.is_none());
        assert_eq!(done.health, "done");
    }
}
