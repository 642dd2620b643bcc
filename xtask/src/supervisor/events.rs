//! The supervisor's one inbox: everything it reacts to arrives as an [`Event`] on one channel,
//! from threads that only wait and report (a child's reaper, the socket's listener, the
//! signal thread, a unit's helper); the loop itself blocks on that channel until the next
//! deadline of its own (a restart's delay, the next readiness probe, a stop's grace period).

use std::fmt::Display;
use std::sync::mpsc::Sender;

use signal_hook::iterator::Signals;

use crate::stack::fingerprint::Fingerprint;
use crate::supervisor::run_state::ContractSummary;
use crate::supervisor::socket::Call;

pub(super) enum Event {
    /// A helper's report about one start of a unit (its `generation`).
    Report {
        slot: usize,
        generation: u32,
        report: Report,
    },
    /// A daemon exited, on its own or stopped, and is reaped.
    Exited {
        slot: usize,
        pid: u32,
        status: String,
    },
    /// A request from the control socket.
    Call(Call),
    /// The contract check number `check` is done.
    ContractChecked {
        check: u32,
        summary: ContractSummary,
    },
    /// SIGTERM, SIGINT or SIGHUP: stop the stack.
    Signal,
}

impl From<Call> for Event {
    fn from(call: Call) -> Event {
        Event::Call(call)
    }
}

/// What a helper thread found.
pub(super) enum Report {
    /// A daemon's files are rendered; the fingerprint of what is about to start.
    Prepared(anyhow::Result<Fingerprint>),
    /// One readiness probe of a daemon.
    Probed(Probe),
    /// A task ran: its message, or why it failed.
    TaskDone(anyhow::Result<String>),
    /// One liveness probe of a ready daemon: `Err` says it did not answer, or what it said.
    Alive(anyhow::Result<()>),
}

/// The outcome of one readiness probe.
pub(super) enum Probe {
    /// It answers, and what runs once it does (creating the database) is done.
    Ready,
    /// No answer yet: probed again after a moment, until the start's deadline.
    NotYet(anyhow::Error),
    /// Its port is listened on, but it does not answer as it should yet (Postgres while it
    /// recovers): as [`Probe::NotYet`], and the time is kept for `up --timings`.
    Listening(anyhow::Error),
    /// It answers, but what runs once it does failed.
    Failed(anyhow::Error),
}

/// Where the helper of one start of a unit reports.
#[derive(Clone)]
pub(super) struct Reporter {
    pub(super) sender: Sender<Event>,
    pub(super) slot: usize,
    pub(super) generation: u32,
}

impl Reporter {
    pub(super) fn send(&self, report: Report) {
        let (slot, generation) = (self.slot, self.generation);
        let _ = self.sender.send(Event::Report {
            slot,
            generation,
            report,
        });
    }
}

/// Where the reaper of one daemon says that it exited.
pub(super) struct ExitNotice {
    pub(super) sender: Sender<Event>,
    pub(super) slot: usize,
}

impl ExitNotice {
    pub(super) fn exited(self, pid: u32, status: impl Display) {
        let _ = self.sender.send(Event::Exited {
            slot: self.slot,
            pid,
            status: status.to_string(),
        });
    }
}

/// Catches SIGTERM, SIGINT and SIGHUP from now on: they no longer end the process, and the
/// supervisor hears of them once they are forwarded ([`forward_signals`]).
pub(super) fn catch_signals() -> anyhow::Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    Ok(Signals::new([SIGTERM, SIGINT, SIGHUP])?)
}

/// Turns each caught signal into [`Event::Signal`], from a thread of their own.
pub(super) fn forward_signals(mut signals: Signals, sender: Sender<Event>) {
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if sender.send(Event::Signal).is_err() {
                return; // the supervisor is gone
            }
        }
    });
}
