//! The supervisor: the only code that starts, watches and stops the stack's daemons.
//!
//! # Theory of operation
//! `up` starts this loop in a detached process (or in the foreground with `--attach`). It
//! 1. finds every program and checks every port before anything starts;
//! 2. starts each unit once its dependencies are ready: Postgres, Valkey and nginx at once,
//!    PgBouncer and the migrations when Postgres answers, the apps after those;
//! 3. keeps them: a daemon that exits is restarted with a growing delay (Compose's
//!    `unless-stopped`);
//! 4. answers the commands of its [`control`] socket: stop, start or restart some services,
//!    start more (`up SERVICE`), restart those that changed (a second `up`);
//! 5. on SIGTERM/SIGINT/SIGHUP stops them in reverse dependency order and exits.
//!
//! Only the main thread spawns daemons: on Linux each carries a parent-death signal tied to that
//! thread, so no daemon outlives the supervisor, even one killed with SIGKILL. Everywhere, the
//! [`guardian`] process does the same from outside, for the daemons and for the one-shot
//! programs a helper thread runs (initdb), and it is all there is where the signal is missing
//! (macOS). Helper threads only prepare files, run one-shot programs and probe readiness; they
//! report back over a channel. Progress is
//! published in `<state>/run/state.json`, which `up`, `status` and `down` read. The requests of
//! the control socket are answered in [`requests`].

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::config::StackConfig;
use crate::os::guardian;
use crate::os::process::{self, ProcessId};
use crate::stack::contract::Contract;
use crate::stack::fingerprint::Fingerprint;
use crate::stack::{self, Kind, RunAs, Unit};
use crate::supervisor::dependencies::Dependencies;
use crate::supervisor::run_state::{ContractSummary, Phase, RunState, Status, UnitState, unix_now};
use crate::supervisor::socket::Call;

/// How long a service may take from start to ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Readiness polling step.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// Grace period between the stop signal and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long after the stack is ready the supervisor checks the contract.
const CONTRACT_CHECK_DELAY: Duration = Duration::from_secs(1);
/// Restart delays grow from this, doubling, up to `MAX_RESTART_DELAY`.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(15);

mod dependencies;
pub(crate) mod launch;
mod requests;
pub(crate) mod run_state;
pub(crate) mod socket;

use requests::Waiter;

/// A unit while the supervisor runs it.
struct Slot {
    unit: &'static Unit,
    state: UnitState,
    child: Option<Child>,
    /// Bumped at each start, so that reports about an earlier instance are ignored.
    generation: u32,
    began: Option<Instant>,
    not_before: Option<Instant>,
    /// Consecutive failed starts, for the restart delay.
    failures: u32,
    /// A thread is preparing, probing or running this unit.
    busy: bool,
    /// What the running daemon was started from (a second `up` compares).
    fingerprint: Option<Fingerprint>,
    /// Start again once stopped (`restart`).
    then_start: bool,
}

impl Slot {
    /// Due to start as soon as its dependencies are ready, with no restart delay (`start`,
    /// `restart`).
    fn start_again(&mut self) {
        self.state.status = Status::Waiting;
        self.failures = 0;
        self.not_before = None;
    }

    /// Stopped on request: the supervisor leaves it so until `start`.
    fn hold(&mut self) {
        self.state.status = Status::Stopped;
        self.state.pid = None;
        self.state.message = Some(format!(
            "stopped (`cargo xtask start {}` starts it)",
            self.unit.name
        ));
    }
}

/// What the helper threads report.
enum Event {
    /// Files rendered; the fingerprint of what is about to start.
    Prepared(anyhow::Result<Fingerprint>),
    /// A daemon stopped on request.
    Stopped,
    Ready(anyhow::Result<()>),
    TaskDone(anyhow::Result<String>),
}

struct Report {
    slot: usize,
    generation: u32,
    event: Event,
}

