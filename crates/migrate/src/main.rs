//! `amtp-migrate`: the migration runner on its own, for tests and for use without the xtask.

use std::process::ExitCode;

use amtp_migrate::cli::{self, Defaults, MigrateArgs};
use clap::Parser;

/// Apply, inspect, validate or repair the AMTP database schema, exactly as Flyway would.
#[derive(Debug, Parser)]
#[command(name = "amtp-migrate", version)]
struct Cli {
    #[command(flatten)]
    args: MigrateArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = Defaults {
        url: std::env::var("DIRECT_DATABASE_URL").ok(),
        location: "migrations/sql".into(),
    };
    match cli::run(&cli.args, &defaults) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("amtp-migrate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
