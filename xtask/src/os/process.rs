//! The low-level process operations: spawn a daemon, recognise it later, stop it.
//!
//! Every daemon runs in its own process group, so a signal reaches its whole tree, and (on
//! Linux) with a parent-death signal; each group is also reported to the [`guardian`], so that
//! no program outlives the supervisor even when the supervisor is killed with SIGKILL.

use std::ffi::OsString;
use std::fs;
use std::io::PipeReader;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::os::account::Account;
use crate::os::poll::wait_until;
use crate::os::{guardian, logfile};

/// How to start one program: a daemon, a one-shot program, or a client the user runs.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) run_as: Option<Account>,
    /// A file to read as standard input (none: stdin is closed).
    pub(crate) stdin: Option<PathBuf>,
}

impl Launch {
    pub(crate) fn new(program: &Path) -> Launch {
        Launch {
            program: program.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            run_as: None,
            stdin: None,
        }
    }

    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Launch {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl Into<String>) -> Launch {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn run_as(mut self, account: Option<Account>) -> Launch {
        self.run_as = account;
        self
    }

    /// Standard input from `path`, opened by us: the program needs no right to read it.
    pub(crate) fn stdin_from(mut self, path: &Path) -> Launch {
        self.stdin = Some(path.to_owned());
        self
    }
}

/// `launch` as a command in a process group of its own, as its account, stdout and stderr
/// the write end of a pipe whose read end is returned, for [`logfile::pump`].
fn command(launch: &Launch) -> anyhow::Result<(Command, PipeReader)> {
    let program = launch.program.display();
    let (reader, out) =
        std::io::pipe().with_context(|| format!("cannot create the log pipe of {program}"))?;
    if let Some(account) = &launch.run_as {
        // The pipe is the program's own, as its log file was: nginx reopens it by name
        // (`access_log /dev/stderr`), which the kernel checks against the pipe's owner.
        nix::unistd::fchown(&out, Some(account.uid), Some(account.gid)).with_context(|| {
            format!("cannot give the log pipe of {program} to {}", account.name)
        })?;
    }
    let err = out
        .try_clone()
        .with_context(|| format!("cannot duplicate the log pipe of {program}"))?;
    let stdin = match &launch.stdin {
        Some(path) => Stdio::from(
            fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .stdout(out)
        .stderr(err)
        .process_group(0);
    if let Some(account) = &launch.run_as {
        command.uid(account.uid.as_raw()).gid(account.gid.as_raw());
    }
    Ok((command, reader))
}

/// The pumps writing the output of the programs started here into their logs, by the
/// program's pid.
static PUMPS: Mutex<Vec<Pump>> = Mutex::new(Vec::new());

struct Pump {
    pid: u32,
    log: PathBuf,
    thread: JoinHandle<()>,
}

/// Starts the pump of `child`'s output into `log`. The command (which holds the parent's
/// copies of the pipe's write end) must be dropped by now, or the pump never sees the end.
fn start_pump(child: &Child, reader: PipeReader, log: &Path) -> anyhow::Result<()> {
    let thread = logfile::pump(reader, log, None)?;
    PUMPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Pump {
            pid: child.id(),
            log: log.to_owned(),
            thread,
        });
    Ok(())
}

/// How long a reaped program's pump may take to write its last lines: longer only when a
/// process that left the group still holds the pipe.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until the pumps of the programs chosen by `done` (reaped ones) wrote their last
/// lines, then forgets them.
fn drain_pumps(mut done: impl FnMut(&Pump) -> bool) {
    let draining: Vec<Pump> = {
        let mut pumps = PUMPS.lock().unwrap_or_else(PoisonError::into_inner);
        let (draining, running) = pumps.drain(..).partition(|pump| done(pump));
        *pumps = running;
        draining
    };
    wait_until(DRAIN_TIMEOUT, || {
        draining.iter().all(|pump| pump.thread.is_finished())
    });
    for pump in draining {
        if pump.thread.is_finished() {
            let _ = pump.thread.join();
        }
    }
}

/// Waits for the last lines of the exited programs that write into `log`, so that a tail of
/// it read now shows why they exited.
fn drain_exited(log: &Path) {
    drain_pumps(|pump| pump.log == log && kill(Pid::from_raw(pump.pid as i32), None).is_err());
}

/// Starts a daemon, its stdout and stderr appended to `log` line by line, timestamped.
///
/// Must be called from a thread that lives as long as the supervisor: the parent-death signal
/// fires when the spawning *thread* exits.
pub(crate) fn spawn(launch: &Launch, log: &Path) -> anyhow::Result<Child> {
    let (mut command, output) = command(launch)?;
    let supervisor = nix::unistd::getpid();
    let pdeathsig = guardian::pdeathsig_armed();
    // SAFETY: only async-signal-safe calls (prctl, getppid, kill) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Set after the uid change above (std drops privileges before pre_exec), because a
            // credential change clears the parent-death signal.
            if pdeathsig {
                #[cfg(target_os = "linux")]
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            }
            if nix::unistd::getppid() != supervisor {
                // The supervisor died before the signal was armed.
                let _ = kill(nix::unistd::getpid(), Signal::SIGKILL);
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", launch.program.display()))?;
    guardian::watch(child.id());
    drop(command);
    start_pump(&child, output, log)?;
    Ok(child)
}

/// Starts a program in a session of its own, stdin closed, stdout and stderr appended to
/// `log` as they come: it outlives us and the terminal that started it (`up`'s supervisor,
/// which timestamps its own output into that log).
pub(crate) fn spawn_detached(launch: &Launch, log: &Path) -> anyhow::Result<Child> {
    let out = fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let stdin = match &launch.stdin {
        Some(path) => Stdio::from(
            fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .stdout(
            out.try_clone()
                .with_context(|| format!("cannot open {}", log.display()))?,
        )
        .stderr(out);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", launch.program.display()))
}

/// The one-shot programs running now (initdb), by pid, each the leader of its own group: a
/// failed start ends them with the daemons, so none goes on writing into the state dir.
static ONE_SHOTS: Mutex<OneShots> = Mutex::new(OneShots {
    running: Vec::new(),
    refused: false,
});

struct OneShots {
    running: Vec<u32>,
    /// Set by [`kill_one_shots`]: the stack is stopping, so nothing new starts.
    refused: bool,
}

/// Runs a one-shot program to its end, output appended to `log` as [`spawn`] does. Registered while it runs, so
/// that [`kill_one_shots`] can end it from another thread.
pub(crate) fn run_once(launch: &Launch, log: &Path) -> anyhow::Result<ExitStatus> {
    let (mut command, output) = command(launch)?;
    let mut one_shots = ONE_SHOTS.lock().unwrap_or_else(PoisonError::into_inner);
    anyhow::ensure!(
        !one_shots.refused,
        "{} not run: the stack is stopping",
        launch.program.display()
    );
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", launch.program.display()))?;
    let pid = child.id();
    guardian::watch(pid);
    one_shots.running.push(pid);
    drop(one_shots);
    drop(command);
    let pumped = start_pump(&child, output, log);
    let status = child.wait();
    guardian::forget(pid);
    drain_pumps(|pump| pump.pid == pid);
    pumped?;
    ONE_SHOTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .running
        .retain(|p| *p != pid);
    status.with_context(|| format!("cannot wait for {}", launch.program.display()))
}

/// Kills every running one-shot program with its group ([`run_once`] then reaps it) and
/// refuses to start any other from now on.
pub(crate) fn kill_one_shots() {
    let mut one_shots = ONE_SHOTS.lock().unwrap_or_else(PoisonError::into_inner);
    one_shots.refused = true;
    for pid in &one_shots.running {
        let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
}

/// A process as recorded in the state dir: the pid alone could belong to someone else by now
/// (after a crash or a reboot), so its start time is kept too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ProcessId {
    pub(crate) pid: i32,
    pub(crate) start_time: u64,
}

impl ProcessId {
    pub(crate) fn of(pid: u32) -> Option<ProcessId> {
        let pid = i32::try_from(pid).ok()?;
        start_time(pid).map(|start_time| ProcessId { pid, start_time })
    }

    /// True while this very process (same pid, same start time) runs.
    pub(crate) fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time) && !is_zombie(self.pid)
    }

    /// Sends `signal` to the process's group, only if it is still the recorded process.
    pub(crate) fn signal_group(&self, signal: Signal) -> bool {
        self.is_alive() && killpg(Pid::from_raw(self.pid), signal).is_ok()
    }

    pub(crate) fn signal(&self, signal: Signal) -> bool {
        self.is_alive() && kill(Pid::from_raw(self.pid), signal).is_ok()
    }
}

/// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
#[cfg(target_os = "linux")]
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

/// Elsewhere only the pid can be checked.
#[cfg(not(target_os = "linux"))]
fn start_time(pid: i32) -> Option<u64> {
    kill(Pid::from_raw(pid), None).ok().map(|_| 0)
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|i| stat[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
fn is_zombie(_pid: i32) -> bool {
    false
}

/// The short command name of a running process (`postgres`, `nginx`), where the OS tells.
/// None for a zombie: an init that does not reap keeps dead processes listed.
pub(crate) fn command_name(pid: i32) -> Option<String> {
    if is_zombie(pid) {
        return None;
    }
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Waits until every one of `processes` is gone; false when `timeout` passed first.
pub(crate) fn wait_gone(processes: &[ProcessId], timeout: Duration) -> bool {
    wait_until(timeout, || processes.iter().all(|p| !p.is_alive()))
}

/// Sends `signal` to the group of a daemon we spawned whose start time could not be read (see
/// [`ProcessId::signal_group`] for one whose could).
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pid as i32), signal);
}

/// Waits until a daemon from [`spawn`] exits, on its own or stopped, and reaps it; kills what
/// is left of its group, stops the guardian watching it and waits for its last log lines. For
/// the one thread that waits for that daemon: the supervisor signals it, this reaps it.
pub(crate) fn reap(mut child: Child) -> std::io::Result<ExitStatus> {
    let status = child.wait();
    // The leader is reaped; anything of its group that outlived it goes too (none for our
    // daemons, but never leave strays), and the guardian stops watching the number.
    let pid = child.id();
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    guardian::forget(pid);
    drain_pumps(|pump| pump.pid == pid);
    status
}

/// The last `lines` lines of a log (from the rotated files too, if the current one is short),
/// for error messages: without their timestamps, which the file keeps.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    drain_exited(path);
    let mut tail: Vec<String> = Vec::new();
    let files = std::iter::once(path.to_owned())
        .chain((1..=logfile::KEEP).map(|n| logfile::rotated(path, n)));
    for file in files {
        let Ok(bytes) = fs::read(&file) else { break };
        let older: Vec<String> = bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| String::from_utf8_lossy(logfile::without_timestamp(line)).into_owned())
            .collect();
        tail.splice(0..0, older);
        if tail.len() >= lines {
            break;
        }
    }
    tail[tail.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_recognised_by_pid_and_start_time() {
        let me = ProcessId::of(std::process::id()).unwrap();
        assert!(me.is_alive());
        let impostor = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
        assert!(!impostor.signal(Signal::SIGTERM));
    }

    /// Processes of the group that are not zombies (an init that does not reap keeps those).
    fn live_members_of_group(pgid: i32) -> usize {
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
                fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .count()
    }

    #[test]
    fn a_spawned_daemon_is_stopped_with_its_group() {
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("daemon.log");
        let launch = Launch::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("sleep 30 & echo started; wait");
        let child = spawn(&launch, &log).unwrap();
        assert!(wait_until(Duration::from_secs(5), || log_tail(&log, 1) == "started"));
        let id = ProcessId::of(child.id()).unwrap();
        assert!(id.signal_group(Signal::SIGTERM));
        assert!(!reap(child).unwrap().success());
        assert!(!id.is_alive());
        // SIGKILL to the group is delivered asynchronously: give the members a moment to go.
        let emptied = wait_until(Duration::from_secs(2), || {
            live_members_of_group(id.pid) == 0
        });
        assert!(emptied, "group still has members");
    }

    #[test]
    fn a_daemon_writing_a_lot_never_blocks_and_its_childrens_last_lines_are_kept() {
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("pump.log");
        // 4 MB, far beyond a pipe's buffer, on stdout and stderr; then a child that outlives
        // the daemon writes the last line, without a newline.
        let launch = Launch::new(Path::new("/bin/sh")).arg("-c").arg(
            "i=0; while [ $i -lt 400 ]; do head -c 9999 /dev/zero | tr '\\0' x; echo; \
             echo err$i >&2; i=$((i+1)); done; (sleep 0.3; printf grandchild) & echo done",
        );
        let mut child = spawn(&launch, &log).unwrap();
        let exited = wait_until(Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        assert!(exited, "the daemon blocked on its output");
        assert_eq!(log_tail(&log, 2), "done\ngrandchild");
        let text = fs::read(&log).unwrap();
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            802,
            "400 long lines, 400 on stderr, done, grandchild"
        );
        assert!(lines.iter().all(|l| logfile::timestamp_of(l).is_some()));
        // One pipe for both: the lines keep the order the program wrote them in.
        for (i, pair) in lines[..800].chunks(2).enumerate() {
            assert_eq!(logfile::without_timestamp(pair[0]).len(), 9999);
            assert_eq!(
                logfile::without_timestamp(pair[1]),
                format!("err{i}").as_bytes()
            );
        }
        assert!(reap(child).unwrap().success());
    }

    #[test]
    fn a_one_shot_program_is_killed_and_reaped_on_request() {
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("once.log");
        let launch = Launch::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("sleep 30 & echo started; wait");
        let runner = std::thread::spawn({
            let (launch, log) = (launch.clone(), log.clone());
            move || run_once(&launch, &log)
        });
        assert!(wait_until(Duration::from_secs(5), || log_tail(&log, 1) == "started"));
        let pid = ONE_SHOTS.lock().unwrap().running[0] as i32;
        kill_one_shots();
        let status = runner.join().unwrap().unwrap();
        assert!(!status.success());
        let emptied = wait_until(Duration::from_secs(2), || live_members_of_group(pid) == 0);
        assert!(emptied, "group still has members");
        assert!(ONE_SHOTS.lock().unwrap().running.is_empty());
        let refused = run_once(&launch, &log).unwrap_err().to_string();
        assert!(refused.contains("the stack is stopping"), "{refused}");
    }
}
