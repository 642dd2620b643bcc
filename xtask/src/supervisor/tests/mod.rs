//! The state machine driven through a fake [`Runner`] and a clock of the test's own: no program
//! starts, no thread is spawned for a unit, and a test that waits an hour takes a millisecond.
//! The fake records what the supervisor asked ("start web", "SIGTERM web") and plays the
//! programs' part as the test says (a daemon that exits, does not answer yet, ignores its
//! stop signal; a task or preparation that fails).

mod faults;
mod machine;
mod requests;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Supervisor;
use super::events::{Event, ExitNotice, Probe};
use super::runner::{Runner, Work};
use super::slot::{Process, SlotState};
use crate::config::{PortVar, StackConfig};
use crate::os::ports::{PortHolder, PortInUse};
use crate::os::process::Launch;
use crate::stack::contract::Contract;
use crate::stack::programs::Installed;
use crate::stack::{Daemon, Kind, Liveness, Program, RunAs, Unit};
use crate::supervisor::run_state::{ContractSummary, RunState, Status};
use crate::supervisor::socket::{Call, Caller, Reply, Request};

/// A task row for the tests (what it does is the fake's to say).
pub(super) const fn task(name: &'static str, depends_on: &'static [&'static str]) -> Unit {
    Unit {
        name,
        program: Program::Xtask { crate_name: "test" },
        depends_on,
        kind: Kind::Task(|_| unreachable!("the fake runs the tasks")),
        ..Unit::DEFAULT
    }
}

/// A daemon row for the tests, on `port` (the stack's own variables, so that a second `up`
/// reads them from its caller's environment).
pub(super) const fn daemon(
    name: &'static str,
    depends_on: &'static [&'static str],
    port: PortVar,
) -> Unit {
    Unit {
        name,
        program: Program::Xtask { crate_name: "test" },
        depends_on,
        kind: Kind::Daemon(Daemon {
            port,
            more_ports: &[],
            stop_signal: Signal::SIGTERM,
            run_as: RunAs::Invoker,
            drift: |_, _| Ok(Vec::new()),
            prepare: |_, _, _| unreachable!("the fake prepares"),
            // Part of the fingerprint, so pure and real.
            launch: |_, installed, _| Launch::new(&installed.path),
            probe: |_| unreachable!("the fake probes"),
            on_ready: |_| unreachable!("the fake probes"),
            liveness: Liveness::RestartAfter(3),
            disk_need: |_| 0,
            metrics: None,
        }),
        ..Unit::DEFAULT
    }
}

/// A daemon row that holds data: never restarted by its liveness probe.
pub(super) const fn holding_data(mut unit: Unit) -> Unit {
    if let Kind::Daemon(daemon) = &mut unit.kind {
        daemon.liveness = Liveness::ReportAfter(3);
    }
    unit
}

/// Service names as a request carries them.
pub(super) fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// The programs' part, as the test says.
#[derive(Default)]
pub(super) struct Fake {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// What the supervisor asked, in order.
    asked: Vec<String>,
    running: BTreeMap<&'static str, (u32, ExitNotice)>,
    last_pid: u32,
    /// Daemons whose probe gets no answer (yet).
    silent: BTreeSet<&'static str>,
    /// Daemons that only SIGKILL ends.
    stubborn: BTreeSet<&'static str>,
    /// Tasks and preparations that fail, with their error.
    failing: BTreeMap<&'static str, &'static str>,
    /// Ports another program holds.
    taken: BTreeSet<u16>,
    contract_checks: usize,
}

impl Fake {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// What the supervisor asked since the last call.
    pub(super) fn asked(&self) -> Vec<String> {
        std::mem::take(&mut self.inner().asked)
    }

    /// The daemon `name` exits on its own.
    pub(super) fn exit(&self, name: &str, status: &str) {
        let (pid, exits) = self.inner().running.remove(name).expect("it runs");
        exits.exited(pid, status);
    }

    pub(super) fn silence(&self, name: &'static str) {
        self.inner().silent.insert(name);
    }

    pub(super) fn answer(&self, name: &str) {
        self.inner().silent.remove(name);
    }

    pub(super) fn stubborn(&self, name: &'static str) {
        self.inner().stubborn.insert(name);
    }

    pub(super) fn fail(&self, name: &'static str, error: &'static str) {
        self.inner().failing.insert(name, error);
    }

