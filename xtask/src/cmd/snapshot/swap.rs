//! Replacing services' data dirs without ever losing the current data, for `restore` (the
//! snapshot's copy goes in) and `reset SERVICE` (nothing goes in: the service starts afresh).
//!
//! The new data is copied in beside the live dir first (`<dir>.restoring`), while the stack
//! runs. Then the services that use the data are stopped through the supervisor ([`Pause`]), a
//! journal names the dirs about to move, and each live dir is renamed aside
//! (`<dir>.previous`) and the new one into place: renames on one file system, nothing copied
//! while the services are down. Once they are ready again the journal goes, then the data from
//! before. A start that fails puts the data from before back and starts that again; a command
//! killed half way leaves the journal, and the next `up` (or `snapshot`, `restore`, `reset`)
//! puts the data from before back.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::data_units;
use crate::config::StackConfig;
use crate::os::process::ProcessId;
use crate::os::signals::Interrupt;
use crate::os::tree;
use crate::stack::UNITS;
use crate::supervisor::run_state::{Phase, RunState, Status};
use crate::supervisor::socket::{self, Request};

/// Where a copy waits beside the live dir until the swap.
const INCOMING: &str = ".restoring";
/// Where the live dir waits after the swap until the services are ready.
const PREVIOUS: &str = ".previous";

/// One data dir to replace: the live one, and the copy that goes in (`None`: nothing does,
/// the service makes a new one at its next start).
pub(crate) struct Part {
    live: PathBuf,
    saved: Option<PathBuf>,
}

impl Part {
    pub(crate) fn new(live: PathBuf, saved: Option<PathBuf>) -> Part {
        Part { live, saved }
    }
}

/// `<dir><suffix>`, beside it.
fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What the journal says of one dir: whether it had live data before the swap (if not, what
/// is there after a swap is the copy, and goes).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Moved {
    live: PathBuf,
    had_live: bool,
}

/// `<state>/.swapping-data.json`, there while dirs are being swapped and the services started
/// on the new data.
fn journal(cfg: &StackConfig) -> PathBuf {
    cfg.state_dir.join(".swapping-data.json")
}

/// Held while a `snapshot`, `snapshot --delete`, `restore` or `reset SERVICE` runs: one at a
/// time per stack, since each moves or reads the same dirs (the lock goes with the process).
pub(crate) fn exclusive(cfg: &StackConfig) -> anyhow::Result<Flock<fs::File>> {
    let path = cfg.state_dir.join(".data.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => anyhow::anyhow!(
            "another snapshot, restore or reset of this stack is running; try again once it \
             has returned"
        ),
        errno => anyhow::anyhow!("cannot lock {}: {errno}", path.display()),
    })
}

/// Copies each part's saved data to its `.restoring` dir; on a failure, removes what it
/// copied (the live data is untouched either way).
pub(crate) fn copy_in(parts: &[Part]) -> anyhow::Result<()> {
    for part in parts {
        let Some(saved) = &part.saved else { continue };
        let incoming = beside(&part.live, INCOMING);
        remove_if_there(&incoming)?;
        if let Err(err) = tree::copy(saved, &incoming) {
            discard(parts);
            return Err(err).with_context(|| format!("cannot copy {}", saved.display()));
        }
    }
    Ok(())
}

/// Deletes the copies [`copy_in`] made, when the swap is not going to happen.
pub(crate) fn discard(parts: &[Part]) {
    for part in parts {
        let _ = fs::remove_dir_all(beside(&part.live, INCOMING));
    }
}

/// Swaps every part's new data in while `pause` has the services stopped, starts them again,
/// and deletes the data from before once they are ready. Any failure leaves the data from
/// before in place (and running, if it ran).
pub(crate) fn replace(cfg: &StackConfig, parts: &[Part], pause: Pause) -> anyhow::Result<()> {
    let moved = moves(parts);
    let journal = journal(cfg);
    if let Err(err) = write_durably(&journal, &serde_json::to_vec_pretty(&moved)?) {
        discard(parts);
        pause.resume()?;
        return Err(err).with_context(|| format!("cannot write {}", journal.display()));
    }
    if let Err(err) = swap_in(parts) {
        roll_back(&moved)?;
        fs::remove_file(&journal)?;
        pause.resume()?;
        return Err(err.context("the data is as it was"));
    }
    if let Err(err) = pause.resume() {
        println!("the services did not start on the new data; putting the data from before back");
        pause.stop_again().context(
            "cannot stop them again; `cargo xtask down`, then `cargo xtask up` puts the data \
             from before back",
        )?;
        roll_back(&moved)?;
        fs::remove_file(&journal)?;
        pause.resume()?;
        return Err(err.context("the data from before is back in place"));
    }
    fs::remove_file(&journal).with_context(|| format!("cannot remove {}", journal.display()))?;
    for part in parts {
        remove_if_there(&beside(&part.live, PREVIOUS))?;
    }
    Ok(())
}

