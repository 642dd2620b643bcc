//! `xtask __supervise` (and `up --attach`): the supervisor's process, its own output captured
//! into `supervisor.log`.

use std::fs;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::StackConfig;
use crate::os::logfile::Echo;

/// Runs the supervisor (`xtask __supervise`, or `up --attach` in the foreground) with its own
/// stdout and stderr timestamped into `supervisor.log` like every service's lines, shown
/// where they went before as well with [`Echo::Yes`]. An error is printed while the output is
/// still captured, so it lands in the log too.
pub(crate) fn run(cfg: &StackConfig, services: &[String], echo: Echo) -> anyhow::Result<ExitCode> {
    crate::os::logfile::set_rotation(crate::os::logfile::Rotation {
        max_bytes: cfg.log_max_bytes,
        keep: crate::os::logfile::KEEP,
    });
    fs::create_dir_all(cfg.log_dir())
        .with_context(|| format!("cannot create {}", cfg.log_dir().display()))?;
    let output = crate::os::logfile::capture_own_output(&cfg.log_file("supervisor"), echo)?;
    let result = crate::supervisor::run(cfg, services);
    if let Err(err) = &result {
        eprintln!("xtask: {err:#}");
    }
    output.finish();
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