    /// Another program (pid 4711, `thief`) listens on `port`, or no longer does.
    pub(super) fn take_port(&self, port: u16, taken: bool) {
        let mut inner = self.inner();
        if taken {
            inner.taken.insert(port);
        } else {
            inner.taken.remove(&port);
        }
    }

    pub(super) fn runs(&self, name: &str) -> bool {
        self.inner().running.contains_key(name)
    }

    pub(super) fn contract_checks(&self) -> usize {
        self.inner().contract_checks
    }
}

impl Runner for Fake {
    fn locate(&self, unit: &'static Unit, _: &StackConfig) -> anyhow::Result<Option<Installed>> {
        Ok(matches!(unit.kind, Kind::Daemon(_))
            .then(|| crate::stack::tests::installed(&format!("/fake/{}", unit.name))))
    }

    fn port_free(&self, port: u16) -> Result<(), PortInUse> {
        match self.inner().taken.contains(&port) {
            false => Ok(()),
            true => Err(PortInUse {
                port,
                holder: Some(PortHolder {
                    pid: 4711,
                    command: "thief".into(),
                }),
            }),
        }
    }

    fn prepare(
        &self,
        unit: &'static Unit,
        _: &'static Daemon,
        _: &StackConfig,
        _: &Installed,
        _: &Contract,
    ) -> anyhow::Result<()> {
        match self.inner().failing.get(unit.name) {
            Some(error) => anyhow::bail!("{error}"),
            None => Ok(()),
        }
    }

    fn spawn(
        &self,
        unit: &'static Unit,
        _: &'static Daemon,
        _: &StackConfig,
        _: &Installed,
        _: &Contract,
        exits: ExitNotice,
    ) -> anyhow::Result<Process> {
        let mut inner = self.inner();
        inner.last_pid += 1;
        let pid = inner.last_pid;
        inner.asked.push(format!("start {}", unit.name));
        inner.running.insert(unit.name, (pid, exits));
        Ok(Process { pid, id: None })
    }

    fn signal(&self, process: &Process, signal: Signal) {
        let mut inner = self.inner();
        let name = *inner
            .running
            .iter()
            .find(|(_, (pid, _))| *pid == process.pid)
            .expect("only a running daemon is signalled")
            .0;
        inner.asked.push(format!("{signal} {name}"));
        if signal == Signal::SIGKILL || !inner.stubborn.contains(name) {
            let (pid, exits) = inner.running.remove(name).unwrap();
            exits.exited(pid, format!("signal: {signal}"));
        }
    }

    fn probe(&self, unit: &'static Unit, _: &'static Daemon, _: &StackConfig) -> Probe {
        if self.inner().silent.contains(unit.name) {
            Probe::NotYet(anyhow::anyhow!("connection refused"))
        } else {
            Probe::Ready
        }
    }

    fn alive(&self, unit: &'static Unit, _: &StackConfig) -> anyhow::Result<()> {
        match self.inner().silent.contains(unit.name) {
            false => Ok(()),
            true => anyhow::bail!("{} does not answer", unit.name),
        }
    }

    fn run_task(
        &self,
        unit: &'static Unit,
        _: fn(&StackConfig) -> anyhow::Result<String>,
        _: &StackConfig,
    ) -> anyhow::Result<String> {
        let mut inner = self.inner();
        inner.asked.push(format!("run {}", unit.name));
        match inner.failing.get(unit.name) {
            Some(error) => anyhow::bail!("{error}"),
            None => Ok(format!("{} done", unit.name)),
        }
    }

    fn check_contract(&self, _: &StackConfig, state: &RunState) -> ContractSummary {
        self.inner().contract_checks += 1;
        ContractSummary {
            checks: state.units.len(),
            ..ContractSummary::default()
        }
    }

    fn aside(&self, work: Work) -> Option<JoinHandle<()>> {
        work();
        None
    }

    fn end_one_shots(&self) {
        self.inner().asked.push("end the one-shots".to_owned());
    }
}