/// Writes the file and syncs it, so that it is on disk before the renames it describes.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// What the journal says of these parts, before the swap.
fn moves(parts: &[Part]) -> Vec<Moved> {
    parts
        .iter()
        .map(|part| Moved {
            live: part.live.clone(),
            had_live: part.live.exists(),
        })
        .collect()
}

/// Renames each live dir aside and its copy into place.
fn swap_in(parts: &[Part]) -> anyhow::Result<()> {
    for part in parts {
        let previous = beside(&part.live, PREVIOUS);
        remove_if_there(&previous)?;
        if part.live.exists() {
            fs::rename(&part.live, &previous)
                .with_context(|| format!("cannot move {} aside", part.live.display()))?;
        }
        if part.saved.is_some() {
            fs::rename(beside(&part.live, INCOMING), &part.live)
                .with_context(|| format!("cannot move the copy to {}", part.live.display()))?;
        }
    }
    Ok(())
}

/// Puts the data from before back wherever a swap moved it (and deletes the copies).
fn roll_back(moved: &[Moved]) -> anyhow::Result<()> {
    for entry in moved {
        let previous = beside(&entry.live, PREVIOUS);
        if entry.had_live && previous.exists() {
            remove_if_there(&entry.live)?;
            fs::rename(&previous, &entry.live)
                .with_context(|| format!("cannot move {} back", previous.display()))?;
        } else if !entry.had_live {
            remove_if_there(&entry.live)?;
        }
        remove_if_there(&beside(&entry.live, INCOMING))?;
    }
    Ok(())
}

/// What a `restore` or `reset SERVICE` that was killed left: with its journal, the data from
/// before goes back (only on a stack that is not running: nothing may have the dirs open);
/// copies and data from before that a finished swap left are deleted.
pub(crate) fn finish_interrupted(cfg: &StackConfig) -> anyhow::Result<()> {
    let journal = journal(cfg);
    if let Ok(text) = fs::read(&journal) {
        if RunState::read_live(&cfg.state_dir).is_some() {
            bail!(
                "a restore or reset was cut off while it swapped data dirs; `cargo xtask down`, \
                 then `cargo xtask up`, puts the data from before it back"
            );
        }
        let moved: Vec<Moved> = serde_json::from_slice(&text)
            .with_context(|| format!("{} is damaged", journal.display()))?;
        roll_back(&moved)?;
        fs::remove_file(&journal)?;
        println!("put back the data from before a restore or reset that was cut off");
    }
    for unit in data_units() {
        for dir in unit.data_dirs(cfg) {
            remove_if_there(&beside(&dir, INCOMING))?;
            remove_if_there(&beside(&dir, PREVIOUS))?;
        }
    }
    Ok(())
}

