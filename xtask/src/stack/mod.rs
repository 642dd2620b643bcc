//! The stack as an ordered table of units, the only place a service is defined: each service
//! module holds its row ([`Unit`]: name, program, port, dependencies, stop signal, readiness)
//! and the functions the row points to (find the program, render its files, build its command,
//! probe readiness, read back live settings); the supervisor runs them, and configuration,
//! help, `verify`, `status`, `logs` and the docs derive from the table. Adding a service is one
//! module and one line in [`UNITS`].

pub(crate) mod app_metrics;
pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod compose;
pub(crate) mod contract;
pub(crate) mod fingerprint;
pub(crate) mod garage;
pub(crate) mod github_mcp;
pub(crate) mod github_standin;
pub(crate) mod healthcheck;
pub(crate) mod migrations;
pub(crate) mod nginx;
pub(crate) mod otel_collector;
pub(crate) mod pgbouncer;
pub(crate) mod postgres;
pub(crate) mod programs;
pub(crate) mod valkey;

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::config::{PortVar, StackConfig};
use crate::os::ports::PortInUse;
use crate::os::process::Launch;
use crate::stack::check::Check;
use crate::stack::contract::{Contract, InfraFile};
use crate::stack::programs::{Drift, Installed, Wanted};

/// One row of the stack: a daemon or a one-shot task, started once its dependencies are ready.
pub(crate) struct Unit {
    pub(crate) name: &'static str,
    pub(crate) program: Program,
    pub(crate) depends_on: &'static [&'static str],
    /// Whether this stack runs the unit at all (the GitHub stand-in only without App credentials).
    pub(crate) enabled: fn(&StackConfig) -> bool,
    /// `verify`'s checks of this unit: its live settings read back and compared with infra/
    /// (the installed program, when it has one, tells which settings its version knows).
    pub(crate) checks: fn(&StackConfig, Option<&Installed>) -> Vec<Check>,
    /// The files of `infra/` it starts from, each a constant of its module: [`Contract`] reads
    /// them once before anything starts.
    pub(crate) infra: &'static [InfraFile],
    /// What a client of the stack needs of this unit (`cargo xtask env`, the tests): URLs,
    /// ports, credentials; the installed program, once it runs, for a client that needs it.
    pub(crate) client_vars: fn(&StackConfig, Option<&Installed>) -> Vec<ClientVar>,
    /// Its service in the production Compose stack (`cargo xtask compose`), from the same
    /// contract; `None` for a unit Compose does not run (the GitHub stand-in).
    pub(crate) compose: Option<fn(&Contract) -> anyhow::Result<compose::Service>>,
    /// The directories of its service dir that hold its data: what `snapshot` copies,
    /// `restore` puts back and `reset SERVICE` empties (none for a unit that keeps nothing on
    /// disk).
    pub(crate) data: &'static [&'static str],
    pub(crate) kind: Kind,
}

