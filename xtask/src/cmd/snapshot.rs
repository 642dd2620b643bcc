//! `cargo xtask snapshot [NAME]`, `snapshot --delete NAME`, `snapshots` and `restore NAME`:
//! copies of the data the stack keeps (each unit's `data`: the Postgres cluster, Garage's
//! metadata and objects) in `<state>/snapshots/NAME/`, at the same paths as in the state dir.
//!
//! A copy is consistent because nothing writes while it is made: on a running stack the
//! services that hold the data, and those that depend on them, are stopped through the
//! supervisor for the copy and started again (docs/benchmarks/snapshot.md measures this against `pg_basebackup` and a template
//! database). `restore` copies the snapshot in beside the live data first, then stops what
//! uses it, swaps the directories by renaming, and starts it all again; the data from before is
//! deleted only once everything is ready (see [`swap`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::config::StackConfig;
use crate::os::{disk, tree};
use crate::repo::Repo;
use crate::stack::{self, Unit};

pub(crate) mod swap;

use swap::{Part, Pause};

/// What a snapshot holds, beside the copies: `<state>/snapshots/NAME/snapshot.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    /// Unix time it was taken.
    taken_at: i64,
    /// The services whose data it holds, in table order.
    services: Vec<String>,
    /// The bytes of its files.
    bytes: u64,
}

const MANIFEST: &str = "snapshot.json";

/// The longest name a snapshot may have.
const MAX_NAME: usize = 64;

/// `snapshot NAME`'s value parser: letters, digits, `.`, `_` and `-`, not starting with `.` or
/// `-` (a hidden or half-made directory, or a flag), at most 64.
pub(crate) fn parse_name(name: &str) -> Result<String, String> {
    let fits = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fits {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "a snapshot's name is 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`, not \
             starting with `.` or `-` (e.g. `before-v7`)"
        ))
    }
}

/// `<state>/snapshots`.
pub(crate) fn snapshots_dir(cfg: &StackConfig) -> PathBuf {
    cfg.state_dir.join("snapshots")
}

/// The units that keep data on disk, in table order.
pub(crate) fn data_units() -> impl Iterator<Item = &'static Unit> {
    stack::UNITS
        .iter()
        .copied()
        .filter(|unit| !unit.data.is_empty())
}

/// A data dir's path inside the state dir (and so inside a snapshot).
fn relative<'a>(cfg: &StackConfig, dir: &'a Path) -> &'a Path {
    dir.strip_prefix(&cfg.state_dir)
        .expect("a data dir is inside the state dir")
}

