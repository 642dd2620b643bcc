//! The supervisor: the only code that starts, watches and stops the stack's daemons.
//!
//! # Theory of operation
//! `up` runs it in a detached process (or in the foreground with `--attach`). It finds every
//! program and checks every port before anything starts; then one loop on one thread, which
//! alone owns each unit's [`SlotState`] and alone spawns and signals daemons, turns:
//!
//! 1. it waits for the next [`Event`] on its one channel — a daemon exited (its reaper
//!    thread), a request arrived (the [`socket`]'s listener), a helper reported (files
//!    prepared, one readiness probe, a task's result), the contract check is done, a signal
//!    came — or for its own next deadline (a restart's delay, the next probe, the end of a
//!    stop's grace period), whichever comes first;
//! 2. it moves the unit concerned to its next state; a report about an earlier start of the
//!    unit, or about a process it no longer runs, changes nothing;
//! 3. it starts each waiting unit whose dependencies are ready: Postgres, Valkey and nginx at
//!    once, PgBouncer and the migrations when Postgres answers, the apps after those;
//! 4. it answers the callers whose units are now all ready, or stopped ([`requests`]).
//!
//! A daemon that exits while the stack runs is restarted with a growing delay (Compose's
//! `unless-stopped`); one that stops answering is restarted or reported by its [`liveness`]
//! rule; one stopped on request stays stopped until `start`. On SIGTERM, SIGINT
//! or SIGHUP the same loop stops the units dependents first: each daemon as soon as nothing
//! that depends on it runs (those with no dependents at once, all in parallel), with its stop
//! signal and SIGKILL after a grace period, and returns.
//!
//! What runs programs sits behind the [`Runner`] seam: the real one spawns through
//! [`process`]; the tests' fake records what it was asked and lets a test make a daemon exit or
//! answer, so the machine's tests run no program and take milliseconds.
//!
//! Only the supervisor's thread spawns daemons: on Linux each carries a parent-death signal
//! tied to that thread, so no daemon outlives the supervisor, even one killed with SIGKILL.
//! Everywhere, the [`guardian`] process does the same from outside, for the daemons and for the
//! one-shot programs a helper thread runs (initdb), and it is all there is where the signal is
//! missing (macOS). Helper threads only prepare files, run one-shot programs and probe once;
//! reaper threads only wait for their daemon's exit. Each change is published in
//! `<state>/run/state.json` (derived from the slots), which `up`, `status` and `down` read.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::StackConfig;
use crate::os::guardian;
use crate::os::process::ProcessId;
use crate::stack::contract::Contract;
use crate::stack::{self, Unit};
use crate::supervisor::dependencies::Dependencies;
use crate::supervisor::events::Event;
use crate::supervisor::run_state::{ContractSummary, Phase, RunState, Status, unix_now};
use crate::supervisor::runner::{Programs, Runner};
use crate::supervisor::slot::{AfterStop, NextProbe, Slot, SlotState};

/// How long a service may take from start to ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Readiness probing step.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// How long after the stack is ready the supervisor checks the contract.
const CONTRACT_CHECK_DELAY: Duration = Duration::from_secs(1);

pub(crate) mod dependencies;
mod events;
pub(crate) mod launch;
mod liveness;
pub(crate) mod rates;
mod requests;
pub(crate) mod run_state;
mod runner;
mod slot;
pub(crate) mod socket;
mod start;
#[cfg(test)]
mod tests;

use requests::Waiter;

pub(crate) struct Supervisor {
    cfg: StackConfig,
    runner: Arc<dyn Runner>,
    slots: Vec<Slot>,
    deps: Dependencies,
    phase: Phase,
    error: Option<String>,
    started_at: u64,
    /// When it started, for the units' [`run_state::Timings`].
    epoch: Instant,
    me: ProcessId,
    events: Receiver<Event>,
    sender: Sender<Event>,
    /// The helper threads that prepare, probe and run units; all joined before the end.
    helpers: Vec<JoinHandle<()>>,
    /// `infra/`, read once before anything starts.
    infra: Arc<Contract>,
    contract: Option<ContractSummary>,
    contract_check: ContractCheck,
    /// Contract checks started so far: only the last one's result counts.
    contract_checks: u32,
    waiters: Vec<Waiter>,
    /// A stop signal came.
    signalled: bool,
    /// While the stack stops: each slot's dependents, direct or not, which stop before it.
    stopping: Option<Vec<Vec<usize>>>,
}

