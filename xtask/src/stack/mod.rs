//! The stack as an ordered table of units: each service module *describes* its service (find
//! the binary, render its files, build its command, probe readiness, read back live settings);
//! the supervisor runs them. Adding a service is one module and one row in [`UNITS`].

pub(crate) mod apps;
pub(crate) mod nginx;
pub(crate) mod pgbouncer;
pub(crate) mod postgres;
pub(crate) mod valkey;

use crate::binaries::Installed;
use crate::config::{Ports, StackConfig};
use crate::process::Launch;

/// One row of the stack: a daemon or a one-shot task, started once its dependencies are ready.
pub(crate) struct Unit {
    pub(crate) name: &'static str,
    pub(crate) depends_on: &'static [&'static str],
    /// Whether this stack runs the unit at all (the GitHub stand-in only without App credentials).
    pub(crate) enabled: fn(&StackConfig) -> bool,
    pub(crate) kind: Kind,
}

pub(crate) enum Kind {
    Daemon(Daemon),
    /// Runs to completion (the migrations); its message is shown when it is done.
    Task(fn(&StackConfig) -> anyhow::Result<String>),
}

/// What the supervisor needs to know about a long-running service.
pub(crate) struct Daemon {
    pub(crate) port: fn(&Ports) -> u16,
    /// The variable that sets the port, named in errors.
    pub(crate) port_var: &'static str,
    /// Finds the program and reports its version and drift from the pins.
    pub(crate) locate: fn(&StackConfig) -> anyhow::Result<Installed>,
    /// Idempotent: renders config files, creates data dirs; returns the command to run.
    pub(crate) prepare: fn(&StackConfig, &Installed) -> anyhow::Result<Launch>,
    /// One readiness/health probe: `Ok` when the service answers as it should.
    pub(crate) probe: fn(&StackConfig) -> anyhow::Result<()>,
    /// Runs once the probe first succeeds after a start (e.g. create the database).
    pub(crate) on_ready: fn(&StackConfig) -> anyhow::Result<()>,
}

fn always(_: &StackConfig) -> bool {
    true
}

fn nothing(_: &StackConfig) -> anyhow::Result<()> {
    Ok(())
}

/// The stack in dependency order (Compose's `depends_on`), which is also the start order;
/// `down` walks it backwards.
pub(crate) const UNITS: &[Unit] = &[
    Unit {
        name: "postgres",
        depends_on: &[],
        enabled: always,
        kind: Kind::Daemon(Daemon {
            port: |p| p.postgres,
            port_var: "POSTGRES_PORT",
            locate: postgres::locate,
            prepare: postgres::prepare,
            probe: postgres::probe,
            on_ready: postgres::on_ready,
        }),
    },
    Unit {
        name: "valkey",
        depends_on: &[],
        enabled: always,
        kind: Kind::Daemon(Daemon {
            port: |p| p.valkey,
            port_var: "VALKEY_PORT",
            locate: valkey::locate,
            prepare: valkey::prepare,
            probe: valkey::probe,
            on_ready: nothing,
        }),
    },
    Unit {
        name: "nginx",
        depends_on: &[],
        enabled: always,
        kind: Kind::Daemon(Daemon {
            port: |p| p.docs,
            port_var: "DOCS_HOST_PORT",
            locate: nginx::locate,
            prepare: nginx::prepare,
            probe: nginx::probe,
            on_ready: nothing,
        }),
    },
    Unit {
        name: "pgbouncer",
        depends_on: &["postgres"],
        enabled: always,
        kind: Kind::Daemon(Daemon {
            port: |p| p.pgbouncer,
            port_var: "PGBOUNCER_PORT",
            locate: pgbouncer::locate,
            prepare: pgbouncer::prepare,
            probe: pgbouncer::probe,
            on_ready: nothing,
        }),
    },
    Unit {
        name: "migrations",
        depends_on: &["postgres"],
        enabled: always,
        kind: Kind::Task(postgres::migrate),
    },
    Unit {
        name: "github-standin",
        depends_on: &[],
        enabled: apps::uses_github_standin,
        kind: Kind::Daemon(Daemon {
            port: |p| p.github_standin,
            port_var: "GITHUB_STANDIN_PORT",
            locate: apps::locate_github_standin,
            prepare: apps::prepare_github_standin,
            probe: apps::probe_github_standin,
            on_ready: nothing,
        }),
    },
    Unit {
        name: "healthcheck",
        depends_on: &["valkey", "migrations"],
        enabled: always,
        kind: Kind::Daemon(Daemon {
            port: |p| p.healthcheck,
            port_var: "HEALTHCHECK_PORT",
            locate: apps::locate_healthcheck,
            prepare: apps::prepare_healthcheck,
            probe: apps::probe_healthcheck,
            on_ready: nothing,
        }),
    },
    Unit {
        name: "github-mcp",
        depends_on: &["valkey", "migrations", "github-standin"],
        enabled: always,
        kind: Kind::Daemon(Daemon {
            port: |p| p.mcp,
            port_var: "MCP_HTTP_PORT",
            locate: apps::locate_github_mcp,
            prepare: apps::prepare_github_mcp,
            probe: apps::probe_github_mcp,
            on_ready: nothing,
        }),
    },
];

/// The units this configuration runs, in table order.
pub(crate) fn enabled_units(cfg: &StackConfig) -> Vec<&'static Unit> {
    UNITS.iter().filter(|unit| (unit.enabled)(cfg)).collect()
}

pub(crate) fn unit(name: &str) -> Option<&'static Unit> {
    UNITS.iter().find(|unit| unit.name == name)
}

/// `http://127.0.0.1:<port><path>` answers 200; the body is returned.
pub(crate) fn http_ok(port: u16, path: &str) -> anyhow::Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_millis(800)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()?;
    let status = response.status();
    let body = response.body_mut().read_to_string()?;
    anyhow::ensure!(status == 200, "GET {path} answered {status}: {body}");
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
