//! `cargo xtask watch`: rebuild the apps when their sources change and restart, through the
//! supervisor, the apps whose binary changed.
//!
//! Changes are debounced (an editor's save is several events, a `git checkout` hundreds) into
//! one Cargo invocation, the same build as `up`'s. A failed build leaves the running apps as
//! they are; Cargo has printed the compiler's errors. Ctrl-C ends the watching; the stack runs
//! on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::repo::Repo;
use crate::stack::{Program, UNITS};
use crate::supervisor::run_state::RunState;
use crate::supervisor::socket::{self, Recreate, Request, Start};

/// A build starts once the sources have been quiet this long. The events of an editor's save
/// come within a millisecond or two of each other, a `git checkout`'s hundreds back to back;
/// every millisecond of it is part of watch's edit-to-serving time.
const DEBOUNCE: Duration = Duration::from_millis(50);

pub(crate) fn run(repo: &Repo) -> anyhow::Result<ExitCode> {
    let cfg = repo.config()?;
    anyhow::ensure!(
        RunState::read_live(&cfg.state_dir).is_some(),
        "the stack is not running; start it with `cargo xtask up`, then watch"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let (sender, events) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = sender.send(event);
    })
    .context("cannot watch the sources")?;
    let root = repo.root.as_path();
    for (path, mode) in watched(root) {
        watcher
            .watch(&path, mode)
            .with_context(|| format!("cannot watch {}", path.display()))?;
    }
    let ignored = gitignore(root);
    let apps: Vec<String> = UNITS
        .iter()
        .filter(|unit| matches!(unit.program, Program::Workspace { .. }))
        .map(|unit| unit.name.to_owned())
        .collect();
    println!(
        "watching apps/, crates/ and Cargo.toml for {} (Ctrl-C ends watching; the stack keeps running)",
        apps.join(", ")
    );
    while let Some((changed, saved)) = next_change(&events, &ignored, &stop) {
        println!("{} changed: building", changed.display());
        let (began, building) = (SystemTime::now(), Instant::now());
        if !crate::stack::build::cargo_build_apps(root)? {
            eprintln!("the build failed (see above); the running apps are left as they are");
            continue;
        }
        let build = building.elapsed();
        crate::stack::build::record_apps_built(began)?;
        let request = Request::Up {
            services: apps.clone(),
            start: Start::Nothing,
            recreate: Recreate::Changed,
            env: std::env::vars().collect(),
        };
        match socket::call(&cfg, &request) {
            Ok(()) => println!(
                "serving {:.2} s after the change (build {:.2} s)",
                saved.elapsed().as_secs_f64(),
                build.as_secs_f64()
            ),
            Err(err) => eprintln!("{err:#}"),
        }
    }
    println!("watching stopped; the stack runs on (`cargo xtask down` stops it)");
    Ok(ExitCode::SUCCESS)
}

/// What is watched: the apps' and libraries' sources, and the workspace's manifest and lock.
fn watched(root: &Path) -> Vec<(PathBuf, RecursiveMode)> {
    let dirs = ["apps", "crates"].map(|dir| (root.join(dir), RecursiveMode::Recursive));
    let files = ["Cargo.toml", "Cargo.lock"].map(|f| (root.join(f), RecursiveMode::NonRecursive));
    dirs.into_iter().chain(files).collect()
}

/// The repository's `.gitignore` rules: an ignored file (build output, editor droppings) is no
/// source.
fn gitignore(root: &Path) -> Gitignore {
    let mut builder = GitignoreBuilder::new(root);
    builder.add(root.join(".gitignore"));
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// Waits for a change to a source and then for quiet; returns one changed path and when the
/// first change was seen (`None` once asked to stop).
fn next_change(
    events: &mpsc::Receiver<notify::Result<notify::Event>>,
    ignored: &Gitignore,
    stop: &AtomicBool,
) -> Option<(PathBuf, Instant)> {
    let mut changed = None;
    loop {
        // Short waits, to notice Ctrl-C; once something changed, wait for quiet.
        let wait = if changed.is_some() {
            DEBOUNCE
        } else {
            Duration::from_millis(100)
        };
        match events.recv_timeout(wait) {
            Ok(Ok(event)) => {
                if let Some(path) = source_change(&event, ignored) {
                    changed.get_or_insert((path, Instant::now()));
                }
            }
            Ok(Err(err)) => eprintln!("watch: {err}"),
            Err(mpsc::RecvTimeoutError::Timeout) if changed.is_some() => return changed,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
    }
}

/// The first path of `event` that is a source, when the event changed something.
fn source_change(event: &notify::Event, ignored: &Gitignore) -> Option<PathBuf> {
    if matches!(event.kind, EventKind::Access(_)) {
        return None;
    }
    event
        .paths
        .iter()
        .find(|path| {
            let is_dir = path.is_dir();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            !hidden
                && !ignored
                    .matched_path_or_any_parents(path, is_dir)
                    .is_ignore()
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_changes_to_sources_count() {
        let root = Path::new("/repo");
        let mut builder = GitignoreBuilder::new(root);
        builder.add_line(None, "target/").unwrap();
        let ignored = builder.build().unwrap();
        let modify = EventKind::Modify(notify::event::ModifyKind::Any);
        let source = "/repo/apps/healthcheck/src/main.rs";
        assert_eq!(
            source_change(&event(modify, source), &ignored),
            Some(PathBuf::from(source))
        );
        let read = EventKind::Access(notify::event::AccessKind::Any);
        assert_eq!(source_change(&event(read, source), &ignored), None);
        let swap = "/repo/apps/healthcheck/src/.main.rs.swp";
        assert_eq!(source_change(&event(modify, swap), &ignored), None);
        let built = "/repo/apps/healthcheck/target/debug/x";
        assert_eq!(source_change(&event(modify, built), &ignored), None);
    }

    #[test]
    fn a_burst_of_events_is_one_change() {
        let (sender, events) = mpsc::channel();
        let modify = EventKind::Modify(notify::event::ModifyKind::Any);
        for file in ["a.rs", "b.rs", "c.rs"] {
            let path = format!("/repo/crates/x/{file}");
            sender.send(Ok(event(modify, &path))).unwrap();
        }
        let stop = AtomicBool::new(false);
        let first = next_change(&events, &Gitignore::empty(), &stop).map(|(path, _)| path);
        assert_eq!(first, Some(PathBuf::from("/repo/crates/x/a.rs")));
        assert!(
            events.try_recv().is_err(),
            "every event of the burst was taken"
        );
        drop(sender);
        assert_eq!(next_change(&events, &Gitignore::empty(), &stop), None);
    }
}