fn remove_if_there(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot delete {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Services of a running stack stopped while their files change, started again after; on a
/// stack that is not running, nothing (the files are at rest).
pub(crate) struct Pause<'a> {
    cfg: &'a StackConfig,
    services: Vec<String>,
    /// Ctrl-C (SIGINT, SIGTERM, SIGHUP) while services are stopped: the command goes on until
    /// they run again rather than leave them stopped, and says so.
    interrupt: Interrupt,
}

impl<'a> Pause<'a> {
    /// Stops those of `names` that run and the running units that depend on them, directly or
    /// not. Those would fail, or keep what they read, while the data is away or changes under
    /// them: PgBouncer, whose connect to a stopped Postgres bars every new server connection
    /// for `server_login_retry` (15 s) and then fails its liveness probes, the auth file
    /// holding the role's verifier, the migrations' result, the apps' connections.
    pub(crate) fn stop(cfg: &'a StackConfig, names: &[&str]) -> anyhow::Result<Pause<'a>> {
        Pause::stop_running(cfg, with_dependents(names))
    }

    fn stop_running(cfg: &'a StackConfig, wanted: Vec<String>) -> anyhow::Result<Pause<'a>> {
        let mut pause = Pause {
            cfg,
            services: Vec::new(),
            interrupt: Interrupt::catch()?,
        };
        let Some(state) = RunState::read(&cfg.state_dir) else {
            return Ok(pause);
        };
        if !state.supervisor.is_alive() {
            let left: Vec<String> = state
                .processes()
                .filter(ProcessId::is_alive)
                .map(|process| process.pid.to_string())
                .collect();
            if !left.is_empty() {
                bail!(
                    "processes of a stack whose supervisor died still run (pids {}); \
                     `cargo xtask down` stops them",
                    left.join(", ")
                );
            }
            return Ok(pause);
        }
        if state.phase != Phase::Running {
            bail!(
                "the stack is {}; try again once `up` (or `down`) has returned",
                serde_json::to_value(state.phase)?
                    .as_str()
                    .unwrap_or("busy")
            );
        }
        pause.services = state
            .units
            .iter()
            .filter(|unit| wanted.contains(&unit.name))
            .filter(|unit| !matches!(unit.status, Status::Stopped | Status::Failed))
            .map(|unit| unit.name.clone())
            .collect();
        pause.stop_again()?;
        Ok(pause)
    }

    /// Whether it stopped this service (it ran).
    pub(crate) fn stopped(&self, name: &str) -> bool {
        self.services.iter().any(|s| s == name)
    }

    /// The services it stopped, in table order.
    pub(crate) fn services(&self) -> &[String] {
        &self.services
    }

    fn stop_again(&self) -> anyhow::Result<()> {
        self.ask(|services| Request::Stop { services })
    }

    /// Starts what it stopped; done once all of it is ready.
    pub(crate) fn resume(&self) -> anyhow::Result<()> {
        self.ask(|services| Request::Start { services })?;
        if self.interrupt.requested() {
            println!("interrupted: went on until the stopped services were running again");
        }
        Ok(())
    }

    /// Sends the supervisor this request for the services, when there are any.
    fn ask(&self, request: impl FnOnce(Vec<String>) -> Request) -> anyhow::Result<()> {
        if self.services.is_empty() {
            return Ok(());
        }
        socket::call(self.cfg, &request(self.services.clone()))
    }
}

/// `names` and every unit that depends on one of them, directly or not, in table order (a
/// unit's dependencies come before it).
fn with_dependents(names: &[&str]) -> Vec<String> {
    let mut found: Vec<&str> = Vec::new();
    for unit in UNITS {
        if names.contains(&unit.name) || unit.depends_on.iter().any(|dep| found.contains(dep)) {
            found.push(unit.name);
        }
    }
    found.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_takes_pgbouncer_the_migrations_and_the_apps_with_it() {
        assert_eq!(
            with_dependents(&["postgres", "garage"]),
            [
                "postgres",
                "garage",
                "pgbouncer",
                "migrations",
                "healthcheck",
                "github-mcp"
            ]
        );
        assert_eq!(with_dependents(&["garage"]), ["garage"]);
    }

    #[test]
    fn one_data_command_at_a_time() {
        let scratch = tempfile::tempdir().unwrap();
        let cfg = crate::config::tests::config_in(scratch.path());
        let held = exclusive(&cfg).unwrap();
        let err = exclusive(&cfg).unwrap_err();
        assert!(err.to_string().contains("is running; try again"), "{err}");
        drop(held);
        exclusive(&cfg).unwrap();
    }

    fn part(root: &Path, name: &str, live: Option<&str>, saved: Option<&str>) -> Part {
        let dir = root.join(name);
        if let Some(text) = live {
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("f"), text).unwrap();
        }
        let saved = saved.map(|text| {
            let copy = root.join(format!("saved-{name}"));
            fs::create_dir_all(&copy).unwrap();
            fs::write(copy.join("f"), text).unwrap();
            copy
        });
        Part::new(dir, saved)
    }

    fn read(root: &Path, name: &str) -> Option<String> {
        fs::read_to_string(root.join(name).join("f")).ok()
    }

    #[test]
    fn a_swap_rolled_back_half_way_leaves_the_data_from_before() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path();
        let parts = [
            part(root, "a", Some("old a"), Some("new a")),
            part(root, "b", None, Some("new b")),
            part(root, "c", Some("old c"), None),
        ];
        let moved = moves(&parts);
        copy_in(&parts).unwrap();
        swap_in(&parts).unwrap();
        assert_eq!(read(root, "a").as_deref(), Some("new a"));
        assert_eq!(read(root, "b").as_deref(), Some("new b"));
        assert_eq!(read(root, "c"), None);

        roll_back(&moved).unwrap();
        assert_eq!(read(root, "a").as_deref(), Some("old a"));
        assert_eq!(read(root, "b"), None);
        assert_eq!(read(root, "c").as_deref(), Some("old c"));
        let left: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(PREVIOUS) || n.ends_with(INCOMING))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