pub(crate) struct Supervisor {
    cfg: StackConfig,
    slots: Vec<Slot>,
    deps: Dependencies,
    phase: Phase,
    error: Option<String>,
    started_at: u64,
    me: ProcessId,
    reports: Receiver<Report>,
    sender: Sender<Report>,
    /// The threads that prepare, probe and run units; all joined before the supervisor exits.
    helpers: Vec<JoinHandle<()>>,
    /// Set when the stack stops: probes give up at once.
    stopping: Arc<AtomicBool>,
    /// `infra/`, read once before anything starts.
    infra: Arc<Contract>,
    contract: Option<ContractSummary>,
    /// The contract check started once the stack was ready, until it reports.
    contract_check: Option<Receiver<ContractSummary>>,
    /// Requests from the control socket.
    calls: Receiver<Call>,
    calls_sender: Sender<Call>,
    waiters: Vec<Waiter>,
}

/// Runs the stack (`only` these services and their dependencies, when not empty) until a stop
/// signal; returns an error if it could not start.
pub(crate) fn run(cfg: &StackConfig, only: &[String]) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    for dir in [cfg.state_dir.join("run"), cfg.log_dir()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let exe = crate::stack::build::built_by_workspace(env!("CARGO_BIN_NAME"))?;
    guardian::start(&exe, &cfg.log_file("supervisor"))?;
    let mut supervisor = Supervisor::new(cfg)?;
    supervisor.hold_all_but(only)?;
    let result = supervisor
        .preflight()
        .and_then(|()| socket::listen(cfg, supervisor.calls_sender.clone()))
        .and_then(|()| supervisor.supervise(&stop));
    if let Err(err) = &result {
        supervisor.phase = Phase::Failed;
        supervisor.error = Some(format!("{err:#}"));
        supervisor.publish();
    }
    supervisor.stop_all();
    socket::close(cfg);
    guardian::stop();
    result
}

impl Supervisor {
    fn new(cfg: &StackConfig) -> anyhow::Result<Supervisor> {
        Self::of(cfg, stack::enabled_units(cfg))
    }

    /// A supervisor of `units` (the stack's, or a test's).
    fn of(cfg: &StackConfig, units: Vec<&'static Unit>) -> anyhow::Result<Supervisor> {
        let (sender, reports) = mpsc::channel();
        let (calls_sender, calls) = mpsc::channel();
        let deps = Dependencies::resolve(&units)?;
        let slots = units
            .into_iter()
            .map(|unit| Slot {
                unit,
                state: UnitState {
                    name: unit.name.to_owned(),
                    status: Status::Waiting,
                    daemon: matches!(unit.kind, Kind::Daemon(_)),
                    pid: None,
                    port: unit.port().map(|port| cfg.port(port)),
                    installed: None,
                    started_at: None,
                    ready_ms: None,
                    restarts: 0,
                    message: None,
                },
                child: None,
                generation: 0,
                began: None,
                not_before: None,
                failures: 0,
                busy: false,
                fingerprint: None,
                then_start: false,
            })
            .collect();
        let supervisor = Supervisor {
            cfg: cfg.clone(),
            slots,
            deps,
            phase: Phase::Starting,
            error: None,
            started_at: unix_now(),
            me: ProcessId::of(std::process::id())
                .context("cannot read the supervisor's own pid")?,
            reports,
            sender,
            helpers: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
            infra: Arc::new(Contract::default()),
            contract: None,
            contract_check: None,
            calls,
            calls_sender,
            waiters: Vec::new(),
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
                slot.state.status = Status::Stopped;
                slot.state.message = Some(format!(
                    "not started (`cargo xtask up {}` starts it)",
                    slot.unit.name
                ));
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
            units: self.slots.iter().map(|s| s.state.clone()).collect(),
            contract: self.contract.clone(),
        }
    }

    fn publish(&self) {
        if let Err(err) = self.run_state().write(&self.cfg.state_dir) {
            eprintln!("supervisor: {err:#}");
        }
    }

