//! The liveness rule of ready daemons ([`stack::Liveness`]): once the stack runs, each ready
//! daemon is probed every [`stack::LIVENESS_PERIOD`], each probe bounded by
//! [`stack::PROBE_TIMEOUT`]. Each unanswered probe is a line in the supervisor's log; after as
//! many in a row as its rule says, an app is restarted (with why, in the log and in
//! `status`), a database is only reported: never restarted without the user's word.

use std::sync::Arc;
use std::time::Instant;

use super::Supervisor;
use crate::stack::{self, Kind};
use crate::supervisor::events::Report;
use crate::supervisor::slot::{NextProbe, SlotState};

impl Supervisor {
    /// Probes a ready daemon once, on a helper thread, when its dependencies answer (an app
    /// whose database is stopped or hung answers its own probe with an error, which is not
    /// its fault: it is probed again a period later).
    pub(super) fn probe_liveness(&mut self, index: usize, now: Instant) {
        let answering = self.dependencies_answer(index);
        let SlotState::Ready { liveness, .. } = &mut self.slots[index].state else {
            return;
        };
        if !answering {
            liveness.next = NextProbe::At(now + stack::LIVENESS_PERIOD);
            return;
        }
        liveness.next = NextProbe::Running;
        let unit = self.slots[index].unit;
        let (reporter, runner, cfg) = (
            self.reporter(index),
            Arc::clone(&self.runner),
            self.cfg.clone(),
        );
        // Not joined at the stop, so that `down` never waits for it: its probe is bounded
        // and only reads.
        drop(self.runner.aside(Box::new(move || {
            reporter.send(Report::Alive(runner.alive(unit, &cfg)))
        })));
    }

    /// Every unit `index` depends on, directly or not, is ready, and each daemon among them
    /// answered its last liveness probe.
    fn dependencies_answer(&self, index: usize) -> bool {
        let deps = self.deps.with_dependencies(&[index]);
        deps.into_iter()
            .filter(|&dep| dep != index)
            .all(|dep| match &self.slots[dep].state {
                SlotState::Ready { liveness, .. } => liveness.misses == 0,
                SlotState::Done => true,
                _ => false,
            })
    }

    /// A liveness probe's answer: counted, and acted on when its rule says so.
    pub(super) fn alive(
        &mut self,
        index: usize,
        answer: anyhow::Result<()>,
        now: Instant,
    ) -> anyhow::Result<()> {
        let answering = self.dependencies_answer(index);
        let slot = &mut self.slots[index];
        let name = slot.unit.name;
        let (Kind::Daemon(daemon), SlotState::Ready { liveness, .. }) =
            (&slot.unit.kind, &mut slot.state)
        else {
            return Ok(());
        };
        if liveness.next != NextProbe::Running {
            return Ok(()); // not the answer to a probe this start sent
        }
        liveness.next = NextProbe::At(now + stack::LIVENESS_PERIOD);
        let err = match answer {
            Ok(()) => {
                if liveness.misses > 0 {
                    println!("{name}: answers its liveness probe again");
                    liveness.misses = 0;
                    slot.message = None;
                    self.publish();
                }
                return Ok(());
            }
            // One of its dependencies stopped answering meanwhile: not its fault.
            Err(_) if !answering => return Ok(()),
            Err(err) => err,
        };
        liveness.misses += 1;
        let misses = liveness.misses;
        match daemon.liveness {
            stack::Liveness::RestartAfter(limit) if misses >= limit => {
                let why = format!("{name}: did not answer {misses} liveness probes in a row");
                self.failed(index, err.context(why), now)
            }
            stack::Liveness::ReportAfter(limit) if misses == limit => {
                let note = format!(
                    "did not answer {misses} liveness probes in a row ({err:#}); not restarted, \
                     since a restart could lose its data: `cargo xtask restart {name}` restarts it"
                );
                println!("{name}: {note}");
                slot.message = Some(note);
                self.publish();
                Ok(())
            }
            stack::Liveness::RestartAfter(limit) | stack::Liveness::ReportAfter(limit) => {
                if misses < limit {
                    println!(
                        "{name}: no answer to its liveness probe ({misses} of {limit} in a row): \
                         {err:#}"
                    );
                }
                Ok(())
            }
        }
    }
}
