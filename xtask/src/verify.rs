//! `cargo xtask verify`: every documented setting read back from the live stack.

use std::process::ExitCode;

use crate::config::StackConfig;

pub(crate) fn run(_cfg: &StackConfig, _json: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!("verify is not implemented yet")
}
