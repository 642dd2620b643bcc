//! One unit while the supervisor runs it: a [`Slot`], whose [`SlotState`] holds what each
//! stage of its life needs (a daemon's process only while there is one, a restart's delay
//! only while it waits), and the transitions that do not need the rest of the stack. What is
//! published in `state.json` ([`UnitState`]) is derived from it.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::StackConfig;
use crate::os::process::ProcessId;
use crate::stack::fingerprint::Fingerprint;
use crate::stack::programs::Installed;
use crate::stack::{self, Kind, Unit};
use crate::supervisor::run_state::{Status, Timings, UnitState};
use crate::supervisor::runner::Runner;

/// Grace period between the stop signal and SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);
/// The same for a daemon not yet ready: it has no clients' work to finish, and a program can
/// miss a stop signal that lands while it starts (nginx's master acts on one only when it
/// next wakes, and may not wake again), which would keep a cancelled `up` waiting the whole
/// grace period.
pub(super) const STARTING_STOP_GRACE: Duration = Duration::from_secs(1);
/// Restart delays grow from this, doubling, up to `MAX_RESTART_DELAY`.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(15);

/// A daemon that the runner started: the leader of its own process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Process {
    pub(super) pid: u32,
    /// Its pid and start time, where they could be read: signals go to this very process.
    pub(super) id: Option<ProcessId>,
}

#[derive(Debug)]
pub(super) enum SlotState {
    /// Due to start once its dependencies are ready, and not before `not_before` when it is
    /// being restarted after a failure.
    Waiting { not_before: Option<Instant> },
    /// A daemon's files being rendered on a helper thread.
    Preparing { began: Instant },
    /// A task running on a helper thread.
    Running { began: Instant },
    /// A daemon spawned and probed until it answers, or `deadline` passes.
    Starting {
        process: Process,
        began: Instant,
        deadline: Instant,
        probe: NextProbe,
    },
    Ready {
        process: Process,
        liveness: Liveness,
    },
    /// Its stop signal sent; SIGKILL at `kill_at` (`None` once sent). Once it has exited, it
    /// does `then`.
    Stopping {
        process: Process,
        kill_at: Option<Instant>,
        /// How long it was given, for the line that says it was killed.
        grace: Duration,
        then: AfterStop,
    },
    /// Stopped on request, or never started (`up SERVICE`): the supervisor leaves it so
    /// until asked (`start`, `up`), however much time passes.
    Stopped,
    /// It failed while the stack started, which stops the stack.
    Failed,
    /// A task that ran to its end.
    Done,
}

/// A ready daemon's liveness probing ([`stack::Liveness`] is its rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Liveness {
    pub(super) next: NextProbe,
    /// Probes in a row that went unanswered.
    pub(super) misses: u32,
}