/// `snapshot [NAME]`: copies the data of every service that has some; on a running stack,
/// stops those services and their dependents for the copy and starts them again.
pub(crate) fn take(repo: &Repo, name: Option<String>) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let cfg = repo.config()?;
    let _one_at_a_time = swap::exclusive(&cfg)?;
    let name = name.unwrap_or_else(|| jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string());
    let dir = snapshots_dir(&cfg).join(&name);
    if dir.exists() {
        bail!(
            "a snapshot named {name} exists already; take it under another name, or delete it \
             first with `cargo xtask snapshot --delete {name}`"
        );
    }
    swap::finish_interrupted(&cfg)?;
    let units: Vec<&Unit> = data_units()
        .filter(|unit| unit.data_dirs(&cfg).iter().any(|d| d.exists()))
        .collect();
    if units.is_empty() {
        bail!("the stack has no data yet (no service has started); `cargo xtask up` first");
    }
    let need = units
        .iter()
        .flat_map(|unit| unit.data_dirs(&cfg))
        .map(|d| tree::size(&d))
        .sum();
    check_room(&cfg, need, "the snapshot")?;
    let names: Vec<&str> = units.iter().map(|unit| unit.name).collect();
    // Made under a hidden name and renamed whole: a snapshot is there complete, or not at all.
    let partial = snapshots_dir(&cfg).join(format!(".{name}.partial"));
    remove_leftovers(&cfg);
    let pause = Pause::stop(&cfg, &names)?;
    let copied = fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))
        .and_then(|()| copy_out(&cfg, &units, &partial));
    let resumed = pause.resume();
    let bytes = match copied.and_then(|bytes| resumed.map(|()| bytes)) {
        Ok(bytes) => bytes,
        Err(err) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(err.context(format!("snapshot {name} not taken")));
        }
    };
    let manifest = Manifest {
        taken_at: jiff::Timestamp::now().as_second(),
        services: names.iter().map(|n| (*n).to_owned()).collect(),
        bytes,
    };
    let manifest_file = partial.join(MANIFEST);
    fs::write(&manifest_file, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", manifest_file.display()))?;
    fs::rename(&partial, &dir).with_context(|| format!("cannot create {}", dir.display()))?;
    println!(
        "snapshot {name} taken in {:.2} s: {}, {}, in {}",
        began.elapsed().as_secs_f64(),
        names.join(", "),
        disk::show_bytes(bytes),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Refuses a copy of `need` bytes into the state dir's file system when it has less room.
fn check_room(cfg: &StackConfig, need: u64, what: &str) -> anyhow::Result<()> {
    let free = disk::free_bytes(&cfg.state_dir).unwrap_or(u64::MAX);
    if free < need.saturating_add(disk::FULL_BELOW) {
        bail!(
            "not enough free space for {what}: it needs {}, {} is free in {}; delete an old \
             snapshot (`cargo xtask snapshots` lists them) or free some space",
            disk::show_bytes(need),
            disk::show_bytes(free),
            cfg.state_dir.display()
        );
    }
    Ok(())
}

/// What a `snapshot` or `snapshot --delete` that was killed left: hidden dirs of the snapshots
/// dir (a snapshot half made, or half deleted).
fn remove_leftovers(cfg: &StackConfig) {
    let Ok(entries) = fs::read_dir(snapshots_dir(cfg)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && (name.ends_with(".partial") || name.ends_with(".deleting")) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Copies each unit's data dirs into the snapshot dir `into`; returns the bytes copied.
fn copy_out(cfg: &StackConfig, units: &[&Unit], into: &Path) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for unit in units {
        for dir in unit.data_dirs(cfg).iter().filter(|d| d.exists()) {
            let target = into.join(relative(cfg, dir));
            fs::create_dir_all(target.parent().expect("inside the snapshot"))?;
            bytes += tree::copy(dir, &target)
                .with_context(|| format!("cannot copy {}'s data", unit.name))?;
        }
    }
    Ok(bytes)
}

/// `snapshots`: each snapshot's name, when it was taken, its size and services, oldest first.
pub(crate) fn list(repo: &Repo) -> anyhow::Result<ExitCode> {
    let Some(cfg) = repo.existing_config()? else {
        println!("no snapshots (the stack was never started)");
        return Ok(ExitCode::SUCCESS);
    };
    let mut rows: Vec<(String, Manifest)> = Vec::new();
    if let Ok(entries) = fs::read_dir(snapshots_dir(&cfg)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if parse_name(&name).is_err() {
                continue;
            }
            match read_manifest(&entry.path()) {
                Ok(manifest) => rows.push((name, manifest)),
                Err(err) => eprintln!("warning: {err:#}"),
            }
        }
    }
    if rows.is_empty() {
        println!(
            "no snapshots in {}; take one with `cargo xtask snapshot [NAME]`",
            snapshots_dir(&cfg).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    rows.sort_by(|a, b| (a.1.taken_at, &a.0).cmp(&(b.1.taken_at, &b.0)));
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    println!(
        "{:width$}  {:20}  {:>10}  SERVICES",
        "NAME", "TAKEN (UTC)", "SIZE"
    );
    for (name, manifest) in &rows {
        let taken = jiff::Timestamp::from_second(manifest.taken_at)
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| "?".to_owned());
        let size = format!("{:.1} MiB", manifest.bytes as f64 / (1024.0 * 1024.0));
        println!(
            "{name:width$}  {taken:20}  {size:>10}  {}",
            manifest.services.join(", ")
        );
    }
    println!("in {}", snapshots_dir(&cfg).display());
    Ok(ExitCode::SUCCESS)
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).with_context(|| {
        format!(
            "{} is not a snapshot of this tool (no readable {MANIFEST}); move it out of the \
             snapshots dir",
            dir.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("{} is damaged", path.display()))
}

/// The snapshot dir of `name`, which must exist.
fn existing(cfg: &StackConfig, name: &str) -> anyhow::Result<PathBuf> {
    let dir = snapshots_dir(cfg).join(name);
    if !dir.join(MANIFEST).exists() {
        bail!("there is no snapshot named {name}; `cargo xtask snapshots` lists them");
    }
    Ok(dir)
}

/// `snapshot --delete NAME`.
pub(crate) fn delete(repo: &Repo, name: &str) -> anyhow::Result<ExitCode> {
    let cfg = repo.config()?;
    let _one_at_a_time = swap::exclusive(&cfg)?;
    let dir = existing(&cfg, name)?;
    let bytes = read_manifest(&dir).map(|m| m.bytes).unwrap_or(0);
    // Renamed first, so a delete cut off leaves no half snapshot under the name.
    let doomed = snapshots_dir(&cfg).join(format!(".{name}.deleting"));
    fs::rename(&dir, &doomed).with_context(|| format!("cannot delete {}", dir.display()))?;
    fs::remove_dir_all(&doomed).with_context(|| format!("cannot delete {}", doomed.display()))?;
    println!("deleted snapshot {name}, {}", disk::show_bytes(bytes));
    Ok(ExitCode::SUCCESS)
}

/// `restore NAME`: the data of the services the snapshot holds goes back to what it was; on a
/// running stack they and the running services that depend on them (PgBouncer, whose auth
/// file holds the role's verifier, the migrations, the apps) are stopped for the swap and
/// started again.
pub(crate) fn restore(repo: &Repo, name: &str) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let cfg = repo.config()?;
    let _one_at_a_time = swap::exclusive(&cfg)?;
    let dir = existing(&cfg, name)?;
    let manifest = read_manifest(&dir)?;
    swap::finish_interrupted(&cfg)?;
    let units: Vec<&Unit> = data_units()
        .filter(|unit| manifest.services.iter().any(|s| s == unit.name))
        .collect();
    let mut parts = Vec::new();
    for unit in &units {
        for live in unit.data_dirs(&cfg) {
            let saved = dir.join(relative(&cfg, &live));
            parts.push(Part::new(live, saved.exists().then_some(saved)));
        }
    }
    // Copied in beside the live data while the stack still runs: the services stop only for
    // the renames.
    check_room(&cfg, manifest.bytes, "the copy of the snapshot")?;
    swap::copy_in(&parts).with_context(|| format!("cannot restore snapshot {name}"))?;
    let names: Vec<&str> = units.iter().map(|unit| unit.name).collect();
    let pause = Pause::stop(&cfg, &names).inspect_err(|_| swap::discard(&parts))?;
    swap::replace(&cfg, &parts, pause)
        .with_context(|| format!("cannot restore snapshot {name}"))?;
    println!(
        "restored snapshot {name} ({}) in {:.2} s",
        names.join(", "),
        began.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_words() {
        for good in [
            "before-v7",
            "20261207-174002",
            "a",
            "x.y_z",
            &"n".repeat(64),
        ] {
            assert_eq!(parse_name(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            ".hidden",
            "-flag",
            "a/b",
            "..",
            "a b",
            "é",
            &"n".repeat(65),
        ] {
            assert!(parse_name(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn postgres_and_garage_keep_data() {
        let names: Vec<&str> = data_units().map(|unit| unit.name).collect();
        assert_eq!(names, ["postgres", "garage"]);
    }
}