/// A supervisor of test units on the fake, in a state dir of its own (removed at the end),
/// turned by hand at the bench's clock.
pub(super) struct Bench {
    pub(super) sup: Supervisor,
    pub(super) fake: Arc<Fake>,
    pub(super) now: Instant,
    pub(super) dir: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Bench {
    pub(super) fn new(units: Vec<&'static Unit>) -> Bench {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_owned();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let cfg = crate::config::tests::config_in(&dir);
        let fake = Arc::new(Fake::default());
        let sup = Supervisor::of(&cfg, units, Arc::clone(&fake) as Arc<dyn Runner>).unwrap();
        let mut bench = Bench {
            sup,
            fake,
            now: Instant::now(),
            dir,
            _scratch: scratch,
        };
        // The units' timings count from the bench's clock.
        bench.sup.epoch = bench.now;
        bench.sup.preflight().unwrap();
        bench
    }

    /// Turns the machine until nothing more happens at the bench's clock.
    pub(super) fn settle(&mut self) -> anyhow::Result<()> {
        self.sup.turn(None, self.now)?;
        while let Ok(event) = self.sup.events.try_recv() {
            self.sup.turn(Some(event), self.now)?;
        }
        Ok(())
    }

    /// Lets `time` pass: each deadline on the way is met at its own moment.
    pub(super) fn wait(&mut self, time: Duration) -> anyhow::Result<()> {
        let end = self.now + time;
        self.settle()?;
        while let Some(at) = self.sup.next_deadline(self.now).filter(|&at| at <= end) {
            self.now = at;
            self.settle()?;
        }
        self.now = end;
        self.settle()
    }

    /// Starts the stack: turns the machine, its clock on from deadline to deadline, until the
    /// stack is ready or the error that stopped its start.
    pub(super) fn start(&mut self) -> anyhow::Result<()> {
        let end = self.now + Duration::from_secs(120);
        self.settle()?;
        while self.sup.phase == super::Phase::Starting {
            let next = self.sup.next_deadline(self.now).filter(|&at| at <= end);
            let at = next.unwrap_or_else(|| panic!("stuck starting: {:?}", self.statuses()));
            self.now = at;
            self.settle()?;
        }
        Ok(())
    }

    fn index(&self, name: &str) -> usize {
        self.sup.indices(&[name.to_owned()]).unwrap()[0]
    }

    pub(super) fn state(&self, name: &str) -> &SlotState {
        &self.sup.slots[self.index(name)].state
    }

    pub(super) fn slot(&self, name: &str) -> &super::slot::Slot {
        &self.sup.slots[self.index(name)]
    }

    pub(super) fn status(&self, name: &str) -> Status {
        self.sup.slots[self.index(name)].status()
    }

    pub(super) fn statuses(&self) -> Vec<(&'static str, Status)> {
        let slots = self.sup.slots.iter();
        slots.map(|s| (s.unit.name, s.status())).collect()
    }

    /// The environment a caller's `up` sends: this bench's stack, with `vars` on top.
    pub(super) fn env(&self, vars: &[(&str, &str)]) -> Vec<(String, String)> {
        let dir = self.dir.display().to_string();
        let base = [
            ("AMTP_STATE_DIR", dir.as_str()),
            ("AMTP_ENV_FILE", "/nonexistent/.env"),
            ("POSTGRES_PASSWORD", "p"),
            ("VALKEY_PASSWORD", "v"),
        ];
        let all = base.iter().chain(vars);
        all.map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Sends a request as the control socket does; its answer comes as the machine turns.
    pub(super) fn call(&mut self, request: Request) -> Answer {
        let (caller, theirs) = Caller::pair();
        theirs.set_nonblocking(true).unwrap();
        let call = Call { request, caller };
        self.sup.turn(Some(Event::Call(call)), self.now).unwrap();
        self.settle().unwrap();
        Answer {
            stream: theirs,
            read: Vec::new(),
        }
    }
}

/// What a caller was told so far.
pub(super) struct Answer {
    stream: UnixStream,
    read: Vec<u8>,
}

impl Answer {
    fn replies(&mut self) -> Vec<Reply> {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = self.stream.read(&mut buf) {
            self.read.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&self.read);
        let lines = text.lines().map(|line| serde_json::from_str(line).unwrap());
        lines.collect()
    }

    /// Its progress lines.
    pub(super) fn lines(&mut self) -> Vec<String> {
        let replies = self.replies().into_iter();
        replies
            .filter_map(|reply| match reply {
                Reply::Line(line) => Some(line),
                Reply::Done(_) => None,
            })
            .collect()
    }

    /// `None` while it waits, else how it ended: `Ok`, or the error it was given.
    pub(super) fn done(&mut self) -> Option<Result<(), String>> {
        self.replies().into_iter().find_map(|reply| match reply {
            Reply::Done(None) => Some(Ok(())),
            Reply::Done(Some(error)) => Some(Err(error)),
            Reply::Line(_) => None,
        })
    }
}