/// One variable of `cargo xtask env`: its name and value.
pub(crate) type ClientVar = (&'static str, String);

impl Unit {
    /// What a row need not say: always enabled, no checks beyond its probe, no files of
    /// `infra/`, nothing for clients, no Compose service, no data on disk. Each row names itself, its program and its kind (a test checks the first two;
    /// the daemon's own test its port).
    pub(crate) const DEFAULT: Unit = Unit {
        name: "",
        program: Program::Xtask { crate_name: "" },
        depends_on: &[],
        enabled: |_| true,
        checks: |_, _| Vec::new(),
        infra: &[],
        client_vars: |_, _| Vec::new(),
        compose: None,
        data: &[],
        kind: Kind::Daemon(Daemon::DEFAULT),
    };
}

/// What a unit runs.
pub(crate) enum Program {
    /// A server program of the machine (or of `nix develop`), with the flake's pin.
    External(Wanted),
    /// A binary of this workspace, which `up` builds.
    Workspace {
        package: &'static str,
        binary: &'static str,
    },
    /// Code inside the xtask itself, from a crate of the workspace.
    Xtask { crate_name: &'static str },
}

pub(crate) enum Kind {
    Daemon(Daemon),
    /// Runs to completion (the migrations); its message is shown when it is done.
    Task(fn(&StackConfig) -> anyhow::Result<String>),
}

/// Which account a daemon runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunAs {
    /// Whoever runs the xtask.
    Invoker,
    /// The unprivileged account when the xtask runs as root (Postgres and PgBouncer refuse
    /// root), else the invoker.
    UnprivilegedWhenRoot,
}

/// What the supervisor needs to know about a long-running service. A row names what is its
/// own and takes the rest from [`Daemon::DEFAULT`].
pub(crate) struct Daemon {
    pub(crate) port: PortVar,
    /// Further ports it listens on (Garage: RPC and admin API beside S3), each with its own
    /// variable: checked free before the start and given free ports by the tests like `port`.
    pub(crate) more_ports: &'static [PortVar],
    /// The signal that asks the program for a graceful stop (each module says what it means
    /// to that program).
    pub(crate) stop_signal: Signal,
    pub(crate) run_as: RunAs,
    /// Differences from the contract that come with the installed version, beyond its pin.
    pub(crate) drift: fn(&StackConfig, &Installed) -> anyhow::Result<Vec<Drift>>,
    /// Idempotent, files only: renders config files, creates data dirs (runs initdb).
    pub(crate) prepare: fn(&StackConfig, &Installed, &Contract) -> anyhow::Result<()>,
    /// The command to run, from the configuration alone: no I/O, unit-tested.
    pub(crate) launch: fn(&StackConfig, &Installed, &Contract) -> Launch,
    /// One readiness/health probe: `Ok` when the service answers as it should.
    pub(crate) probe: fn(&StackConfig) -> anyhow::Result<()>,
    /// Runs once the probe first succeeds after a start (e.g. create the database).
    pub(crate) on_ready: fn(&StackConfig) -> anyhow::Result<()>,
    /// What the supervisor does when the ready daemon stops answering its probe.
    pub(crate) liveness: Liveness,
    /// Bytes its next start needs free in the state dir, beyond what it holds already (a new
    /// cluster for Postgres): `up` refuses to start with less.
    pub(crate) disk_need: fn(&StackConfig) -> u64,
    /// Its Prometheus endpoint, for an app that has one.
    pub(crate) metrics: Option<app_metrics::AppMetrics>,
}

/// A ready daemon's liveness rule: the supervisor probes it every [`LIVENESS_PERIOD`] (each
/// probe bounded by [`PROBE_TIMEOUT`]), and acts once this many probes in a row went
/// unanswered, as process-compose's `liveness_probe` (`failure_threshold`) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Restarted (its stop signal, SIGKILL a second later), saying why in the log and in
    /// `status`: a program that holds nothing a restart would lose.
    RestartAfter(u32),
    /// Never restarted by a probe: it holds data that a kill would lose or cut off (Valkey
    /// keeps its keys in memory only, Postgres and Garage their clients' writes in flight).
    /// The log and `status` say that it does not answer and how to restart it.
    ReportAfter(u32),
}

/// How often the supervisor probes each ready daemon.
pub(crate) const LIVENESS_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// How long one probe may take in all: the client libraries' own timeouts cover connecting,
/// not every step after it (the kernel of a stopped or hung Postgres accepts the connection,
/// and nothing ever authenticates it).
pub(crate) const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Daemon {
    /// What most daemons have: no further ports, no drift beyond the pin, no files, nothing
    /// to do once ready, the invoker's account and SIGTERM (for the workspace's apps their
    /// shared `amtp-graceful` shutdown: drain, then a grace timeout). Each row names its own
    /// `port` (a test checks that it does), `launch` and `probe` (this one fails, saying so).
    pub(crate) const DEFAULT: Daemon = Daemon {
        port: PortVar {
            var: "",
            default: 0,
        },
        more_ports: &[],
        stop_signal: Signal::SIGTERM,
        run_as: RunAs::Invoker,
        drift: |_, _| Ok(Vec::new()),
        prepare: |_, _, _| Ok(()),
        launch: |_, installed, _| Launch::new(&installed.path),
        probe: |_| anyhow::bail!("this daemon's row has no probe; give it one"),
        on_ready: |_| Ok(()),
        liveness: Liveness::RestartAfter(3),
        disk_need: |_| 0,
        metrics: None,
    };
}

/// The stack in dependency order (Compose's `depends_on`), which is also the start order;
/// `down` walks it backwards.
pub(crate) const UNITS: &[&Unit] = &[
    &postgres::UNIT,
    &garage::UNIT,
    &valkey::UNIT,
    &nginx::UNIT,
    &otel_collector::UNIT,
    &pgbouncer::UNIT,
    &migrations::UNIT,
    &github_standin::UNIT,
    &healthcheck::UNIT,
    &github_mcp::UNIT,
];

