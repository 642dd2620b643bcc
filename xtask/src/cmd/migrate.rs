//! `cargo xtask migrate`: the Flyway-compatible runner of `migrations/sql`.

use std::process::ExitCode;

use crate::repo::Repo;
use crate::stack;
use crate::supervisor::run_state::RunState;

/// `cargo xtask migrate`: the running stack's database by default (straight to Postgres, as
/// `flyway.url` does), `--url` for any other.
pub(crate) fn run(repo: &Repo, args: &amtp_migrate::cli::MigrateArgs) -> anyhow::Result<ExitCode> {
    let url = repo
        .config()
        .ok()
        .and_then(|cfg| Some(RunState::read_live(&cfg.state_dir)?.live_config(&cfg)))
        .map(|cfg| stack::migrations::settings(&cfg).url);
    let defaults = amtp_migrate::cli::Defaults {
        url,
        location: repo.root.join("migrations/sql"),
    };
    amtp_migrate::cli::run(args, &defaults)?;
    Ok(ExitCode::SUCCESS)
}
