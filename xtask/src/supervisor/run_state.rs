//! `<state>/run/state.json`: what the supervisor publishes about the stack, which `up`,
//! `status`, `verify`, `env` and `down` read. Only the supervisor writes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::config::StackConfig;
use crate::os::process::ProcessId;
/// The contract check's counts, as the supervisor records them at the start.
pub(crate) use crate::stack::check::ContractSummary;
use crate::stack::check::Running;
use crate::stack::programs::Installed;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    Starting,
    Running,
    Failed,
    Stopping,
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Waiting,
    Starting,
    Ready,
    Restarting,
    Failed,
    /// Being stopped on request (`stop`, `restart`).
    Stopping,
    /// Stopped on request, or never started (`up SERVICE`): the supervisor leaves it so.
    Stopped,
}

/// What the supervisor publishes about one unit.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct UnitState {
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) daemon: bool,
    pub(crate) pid: Option<ProcessId>,
    pub(crate) port: Option<u16>,
    pub(crate) installed: Option<Installed>,
    /// Unix time of the current process's start.
    pub(crate) started_at: Option<u64>,
    /// Milliseconds from the start of this unit's preparation to ready.
    pub(crate) ready_ms: Option<u64>,
    pub(crate) restarts: u32,
    /// The task's result, or the last error.
    pub(crate) message: Option<String>,
    /// Why the supervisor last restarted it on its own (it exited, or did not answer).
    #[serde(default)]
    pub(crate) last_restart: Option<String>,
    /// The steps of its last start, as the supervisor took them (`up --timings`).
    #[serde(default)]
    pub(crate) timings: Timings,
}

/// When the supervisor moved a unit along its last start, each in milliseconds since the
/// supervisor started: the critical path of a start, read back by `up --timings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Timings {
    /// Its dependencies were ready: its preparation (files, initdb) or its task began.
    pub(crate) began_ms: Option<u64>,
    /// The dependency that was ready last, which it waited for; `None` when it needs none.
    pub(crate) waited_for: Option<String>,
    /// Its daemon was spawned (a task has none).
    pub(crate) spawned_ms: Option<u64>,
    /// A probe first found its port listened on (the program answers later, once ready).
    pub(crate) listening_ms: Option<u64>,
    /// Its probe passed (a daemon), or its task finished.
    pub(crate) ready_ms: Option<u64>,
}

/// `<state>/run/state.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunState {
    pub(crate) supervisor: ProcessId,
    pub(crate) phase: Phase,
    pub(crate) error: Option<String>,
    pub(crate) started_at: u64,
    pub(crate) units: Vec<UnitState>,
    /// The contract check the supervisor ran once the stack was ready (`None` until it is
    /// done); `status` and a second `up` show it instead of probing everything again.
    #[serde(default)]
    pub(crate) contract: Option<ContractSummary>,
    /// Every port variable with the port the supervisor runs its service on (the further
    /// ports too: Garage's RPC and admin API, the collector's gRPC): what every command
    /// connects to while the stack runs, whatever the configuration says now.
    #[serde(default)]
    pub(crate) ports: BTreeMap<String, u16>,
}

impl RunState {
    pub(crate) fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("run/state.json")
    }

    pub(crate) fn read(state_dir: &Path) -> Option<RunState> {
        let text = std::fs::read_to_string(Self::path(state_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The state of a supervisor that is running now (not a stale file from a crash).
    pub(crate) fn read_live(state_dir: &Path) -> Option<RunState> {
        Self::read(state_dir).filter(|state| state.supervisor.is_alive())
    }

    pub(crate) fn write(&self, state_dir: &Path) -> anyhow::Result<()> {
        replace_file(&Self::path(state_dir), &serde_json::to_vec_pretty(self)?)
    }

    /// The units whose live settings can be checked: all but those stopped on request
    /// (`stop`, `up SERVICE`).
    pub(crate) fn checked_units(&self) -> Vec<Running<'_>> {
        self.units
            .iter()
            .filter(|unit| unit.status != Status::Stopped)
            .filter_map(|unit| {
                Some(Running {
                    unit: crate::stack::unit(&unit.name)?,
                    installed: unit.installed.as_ref(),
                    pid: unit.pid.map(|pid| pid.pid),
                })
            })
            .collect()
    }

    /// `cfg` with the ports this stack runs on: a port variable changed (or `AMTP_PORTS`)
    /// since the start does not move a running service until `up` restarts it.
    pub(crate) fn live_config(&self, cfg: &StackConfig) -> StackConfig {
        let recorded = self.units.iter().filter_map(|unit| {
            let var = crate::stack::unit(&unit.name)?.port()?;
            Some((var, unit.port?))
        });
        let further = crate::stack::port_vars()
            .into_iter()
            .filter_map(|var| Some((var, *self.ports.get(var.var)?)));
        recorded
            .chain(further)
            .fold(cfg.clone(), |cfg, (var, port)| cfg.with_port(var, port))
    }

    /// Every process the state names, the supervisor first.
    pub(crate) fn processes(&self) -> impl Iterator<Item = ProcessId> + '_ {
        std::iter::once(self.supervisor).chain(self.units.iter().filter_map(|u| u.pid))
    }
}

/// Writes `path` whole or not at all (a file beside it, renamed over it): the supervisor's
/// files are read while it writes them.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
