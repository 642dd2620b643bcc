//! The `migrate` command line, shared by `cargo xtask migrate` and the `amtp-migrate` binary.

use std::path::PathBuf;

use anyhow::Context;

use crate::{InfoRow, Settings};

/// Apply, inspect, validate or repair the database schema (a Flyway-compatible runner).
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: Option<MigrateCommand>,

    /// Database to act on, straight to PostgreSQL (like flyway.url) [default: the running stack]
    #[arg(
        long,
        global = true,
        value_name = "postgres://USER:PASSWORD@HOST:PORT/DB"
    )]
    pub url: Option<String>,

    /// Folder of V<version>__<description>.sql files (like flyway.locations) [default: migrations/sql]
    #[arg(long, global = true, value_name = "DIR")]
    pub location: Option<PathBuf>,
}

/// What to do; without one, apply pending migrations.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MigrateCommand {
    /// Show every migration with its state and checksums
    Info {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Check applied migrations against the files; pending ones count as failures
    Validate,
    /// Remove failed rows and realign checksums and descriptions with the files
    Repair,
}

/// Where the caller points the command when the flags do not.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The running stack's direct PostgreSQL URL, when there is one.
    pub url: Option<String>,
    pub location: PathBuf,
}

/// Runs the command, printing its outcome on stdout.
pub fn run(args: &MigrateArgs, defaults: &Defaults) -> anyhow::Result<()> {
    let url =
        args.url.clone().or_else(|| defaults.url.clone()).context(
            "no database to migrate: start the stack with `cargo xtask up` or pass --url",
        )?;
    let settings = Settings {
        url,
        location: args
            .location
            .clone()
            .unwrap_or_else(|| defaults.location.clone()),
    };
    match &args.command {
        None => {
            let report = crate::migrate(&settings)?;
            if report.baselined {
                println!("baselined non-empty schema public at version 1 (<< Flyway Baseline >>)");
            }
            for applied in &report.applied {
                println!(
                    "applied V{} {} ({} ms)",
                    applied.version, applied.description, applied.execution_ms
                );
            }
            let version = report.schema_version.as_deref().unwrap_or("<none>");
            if report.applied.is_empty() {
                println!("nothing to migrate: schema is up to date at version {version}");
            } else {
                println!("schema is up to date at version {version}");
            }
        }
        Some(MigrateCommand::Info { json }) => {
            let rows = crate::info(&settings)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", info_table(&rows));
            }
        }
        Some(MigrateCommand::Validate) => {
            crate::validate(&settings)?;
            println!("validated: every applied migration matches its file and none is pending");
        }
        Some(MigrateCommand::Repair) => {
            let report = crate::repair(&settings)?;
            let list = |versions: &[String]| versions.join(", ");
            if report.removed_failed.is_empty()
                && report.realigned.is_empty()
                && report.marked_deleted.is_empty()
            {
                println!("nothing to repair");
            }
            if !report.removed_failed.is_empty() {
                println!(
                    "removed failed migration rows: {}",
                    list(&report.removed_failed)
                );
            }
            if !report.realigned.is_empty() {
                println!(
                    "realigned checksums and descriptions: {}",
                    list(&report.realigned)
                );
            }
            if !report.marked_deleted.is_empty() {
                println!(
                    "marked missing migrations as deleted: {}",
                    list(&report.marked_deleted)
                );
            }
        }
    }
    Ok(())
}

/// `info` as an aligned text table.
fn info_table(rows: &[InfoRow]) -> String {
    let header = [
        "Version",
        "Description",
        "Type",
        "Installed On",
        "State",
        "Checksum (file)",
        "Checksum (applied)",
    ];
    let optional = |value: Option<String>| value.unwrap_or_default();
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                row.version.clone(),
                row.description.clone(),
                row.kind.clone(),
                optional(row.installed_on.clone()),
                row.state.label().to_owned(),
                optional(row.file_checksum.map(|c| c.to_string())),
                optional(row.applied_checksum.map(|c| c.to_string())),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let rule = format!("+-{}-+\n", widths.map(|w| "-".repeat(w)).join("-+-"));
    let mut table = rule.clone();
    table.push_str(&line(&header.map(str::to_owned)));
    table.push_str(&rule);
    if cells.is_empty() {
        table.push_str("(no migrations found)\n");
    }
    for row in &cells {
        table.push_str(&line(row));
    }
    table.push_str(&rule);
    table
}
