//! `cargo xtask down` and `reset`: ask the supervisor to stop and wait until every process is
//! gone; after a crash, stop what the state file names.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use crate::config::{STATE_MARKER, StackConfig};
use crate::os::process::{self, ProcessId};
use crate::repo::Repo;
use crate::stack::postgres;
use crate::supervisor::run_state::{Phase, RunState};
use crate::supervisor::socket;

/// How long `down` waits for the supervisor to stop everything.
pub(crate) const DOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// What `down` does with the state dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Volumes {
    Keep,
    /// `down --volumes` and `reset`: the database, generated passwords and logs go.
    Delete,
}

/// `down` and `reset`: a stack that was never started has nothing to stop; one that was is
/// stopped from its state dir whatever the configuration says now.
pub(crate) fn down_if_started(repo: &Repo, volumes: Volumes) -> anyhow::Result<ExitCode> {
    match repo.started_stack()? {
        Some(cfg) => down(&cfg, volumes),
        None => {
            println!("the stack is not running (it was never started): nothing to stop");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn down(cfg: &StackConfig, volumes: Volumes) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    match RunState::read(&cfg.state_dir) {
        Some(state) if state.supervisor.is_alive() => {
            let processes: Vec<ProcessId> = state.processes().collect();
            state.supervisor.signal(Signal::SIGTERM);
            if !process::wait_gone(&processes, DOWN_TIMEOUT) {
                bail!(
                    "the stack did not stop within {DOWN_TIMEOUT:?}; see {}",
                    cfg.log_file("supervisor").display()
                );
            }
            let starting = if state.phase == Phase::Starting {
                " (it was still starting: the `up` that started it stops too, and says so)"
            } else {
                ""
            };
            println!(
                "stack stopped in {} ms{starting}",
                began.elapsed().as_millis()
            );
        }
        _ => {
            let cleaned = clean_leftovers(cfg)?;
            println!(
                "the stack is not running{}",
                if cleaned > 0 {
                    format!(" ({cleaned} leftover processes stopped)")
                } else {
                    String::new()
                }
            );
        }
    }
    // The sockets' dir in /tmp, empty once the servers are gone (kept if anything is left);
    // a supervisor that was killed left its control socket.
    socket::close(cfg);
    let _ = fs::remove_dir(&cfg.runtime_dir);
    if volumes == Volumes::Delete {
        delete_state(cfg)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// After a crash of the supervisor: stops the processes the state file names, if they are
/// still the very processes it recorded (pid and start time), and nothing else.
pub(crate) fn clean_leftovers(cfg: &StackConfig) -> anyhow::Result<usize> {
    fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create the state dir {}", cfg.state_dir.display()))?;
    let Some(state) = RunState::read(&cfg.state_dir) else {
        return Ok(0);
    };
    let leftovers: Vec<ProcessId> = state.processes().filter(ProcessId::is_alive).collect();
    for process in &leftovers {
        process.signal_group(Signal::SIGKILL);
    }
    process::wait_gone(&leftovers, Duration::from_secs(5));
    Ok(leftovers.len())
}

fn delete_state(cfg: &StackConfig) -> anyhow::Result<()> {
    finish_interrupted_reset(cfg)?;
    if !cfg.state_dir.exists() {
        return Ok(());
    }
    if !cfg.state_dir.join(STATE_MARKER).exists() {
        bail!(
            "{} does not look like a state dir of this tool (no {STATE_MARKER}); delete it yourself if you mean to",
            cfg.state_dir.display()
        );
    }
    let released = postgres::release_shared_memory(cfg);
    if !released.is_empty() {
        println!("released the shared memory a killed Postgres left: {released}");
    }
    // Renamed first, in one step: a `reset` killed half way leaves either the whole state or
    // none of it (a cluster with half its files would not start), and the leftover goes with
    // the next `reset` or `up`. A state dir that cannot be renamed (a mount point) is deleted
    // where it is.
    let doomed = doomed_dir(cfg);
    let target = match fs::rename(&cfg.state_dir, &doomed) {
        Ok(()) => &doomed,
        Err(_) => &cfg.state_dir,
    };
    fs::remove_dir_all(target).with_context(|| format!("cannot delete {}", target.display()))?;
    let _ = fs::remove_dir_all(&cfg.runtime_dir);
    println!("deleted {}", cfg.state_dir.display());
    Ok(())
}

/// The name a state dir has while `reset` deletes it: beside it, on the same file system.
fn doomed_dir(cfg: &StackConfig) -> PathBuf {
    let mut name = cfg.state_dir.as_os_str().to_owned();
    name.push(".deleting");
    PathBuf::from(name)
}

/// The rest of a `reset` that was killed while it deleted (its marker says it was a state
/// dir of this tool, so it is ours to delete).
pub(crate) fn finish_interrupted_reset(cfg: &StackConfig) -> anyhow::Result<()> {
    let doomed = doomed_dir(cfg);
    if doomed.join(STATE_MARKER).exists() {
        fs::remove_dir_all(&doomed)
            .with_context(|| format!("cannot delete the leftover {}", doomed.display()))?;
        println!("deleted {}, left by an interrupted reset", doomed.display());
    }
    Ok(())
}
