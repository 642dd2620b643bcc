//! The healthcheck service (`apps/healthcheck`): a Valkey write-probe over HTTP.

use nix::sys::signal::Signal;

use super::{Daemon, Kind, Program, RunAs, Unit};
use crate::binaries::Installed;
use crate::config::{PortVar, StackConfig};
use crate::process::Launch;

pub(crate) const PORT: PortVar = PortVar {
    var: "HEALTHCHECK_PORT",
    default: 8083,
};

pub(crate) const UNIT: Unit = Unit {
    name: "healthcheck",
    program: Program::Workspace {
        package: "amtp-healthcheck",
        binary: "healthcheck",
    },
    depends_on: &["valkey", "migrations"],
    enabled: super::always,
    kind: Kind::Daemon(Daemon {
        port: PORT,
        // The apps' graceful shutdown (axum's `with_graceful_shutdown`).
        stop_signal: Signal::SIGTERM,
        run_as: RunAs::Invoker,
        drift: super::no_drift,
        prepare,
        probe,
        on_ready: super::nothing,
    }),
};

fn prepare(cfg: &StackConfig, installed: &Installed) -> anyhow::Result<Launch> {
    Ok(super::with_valkey(Launch::new(&installed.path), cfg)
        .env("PORT", cfg.port(PORT).to_string()))
}

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.port(PORT), "/health").map(drop)
}