    /// Runs `verify`'s checks once, beside the running stack (not before `up` returns).
    fn check_contract(&mut self) {
        let (sender, receiver) = mpsc::channel();
        let (cfg, state) = (self.cfg.clone(), self.run_state());
        let stopping = Arc::clone(&self.stopping);
        // Not joined at the stop, so that `down` never waits for it: it only reads (queries,
        // HTTP requests), starts no process and writes no file. It waits a moment first, so
        // that a `down` right after `up` (scripts, the benchmark) never has its connections
        // in the way of the services' graceful stops.
        std::thread::spawn(move || {
            let stopped = crate::os::poll::wait_until(CONTRACT_CHECK_DELAY, || {
                stopping.load(Ordering::Relaxed)
            });
            if !stopped {
                let checks = crate::cmd::verify::collect(&cfg, &state);
                let _ = sender.send(crate::cmd::verify::summary(&checks));
            }
        });
        self.contract_check = Some(receiver);
    }

    fn contract_checked(&mut self) {
        let summary = self.contract_check.as_ref().map(Receiver::try_recv);
        if let Some(Ok(summary)) = summary {
            println!("contract: {summary}");
            self.contract = Some(summary);
            self.contract_check = None;
            self.publish();
        }
    }

    /// Reads `infra/`, finds every program (in parallel) and checks every port, before anything
    /// starts.
    fn preflight(&mut self) -> anyhow::Result<()> {
        self.infra = Arc::new(Contract::read(&self.cfg.repo_root)?);
        let starting: Vec<usize> = (0..self.slots.len())
            .filter(|i| self.slots[*i].state.status != Status::Stopped)
            .collect();
        let result = self.locate(&starting);
        self.publish();
        result
    }

    /// Finds the programs of these units (in parallel) and checks their ports are free; every
    /// problem is named at once.
    fn locate(&mut self, indices: &[usize]) -> anyhow::Result<()> {
        let (cfg, slots) = (&self.cfg, &self.slots);
        let found = on_threads(indices, |i| {
            let unit = slots[i].unit;
            unit.locate(cfg).context(unit.name)
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
                    slot.state.installed = installed;
                }
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        for &index in indices {
            let slot = &self.slots[index];
            for port_var in slot.unit.ports() {
                let port = self.cfg.port(port_var);
                if let Err(holder) = crate::os::ports::check_free(port) {
                    let key = port_var.var;
                    errors.push(format!(
                        "port {port} for {} is already in use{holder}; stop it or set {key}",
                        slot.unit.name
                    ));
                }
            }
        }
        anyhow::ensure!(errors.is_empty(), "{}", errors.join("\n"));
        Ok(())
    }

    /// Starts what can start, reacts to reports and exits, until asked to stop.
    fn supervise(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            if self.step()? {
                self.check_contract();
            }
            self.contract_checked();
            while let Ok(call) = self.calls.try_recv() {
                self.answer(call);
            }
            self.resolve_waiters();
        }
        if self.phase == Phase::Starting {
            // Said by the `up` that is waiting for this start, and kept in the state.
            self.error = Some(
                "stopped while it was starting, by `cargo xtask down` (or a signal)".to_owned(),
            );
        }
        Ok(())
    }

    /// One turn of the state machine: start what is due, handle one report, notice exits.
    /// True when this turn made the whole stack ready.
    fn step(&mut self) -> anyhow::Result<bool> {
        self.start_due_units();
        self.helpers.retain(|helper| !helper.is_finished());
        if let Ok(report) = self.reports.recv_timeout(PROBE_INTERVAL) {
            self.handle(report)?;
        }
        self.reap_exited()?;
        // Held units (`up SERVICE`) are not waited for.
        let ready = self.phase == Phase::Starting
            && self
                .slots
                .iter()
                .all(|s| matches!(s.state.status, Status::Ready | Status::Stopped));
        if ready {
            self.phase = Phase::Running;
            println!("stack ready");
            self.publish();
        }
        Ok(ready)
    }

