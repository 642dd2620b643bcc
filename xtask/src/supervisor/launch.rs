//! Starting the supervisor process itself (`xtask __supervise`), detached for `up` or as a
//! child for `cargo xtask test`.

use std::fs;

use anyhow::Context;

use crate::config::{Overrides, StackConfig};
use crate::os::process::{self, ProcessId};
use crate::stack::build;

/// How the supervisor runs beside the command that starts it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Supervision<'a> {
    /// In its own session, so a closed terminal does not stop it (`up`), running only these
    /// services and their dependencies (all when empty).
    Detached(&'a [String]),
    /// As our child with a parent-death signal, so that it dies with us whatever happens
    /// (`cargo xtask test`).
    Child,
}

/// Starts `xtask __supervise` with the same configuration: our environment plus `overrides`.
pub(crate) fn start_supervisor(
    cfg: &StackConfig,
    supervision: Supervision<'_>,
    overrides: &Overrides,
) -> anyhow::Result<ProcessId> {
    let exe = build::built_by_workspace(env!("CARGO_BIN_NAME"))?;
    let log = cfg.log_file("supervisor");
    fs::create_dir_all(cfg.log_dir())
        .with_context(|| format!("cannot create {}", cfg.log_dir().display()))?;
    let launch = overrides
        .iter()
        .fold(process::Launch::new(&exe), |launch, (k, v)| {
            launch.env(k, v)
        })
        .arg("__supervise");
    let child = match supervision {
        Supervision::Child => process::spawn(&launch, &log)?,
        Supervision::Detached(services) => {
            let launch = services.iter().fold(launch, |launch, s| launch.arg(s));
            process::spawn_detached(&launch, &log)?
        }
    };
    ProcessId::of(child.id()).context("the supervisor exited at once")
}
