//! A unit's way from waiting to ready: the programs found and the ports checked before
//! anything starts, a unit started once its dependencies are ready (a daemon prepared on a
//! helper thread, spawned on the supervisor's, probed until it answers; a task run), the
//! helpers' reports, and a failure: fatal while the stack starts, later a restart after a
//! delay.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::{PROBE_INTERVAL, READY_TIMEOUT, Supervisor};
use crate::os::{disk, process};
use crate::stack::contract::Contract;
use crate::stack::fingerprint::Fingerprint;
use crate::stack::{Kind, PortTaken};
use crate::supervisor::events::{ExitNotice, Probe, Report, Reporter};
use crate::supervisor::run_state::{Phase, Status, Timings, unix_now};
use crate::supervisor::runner::Work;
use crate::supervisor::slot::{Liveness, NextProbe, SlotState};

impl Supervisor {
    /// Reads `infra/`, finds every program (in parallel) and checks every port, before anything
    /// starts.
    pub(super) fn preflight(&mut self) -> anyhow::Result<()> {
        self.infra = Arc::new(Contract::read(&self.cfg.repo_root)?);
        let starting: Vec<usize> = (0..self.slots.len())
            .filter(|&i| !matches!(self.slots[i].state, SlotState::Stopped))
            .collect();
        let result = self
            .locate(&starting)
            .and_then(|()| self.check_disk_space(&starting));
        self.publish();
        result
    }

    /// Refuses to start when the state dir's file system has less room than these units'
    /// next start needs (a new cluster, a new Garage node), naming the place and the bytes:
    /// better now than an initdb that dies half way.
    fn check_disk_space(&self, indices: &[usize]) -> anyhow::Result<()> {
        let needs: Vec<(&str, u64)> = indices
            .iter()
            .filter_map(|&i| match &self.slots[i].unit.kind {
                Kind::Daemon(daemon) => {
                    Some((self.slots[i].unit.name, (daemon.disk_need)(&self.cfg)))
                }
                Kind::Task(_) => None,
            })
            .filter(|&(_, bytes)| bytes > 0)
            .collect();
        let need: u64 = needs.iter().map(|(_, bytes)| bytes).sum::<u64>() + disk::FULL_BELOW;
        let dir = &self.cfg.state_dir;
        let free = disk::free_bytes(dir)
            .with_context(|| format!("cannot measure the free space at {}", dir.display()))?;
        if free < need {
            let each: Vec<String> = needs
                .iter()
                .map(|(name, bytes)| format!("{name} {}", disk::show_bytes(*bytes)))
                .collect();
            anyhow::bail!(
                "only {} free at {}, the stack needs {} there to start ({}); free some space, \
                 or set AMTP_STATE_DIR to a place with more room",
                disk::show_bytes(free),
                dir.display(),
                disk::show_bytes(need),
                each.join(", ")
            );
        }
        Ok(())
    }