    fn start_due_units(&mut self) {
        let now = Instant::now();
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let due = matches!(slot.state.status, Status::Waiting | Status::Restarting)
                && !slot.busy
                && slot.not_before.is_none_or(|t| now >= t)
                && self
                    .deps
                    .of(index)
                    .iter()
                    .all(|&dep| self.slots[dep].state.status == Status::Ready);
            if due {
                self.begin(index);
            }
        }
    }

    /// Prepares a daemon (or runs a task) on a helper thread.
    fn begin(&mut self, index: usize) {
        let cfg = self.cfg.clone();
        let sender = self.sender.clone();
        let slot = &mut self.slots[index];
        slot.generation += 1;
        slot.busy = true;
        slot.began = Some(Instant::now());
        slot.state.status = Status::Starting;
        let generation = slot.generation;
        let helper = match &slot.unit.kind {
            Kind::Daemon(daemon) => {
                let unit = slot.unit;
                let installed = slot.state.installed.clone().expect("located in preflight");
                let (infra, deps) = (Arc::clone(&self.infra), self.deps.rows_of(index).to_vec());
                std::thread::spawn(move || {
                    let prepared = (daemon.prepare)(&cfg, &installed, &infra)
                        .map(|()| Fingerprint::of(unit, &deps, daemon, &cfg, &installed, &infra));
                    let event = Event::Prepared(prepared);
                    let _ = sender.send(Report {
                        slot: index,
                        generation,
                        event,
                    });
                })
            }
            Kind::Task(task) => {
                let task = *task;
                std::thread::spawn(move || {
                    let event = Event::TaskDone(task(&cfg));
                    let _ = sender.send(Report {
                        slot: index,
                        generation,
                        event,
                    });
                })
            }
        };
        self.helpers.push(helper);
        self.publish();
    }

    fn handle(&mut self, report: Report) -> anyhow::Result<()> {
        if report.generation != self.slots[report.slot].generation {
            return Ok(());
        }
        let name = self.slots[report.slot].unit.name;
        match report.event {
            Event::Prepared(Ok(fingerprint)) => {
                self.slots[report.slot].fingerprint = Some(fingerprint);
                self.spawn(report.slot)?;
            }
            Event::Stopped => {
                let slot = &mut self.slots[report.slot];
                slot.state.pid = None;
                slot.busy = false;
                slot.fingerprint = None;
                if std::mem::take(&mut slot.then_start) {
                    slot.start_again();
                } else {
                    slot.hold();
                }
                println!("{name}: stopped");
                self.publish();
            }
            Event::Prepared(Err(err)) => {
                return self.failed(report.slot, err.context(format!("{name}: cannot prepare")));
            }
            Event::Ready(Ok(())) => {
                let slot = &mut self.slots[report.slot];
                slot.busy = false;
                slot.failures = 0;
                slot.state.status = Status::Ready;
                let ms = slot.began.map(|b| b.elapsed().as_millis() as u64);
                slot.state.ready_ms = ms;
                let pid = slot.state.pid.map(|p| p.pid).unwrap_or_default();
                println!("{name}: ready in {} ms (pid {pid})", ms.unwrap_or(0));
                self.publish();
            }
            Event::Ready(Err(err)) => {
                return self.failed(report.slot, err.context(format!("{name}: not ready")));
            }
            Event::TaskDone(Ok(message)) => {
                let slot = &mut self.slots[report.slot];
                slot.busy = false;
                slot.state.status = Status::Ready;
                slot.state.ready_ms = slot.began.map(|b| b.elapsed().as_millis() as u64);
                println!("{name}: {message}");
                slot.state.message = Some(message);
                self.publish();
            }
            Event::TaskDone(Err(err)) => return self.failed(report.slot, err.context(name)),
        }
        Ok(())
    }

    /// Spawns a prepared daemon (on this, the main, thread) and probes it on a helper thread.
    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let cfg = self.cfg.clone();
        let sender = self.sender.clone();
        let slot = &mut self.slots[index];
        let Kind::Daemon(daemon) = &slot.unit.kind else {
            unreachable!("only daemons are prepared")
        };
        let installed = slot.state.installed.as_ref().expect("located in preflight");
        let launch = (daemon.launch)(&cfg, installed, &self.infra);
        let log = cfg.log_file(slot.unit.name);
        let launch = match daemon.run_as {
            RunAs::Invoker => launch,
            RunAs::UnprivilegedWhenRoot => match process::unprivileged_account() {
                Ok(account) => launch.run_as(account),
                Err(err) => return self.failed(index, err),
            },
        };
        let child = match process::spawn(&launch, &log) {
            Ok(child) => child,
            Err(err) => return self.failed(index, err),
        };
        let id = ProcessId::of(child.id());
        slot.state.pid = id;
        slot.state.started_at = Some(unix_now());
        slot.child = Some(child);
        let (probe, on_ready, generation) = (daemon.probe, daemon.on_ready, slot.generation);
        let stopping = Arc::clone(&self.stopping);
        let helper = std::thread::spawn(move || {
            let deadline = Instant::now() + READY_TIMEOUT;
            let mut last_error = anyhow::anyhow!("no answer yet");
            let result = loop {
                if stopping.load(Ordering::Relaxed) || id.is_some_and(|id| !id.is_alive()) {
                    // The exit is reported by `reap_exited`, with the log.
                    return;
                }
                match probe(&cfg) {
                    Ok(()) => break on_ready(&cfg),
                    Err(err) => last_error = err,
                }
                if Instant::now() >= deadline {
                    break Err(last_error.context(format!("not ready after {READY_TIMEOUT:?}")));
                }
                std::thread::sleep(PROBE_INTERVAL);
            };
            let _ = sender.send(Report {
                slot: index,
                generation,
                event: Event::Ready(result),
            });
        });
        self.helpers.push(helper);
        self.publish();
        Ok(())
    }

    /// A unit failed to start: fatal while the stack starts; later, a restart is scheduled.
    fn failed(&mut self, index: usize, err: anyhow::Error) -> anyhow::Result<()> {
        let log = self.cfg.log_file(self.slots[index].unit.name);
        // Kept for `status`: why the unit failed or is being restarted.
        self.slots[index].state.message = Some(format!("{err:#}"));
        if self.phase == Phase::Starting {
            let slot = &mut self.slots[index];
            slot.state.status = Status::Failed;
            slot.busy = false;
            let tail = process::log_tail(&log, 20);
            return Err(if tail.is_empty() || !slot.state.daemon {
                err
            } else {
                err.context(format!("last lines of {}:\n{tail}", log.display()))
            });
        }
        println!("{:#}", err);
        self.fail_waiters(index, &err);
        self.schedule_restart(index);
        Ok(())
    }

    fn schedule_restart(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let Some(child) = slot.child.as_mut() {
            process::stop_child(child, stop_signal(slot.unit), STOP_GRACE);
        }
        slot.child = None;
        slot.busy = false;
        slot.generation += 1;
        let delay = restart_delay(slot.failures);
        slot.failures += 1;
        slot.state.restarts += 1;
        slot.state.status = Status::Restarting;
        slot.not_before = Some(Instant::now() + delay);
        println!("{}: restarting in {} ms", slot.unit.name, delay.as_millis());
        self.publish();
    }

    /// Notices daemons that exited on their own.
    fn reap_exited(&mut self) -> anyhow::Result<()> {
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let Some(child) = slot.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            let name = slot.unit.name;
            slot.state.pid = None;
            self.failed(index, anyhow::anyhow!("{name} exited ({status})"))?;
        }
        Ok(())
    }

    /// Stops every running daemon in reverse dependency order: the units that depend on
    /// others first, each level's daemons in parallel.
    fn stop_all(&mut self) {
        // A one-shot program (initdb) still running would go on writing into the state dir.
        self.stopping.store(true, Ordering::Relaxed);
        for waiter in self.waiters.drain(..) {
            waiter.caller.done(Some(
                "the stack is stopping (`cargo xtask down`)".to_owned(),
            ));
        }
        process::kill_one_shots();
        if self.slots.iter().all(|s| s.child.is_none()) {
            self.finish();
            return;
        }
        self.phase = Phase::Stopping;
        self.publish();
        for level in self.deps.stop_levels() {
            std::thread::scope(|scope| {
                for (index, slot) in self.slots.iter_mut().enumerate() {
                    if !level.contains(&index) {
                        continue;
                    }
                    if let Some(mut child) = slot.child.take() {
                        let signal = stop_signal(slot.unit);
                        scope.spawn(move || process::stop_child(&mut child, signal, STOP_GRACE));
                    }
                }
            });
        }
        self.finish();
    }

    fn finish(&mut self) {
        // Each helper ends soon: its one-shot program is killed, its daemon stopped.
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
        for slot in &mut self.slots {
            slot.child = None;
            slot.state.pid = None;
            if slot.state.status != Status::Failed {
                slot.state.status = Status::Stopped;
            }
        }
        if self.phase != Phase::Failed {
            self.phase = Phase::Stopped;
        }
        self.publish();
    }
}

