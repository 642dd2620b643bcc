//! `cargo xtask up`: start the supervisor and follow it until the stack is healthy; on a
//! running stack, converge it (start what is missing, restart what changed).

use std::fs;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use crate::cli::{Attach, Output};
use crate::cmd::down::{self, DOWN_TIMEOUT};
use crate::cmd::progress::Display;
use crate::cmd::status::Judged;
use crate::config::{STATE_MARKER, Secrets, StackConfig};
use crate::os::logfile::Echo;
use crate::os::poll;
use crate::os::process::{self, ProcessId};
use crate::os::signals::Interrupt;
use crate::repo::Repo;
use crate::stack::build;
use crate::supervisor::dependencies::Dependencies;
use crate::supervisor::launch::{self, Supervision};
use crate::supervisor::run_state::{Phase, RunState, Status};
use crate::supervisor::socket::{self, Request};

pub(crate) use crate::supervisor::socket::Recreate;

/// The exit code of a cancelled `up`, as a shell reports a command ended by Ctrl-C.
const CANCELLED: u8 = 130;

/// How a start that `up` followed ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Start {
    Ready,
    /// Ctrl-C, SIGTERM or SIGHUP came first.
    Cancelled,
}

/// `up`: Ctrl-C, SIGTERM or SIGHUP before it returns means "cancel": a start stops what it
/// started and exits 130; a converging `up` stops what it was starting and leaves what ran.
pub(crate) fn up(
    repo: &Repo,
    services: &[String],
    attach: Attach,
    recreate: Recreate,
) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let root = repo.root.as_path();
    let cfg = repo.config_with(&[], Secrets::Generate)?;
    let interrupt = Interrupt::catch()?;
    if let Some(state) = RunState::read_live(&cfg.state_dir) {
        match state.phase {
            Phase::Starting => {
                println!(
                    "the stack is starting (supervisor pid {}); waiting until it is ready",
                    state.supervisor.pid
                );
                if follow_start(&cfg, state.supervisor, began, &interrupt)? == Start::Cancelled {
                    println!(
                        "cancelled: this `up` started nothing; the stack goes on starting \
                         (`cargo xtask down` stops it)"
                    );
                    return Ok(ExitCode::from(CANCELLED));
                }
                return converge(repo, &cfg, services, recreate, &interrupt);
            }
            Phase::Running => return converge(repo, &cfg, services, recreate, &interrupt),
            Phase::Stopping | Phase::Stopped | Phase::Failed => {
                println!("the stack is stopping; starting it again once it has stopped");
                let processes: Vec<ProcessId> = state.processes().collect();
                if !process::wait_gone(&processes, DOWN_TIMEOUT) {
                    bail!(
                        "the stack did not stop within {DOWN_TIMEOUT:?}; see {}",
                        cfg.log_file("supervisor").display()
                    );
                }
            }
        }
    }
    // The supervisor is given the ports `AMTP_PORTS=auto` found free now, as if set: it must
    // not look again once this `up` has said which they are.
    let auto_ports: Vec<(String, String)> = match cfg.auto_ports() {
        Some((vars, origin)) => {
            println!("{origin}");
            cfg.ports()
                .filter(|(var, _)| vars.contains(var))
                .map(|(var, port)| (var.to_owned(), port.to_string()))
                .collect()
        }
        None => Vec::new(),
    };
    down::clean_leftovers(&cfg)?;
    down::finish_interrupted_reset(&cfg)?;
    crate::cmd::snapshot::swap::finish_interrupted(&cfg)?;
    let marker = cfg.state_dir.join(STATE_MARKER);
    fs::write(&marker, "").with_context(|| format!("cannot write {}", marker.display()))?;
    let built = build::build_apps(root);
    if interrupt.requested() {
        println!("cancelled: nothing was started");
        return Ok(ExitCode::from(CANCELLED));
    }
    built?;
    if attach == Attach::Attached {
        crate::docs::render_for_nginx(&cfg);
        return crate::cmd::supervise::run(&cfg, services, Echo::Yes);
    }
    // Beside the start, off its critical path (nginx answers its probe without the site;
    // each page is written whole, by rename); done before `up` returns.
    let docs = std::thread::spawn({
        let cfg = cfg.clone();
        move || crate::docs::render_for_nginx(&cfg)
    });
    let started = launch::start_supervisor(&cfg, Supervision::Detached(services), &auto_ports)
        .and_then(|supervisor| {
            Ok((
                supervisor,
                follow_start(&cfg, supervisor, began, &interrupt)?,
            ))
        });
    // A cancel stops the stack first: the docs render may take seconds on a loaded machine.
    let outcome = match started {
        Ok((_, Start::Ready)) => Ok(ExitCode::SUCCESS),
        Ok((supervisor, Start::Cancelled)) => cancel_start(&cfg, supervisor),
        Err(err) => Err(err),
    };
    let _ = docs.join();
    outcome
}