    /// Finds the programs of these units (in parallel) and checks their ports are free; every
    /// problem is named at once.
    pub(super) fn locate(&mut self, indices: &[usize]) -> anyhow::Result<()> {
        let (cfg, slots, runner) = (&self.cfg, &self.slots, &*self.runner);
        let found = on_threads(indices, |i| {
            let unit = slots[i].unit;
            runner.locate(unit, cfg).context(unit.name)
        });
        let mut errors = Vec::new();
        for (&index, installed) in indices.iter().zip(found) {
            let slot = &mut self.slots[index];
            match installed {
                Ok(installed) => {
                    if let Some(installed) = &installed {
                        for drift in &installed.drift {
                            println!("{}: drift from the contract: {drift}", slot.unit.name);
                        }
                    }
                    slot.installed = installed;
                }
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        for &index in indices {
            let slot = &self.slots[index];
            for var in slot.unit.ports() {
                if let Err(in_use) = self.runner.port_free(self.cfg.port(var)) {
                    let unit = slot.unit.name;
                    errors.push(PortTaken { unit, var, in_use }.to_string());
                }
            }
        }
        anyhow::ensure!(errors.is_empty(), "{}", errors.join("\n"));
        Ok(())
    }

    /// A helper's report about the current start of a unit.
    pub(super) fn report(
        &mut self,
        index: usize,
        report: Report,
        now: Instant,
    ) -> anyhow::Result<()> {
        let at = self.since_start(now);
        let slot = &mut self.slots[index];
        let name = slot.unit.name;
        match (report, &mut slot.state) {
            (Report::Prepared(Ok(fingerprint)), &mut SlotState::Preparing { began }) => {
                slot.fingerprint = Some(fingerprint);
                self.spawn(index, began, now)
            }
            (Report::Prepared(Err(err)), SlotState::Preparing { .. }) => {
                self.failed(index, err.context(format!("{name}: cannot prepare")), now)
            }
            (
                Report::Probed(probe),
                SlotState::Starting {
                    process,
                    began,
                    deadline,
                    probe: next,
                },
            ) => {
                if matches!(probe, Probe::Ready | Probe::Listening(_)) {
                    slot.timings.listening_ms.get_or_insert(at);
                }
                match probe {
                    Probe::Ready => {
                        let ms = now.saturating_duration_since(*began).as_millis() as u64;
                        slot.timings.ready_ms = Some(at);
                        println!("{name}: ready in {ms} ms (pid {})", process.pid);
                        slot.state = SlotState::Ready {
                            process: *process,
                            liveness: Liveness::from(now),
                        };
                        slot.failures = 0;
                        slot.ready_ms = Some(ms);
                        // Why it failed before is `last_restart` now.
                        slot.message = None;
                        self.publish();
                        Ok(())
                    }
                    Probe::NotYet(err) | Probe::Listening(err) if now >= *deadline => {
                        let err = err.context(format!("not ready after {READY_TIMEOUT:?}"));
                        self.failed(index, err.context(format!("{name}: not ready")), now)
                    }
                    Probe::NotYet(_) | Probe::Listening(_) => {
                        *next = NextProbe::At(now + PROBE_INTERVAL);
                        Ok(())
                    }
                    Probe::Failed(err) => {
                        self.failed(index, err.context(format!("{name}: not ready")), now)
                    }
                }
            }
            (Report::TaskDone(Ok(message)), &mut SlotState::Running { began }) => {
                slot.state = SlotState::Done;
                slot.ready_ms = Some(now.saturating_duration_since(began).as_millis() as u64);
                slot.timings.ready_ms = Some(at);
                println!("{name}: {message}");
                slot.message = Some(message);
                self.publish();
                Ok(())
            }
            (Report::TaskDone(Err(err)), SlotState::Running { .. }) => {
                self.failed(index, err.context(name), now)
            }
            (Report::Alive(answer), SlotState::Ready { .. }) => self.alive(index, answer, now),
            // The unit was stopped since.
            _ => Ok(()),
        }
    }

    pub(super) fn start_due_units(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            let due = matches!(self.slots[index].state,
                SlotState::Waiting { not_before } if not_before.is_none_or(|t| now >= t))
                && self
                    .deps
                    .of(index)
                    .iter()
                    .all(|&dep| self.slots[dep].status() == Status::Ready);
            if due {
                self.begin(index, now);
            }
        }
    }

    pub(super) fn reporter(&self, index: usize) -> Reporter {
        Reporter {
            sender: self.sender.clone(),
            slot: index,
            generation: self.slots[index].generation,
        }
    }

    /// Prepares a daemon (or runs a task) on a helper thread.
    pub(super) fn begin(&mut self, index: usize, now: Instant) {
        let waited_for = self
            .deps
            .of(index)
            .iter()
            .map(|&dep| &self.slots[dep])
            .max_by_key(|dep| dep.timings.ready_ms)
            .map(|dep| dep.unit.name.to_owned());
        self.slots[index].timings = Timings {
            began_ms: Some(self.since_start(now)),
            waited_for,
            ..Timings::default()
        };
        self.slots[index].begin(now);
        let (reporter, runner, cfg) = (
            self.reporter(index),
            Arc::clone(&self.runner),
            self.cfg.clone(),
        );
        let slot = &self.slots[index];
        let unit = slot.unit;
        let work: Work = match &unit.kind {
            Kind::Daemon(daemon) => {
                let installed = slot.installed.clone().expect("located in preflight");
                let (infra, deps) = (Arc::clone(&self.infra), self.deps.rows_of(index).to_vec());
                Box::new(move || {
                    let prepared = runner
                        .prepare(unit, daemon, &cfg, &installed, &infra)
                        .map(|()| Fingerprint::of(unit, &deps, daemon, &cfg, &installed, &infra));
                    reporter.send(Report::Prepared(prepared));
                })
            }
            Kind::Task(task) => {
                let task = *task;
                Box::new(move || reporter.send(Report::TaskDone(runner.run_task(unit, task, &cfg))))
            }
        };
        self.helpers.extend(self.runner.aside(work));
        self.publish();
    }

    /// Spawns a prepared daemon (on this, the supervisor's, thread); it is probed next.
    pub(super) fn spawn(
        &mut self,
        index: usize,
        began: Instant,
        now: Instant,
    ) -> anyhow::Result<()> {
        let slot = &self.slots[index];
        let Kind::Daemon(daemon) = &slot.unit.kind else {
            unreachable!("only daemons are prepared")
        };
        // A port taken since the preflight (a crashed service's, by another program) is said
        // with its holder and retried with the growing delay, like any failed start.
        for var in slot.unit.ports() {
            if let Err(in_use) = self.runner.port_free(self.cfg.port(var)) {
                let unit = slot.unit.name;
                let taken = PortTaken { unit, var, in_use };
                return self.failed(index, anyhow::Error::new(taken), now);
            }
        }
        let installed = slot.installed.as_ref().expect("located in preflight");
        let exits = ExitNotice {
            sender: self.sender.clone(),
            slot: index,
        };
        let spawned =
            self.runner
                .spawn(slot.unit, daemon, &self.cfg, installed, &self.infra, exits);
        match spawned {
            Ok(process) => {
                let at = self.since_start(now);
                let slot = &mut self.slots[index];
                slot.started_at = Some(unix_now());
                slot.timings.spawned_ms = Some(at);
                slot.state = SlotState::Starting {
                    process,
                    began,
                    deadline: now + READY_TIMEOUT,
                    probe: NextProbe::At(now),
                };
                self.publish();
                Ok(())
            }
            Err(err) => self.failed(index, err, now),
        }
    }

    /// Probes a daemon once, on a helper thread.
    pub(super) fn probe(&mut self, index: usize) {
        let unit = self.slots[index].unit;
        let Kind::Daemon(daemon) = &unit.kind else {
            unreachable!("only daemons are probed")
        };
        let (reporter, runner, cfg) = (
            self.reporter(index),
            Arc::clone(&self.runner),
            self.cfg.clone(),
        );
        let work =
            Box::new(move || reporter.send(Report::Probed(runner.probe(unit, daemon, &cfg))));
        self.helpers.extend(self.runner.aside(work));
    }

    /// A unit failed to start: fatal while the stack starts; later, a restart is scheduled.
    pub(super) fn failed(
        &mut self,
        index: usize,
        err: anyhow::Error,
        now: Instant,
    ) -> anyhow::Result<()> {
        let runner = &*self.runner;
        let slot = &mut self.slots[index];
        let (name, log) = (slot.unit.name, self.cfg.log_file(slot.unit.name));
        // Kept for `status`: why the unit failed or is being restarted.
        slot.message = Some(format!("{err:#}"));
        if self.phase == Phase::Starting {
            slot.give_up(runner, now);
            let tail = process::log_tail(&log, 20);
            return Err(if tail.is_empty() || !slot.is_daemon() {
                err
            } else {
                err.context(format!("last lines of {}:\n{tail}", log.display()))
            });
        }
        println!("{err:#}");
        slot.last_restart = Some(format!("{err:#}"));
        let delay = slot.schedule_restart(runner, now);
        println!("{name}: restarting in {} ms", delay.as_millis());
        self.fail_waiters(index, &err);
        self.publish();
        Ok(())
    }
}

/// `work` for each of `indices` at once, a thread each (each may run a program's `--version`,
/// hash a binary), the results in the same order.
pub(super) fn on_threads<T: Send>(indices: &[usize], work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = indices
            .iter()
            .map(|&i| scope.spawn(move || work(i)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a supervisor helper thread panicked"))
            .collect()
    })
}