/// `work` for each of `indices` at once, a thread each (each may run a program's `--version`,
/// hash a binary), the results in the same order.
fn on_threads<T: Send>(indices: &[usize], work: impl Fn(usize) -> T + Sync) -> Vec<T> {
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

/// The wait before restart number `failures + 1`: doubling from the first delay, capped.
fn restart_delay(failures: u32) -> Duration {
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

#[cfg(test)]
mod tests {
    //! The state machine driven by tasks that only record that they ran: no program starts.

    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;
    use crate::stack::Program;

    /// The tasks that ran, in order (each test uses names of its own).
    static RAN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

    fn ran(name: &'static str) -> anyhow::Result<String> {
        RAN.lock().unwrap().push(name);
        Ok(format!("{name} done"))
    }

    fn ran_before(names: &[&str]) -> Vec<&'static str> {
        let ran = RAN.lock().unwrap();
        ran.iter().copied().filter(|n| names.contains(n)).collect()
    }

    fn runs(_: &StackConfig) -> bool {
        true
    }

    pub(super) const fn task(
        name: &'static str,
        depends_on: &'static [&'static str],
        run: fn(&StackConfig) -> anyhow::Result<String>,
    ) -> Unit {
        Unit {
            name,
            program: Program::Xtask { crate_name: "test" },
            depends_on,
            enabled: runs,
            checks: |_, _| Vec::new(),
            kind: Kind::Task(run),
        }
    }

    static BASE: Unit = task("order-base", &[], |_| ran("order-base"));
    static MIDDLE: Unit = task("order-middle", &["order-base"], |_| ran("order-middle"));
    static TOP: Unit = task("order-top", &["order-middle"], |_| ran("order-top"));
    static ALONE: Unit = task("order-alone", &[], |_| ran("order-alone"));

    static BROKEN: Unit = task("broken-base", &[], |_| anyhow::bail!("broken-base refuses"));
    static ABOVE_BROKEN: Unit = task("broken-above", &["broken-base"], |_| ran("broken-above"));

    static HELD_BASE: Unit = task("held-base", &[], |_| ran("held-base"));
    static HELD_MIDDLE: Unit = task("held-middle", &["held-base"], |_| ran("held-middle"));
    static HELD_TOP: Unit = task("held-top", &["held-middle"], |_| ran("held-top"));

    fn state_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("amtp-supervisor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        dir
    }

    /// Turns the machine until the stack is ready or a start failed.
    fn start(supervisor: &mut Supervisor) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if supervisor.step()? {
                return Ok(());
            }
        }
        panic!("the stack neither started nor failed within 10 s");
    }

    #[test]
    fn units_start_once_their_dependencies_are_ready() {
        let dir = state_dir("order");
        let cfg = crate::config::tests::config_in(&dir);
        let misordered = Supervisor::of(&cfg, vec![&TOP, &MIDDLE, &BASE, &ALONE]);
        assert_eq!(
            misordered.err().unwrap().to_string(),
            "order-top depends on order-middle, which comes after it in the table; list \
             order-middle first",
            "the table is checked before anything starts"
        );
        let mut supervisor = Supervisor::of(&cfg, vec![&BASE, &MIDDLE, &TOP, &ALONE]).unwrap();
        start(&mut supervisor).unwrap();
        let order = ran_before(&["order-base", "order-middle", "order-top"]);
        assert_eq!(order, ["order-base", "order-middle", "order-top"]);
        assert_eq!(ran_before(&["order-alone"]), ["order-alone"]);
        assert!(
            supervisor
                .slots
                .iter()
                .all(|s| s.state.status == Status::Ready),
            "every unit is ready"
        );
        let state = RunState::read(&dir).expect("the state is published");
        assert_eq!(state.phase, Phase::Running);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn up_service_starts_it_and_its_dependencies_only() {
        let dir = state_dir("held");
        let cfg = crate::config::tests::config_in(&dir);
        let units = vec![&HELD_BASE, &HELD_MIDDLE, &HELD_TOP];
        let mut supervisor = Supervisor::of(&cfg, units).unwrap();
        supervisor.hold_all_but(&["held-middle".into()]).unwrap();
        start(&mut supervisor).unwrap();
        assert_eq!(
            ran_before(&["held-base", "held-middle", "held-top"]),
            ["held-base", "held-middle"]
        );
        assert_eq!(supervisor.slots[2].state.status, Status::Stopped);
        let unknown = supervisor.hold_all_but(&["nope".into()]).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "this stack has no service \"nope\"; it has held-base, held-middle, held-top"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failing_dependency_stops_the_start_before_its_dependents() {
        let dir = state_dir("broken");
        let cfg = crate::config::tests::config_in(&dir);
        let mut supervisor = Supervisor::of(&cfg, vec![&BROKEN, &ABOVE_BROKEN]).unwrap();
        let err = start(&mut supervisor).unwrap_err();
        assert!(
            format!("{err:#}").contains("broken-base refuses"),
            "{err:#}"
        );
        assert_eq!(supervisor.slots[0].state.status, Status::Failed);
        assert_eq!(supervisor.slots[1].state.status, Status::Waiting);
        assert!(ran_before(&["broken-above"]).is_empty(), "a dependent ran");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_unit_failing_while_the_stack_runs_is_restarted_with_a_growing_delay() {
        let delays: Vec<u64> = (0..8)
            .map(|n| restart_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);

        let dir = state_dir("restart");
        let cfg = crate::config::tests::config_in(&dir);
        let mut supervisor = Supervisor::of(&cfg, vec![&ALONE]).unwrap();
        supervisor.phase = Phase::Running;
        for (failures, delay) in [(1, 500), (2, 1000), (3, 2000)] {
            let before = Instant::now();
            supervisor.failed(0, anyhow::anyhow!("exited")).unwrap();
            let slot = &supervisor.slots[0];
            assert_eq!(slot.state.status, Status::Restarting);
            assert_eq!(
                slot.state.message.as_deref(),
                Some("exited"),
                "the reason is kept"
            );
            assert_eq!(slot.state.restarts, failures);
            let wait = slot.not_before.unwrap().duration_since(before);
            assert!(
                wait >= Duration::from_millis(delay) && wait < Duration::from_millis(delay + 500),
                "restart {failures} after {wait:?}, wanted {delay} ms"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