/// A cancelled start: the supervisor stops everything it started, in the usual order (as for
/// `down`), and `up` says what that was once every process is gone.
fn cancel_start(cfg: &StackConfig, supervisor: ProcessId) -> anyhow::Result<ExitCode> {
    let state = RunState::read(&cfg.state_dir).filter(|s| s.supervisor == supervisor);
    let processes: Vec<ProcessId> = match &state {
        Some(state) => state.processes().collect(),
        None => vec![supervisor],
    };
    supervisor.signal(Signal::SIGTERM);
    if !process::wait_gone(&processes, DOWN_TIMEOUT) {
        bail!(
            "cancelled, but the stack did not stop within {DOWN_TIMEOUT:?}; see {}",
            cfg.log_file("supervisor").display()
        );
    }
    let started = state.as_ref().map(started_daemons).unwrap_or_default();
    if started.is_empty() {
        println!("cancelled: nothing had started yet");
    } else {
        println!("cancelled: stopped {}", started.join(", "));
    }
    Ok(ExitCode::from(CANCELLED))
}

/// The daemons that run, or were started and are on their way.
fn started_daemons(state: &RunState) -> Vec<String> {
    state
        .units
        .iter()
        .filter(|unit| unit.daemon && (unit.pid.is_some() || unit.status == Status::Starting))
        .map(|unit| unit.name.clone())
        .collect()
}

