//! `cargo xtask`: the AMTP native dev stack. `main` only routes: parse the command line,
//! find the repository, run the command.

mod binaries;
mod cli;
mod compose;
mod config;
mod contract;
mod docs;
mod env;
mod lifecycle;
mod logs;
mod ports;
mod process;
mod stack;
mod status;
mod supervisor;
mod test_cmd;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::StackConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    let root = repo_root();
    let root = root.as_path();
    match command {
        Command::Up { attach } => lifecycle::up(root, attach),
        Command::Down { volumes } => down(root, volumes),
        Command::Reset => down(root, true),
        Command::Status { json } => match StackConfig::load_existing(root)? {
            Some(cfg) => status::run(&cfg, json),
            None => Ok(status::not_running(None, json)),
        },
        Command::Logs {
            service,
            follow,
            lines,
        } => logs::run(
            &StackConfig::load(root, false)?,
            service.as_deref(),
            follow,
            lines,
        ),
        Command::Env { format } => env::run(&StackConfig::load(root, false)?, format),
        Command::Test { cargo_args } => test_cmd::run(root, &cargo_args),
        Command::Migrate(args) => migrate(root, &args),
        Command::Verify { json } => verify::run(&StackConfig::load(root, false)?, json),
        Command::Docs { out } => {
            let out = out.unwrap_or_else(|| root.join("docs/site"));
            docs::build_site(root, &out)?;
            println!("docs site written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Compose { check, out } => {
            compose::run(root, out.as_deref().unwrap_or(root), check)
        }
        Command::Supervise => {
            supervisor::run(&StackConfig::load(root, false)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn down(root: &Path, volumes: bool) -> anyhow::Result<ExitCode> {
    match StackConfig::load_existing(root)? {
        Some(cfg) => lifecycle::down(&cfg, volumes),
        None => {
            println!("the stack is not running (it was never started): nothing to stop");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cargo xtask migrate`: the running stack's database by default (straight to Postgres, as
/// `flyway.url` does), `--url` for any other.
fn migrate(root: &Path, args: &amtp_migrate::cli::MigrateArgs) -> anyhow::Result<ExitCode> {
    let url = StackConfig::load(root, false)
        .ok()
        .filter(|cfg| supervisor::RunState::read_live(&cfg.state_dir).is_some())
        .map(|cfg| stack::postgres::migration_settings(&cfg).url);
    let defaults = amtp_migrate::cli::Defaults {
        url,
        location: root.join("migrations/sql"),
    };
    amtp_migrate::cli::run(args, &defaults)?;
    Ok(ExitCode::SUCCESS)
}

/// The repository root: the xtask crate lives in `<root>/xtask`.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_owned()
}
