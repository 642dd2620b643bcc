//! `cargo xtask up`: start the supervisor and follow it until the stack is healthy; on a
//! running stack, converge it (start what is missing, restart what changed).

use std::fs;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::{Attach, Output};
use crate::cmd::down::{self, DOWN_TIMEOUT, STATE_MARKER};
use crate::cmd::progress::Display;
use crate::config::{Secrets, StackConfig};
use crate::os::logfile::Echo;
use crate::os::poll;
use crate::os::process::{self, ProcessId};
use crate::repo::Repo;
use crate::stack::build;
use crate::supervisor::launch::{self, Supervision};
use crate::supervisor::run_state::{Phase, RunState};
use crate::supervisor::socket::{self, Request, Start};

pub(crate) use crate::supervisor::socket::Recreate;

pub(crate) fn up(
    repo: &Repo,
    services: &[String],
    attach: Attach,
    recreate: Recreate,
) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let root = repo.root.as_path();
    let cfg = repo.config_with(&[], Secrets::Generate)?;
    if let Some(state) = RunState::read_live(&cfg.state_dir) {
        match state.phase {
            Phase::Starting => {
                println!(
                    "the stack is starting (supervisor pid {}); waiting until it is ready",
                    state.supervisor.pid
                );
                follow_start(&cfg, state.supervisor, began)?;
                return converge(repo, &cfg, services, recreate);
            }
            Phase::Running => return converge(repo, &cfg, services, recreate),
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
    down::clean_leftovers(&cfg)?;
    let marker = cfg.state_dir.join(STATE_MARKER);
    fs::write(&marker, "").with_context(|| format!("cannot write {}", marker.display()))?;
    build::build_apps(root)?;
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
    let started = launch::start_supervisor(&cfg, Supervision::Detached(services), &[])
        .and_then(|supervisor| follow_start(&cfg, supervisor, began));
    let _ = docs.join();
    started?;
    Ok(ExitCode::SUCCESS)
}

/// `up` on a running stack: builds the apps if their sources changed, then asks the supervisor
/// to start what is not running and to restart what changed; prints the status.
fn converge(
    repo: &Repo,
    cfg: &StackConfig,
    services: &[String],
    recreate: Recreate,
) -> anyhow::Result<ExitCode> {
    build::build_apps(&repo.root)?;
    let request = Request::Up {
        services: services.to_vec(),
        start: Start::Asked,
        recreate,
        env: std::env::vars().collect(),
    };
    socket::call(cfg, &request)?;
    match RunState::read_live(&cfg.state_dir) {
        Some(state) => crate::cmd::status::print(cfg, &state, Output::Table),
        None => bail!(
            "the supervisor stopped; see {}",
            cfg.log_file("supervisor").display()
        ),
    }
}

/// How a start that `up` follows ends.
enum StartEnd {
    Ready(RunState),
    /// The supervisor gave up (a service failed) or was stopped, and stops everything.
    Stopped,
    /// The supervisor is gone without saying why.
    SupervisorGone,
}

/// Follows the supervisor's progress until the stack is ready, printing each service's time
/// to ready (one live line per service on a terminal).
pub(crate) fn follow_start(
    cfg: &StackConfig,
    supervisor: ProcessId,
    began: Instant,
) -> anyhow::Result<()> {
    let mut display = Display::new(std::io::stderr().is_terminal());
    // No deadline of its own: the supervisor gives each service its time and says when one
    // fails; this follows until it is ready, failed, or gone.
    let outcome = poll::wait_for(Duration::MAX, || {
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
            Ok(())
        }
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