/// `up` on a running stack: builds the apps if their sources changed, then asks the supervisor
/// to start what is not running and to restart what changed; prints the status. Cancelled, it
/// stops the services it was starting and leaves those that were already running.
fn converge(
    repo: &Repo,
    cfg: &StackConfig,
    services: &[String],
    recreate: Recreate,
    interrupt: &Interrupt,
) -> anyhow::Result<ExitCode> {
    let built = build::build_apps(&repo.root);
    if interrupt.requested() {
        println!("cancelled: nothing was changed");
        return Ok(ExitCode::from(CANCELLED));
    }
    built?;
    let running_before: Vec<String> = RunState::read_live(&cfg.state_dir)
        .map(|state| {
            state
                .units
                .iter()
                .filter(|u| u.daemon && u.status == Status::Ready)
                .map(|u| u.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let request = Request::Up {
        services: services.to_vec(),
        start: socket::Start::Asked,
        recreate,
        env: std::env::vars().collect(),
    };
    let call = std::thread::spawn({
        let cfg = cfg.clone();
        move || socket::call(&cfg, &request)
    });
    poll::wait_until(Duration::MAX, || {
        call.is_finished() || interrupt.requested()
    });
    if !call.is_finished() {
        return cancel_converge(cfg, &running_before);
    }
    call.join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the call to the supervisor panicked")))?;
    // The exit code says whether what this `up` asked for runs; what it did not ask for
    // (after an earlier `up SERVICE`) may be stopped.
    let asked = Dependencies::named_with_dependencies(crate::stack::UNITS, services)?;
    let judged = if services.is_empty() {
        Judged::Every
    } else {
        Judged::Only(&asked)
    };
    match RunState::read_live(&cfg.state_dir) {
        Some(state) => crate::cmd::status::print(cfg, &state, Output::Table, judged),
        None => bail!(
            "the supervisor stopped; see {}",
            cfg.log_file("supervisor").display()
        ),
    }
}

/// A cancelled converging `up`: the daemons that were not running before it are stopped (and
/// held, as `stop` does, until `up` or `start`); those that were are left as they are.
fn cancel_converge(cfg: &StackConfig, running_before: &[String]) -> anyhow::Result<ExitCode> {
    let to_stop: Vec<String> = RunState::read_live(&cfg.state_dir)
        .map(|state| {
            state
                .units
                .iter()
                .filter(|u| u.daemon && !running_before.contains(&u.name))
                .map(|u| u.name.clone())
                .collect()
        })
        .unwrap_or_default();
    if !to_stop.is_empty() {
        socket::call(
            cfg,
            &Request::Stop {
                services: to_stop.clone(),
            },
        )?;
    }
    let stopped = if to_stop.is_empty() {
        "nothing".to_owned()
    } else {
        to_stop.join(", ")
    };
    println!(
        "cancelled: stopped {stopped}; left running what ran before: {}",
        running_before.join(", ")
    );
    Ok(ExitCode::from(CANCELLED))
}

/// How a start that `up` follows ends.
enum StartEnd {
    Ready(RunState),
    /// The supervisor gave up (a service failed) or was stopped, and stops everything.
    Stopped,
    /// The supervisor is gone without saying why.
    SupervisorGone,
    Cancelled,
}

/// Follows the supervisor's progress until the stack is ready, printing each service's time
/// to ready (one live line per service on a terminal).
pub(crate) fn follow_start(
    cfg: &StackConfig,
    supervisor: ProcessId,
    began: Instant,
    interrupt: &Interrupt,
) -> anyhow::Result<Start> {
    let mut display = Display::new(std::io::stderr().is_terminal());
    // No deadline of its own: the supervisor gives each service its time and says when one
    // fails; this follows until it is ready, failed, or gone.
    let outcome = poll::wait_for(Duration::MAX, || {
        if interrupt.requested() {
            return Some(StartEnd::Cancelled);
        }
        if let Some(state) = RunState::read(&cfg.state_dir).filter(|s| s.supervisor == supervisor) {
            display.update(&state);
            match state.phase {
                Phase::Running => return Some(StartEnd::Ready(state)),
                Phase::Failed | Phase::Stopped | Phase::Stopping => return Some(StartEnd::Stopped),
                Phase::Starting => {}
            }
        }
        (!supervisor.is_alive()).then_some(StartEnd::SupervisorGone)
    });
    display.finish();
    match outcome {
        Some(StartEnd::Ready(state)) => {
            println!("stack ready in {:.2} s", began.elapsed().as_secs_f64());
            print_drift(&state);
            Ok(Start::Ready)
        }
        Some(StartEnd::Cancelled) => Ok(Start::Cancelled),
        Some(StartEnd::Stopped) => {
            process::wait_gone(&[supervisor], DOWN_TIMEOUT);
            let error = RunState::read(&cfg.state_dir)
                .and_then(|s| s.error)
                .unwrap_or_else(|| "the supervisor stopped".into());
            bail!("the stack did not start; everything was stopped\n{error}");
        }
        Some(StartEnd::SupervisorGone) | None => bail!(
            "the supervisor exited; its log ({}):\n{}",
            cfg.log_file("supervisor").display(),
            process::log_tail(&cfg.log_file("supervisor"), 20)
        ),
    }
}

/// Differences from the documented contract, said loudly.
fn print_drift(state: &RunState) {
    for unit in &state.units {
        for drift in unit.installed.iter().flat_map(|i| &i.drift) {
            eprintln!("warning: {} differs from the contract: {drift}", unit.name);
        }
    }
}

/// `up --timings`: each unit's last start as the supervisor recorded it, in milliseconds since
/// the supervisor started, then the critical path: from the unit ready last, back through what
/// each waited for.
pub(crate) fn print_timings(repo: &Repo) -> anyhow::Result<()> {
    let cfg = repo.config()?;
    let Some(state) = RunState::read_live(&cfg.state_dir) else {
        bail!("the stack is not running: no timings to show");
    };
    print!("{}", timings_table(&state));
    Ok(())
}

fn timings_table(state: &RunState) -> String {
    let ms = |at: Option<u64>| at.map_or_else(|| "-".to_owned(), |at| at.to_string());
    let mut out = String::from(
        "ms since the supervisor started: dependencies ready (began), spawned, listening, ready\n",
    );
    out += &format!(
        "{:<16} {:<16} {:>7} {:>7} {:>9} {:>7}\n",
        "service", "waited for", "began", "spawned", "listening", "ready"
    );
    for unit in &state.units {
        let t = &unit.timings;
        out += &format!(
            "{:<16} {:<16} {:>7} {:>7} {:>9} {:>7}\n",
            unit.name,
            t.waited_for.as_deref().unwrap_or("-"),
            ms(t.began_ms),
            ms(t.spawned_ms),
            ms(t.listening_ms),
            ms(t.ready_ms)
        );
    }
    let timing = |name: &str| {
        state
            .units
            .iter()
            .find(|u| u.name == name)
            .map(|u| &u.timings)
    };
    let mut path = Vec::new();
    let mut next = state
        .units
        .iter()
        .filter(|u| u.timings.ready_ms.is_some())
        .max_by_key(|u| u.timings.ready_ms)
        .map(|u| u.name.as_str());
    while let Some(name) = next {
        let Some(t) = timing(name) else { break };
        path.push(format!("{name} {}-{}", ms(t.began_ms), ms(t.ready_ms)));
        next = t.waited_for.as_deref();
    }
    path.reverse();
    out += &format!("critical path (ms): {}\n", path.join(" -> "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_critical_path_runs_back_from_the_unit_ready_last() {
        let unit = |name: &str, waited_for: Option<&str>, began: u64, ready: u64| {
            serde_json::json!({
                "name": name, "status": "ready", "daemon": true, "pid": null, "port": null,
                "installed": null, "started_at": null, "ready_ms": null, "restarts": 0,
                "message": null,
                "timings": { "began_ms": began, "waited_for": waited_for, "spawned_ms": began + 1,
                             "listening_ms": null, "ready_ms": ready },
            })
        };
        let state: RunState = serde_json::from_value(serde_json::json!({
            "supervisor": { "pid": 1, "start_time": 1 }, "phase": "running", "error": null,
            "started_at": 0,
            "units": [
                unit("postgres", None, 12, 450),
                unit("valkey", None, 12, 40),
                unit("migrations", Some("postgres"), 450, 480),
                unit("healthcheck", Some("migrations"), 480, 530),
            ],
        }))
        .unwrap();
        let table = timings_table(&state);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[3],
            "valkey           -                     12      13         -      40"
        );
        assert_eq!(
            lines.last().unwrap(),
            &"critical path (ms): postgres 12-450 -> migrations 450-480 -> healthcheck 480-530"
        );
    }
}
