//! The seam between the supervisor's state machine and the programs it runs: [`Runner`].
//! [`Programs`], the real one, finds programs, renders files, spawns daemons through
//! [`process`] and probes them; the tests' fake records what it was asked and lets a test
//! make a daemon exit or answer, so the machine is tested without programs.

use std::thread::JoinHandle;

use nix::sys::signal::Signal;

use crate::config::StackConfig;
use crate::os::ports::PortInUse;
use crate::os::process::{self, ProcessId};
use crate::stack::contract::Contract;
use crate::stack::programs::Installed;
use crate::stack::{Daemon, RunAs, Unit};
use crate::supervisor::events::{ExitNotice, Probe};
use crate::supervisor::run_state::{ContractSummary, RunState};
use crate::supervisor::slot::Process;

/// Work for a helper thread.
pub(super) type Work = Box<dyn FnOnce() + Send>;

/// What the supervisor asks of the programs it runs. `spawn` and `signal` are called on the
/// supervisor's own thread only; the rest may be called on helper threads.
pub(super) trait Runner: Send + Sync {
    /// Finds a daemon's program, with its version and drift from the pins; `None` for a task.
    fn locate(&self, unit: &'static Unit, cfg: &StackConfig) -> anyhow::Result<Option<Installed>>;

    /// `Err` with who holds the port, when the OS tells.
    fn port_free(&self, port: u16) -> Result<(), PortInUse>;

    /// Renders a daemon's files (idempotent).
    fn prepare(
        &self,
        unit: &'static Unit,
        daemon: &'static Daemon,
        cfg: &StackConfig,
        installed: &Installed,
        infra: &Contract,
    ) -> anyhow::Result<()>;

    /// Starts a prepared daemon, and something that tells `exits` once it has exited and is
    /// reaped.
    fn spawn(
        &self,
        unit: &'static Unit,
        daemon: &'static Daemon,
        cfg: &StackConfig,
        installed: &Installed,
        infra: &Contract,
        exits: ExitNotice,
    ) -> anyhow::Result<Process>;

    /// Sends `signal` to a daemon's process group.
    fn signal(&self, process: &Process, signal: Signal);

    /// Probes a daemon once; once it answers, runs what follows readiness (`on_ready`).
    fn probe(&self, unit: &'static Unit, daemon: &'static Daemon, cfg: &StackConfig) -> Probe;

    /// Probes a ready daemon once, for its liveness rule.
    fn alive(&self, unit: &'static Unit, cfg: &StackConfig) -> anyhow::Result<()>;

    /// Runs a task to its end.
    fn run_task(
        &self,
        unit: &'static Unit,
        task: fn(&StackConfig) -> anyhow::Result<String>,
        cfg: &StackConfig,
    ) -> anyhow::Result<String>;

    /// `verify`'s checks of the running stack, counted.
    fn check_contract(&self, cfg: &StackConfig, state: &RunState) -> ContractSummary;

    /// Runs `work` beside the supervisor's loop, on a helper thread, whose handle it returns.
    fn aside(&self, work: Work) -> Option<JoinHandle<()>>;

    /// Kills the one-shot programs running (initdb) and refuses any other from now on.
    fn end_one_shots(&self);
}

/// The real programs of the stack.
pub(super) struct Programs;

impl Runner for Programs {
    fn locate(&self, unit: &'static Unit, cfg: &StackConfig) -> anyhow::Result<Option<Installed>> {
        unit.locate(cfg)
    }

    fn port_free(&self, port: u16) -> Result<(), PortInUse> {
        crate::os::ports::check_free(port)
    }

    fn prepare(
        &self,
        _: &'static Unit,
        daemon: &'static Daemon,
        cfg: &StackConfig,
        installed: &Installed,
        infra: &Contract,
    ) -> anyhow::Result<()> {
        (daemon.prepare)(cfg, installed, infra)
    }

    fn spawn(
        &self,
        unit: &'static Unit,
        daemon: &'static Daemon,
        cfg: &StackConfig,
        installed: &Installed,
        infra: &Contract,
        exits: ExitNotice,
    ) -> anyhow::Result<Process> {
        let launch = (daemon.launch)(cfg, installed, infra);
        let launch = match daemon.run_as {
            RunAs::Invoker => launch,
            RunAs::UnprivilegedWhenRoot => {
                launch.run_as(crate::os::account::unprivileged_account()?)
            }
        };
        let child = process::spawn(&launch, &cfg.log_file(unit.name))?;
        let pid = child.id();
        let process = Process {
            pid,
            id: ProcessId::of(pid),
        };
        // Its reaper only waits: the spawning thread, which the parent-death signal is tied
        // to, is the supervisor's.
        std::thread::spawn(move || match process::reap(child) {
            Ok(status) => exits.exited(pid, status),
            Err(err) => exits.exited(pid, format!("cannot wait for it: {err}")),
        });
        Ok(process)
    }

    fn signal(&self, process: &Process, signal: Signal) {
        let send = |signal| match process.id {
            Some(id) => {
                id.signal_group(signal);
            }
            None => process::signal_group(process.pid, signal),
        };
        send(signal);
        // A stopped program (SIGSTOP, a shell's Ctrl-Z) acts on its stop signal only once it
        // runs again; to a running one SIGCONT is nothing.
        if signal != Signal::SIGKILL {
            send(Signal::SIGCONT);
        }
    }

    fn probe(&self, unit: &'static Unit, daemon: &'static Daemon, cfg: &StackConfig) -> Probe {
        match unit.answers(cfg) {
            Ok(()) => match (daemon.on_ready)(cfg) {
                Ok(()) => Probe::Ready,
                Err(err) => Probe::Failed(err),
            },
            // Read from the kernel's table, not by connecting: a connection that says nothing
            // is a line in some programs' logs (Postgres' "incomplete startup packet").
            Err(err) if crate::os::ports::listening(cfg.port(daemon.port)) => Probe::Listening(err),
            Err(err) => Probe::NotYet(err),
        }
    }

    fn alive(&self, unit: &'static Unit, cfg: &StackConfig) -> anyhow::Result<()> {
        unit.answers(cfg)
    }

    fn run_task(
        &self,
        _: &'static Unit,
        task: fn(&StackConfig) -> anyhow::Result<String>,
        cfg: &StackConfig,
    ) -> anyhow::Result<String> {
        task(cfg)
    }

    fn check_contract(&self, cfg: &StackConfig, state: &RunState) -> ContractSummary {
        let checks = crate::stack::check::collect(cfg, &state.checked_units());
        ContractSummary::of(&checks)
    }

    fn aside(&self, work: Work) -> Option<JoinHandle<()>> {
        Some(std::thread::spawn(work))
    }

    fn end_one_shots(&self) {
        process::kill_one_shots();
    }
}
