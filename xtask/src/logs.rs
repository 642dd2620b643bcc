//! `cargo xtask logs`: the per-service log files in `<state>/logs`.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::config::StackConfig;
use crate::stack::{Kind, UNITS};

/// What `logs` does after the last lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Follow {
    Stop,
    /// Keep printing new lines (`-f`).
    New,
}

pub(crate) fn run(
    cfg: &StackConfig,
    service: Option<&str>,
    follow: Follow,
    lines: usize,
) -> anyhow::Result<ExitCode> {
    let names = names();
    let chosen: Vec<&str> = match service {
        Some(name) if names.contains(&name) => vec![name],
        Some(name) => bail!(
            "no service named {name:?}; choose one of {}",
            names.join(", ")
        ),
        None => names,
    };
    let files: Vec<(&str, PathBuf)> = chosen
        .into_iter()
        .map(|name| (name, cfg.log_file(name)))
        .filter(|(_, path)| path.exists())
        .collect();
    if files.is_empty() {
        bail!(
            "no logs in {}; start the stack with `cargo xtask up`",
            cfg.log_dir().display()
        );
    }
    let prefix = files.len() > 1;
    let mut offsets = Vec::new();
    for (name, path) in &files {
        let text = fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        for line in &all[all.len().saturating_sub(lines)..] {
            print_line(name, line, prefix);
        }
        offsets.push(text.len() as u64);
    }
    if follow == Follow::Stop {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for ((name, path), offset) in files.iter().zip(offsets.iter_mut()) {
            let Ok(mut file) = File::open(path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < *offset {
                *offset = 0; // the log was truncated or replaced
            }
            file.seek(SeekFrom::Start(*offset))?;
            let mut new = String::new();
            file.read_to_string(&mut new)?;
            // Print complete lines only; a partial last line waits for the next round.
            let complete = new.rfind('\n').map_or(0, |i| i + 1);
            for line in new[..complete].lines() {
                print_line(name, line, prefix);
            }
            *offset += complete as u64;
        }
    }
}

/// What has a log: every daemon of the table, and the supervisor.
pub(crate) fn names() -> Vec<&'static str> {
    UNITS
        .iter()
        .filter(|unit| matches!(unit.kind, Kind::Daemon(_)))
        .map(|unit| unit.name)
        .chain(["supervisor"])
        .collect()
}

fn print_line(service: &str, line: &str, prefix: bool) {
    if prefix {
        println!("{service:<15}| {line}");
    } else {
        println!("{line}");
    }
}