impl Unit {
    /// Its data dirs ([`Unit::data`]) in this stack's state dir.
    pub(crate) fn data_dirs(&self, cfg: &StackConfig) -> Vec<std::path::PathBuf> {
        let dir = cfg.service_dir(self.name);
        self.data.iter().map(|sub| dir.join(sub)).collect()
    }

    /// The port of a daemon; a task has none.
    pub(crate) fn port(&self) -> Option<PortVar> {
        match &self.kind {
            Kind::Daemon(daemon) => Some(daemon.port),
            Kind::Task(_) => None,
        }
    }

    /// Every port of a daemon, its main one first; a task has none.
    pub(crate) fn ports(&self) -> Vec<PortVar> {
        match &self.kind {
            Kind::Daemon(daemon) => std::iter::once(daemon.port)
                .chain(daemon.more_ports.iter().copied())
                .collect(),
            Kind::Task(_) => Vec::new(),
        }
    }

    /// One probe of a daemon, bounded by [`PROBE_TIMEOUT`] whatever the service does: `Err`
    /// names it and says that it does not answer, or what it answered. A task answers.
    pub(crate) fn answers(&self, cfg: &StackConfig) -> anyhow::Result<()> {
        let Kind::Daemon(daemon) = &self.kind else {
            return Ok(());
        };
        let (probe, probed, port) = (daemon.probe, cfg.clone(), cfg.port(daemon.port));
        let answer = crate::os::poll::within(PROBE_TIMEOUT, move || probe(&probed));
        match answer {
            Some(answer) => answer.with_context(|| format!("{} on port {port}", self.name)),
            None => anyhow::bail!(
                "{} does not answer on port {port}: no reply within {PROBE_TIMEOUT:?} (stopped, \
                 or hung?)",
                self.name
            ),
        }
    }

    /// Finds a daemon's program, with its version and drift from the pins; `None` for a task.
    pub(crate) fn locate(&self, cfg: &StackConfig) -> anyhow::Result<Option<Installed>> {
        let Kind::Daemon(daemon) = &self.kind else {
            return Ok(None);
        };
        let mut installed = match &self.program {
            Program::External(wanted) => programs::locate(wanted)?,
            Program::Workspace { binary, .. } => workspace_binary(binary)?,
            Program::Xtask { .. } => anyhow::bail!("{} runs inside the xtask", self.name),
        };
        installed.drift.extend((daemon.drift)(cfg, &installed)?);
        Ok(Some(installed))
    }
}

/// A port of a unit that another process holds, said as `port 5432 for postgres is already
/// in use (pid 812, postgres); stop it or set POSTGRES_PORT`.
#[derive(Debug)]
pub(crate) struct PortTaken {
    pub(crate) unit: &'static str,
    pub(crate) var: PortVar,
    pub(crate) in_use: PortInUse,
}

impl std::fmt::Display for PortTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "port {} for {} is already in use{}; stop it or set {}",
            self.in_use.port,
            self.unit,
            self.in_use.holder_in_parentheses(),
            self.var.var
        )
    }
}

impl std::error::Error for PortTaken {}

/// The units this configuration runs, in table order.
pub(crate) fn enabled_units(cfg: &StackConfig) -> Vec<&'static Unit> {
    UNITS
        .iter()
        .copied()
        .filter(|unit| (unit.enabled)(cfg))
        .collect()
}

pub(crate) fn unit(name: &str) -> Option<&'static Unit> {
    UNITS.iter().copied().find(|unit| unit.name == name)
}

/// The variable and default of every daemon's ports, in table order.
pub(crate) fn port_vars() -> Vec<PortVar> {
    UNITS.iter().flat_map(|unit| unit.ports()).collect()
}

/// The workspace's packages and binaries the stack runs.
pub(crate) fn workspace_programs() -> impl Iterator<Item = (&'static str, &'static str)> {
    UNITS.iter().filter_map(|unit| match unit.program {
        Program::Workspace { package, binary } => Some((package, binary)),
        _ => None,
    })
}

