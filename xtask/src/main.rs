//! `cargo xtask`: the AMTP native dev stack. `main` only routes: parse the command line, build
//! the one context, run the command.

mod binaries;
mod check;
mod cli;
mod client;
mod compose;
mod config;
mod contract;
mod control;
mod docs;
mod env;
mod fingerprint;
mod guardian;
mod lifecycle;
mod logfile;
mod logs;
mod poll;
mod ports;
mod process;
mod repo;
mod run_state;
mod stack;
mod status;
mod supervisor;
mod test_cmd;
mod url;
mod verify;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Attach, Cli, Command, Output};
use crate::control::Request;
use crate::lifecycle::{Recreate, Volumes};
use crate::repo::Repo;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&Repo::new(), cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(repo: &Repo, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up {
            services,
            attach,
            no_recreate,
        } => {
            let attach = if attach {
                Attach::Attached
            } else {
                Attach::Detached
            };
            let recreate = if no_recreate {
                Recreate::Never
            } else {
                Recreate::Changed
            };
            lifecycle::up(repo, &services, attach, recreate)
        }
        Command::Restart { services } => lifecycle::control(repo, Request::Restart { services }),
        Command::Stop { services } => lifecycle::control(repo, Request::Stop { services }),
        Command::Start { services } => lifecycle::control(repo, Request::Start { services }),
        Command::Watch => watch::run(repo),
        Command::Down { volumes } => {
            let volumes = if volumes {
                Volumes::Delete
            } else {
                Volumes::Keep
            };
            lifecycle::down_if_started(repo, volumes)
        }
        Command::Reset => lifecycle::down_if_started(repo, Volumes::Delete),
        Command::Status { json } => status::run(repo, Output::json_if(json)),
        Command::Logs {
            services,
            follow,
            since,
            tail,
            timestamps,
            no_prefix,
        } => {
            let options = logs::Options {
                services,
                since,
                tail,
                follow,
                timestamps,
                prefix: !no_prefix,
            };
            logs::run(&repo.config()?, &options)
        }
        Command::Env { format } => env::run(&repo.config()?, format),
        Command::Psql { direct, args } => {
            let database = if direct {
                client::Database::Direct
            } else {
                client::Database::ThroughPgBouncer
            };
            client::psql(repo, database, &args)
        }
        Command::ValkeyCli { args } => client::valkey_cli(repo, &args),
        Command::Test { cargo_args } => test_cmd::run(repo, &cargo_args),
        Command::Migrate(args) => lifecycle::migrate(repo, &args),
        Command::Verify { json } => verify::run(&repo.config()?, Output::json_if(json)),
        Command::Docs { out } => docs::run(repo, out),
        Command::PortVars => Ok(env::print_port_vars()),
        Command::Compose { check, out } => {
            compose::run(&repo.root, out.as_deref().unwrap_or(&repo.root), check)
        }
        Command::Guard => {
            guardian::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Supervise { services } => {
            lifecycle::supervise(&repo.config()?, &services, logfile::Echo::No)
        }
    }
}
