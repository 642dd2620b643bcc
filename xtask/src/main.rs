//! `cargo xtask`: the AMTP native dev stack. `main` only routes: parse the command line, build
//! the one context, run the command.

mod cli;
mod cmd;
mod config;
mod docs;
#[cfg(test)]
mod generated;
mod os;
mod repo;
mod stack;
mod supervisor;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Attach, Cli, Command, Output};
use crate::cmd::down::Volumes;
use crate::cmd::up::Recreate;
use crate::repo::Repo;
use crate::supervisor::socket::Request;

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
            services, ui: true, ..
        } => cmd::ui::up(repo, &services),
        Command::Up {
            services,
            attach,
            no_recreate,
            ui: false,
            timings,
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
            let code = cmd::up::up(repo, &services, attach, recreate)?;
            if timings {
                cmd::up::print_timings(repo)?;
            }
            Ok(code)
        }
        Command::Restart { services } => cmd::restart::run(repo, Request::Restart { services }),
        Command::Stop { services } => cmd::restart::run(repo, Request::Stop { services }),
        Command::Start { services } => cmd::restart::run(repo, Request::Start { services }),
        Command::Watch => cmd::watch::run(repo),
        Command::Down { volumes } => {
            let volumes = if volumes {
                Volumes::Delete
            } else {
                Volumes::Keep
            };
            cmd::down::down_if_started(repo, volumes)
        }
        Command::Reset { service: None, .. } => cmd::down::down_if_started(repo, Volumes::Delete),
        Command::Reset {
            service: Some(service),
            yes,
        } => cmd::reset::run(repo, &service, yes),
        Command::Snapshot { delete: None, name } => cmd::snapshot::take(repo, name),
        Command::Snapshot {
            delete: Some(name), ..
        } => cmd::snapshot::delete(repo, &name),
        Command::Snapshots => cmd::snapshot::list(repo),
        Command::Restore { name } => cmd::snapshot::restore(repo, &name),
        Command::Ui => cmd::ui::run(repo),
        Command::Wait { services, timeout } => cmd::wait::run(repo, &services, timeout),
        Command::Status { json } => cmd::status::run(repo, Output::json_if(json)),
        Command::Logs {
            services,
            follow,
            since,
            tail,
            timestamps,
            no_prefix,
        } => {
            let options = cmd::logs::Options {
                services,
                since,
                tail,
                follow,
                timestamps,
                prefix: !no_prefix,
            };
            // Logs need the state dir only: they stay readable when the configuration is not
            // (a `.env` with the passwords deleted), which is when they are wanted.
            let Some(cfg) = repo.started_stack()? else {
                anyhow::bail!(
                    "the stack was never started here: no logs yet; start it with `cargo xtask up`"
                );
            };
            cmd::logs::run(&cfg, &options)
        }
        Command::Traces {
            service,
            since,
            slow,
            trace,
            json,
        } => {
            let options = cmd::traces::Options {
                service,
                since,
                slow,
                trace,
            };
            cmd::traces::run(&repo.config()?, &options, Output::json_if(json))
        }
        Command::Metrics { service, json } => {
            cmd::metrics::run(&repo.config()?, service.as_deref(), Output::json_if(json))
        }
        // `--export` is `--format shell` by another name (clap refuses both at once).
        Command::Env { format, export: _ } => cmd::env::run(&repo.config()?, format),
        Command::Psql { direct, args } => {
            let database = if direct {
                cmd::clients::Database::Direct
            } else {
                cmd::clients::Database::ThroughPgBouncer
            };
            cmd::clients::psql(repo, database, &args)
        }
        Command::ValkeyCli { args } => cmd::clients::valkey_cli(repo, &args),
        Command::Test {
            images: true,
            cargo_args: _,
        } => cmd::images::offline::run(&repo.root),
        Command::Test { cargo_args, .. } => cmd::test::run(repo, &cargo_args),
        Command::Migrate(args) => cmd::migrate::run(repo, &args),
        Command::Verify { json } => cmd::verify::run(&repo.config()?, Output::json_if(json)),
        Command::Docs { out } => docs::run(repo, out),
        Command::PortVars => Ok(cmd::port_vars::run()),
        Command::Compose { check, out } => {
            cmd::compose::run(&repo.root, out.as_deref().unwrap_or(&repo.root), check)
        }
        Command::Images { tool, build_args } => cmd::images::run(&repo.root, tool, build_args),
        Command::Guard => {
            os::guardian::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Supervise { services } => {
            cmd::supervise::run(&repo.config()?, &services, os::logfile::Echo::No)
        }
    }
}