/// A binary built next to the running xtask (same target dir and profile).
fn workspace_binary(name: &str) -> anyhow::Result<Installed> {
    let path = crate::stack::build::built_by_workspace(name)?;
    anyhow::ensure!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace` (or `cargo xtask up`, which builds it)",
        path.display()
    );
    Ok(Installed {
        path,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        drift: Vec::new(),
    })
}

/// The HTTP client of every probe and check: each request ends within `timeout` whatever
/// happens (the services are on loopback, so a slower one does not answer), and any status
/// is an answer for the caller to judge, not an error.
pub(crate) fn http_agent(timeout: std::time::Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `http://127.0.0.1:<port><path>` answers 200 within 800 ms; the body is returned.
pub(crate) fn http_ok(port: u16, path: &str) -> anyhow::Result<String> {
    let timeout = std::time::Duration::from_millis(800);
    let failed = |err| match err {
        ureq::Error::Timeout(_) => anyhow::anyhow!("GET {path} does not answer within {timeout:?}"),
        err => anyhow::Error::new(err).context(format!("GET {path}")),
    };
    let mut response = http_agent(timeout)
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .map_err(failed)?;
    let status = response.status();
    let body = response.body_mut().read_to_string().map_err(failed)?;
    anyhow::ensure!(status == 200, "GET {path} answered {status}: {body}");
    Ok(body)
}

/// The Valkey connection every app takes (`VALKEY_*`), and a loopback-only listener.
fn with_valkey(launch: Launch, cfg: &StackConfig) -> Launch {
    launch
        .env("VALKEY_HOST", "127.0.0.1")
        .env("VALKEY_PORT", cfg.port(valkey::PORT).to_string())
        .env("VALKEY_PASSWORD", &cfg.valkey_password)
        .env("BIND_ADDR", "127.0.0.1")
}

/// Creates a service's own directory in the state dir.
fn create_service_dir(cfg: &StackConfig, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = cfg.service_dir(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A program found at `path`, for the tests of each `launch`.
    pub(crate) fn installed(path: &str) -> Installed {
        Installed {
            path: path.into(),
            version: "1.0".into(),
            drift: Vec::new(),
        }
    }

    /// What a row's `launch` builds for a stack in `state_dir` and the program at `program`.
    pub(crate) fn launched(
        launch: fn(&StackConfig, &Installed, &Contract) -> Launch,
        state_dir: &str,
        program: &str,
    ) -> Launch {
        let cfg = crate::config::tests::config_in(std::path::Path::new(state_dir));
        launch(&cfg, &installed(program), &Contract::default())
    }

    /// A documented setting, for the tests of the rows that read them.
    pub(crate) fn setting(key: &str, value: &str) -> crate::stack::contract::Setting {
        crate::stack::contract::Setting {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `launch`'s arguments as text.
    pub(crate) fn args(launch: &Launch) -> Vec<String> {
        launch
            .args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_dependency_is_an_earlier_unit() {
        for (index, unit) in UNITS.iter().enumerate() {
            for dep in unit.depends_on {
                let position = UNITS.iter().position(|u| u.name == *dep);
                assert!(
                    position.is_some_and(|p| p < index),
                    "{} depends on {dep}, which is not an earlier unit",
                    unit.name
                );
            }
        }
    }

    #[test]
    fn every_row_names_itself_and_its_program() {
        for (index, unit) in UNITS.iter().enumerate() {
            assert!(!unit.name.is_empty(), "row {index} has no name");
            assert!(
                !matches!(unit.program, Program::Xtask { crate_name: "" }),
                "{} has no program",
                unit.name
            );
        }
    }

    #[test]
    fn every_daemon_names_its_own_port() {
        for unit in UNITS {
            if let Kind::Daemon(daemon) = &unit.kind {
                assert!(!daemon.port.var.is_empty(), "{} has no port", unit.name);
            }
        }
    }

    #[test]
    fn a_taken_port_names_its_unit_holder_and_variable() {
        let taken = PortTaken {
            unit: "postgres",
            var: postgres::PORT,
            in_use: PortInUse {
                port: 5432,
                holder: Some(crate::os::ports::PortHolder {
                    pid: 812,
                    command: "postgres".into(),
                }),
            },
        };
        assert_eq!(
            taken.to_string(),
            "port 5432 for postgres is already in use (pid 812, postgres); stop it or set \
             POSTGRES_PORT"
        );
    }

    #[test]
    fn names_and_port_variables_are_unique() {
        let mut names: Vec<&str> = UNITS.iter().map(|u| u.name).collect();
        let mut vars: Vec<&str> = port_vars().iter().map(|p| p.var).collect();
        let (name_count, var_count) = (names.len(), vars.len());
        names.sort_unstable();
        names.dedup();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(names.len(), name_count, "a unit name is used twice");
        assert_eq!(vars.len(), var_count, "a port variable is used twice");
    }
}
