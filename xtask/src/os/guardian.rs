//! The guardian: no service outlives the supervisor where Linux's parent-death signal is
//! missing (macOS, the BSDs) or turned off ([`NO_PDEATHSIG`], for its test), and no one-shot
//! program (initdb, which a helper thread runs and so cannot carry that signal) outlives it
//! either.
//!
//! The supervisor starts `xtask __guard` in a process group of its own (so a terminal's Ctrl-C
//! does not reach it) with the read end of a pipe as its stdin, and keeps the write end, which
//! no service inherits (std opens pipes close-on-exec). It writes `+PGID` once a program runs
//! and `-PGID` once it is reaped. However the supervisor ends, SIGKILL included, the kernel
//! closes its end of the pipe; the guardian then reads end-of-file, kills every process group
//! still listed, and exits. A supervisor that stopped its services itself has listed none by
//! then. (A supervisor killed between a spawn and its `+PGID` line leaves that one program to
//! the parent-death signal, where there is one.)

use std::collections::BTreeSet;
use std::io::{BufRead, PipeWriter, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use nix::sys::signal::{SigHandler, Signal, killpg};
use nix::unistd::Pid;

/// Set to `1` to start the services without the parent-death signal (Linux), so that the
/// guardian alone stands between a killed supervisor and orphans: its test does this.
pub(crate) const NO_PDEATHSIG: &str = "AMTP_NO_PDEATHSIG";

/// Whether the supervisor arms the parent-death signal on its daemons.
pub(crate) fn pdeathsig_armed() -> bool {
    cfg!(target_os = "linux") && std::env::var_os(NO_PDEATHSIG).is_none_or(|v| v != "1")
}

/// The supervisor's end of the guardian's pipe, and the guardian to reap at the end.
struct Guardian {
    pipe: PipeWriter,
    child: Child,
}

/// One guardian per supervisor; daemons are spawned on the main thread, one-shot programs on
/// helper threads, and both report here.
static GUARDIAN: Mutex<Option<Guardian>> = Mutex::new(None);

/// Starts `exe __guard`, its output appended to `log`.
pub(crate) fn start(exe: &Path, log: &Path) -> anyhow::Result<()> {
    let (reader, pipe) = std::io::pipe().context("cannot create the guardian's pipe")?;
    let open_log = || {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log {}", log.display()))
    };
    let child = Command::new(exe)
        .arg("__guard")
        .stdin(reader)
        .stdout(open_log()?)
        .stderr(open_log()?)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start the guardian {} __guard", exe.display()))?;
    *GUARDIAN.lock().unwrap_or_else(PoisonError::into_inner) = Some(Guardian { pipe, child });
    Ok(())
}

/// The guardian kills this process group if the supervisor dies (no-op without a guardian).
pub(crate) fn watch(pgid: u32) {
    tell('+', pgid);
}

/// This group's leader is reaped: its number may soon belong to an unrelated process.
pub(crate) fn forget(pgid: u32) {
    tell('-', pgid);
}

fn tell(sign: char, pgid: u32) {
    let mut guardian = GUARDIAN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(guardian) = guardian.as_mut()
        && let Err(err) = writeln!(guardian.pipe, "{sign}{pgid}")
    {
        eprintln!("supervisor: cannot reach the guardian: {err}");
    }
}

/// Closes the pipe (the guardian exits at once, everything being reaped) and reaps it.
pub(crate) fn stop() {
    let guardian = GUARDIAN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(Guardian { pipe, mut child }) = guardian {
        drop(pipe);
        let _ = child.wait();
    }
}

/// `xtask __guard`: reads the supervisor's lines until its end of the pipe closes, then kills
/// every group still listed.
pub(crate) fn run() -> anyhow::Result<()> {
    // The stop signals are the supervisor's to act on; the guardian ends with its pipe.
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: ignoring a signal installs no handler.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) }
            .with_context(|| format!("cannot ignore {signal}"))?;
    }
    let mut groups = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        apply(&line, &mut groups);
    }
    for pgid in &groups {
        // Straight into the log (the supervisor's pumps are gone with it), so timestamped
        // here, as the pumps would have.
        eprintln!(
            "{} guardian: the supervisor is gone; killing process group {pgid}",
            crate::os::logfile::timestamp()
        );
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    Ok(())
}

/// One line of the supervisor's: `+PGID` lists a group, `-PGID` removes it. Anything else, and
/// groups 0 and 1 (`killpg` would take them as our own group and init's), is ignored.
fn apply(line: &str, groups: &mut BTreeSet<i32>) {
    let (sign, number) = line.split_at(line.len().min(1));
    match (sign, number.parse::<i32>()) {
        ("+", Ok(pgid)) if pgid > 1 => {
            groups.insert(pgid);
        }
        ("-", Ok(pgid)) => {
            groups.remove(&pgid);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_listed_and_forgotten_and_nonsense_is_ignored() {
        let mut groups = BTreeSet::new();
        for line in [
            "+120", "+130", "-120", "+1", "+0", "+-5", "x", "", "+abc", "-",
        ] {
            apply(line, &mut groups);
        }
        assert_eq!(groups.into_iter().collect::<Vec<_>>(), [130]);
    }
}