impl Liveness {
    /// Ready at `now`: the first liveness probe one period later.
    pub(super) fn from(now: Instant) -> Liveness {
        Liveness {
            next: NextProbe::At(now + stack::LIVENESS_PERIOD),
            misses: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NextProbe {
    At(Instant),
    /// A probe runs on a helper thread; its result decides what comes next.
    Running,
}

/// What a unit does once its daemon has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AfterStop {
    /// Stays stopped until `start` (`stop`).
    Hold,
    /// Starts again at once (`restart`, a `start` meanwhile, a changed `up`).
    Start,
    /// Starts again after `delay` (it failed while the stack ran).
    Restart { delay: Duration },
    /// Is marked failed (it failed while the stack started).
    Fail,
    /// Nothing more: the stack stops.
    Exit,
}

/// A unit while the supervisor runs it.
pub(super) struct Slot {
    pub(super) unit: &'static Unit,
    pub(super) state: SlotState,
    /// Bumped at each start, so that the helpers' reports about an earlier one are ignored.
    pub(super) generation: u32,
    /// Consecutive failed starts, for the restart delay.
    pub(super) failures: u32,
    pub(super) restarts: u32,
    pub(super) port: Option<u16>,
    /// Its program as found (a task has none).
    pub(super) installed: Option<Installed>,
    /// What its daemon was last started from (a second `up` compares); cleared when it is
    /// stopped on request.
    pub(super) fingerprint: Option<Fingerprint>,
    /// Unix time of the current process's start.
    pub(super) started_at: Option<u64>,
    /// Milliseconds from the start of its preparation to ready.
    pub(super) ready_ms: Option<u64>,
    /// The task's result, the last error, or why it is stopped.
    pub(super) message: Option<String>,
    /// Why it was last restarted behind the user's back (it exited, did not answer).
    pub(super) last_restart: Option<String>,
    /// The steps of its current (or last) start.
    pub(super) timings: Timings,
}

impl Slot {
    pub(super) fn new(unit: &'static Unit, cfg: &StackConfig) -> Slot {
        Slot {
            unit,
            state: SlotState::Waiting { not_before: None },
            generation: 0,
            failures: 0,
            restarts: 0,
            port: unit.port().map(|port| cfg.port(port)),
            installed: None,
            fingerprint: None,
            started_at: None,
            ready_ms: None,
            message: None,
            last_restart: None,
            timings: Timings::default(),
        }
    }

    pub(super) fn is_daemon(&self) -> bool {
        matches!(self.unit.kind, Kind::Daemon(_))
    }

    pub(super) fn status(&self) -> Status {
        match &self.state {
            SlotState::Waiting { not_before: None } => Status::Waiting,
            SlotState::Waiting {
                not_before: Some(_),
            } => Status::Restarting,
            SlotState::Preparing { .. }
            | SlotState::Running { .. }
            | SlotState::Starting { .. } => Status::Starting,
            SlotState::Ready { .. } | SlotState::Done => Status::Ready,
            SlotState::Stopping {
                then: AfterStop::Restart { .. },
                ..
            } => Status::Restarting,
            SlotState::Stopping {
                then: AfterStop::Fail,
                ..
            }
            | SlotState::Failed => Status::Failed,
            SlotState::Stopping { .. } => Status::Stopping,
            SlotState::Stopped => Status::Stopped,
        }
    }

    /// Its daemon's process, while there is one.
    pub(super) fn process(&self) -> Option<&Process> {
        match &self.state {
            SlotState::Starting { process, .. }
            | SlotState::Ready { process, .. }
            | SlotState::Stopping { process, .. } => Some(process),
            _ => None,
        }
    }

    /// What `state.json` says about it.
    pub(super) fn published(&self) -> UnitState {
        UnitState {
            name: self.unit.name.to_owned(),
            status: self.status(),
            daemon: self.is_daemon(),
            pid: self.process().and_then(|p| p.id),
            port: self.port,
            installed: self.installed.clone(),
            started_at: self.started_at,
            ready_ms: self.ready_ms,
            restarts: self.restarts,
            message: self.message.clone(),
            last_restart: self.last_restart.clone(),
            timings: self.timings.clone(),
        }
    }

    /// Starts it (prepares a daemon, runs a task); returns the start's generation.
    pub(super) fn begin(&mut self, now: Instant) -> u32 {
        self.generation += 1;
        self.state = match self.unit.kind {
            Kind::Daemon(_) => SlotState::Preparing { began: now },
            Kind::Task(_) => SlotState::Running { began: now },
        };
        self.generation
    }

    /// Due to start as soon as its dependencies are ready, with no restart delay (`start`,
    /// `restart`).
    pub(super) fn start_again(&mut self) {
        self.state = SlotState::Waiting { not_before: None };
        self.failures = 0;
    }

    /// Stopped on request: the supervisor leaves it so until `start`.
    pub(super) fn hold(&mut self) {
        self.state = SlotState::Stopped;
        self.message = Some(format!(
            "stopped (`cargo xtask start {}` starts it)",
            self.unit.name
        ));
    }

    /// Not started with the others (`up SERVICE` did not name it): left so until `up` does.
    pub(super) fn leave_out(&mut self) {
        self.state = SlotState::Stopped;
        self.message = Some(format!(
            "not started (`cargo xtask up {}` starts it)",
            self.unit.name
        ));
    }

    /// Asks its daemon to stop (its stop signal, SIGKILL after [`STOP_GRACE`]) and to do
    /// `then` once it has exited; a unit without a daemon running does `then` now. True when
    /// this sent the stop signal.
    pub(super) fn stop(&mut self, then: AfterStop, runner: &dyn Runner, now: Instant) -> bool {
        let grace = match self.state {
            // A daemon that does not answer its probe has no clients' work to finish either.
            SlotState::Starting { .. } => STARTING_STOP_GRACE,
            SlotState::Ready { liveness, .. } if liveness.misses > 0 => STARTING_STOP_GRACE,
            _ => STOP_GRACE,
        };
        match &mut self.state {
            SlotState::Starting { process, .. } | SlotState::Ready { process, .. } => {
                let process = *process;
                runner.signal(&process, stop_signal(self.unit));
                self.state = SlotState::Stopping {
                    process,
                    kill_at: Some(now + grace),
                    grace,
                    then,
                };
                true
            }
            // Already stopping: only what follows changes (a failed start stays failed).
            SlotState::Stopping { then: was, .. } => {
                if *was != AfterStop::Fail {
                    *was = then;
                }
                false
            }
            _ => {
                self.after_stop(then, now);
                false
            }
        }
    }

    /// Its daemon has exited (or it had none): on to `then`.
    pub(super) fn after_stop(&mut self, then: AfterStop, now: Instant) {
        match then {
            AfterStop::Hold => self.hold(),
            AfterStop::Start => self.start_again(),
            AfterStop::Restart { delay } => {
                self.state = SlotState::Waiting {
                    not_before: Some(now + delay),
                }
            }
            AfterStop::Fail => self.state = SlotState::Failed,
            AfterStop::Exit => self.state = SlotState::Stopped,
        }
    }

    /// It failed while the stack runs: it starts again after a delay that grows with each
    /// consecutive failure (its daemon, if one still runs, stopped first); returns the delay.
    pub(super) fn schedule_restart(&mut self, runner: &dyn Runner, now: Instant) -> Duration {
        let delay = restart_delay(self.failures);
        self.failures += 1;
        self.restarts += 1;
        self.stop(AfterStop::Restart { delay }, runner, now);
        delay
    }

    /// It failed while the stack starts: marked failed (its daemon, if one still runs,
    /// stopped first).
    pub(super) fn give_up(&mut self, runner: &dyn Runner, now: Instant) {
        self.stop(AfterStop::Fail, runner, now);
    }

    /// Sends SIGKILL to a daemon whose grace period is over at `now`.
    pub(super) fn kill_if_overdue(&mut self, runner: &dyn Runner, now: Instant) {
        if let SlotState::Stopping {
            process,
            kill_at,
            grace,
            ..
        } = &mut self.state
            && kill_at.is_some_and(|at| at <= now)
        {
            runner.signal(process, Signal::SIGKILL);
            *kill_at = None;
            println!(
                "{}: still running {} ms after its stop signal; killed",
                self.unit.name,
                grace.as_millis()
            );
        }
    }

    /// When it next needs the supervisor without being told: a restart's delay ending, its
    /// next probe, its stop's grace ending.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            SlotState::Waiting { not_before } => *not_before,
            SlotState::Starting {
                probe: NextProbe::At(at),
                ..
            }
            | SlotState::Ready {
                liveness:
                    Liveness {
                        next: NextProbe::At(at),
                        ..
                    },
                ..
            } => Some(*at),
            SlotState::Stopping { kill_at, .. } => *kill_at,
            _ => None,
        }
    }
}

/// The wait before restart number `failures + 1`: doubling from the first delay, capped.
pub(super) fn restart_delay(failures: u32) -> Duration {
    FIRST_RESTART_DELAY
        .saturating_mul(1 << failures.min(5))
        .min(MAX_RESTART_DELAY)
}

/// The signal that asks a unit's program for a graceful stop.
fn stop_signal(unit: &Unit) -> Signal {
    match &unit.kind {
        Kind::Daemon(daemon) => daemon.stop_signal,
        // A task runs inside the supervisor; nothing to signal.
        Kind::Task(_) => Signal::SIGTERM,
    }
}