/// `verify`'s checks, run once beside the ready stack (and again once more of it is ready).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContractCheck {
    Idle,
    Due(Instant),
    Running(u32),
}

/// Runs the stack (`only` these services and their dependencies, when not empty) until a stop
/// signal; returns an error if it could not start.
pub(crate) fn run(cfg: &StackConfig, only: &[String]) -> anyhow::Result<()> {
    let signals = events::catch_signals()?;
    for dir in [cfg.state_dir.join("run"), cfg.log_dir()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut supervisor = Supervisor::of(cfg, stack::enabled_units(cfg), Arc::new(Programs))?;
    events::forward_signals(signals, supervisor.sender.clone());
    let exe = crate::stack::build::built_by_workspace(env!("CARGO_BIN_NAME"))?;
    guardian::start(&exe, &cfg.log_file("supervisor"))?;
    supervisor.hold_all_but(only)?;
    let mut sampler = None;
    let result = supervisor
        .preflight()
        .and_then(|()| socket::listen(cfg, supervisor.sender.clone()))
        .and_then(|()| {
            sampler = rates::Sampler::start(cfg, &stack::enabled_units(cfg));
            supervisor.supervise()
        });
    if let Err(err) = &result {
        supervisor.phase = Phase::Failed;
        supervisor.error = Some(format!("{err:#}"));
        supervisor.publish();
    }
    if let Some(sampler) = sampler {
        sampler.stop();
    }
    supervisor.stop_all();
    socket::close(cfg);
    guardian::stop();
    result
}

impl Supervisor {
    /// A supervisor of `units` (the stack's, or a test's), whose programs `runner` runs.
    fn of(
        cfg: &StackConfig,
        units: Vec<&'static Unit>,
        runner: Arc<dyn Runner>,
    ) -> anyhow::Result<Supervisor> {
        let (sender, events) = mpsc::channel();
        let supervisor = Supervisor {
            cfg: cfg.clone(),
            runner,
            deps: Dependencies::resolve(&units)?,
            slots: units.into_iter().map(|unit| Slot::new(unit, cfg)).collect(),
            phase: Phase::Starting,
            error: None,
            started_at: unix_now(),
            epoch: Instant::now(),
            me: ProcessId::of(std::process::id())
                .context("cannot read the supervisor's own pid")?,
            events,
            sender,
            helpers: Vec::new(),
            infra: Arc::new(Contract::default()),
            contract: None,
            contract_check: ContractCheck::Idle,
            contract_checks: 0,
            waiters: Vec::new(),
            signalled: false,
            stopping: None,
        };
        supervisor.publish();
        Ok(supervisor)
    }

    /// `up SERVICE…`: every unit that is not one of `only` or one of their dependencies stays
    /// stopped until asked for (nothing is held when `only` is empty).
    fn hold_all_but(&mut self, only: &[String]) -> anyhow::Result<()> {
        if only.is_empty() {
            return Ok(());
        }
        let wanted = self.deps.with_dependencies(&self.indices(only)?);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if !wanted.contains(&index) {
                slot.leave_out();
            }
        }
        self.publish();
        Ok(())
    }

    /// The slots of these service names; an unknown name is an error that lists the known.
    fn indices(&self, names: &[String]) -> anyhow::Result<Vec<usize>> {
        names
            .iter()
            .map(|name| {
                self.slots
                    .iter()
                    .position(|s| s.unit.name == name)
                    .with_context(|| {
                        let known: Vec<&str> = self.slots.iter().map(|s| s.unit.name).collect();
                        format!(
                            "this stack has no service {name:?}; it has {}",
                            known.join(", ")
                        )
                    })
            })
            .collect()
    }

    fn run_state(&self) -> RunState {
        RunState {
            supervisor: self.me,
            phase: self.phase,
            error: self.error.clone(),
            started_at: self.started_at,
            units: self.slots.iter().map(Slot::published).collect(),
            contract: self.contract.clone(),
            ports: self
                .cfg
                .ports()
                .map(|(var, port)| (var.to_owned(), port))
                .collect(),
        }
    }

    /// Milliseconds from the supervisor's start to `now`.
    fn since_start(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn publish(&self) {
        if let Err(err) = self.run_state().write(&self.cfg.state_dir) {
            eprintln!("supervisor: {err:#}");
        }
    }

    /// Runs the stack until a stop signal; an error when a unit failed while it started.
    fn supervise(&mut self) -> anyhow::Result<()> {
        self.run_until(|s| s.signalled)?;
        if self.phase == Phase::Starting {
            // Said by the `up` that is waiting for this start, and kept in the state.
            self.error = Some(
                "stopped while it was starting, by `cargo xtask down` (or a signal)".to_owned(),
            );
        }
        Ok(())
    }

    /// Turns the machine on each event and deadline until `done`.
    fn run_until(&mut self, done: impl Fn(&Supervisor) -> bool) -> anyhow::Result<()> {
        let mut event = None;
        loop {
            let now = Instant::now();
            self.turn(event.take(), now)?;
            if done(self) {
                return Ok(());
            }
            event = match self.next_deadline(now) {
                Some(at) => self
                    .events
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                    .ok(),
                None => self.events.recv().ok(),
            };
        }
    }

    /// One turn of the machine at `now`: `event` handled, then every step that is due taken.
    fn turn(&mut self, event: Option<Event>, now: Instant) -> anyhow::Result<()> {
        self.helpers.retain(|helper| !helper.is_finished());
        if let Some(event) = event {
            self.handle(event, now)?;
        }
        self.take_due_steps(now);
        if self.stopping.is_some() {
            self.stop_dependents_first(now);
        } else {
            self.start_due_units(now);
            if self.phase == Phase::Starting
                && self
                    .slots
                    .iter()
                    // Held units (`up SERVICE`) are not waited for.
                    .all(|s| matches!(s.status(), Status::Ready | Status::Stopped))
            {
                self.phase = Phase::Running;
                println!("stack ready");
                self.publish();
                self.check_contract(now);
            }
        }
        self.resolve_waiters(now);
        Ok(())
    }

    /// The earliest deadline after `now` of the units and the contract check.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let contract = match self.contract_check {
            ContractCheck::Due(at) => Some(at),
            _ => None,
        };
        self.slots
            .iter()
            .filter_map(Slot::deadline)
            .chain(contract)
            .filter(|&at| at > now)
            .min()
    }

    fn handle(&mut self, event: Event, now: Instant) -> anyhow::Result<()> {
        match event {
            Event::Signal => self.signalled = true,
            Event::Call(call) if self.stopping.is_some() => call.caller.done(Some(
                "the stack is stopping (`cargo xtask down`)".to_owned(),
            )),
            Event::Call(call) => self.answer(call, now),
            Event::ContractChecked { check, summary } => {
                if self.contract_check == ContractCheck::Running(check) {
                    println!("contract: {summary}");
                    self.contract = Some(summary);
                    self.contract_check = ContractCheck::Idle;
                    self.publish();
                }
            }
            Event::Exited { slot, pid, status } => self.exited(slot, pid, &status, now)?,
            // Nothing starts any more.
            Event::Report { .. } if self.stopping.is_some() => {}
            Event::Report {
                slot,
                generation,
                report,
            } if generation == self.slots[slot].generation => self.report(slot, report, now)?,
            // About an earlier start of the unit.
            Event::Report { .. } => {}
        }
        Ok(())
    }

    /// A daemon exited: stopped as asked, or a failure (restarted, or fatal while the stack
    /// starts).
    fn exited(&mut self, index: usize, pid: u32, status: &str, now: Instant) -> anyhow::Result<()> {
        let slot = &mut self.slots[index];
        if slot.process().is_none_or(|p| p.pid != pid) {
            return Ok(()); // not the process it runs now
        }
        let name = slot.unit.name;
        match slot.state {
            SlotState::Stopping { then, .. } => {
                slot.after_stop(then, now);
                if matches!(then, AfterStop::Hold | AfterStop::Start) {
                    slot.fingerprint = None;
                }
                println!("{name}: stopped");
                self.publish();
                Ok(())
            }
            // Not yet signalled by the stop of the stack: as good as stopped.
            _ if self.stopping.is_some() => {
                println!("{name}: exited ({status}) while the stack stops");
                slot.after_stop(AfterStop::Exit, now);
                self.publish();
                Ok(())
            }
            _ => {
                slot.state = SlotState::Failed;
                self.failed(index, anyhow::anyhow!("{name} exited ({status})"), now)
            }
        }
    }

    /// Steps due at `now` whatever else happens: SIGKILL after a stop's grace period; the
    /// next readiness probes and the contract check, unless the stack stops.
    fn take_due_steps(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            slot.kill_if_overdue(&*self.runner, now);
            if let SlotState::Starting { probe, .. } = &mut slot.state
                && matches!(*probe, NextProbe::At(at) if at <= now)
                && self.stopping.is_none()
            {
                *probe = NextProbe::Running;
                self.probe(index);
            }
            if let SlotState::Ready { liveness, .. } = &self.slots[index].state
                && matches!(liveness.next, NextProbe::At(at) if at <= now)
                && self.stopping.is_none()
                // Not while the stack starts: a machine busy starting it is slow to answer.
                && self.phase == Phase::Running
            {
                self.probe_liveness(index, now);
            }
        }
        if self.stopping.is_some() {
            self.contract_check = ContractCheck::Idle;
        }
        if let ContractCheck::Due(at) = self.contract_check
            && at <= now
        {
            self.contract_checks += 1;
            let check = self.contract_checks;
            self.contract_check = ContractCheck::Running(check);
            let (cfg, state) = (self.cfg.clone(), self.run_state());
            let (runner, sender) = (Arc::clone(&self.runner), self.sender.clone());
            // Not joined at the stop, so that `down` never waits for it: it only reads
            // (queries, HTTP requests), starts no process and writes no file.
            drop(self.runner.aside(Box::new(move || {
                let summary = runner.check_contract(&cfg, &state);
                let _ = sender.send(Event::ContractChecked { check, summary });
            })));
        }
    }

    /// Runs `verify`'s checks once, beside the running stack, a moment from now: so that a
    /// `down` right after `up` (scripts, the benchmark) never has their connections in the way
    /// of the services' graceful stops. A later call supersedes an earlier one.
    fn check_contract(&mut self, now: Instant) {
        self.contract_check = ContractCheck::Due(now + CONTRACT_CHECK_DELAY);
    }

    /// Stops every running daemon, dependents first: each as soon as none of its dependents
    /// runs, so that independent services stop in parallel and no level waits for another's
    /// slowest member.
    fn stop_all(&mut self) {
        for waiter in self.waiters.drain(..) {
            waiter.caller.done(Some(
                "the stack is stopping (`cargo xtask down`)".to_owned(),
            ));
        }
        // A one-shot program (initdb) still running would go on writing into the state dir.
        self.runner.end_one_shots();
        if self.slots.iter().any(|s| s.process().is_some()) {
            println!("stopping the stack");
            self.phase = Phase::Stopping;
            self.publish();
            self.begin_stop();
            // Nothing fails while the stack stops.
            let _ = self.run_until(|s| s.stopping.is_none());
        }
        self.finish();
    }

    /// The stop of the stack begins: from the next turn on, nothing starts and each daemon is
    /// stopped once its dependents are gone.
    fn begin_stop(&mut self) {
        let dependents = (0..self.slots.len())
            .map(|slot| self.deps.dependents_of(slot))
            .collect();
        self.stopping = Some(dependents);
    }

    /// The stop of the stack, at `now`: every daemon none of whose dependents runs any more is
    /// stopped (one already stopping is left to its grace period, and stays stopped after);
    /// the stop is over when no daemon runs.
    fn stop_dependents_first(&mut self, now: Instant) {
        let Some(dependents) = &self.stopping else {
            return;
        };
        let running: Vec<bool> = self.slots.iter().map(|s| s.process().is_some()).collect();
        if !running.contains(&true) {
            self.stopping = None;
            return;
        }
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if running[index] && dependents[index].iter().all(|&d| !running[d]) {
                slot.stop(AfterStop::Exit, &*self.runner, now);
            }
        }
    }

    fn finish(&mut self) {
        // Each helper ends soon: its one-shot program is killed, its daemon stopped.
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
        for slot in &mut self.slots {
            if !matches!(slot.state, SlotState::Failed) {
                slot.state = SlotState::Stopped;
            }
        }
        if self.phase != Phase::Failed {
            self.phase = Phase::Stopped;
        }
        self.publish();
    }
}
