//! `cargo xtask ui` and `up --ui`: a live view of the stack in the terminal, as
//! process-compose's: every service's state, health and usage, the selected one's log beside
//! it, and one key each for `restart`, `stop`, `start` and `verify`.
//!
//! The view only reads and asks. Its rows are the supervisor's state file and `status`'s
//! probes, its log pane is `logs -f`'s reader, and its keys send the requests the commands of
//! the same names send over the control socket: the supervisor stays the only code that
//! signals a process, and every action here is a command that exists without the view.
//! Quitting the view leaves the stack running.
//!
//! `model` holds what is shown and changes it, `render` draws it (tested on ratatui's
//! `TestBackend`), `input` maps keys, `feed` gathers the updates on threads of its own and
//! `terminal` is the loop that joins them.

mod feed;
mod input;
mod model;
mod render;
mod terminal;

use std::io::IsTerminal;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};

use crate::config::Secrets;
use crate::repo::Repo;
use crate::supervisor::run_state::RunState;

/// `cargo xtask ui`: the view of the running stack.
pub(crate) fn run(repo: &Repo) -> anyhow::Result<ExitCode> {
    needs_terminal()?;
    let cfg = repo.config()?;
    if RunState::read_live(&cfg.state_dir).is_none() {
        bail!(
            "the stack is not running; start it with `cargo xtask up --ui` (this view while \
             it starts) or `cargo xtask up`"
        );
    }
    terminal::show(&cfg, None)
}

/// `cargo xtask up --ui`: `up` itself runs as a child, its output (the build, then each
/// service's start) in the view's pane, while the table follows the start; quitting the view
/// lets `up` finish in the terminal.
pub(crate) fn up(repo: &Repo, services: &[String]) -> anyhow::Result<ExitCode> {
    needs_terminal()?;
    // The secrets first, so that the view and `up` read the same configuration.
    let cfg = repo.config_with(&[], Secrets::Generate)?;
    let exe = std::env::current_exe().context("cannot find the xtask's own program")?;
    let up = Command::new(exe)
        .arg("up")
        .args(services)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start `cargo xtask up`")?;
    terminal::show(&cfg, Some(up))
}

fn needs_terminal() -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "the view needs a terminal; `cargo xtask status` and `cargo xtask logs -f` print \
             anywhere"
        );
    }
    Ok(())
}
