//! The supervisor's answers to the control socket (`restart`, `stop`, `start`, a second `up`,
//! `watch`): each request changes what the units should be doing, and its caller waits, as a
//! [`Waiter`], until they are ready (or stopped), or one failed. Spawning and signalling stay
//! with the state machine of the parent module.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::Supervisor;
use super::start::on_threads;
use crate::config::StackConfig;
use crate::os::process;
use crate::stack::Kind;
use crate::stack::contract::Contract;
use crate::stack::fingerprint::Fingerprint;
use crate::supervisor::run_state::{Phase, Status};
use crate::supervisor::slot::{AfterStop, SlotState};
use crate::supervisor::socket::{Call, Caller, Recreate, Request, Start};

/// A caller waiting for units to be ready (or stopped).
pub(super) struct Waiter {
    pub(super) caller: Caller,
    pub(super) slots: Vec<usize>,
    pub(super) until: Until,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    Ready,
    Stopped,
}

impl Supervisor {
    /// Tells every caller waiting for this unit that it failed, with the last lines of its log.
    pub(super) fn fail_waiters(&mut self, index: usize, err: &anyhow::Error) {
        let log = self.cfg.log_file(self.slots[index].unit.name);
        let tail = process::log_tail(&log, 20);
        let (failed, waiting) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w: &Waiter| w.until == Until::Ready && w.slots.contains(&index));
        self.waiters = waiting;
        for waiter in failed {
            let mut error = format!("{err:#}");
            if !tail.is_empty() {
                error.push_str(&format!("\nlast lines of {}:\n{tail}", log.display()));
            }
            waiter.caller.done(Some(error));
        }
    }

    /// Answers the callers whose units are all ready (or stopped) now.
    pub(super) fn resolve_waiters(&mut self, now: Instant) {
        let slots = &self.slots;
        let (done, waiting) =
            std::mem::take(&mut self.waiters)
                .into_iter()
                .partition(|w: &Waiter| {
                    w.slots.iter().all(|&i| match w.until {
                        Until::Ready => slots[i].status() == Status::Ready,
                        Until::Stopped => slots[i].status() == Status::Stopped,
                    })
                });
        self.waiters = waiting;
        let mut started = false;
        for waiter in done {
            started |= waiter.until == Until::Ready;
            waiter.caller.done(None);
        }
        // What runs now was not all checked at the start (`up SERVICE`, then `up`).
        if started && self.phase == Phase::Running {
            self.check_contract(now);
        }
    }

    /// One request of the control socket; the caller is answered now, or once the units it
    /// asked for are ready or stopped.
    pub(super) fn answer(&mut self, call: Call, now: Instant) {
        let Call {
            request,
            mut caller,
        } = call;
        let result = match request {
            Request::Stop { services } => self.indices(&services).map(|indices| {
                for &index in &indices {
                    self.stop_unit(index, AfterStop::Hold, &mut caller, now);
                    self.hold_starting_dependents(index, &mut caller, now);
                }
                (indices, Until::Stopped)
            }),
            Request::Start { services } => self.indices(&services).and_then(|indices| {
                let indices = self.start_units(&indices, &mut caller)?;
                Ok((indices, Until::Ready))
            }),
            Request::Restart { services } => self.indices(&services).and_then(|indices| {
                for &index in &indices {
                    self.stop_unit(index, AfterStop::Start, &mut caller, now);
                }
                let with_deps = self.start_units(&indices, &mut caller)?;
                Ok((with_deps, Until::Ready))
            }),
            Request::Up {
                services,
                start,
                recreate,
                env,
            } => self.up(&services, start, recreate, &env, &mut caller, now),
        };
        match result {
            Ok((slots, until)) => {
                self.publish();
                self.waiters.push(Waiter {
                    caller,
                    slots,
                    until,
                });
            }
            Err(err) => caller.done(Some(format!("{err:#}"))),
        }
    }

    /// Stops a unit (its daemon, once that has exited, does `then`); a unit that is not
    /// running does `then` at once.
    fn stop_unit(&mut self, index: usize, then: AfterStop, caller: &mut Caller, now: Instant) {
        let slot = &mut self.slots[index];
        if slot.stop(then, &*self.runner, now) {
            caller.say(format!("{}: stopping", slot.unit.name));
        }
    }

    /// The units on their way to ready that need `index`, which was just stopped: held too,
    /// as they could only fail without it (and, while the stack starts, fail the start).
    /// Those that run already are left running, as Compose's `stop` leaves them.
    fn hold_starting_dependents(&mut self, index: usize, caller: &mut Caller, now: Instant) {
        let stopped = self.slots[index].unit.name;
        for dependent in self.deps.dependents_of(index) {
            if !matches!(
                self.slots[dependent].status(),
                Status::Waiting | Status::Starting | Status::Restarting
            ) {
                continue;
            }
            let slot = &mut self.slots[dependent];
            let name = slot.unit.name;
            caller.say(format!("{name}: not started, since {stopped} is stopped"));
            slot.stop(AfterStop::Hold, &*self.runner, now);
            slot.message = Some(format!(
                "not started: {stopped}, which it needs, was stopped while it started \
                 (`cargo xtask start {name}` starts both)"
            ));
        }
    }

    /// Starts these units and the stopped ones they depend on (found and their ports checked
    /// first, if this supervisor has not run them yet); returns them all.
    fn start_units(
        &mut self,
        indices: &[usize],
        caller: &mut Caller,
    ) -> anyhow::Result<Vec<usize>> {
        let all = self.deps.with_dependencies(indices);
        let never_located: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| self.slots[i].is_daemon() && self.slots[i].installed.is_none())
            .collect();
        self.locate(&never_located)?;
        for &index in &all {
            let slot = &mut self.slots[index];
            match &mut slot.state {
                SlotState::Stopped | SlotState::Failed => {
                    caller.say(format!("{}: starting", slot.unit.name));
                    slot.start_again();
                    slot.message = None;
                }
                SlotState::Stopping { then, .. } if *then == AfterStop::Hold => {
                    *then = AfterStop::Start
                }
                _ => {}
            }
        }
        Ok(all)
    }

    /// A second `up`: starts what it names (everything when it names nothing; nothing with
    /// [`Start::Nothing`]) and restarts the running daemons whose fingerprint changed
    /// ([`Recreate::Changed`]) or only says so, after reading the configuration and `infra/`
    /// again.
    fn up(
        &mut self,
        services: &[String],
        start: Start,
        recreate: Recreate,
        env: &[(String, String)],
        caller: &mut Caller,
        now: Instant,
    ) -> anyhow::Result<(Vec<usize>, Until)> {
        let asked = if services.is_empty() {
            (0..self.slots.len()).collect()
        } else {
            self.indices(services)?
        };
        let scope = match start {
            Start::Asked => self.deps.with_dependencies(&asked),
            Start::Nothing => asked.clone(),
        };
        let changed = self.changed_since_start(&scope, env, recreate)?;
        let idle = scope
            .iter()
            .any(|&i| matches!(self.slots[i].status(), Status::Stopped | Status::Failed));
        if changed.is_empty() && !(start == Start::Asked && idle) {
            caller.say("nothing to do: every service runs as configured");
        }
        let mut restart = Vec::new();
        for (index, changes) in changed {
            let name = self.slots[index].unit.name;
            if recreate == Recreate::Changed {
                caller.say(format!("{name}: restarting: {}", changes.join(", ")));
                restart.push(index);
            } else {
                caller.say(format!(
                    "{name}: not recreated (--no-recreate), though {}",
                    changes.join(", ")
                ));
            }
        }
        // A task that ran against a restarted daemon runs again once it is back: the
        // migrations, into a `POSTGRES_DB` that the restart created.
        let mut reruns: Vec<usize> = restart
            .iter()
            .flat_map(|&index| self.deps.dependents_of(index))
            .filter(|&task| matches!(self.slots[task].state, SlotState::Done))
            .collect();
        reruns.sort_unstable();
        reruns.dedup();
        for &task in &reruns {
            caller.say(format!("{}: running again", self.slots[task].unit.name));
        }
        restart.extend(reruns);
        for &index in &restart {
            self.stop_unit(index, AfterStop::Start, caller, now);
        }
        let mut started = match start {
            Start::Asked => self.start_units(&asked, caller)?,
            Start::Nothing => Vec::new(),
        };
        started.extend(restart);
        started.sort_unstable();
        started.dedup();
        Ok((started, Until::Ready))
    }

    /// The running daemons that would start differently now, with why. Reads the
    /// configuration from `env` (the caller's environment) and `infra/` again; with
    /// [`Recreate::Changed`], the supervisor starts everything from them from now on.
    fn changed_since_start(
        &mut self,
        among: &[usize],
        env: &[(String, String)],
        recreate: Recreate,
    ) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
        let adopt = recreate == Recreate::Changed;
        let cfg = StackConfig::load_from(
            &self.cfg.repo_root,
            &crate::stack::port_vars(),
            env.iter().cloned(),
            crate::config::Secrets::MustExist,
        )?;
        anyhow::ensure!(
            cfg.state_dir == self.cfg.state_dir,
            "this supervisor runs the stack in {}, not {}",
            self.cfg.state_dir.display(),
            cfg.state_dir.display()
        );
        let infra = Arc::new(Contract::read(&cfg.repo_root)?);
        let running: Vec<usize> = among
            .iter()
            .copied()
            .filter(|&i| self.slots[i].fingerprint.is_some())
            .collect();
        let (slots, deps, runner) = (&self.slots, &self.deps, &*self.runner);
        let now = on_threads(&running, |i| -> anyhow::Result<_> {
            let unit = slots[i].unit;
            let installed = runner.locate(unit, &cfg).context(unit.name)?;
            let Kind::Daemon(daemon) = &unit.kind else {
                unreachable!("only daemons have fingerprints")
            };
            let found = installed.as_ref().expect("a daemon has a program");
            let fingerprint = Fingerprint::of(unit, deps.rows_of(i), daemon, &cfg, found, &infra);
            Ok((installed, fingerprint))
        });
        let mut changed = Vec::new();
        for (&index, now) in running.iter().zip(now) {
            let (installed, fingerprint) = now?;
            let slot = &mut self.slots[index];
            let changes = slot
                .fingerprint
                .as_ref()
                .map(|old| old.changes(&fingerprint))
                .unwrap_or_default();
            if !changes.is_empty() {
                changed.push((index, changes));
                if adopt {
                    slot.installed = installed;
                }
            }
        }
        if adopt {
            for slot in &mut self.slots {
                slot.port = slot.unit.port().map(|port| cfg.port(port));
            }
            self.cfg = cfg;
            self.infra = infra;
        }
        Ok(changed)
    }
}
