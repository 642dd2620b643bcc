//! `cargo xtask test`: the workspace tests against a fresh, isolated stack.
//!
//! The stack gets a temporary state dir and free ports, so it runs beside a developer's own
//! stack on the default ports. Its supervisor is our child with a parent-death signal, and we
//! stop it on every way out (test failure, panic, Ctrl-C), so it never outlives the run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime};

use anyhow::Context;

use crate::cmd::down::{self, Volumes};
use crate::cmd::up;
use crate::config::{Secrets, StackConfig};
use crate::os::signals::Interrupt;
use crate::repo::Repo;
use crate::stack;
use crate::stack::build;
use crate::supervisor::launch::{self, Supervision};

pub(crate) fn run(repo: &Repo, cargo_args: &[OsString]) -> anyhow::Result<ExitCode> {
    let root = repo.root.as_path();
    // Compile first, so the stack is not kept waiting (and CI shows build errors plainly).
    // This one build also makes the services' binaries (Cargo builds a package's binaries for
    // its integration tests), so the stack runs what the tests were built with and nothing
    // is compiled twice.
    let began = SystemTime::now();
    let status = cargo_test(root, cargo_args, &[])
        .arg("--no-run")
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        return Ok(ExitCode::FAILURE);
    }
    if cargo_args.is_empty() {
        build::record_apps_built(began)?;
    } else {
        // `-p`, `--exclude` and friends may have left a service out of that build; this one
        // has the same feature unification, so it only builds what is missing.
        build::build_apps(root)?;
    }
    if !check_flake(root)? {
        return Ok(ExitCode::FAILURE);
    }
    let stack = IsolatedStack::start(repo)?;
    println!("isolated stack in {}", stack.state_dir.display());
    // The state dir too, for the tests that read the stack's logs.
    let state_dir = ("AMTP_STATE_DIR", stack.state_dir.display().to_string());
    let vars: Vec<(String, String)> = crate::cmd::env::vars(&stack.cfg)
        .into_iter()
        .chain([state_dir])
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let tests = cargo_test(root, cargo_args, &vars)
        .status()
        .context("cannot run cargo test")?;
    let verified = crate::cmd::verify::run(&stack.cfg, crate::cli::Output::Table)?;
    let ok = tests.success() && verified == ExitCode::SUCCESS;
    stack.stop(if ok { Volumes::Delete } else { Volumes::Keep })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Parses and evaluates the flake against the stand-in nixpkgs (`nix/check-flake.sh`).
/// Without Nix that check cannot run, and a check that cannot run fails, naming the install
/// (it needs only the `nix` program, no daemon and no store downloads).
fn check_flake(root: &Path) -> anyhow::Result<bool> {
    if which::which("nix").is_err() {
        eprintln!(
            "xtask: the flake check needs `nix`, which is not installed: `sudo apt-get install \
             nix-bin` (Debian, Ubuntu), or run inside `nix develop`"
        );
        return Ok(false);
    }
    let status = Command::new("bash")
        .arg(root.join("nix/check-flake.sh"))
        .status()
        .context("cannot run nix/check-flake.sh")?;
    Ok(status.success())
}

fn cargo_test(root: &Path, cargo_args: &[OsString], vars: &[(String, String)]) -> Command {
    let mut command = build::cargo(root);
    command
        .args(["test", "--workspace"])
        .args(cargo_args)
        .envs(vars.iter().map(|(k, v)| (k, v)));
    command
}

/// Where the isolated stack keeps its state: a memory-backed file system where the OS has one
/// (`/dev/shm` on Linux: initdb and Postgres' writes never touch a disk), else the temp dir.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = shm.is_dir()
        && nix::unistd::access(
            shm,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_ok();
    if writable {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// A stack in a temporary state dir on free ports; stopped when dropped.
struct IsolatedStack {
    cfg: StackConfig,
    state_dir: PathBuf,
    stopped: bool,
}

impl IsolatedStack {
    fn start(repo: &Repo) -> anyhow::Result<IsolatedStack> {
        let began = Instant::now();
        // Ctrl-C reaches `cargo test` and us alike: we survive it to tear the stack down.
        let interrupt = Interrupt::catch()?;

        let state_dir = scratch_dir().join(format!("amtp-test-{}", std::process::id()));
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let mut overrides = vec![("AMTP_STATE_DIR".to_owned(), state_dir.display().to_string())];
        for port in stack::port_vars() {
            overrides.push((port.var.to_owned(), amtp_testkit::free_port().to_string()));
        }
        // The isolated stack always uses generated passwords and the GitHub stand-in.
        for key in ["POSTGRES_PASSWORD", "VALKEY_PASSWORD", "GITHUB_APP_ID"] {
            overrides.push((key.to_owned(), String::new()));
        }
        let marker = state_dir.join(".amtp-state");
        let configured = repo
            .config_with(&overrides, Secrets::Generate)
            .and_then(|cfg| {
                std::fs::write(&marker, "")
                    .with_context(|| format!("cannot write {}", marker.display()))?;
                Ok(cfg)
            });
        // Nothing ran yet: a configuration error leaves no state dir behind.
        let cfg = configured.inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&state_dir);
        })?;
        crate::docs::render_for_nginx(&cfg);
        let mut stack = IsolatedStack {
            cfg,
            state_dir,
            stopped: false,
        };
        let supervisor = launch::start_supervisor(&stack.cfg, Supervision::Child, &overrides)?;
        match up::follow_start(&stack.cfg, supervisor, began, &interrupt) {
            Ok(up::Start::Ready) => Ok(stack),
            Ok(up::Start::Cancelled) => {
                stack.stopped = true;
                down::down(&stack.cfg, Volumes::Delete)?;
                anyhow::bail!("cancelled while the test stack was starting; it was stopped")
            }
            Err(err) => {
                stack.stopped = true;
                down::down(&stack.cfg, Volumes::Keep)?;
                Err(err.context(format!("logs kept in {}", stack.cfg.log_dir().display())))
            }
        }
    }

    /// Stops the stack; deletes its state unless the run failed (the logs help then).
    fn stop(mut self, volumes: Volumes) -> anyhow::Result<()> {
        self.stopped = true;
        down::down(&self.cfg, volumes)?;
        if volumes == Volumes::Keep {
            println!("state and logs kept in {}", self.state_dir.display());
        }
        Ok(())
    }
}

impl Drop for IsolatedStack {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = down::down(&self.cfg, Volumes::Keep);
        }
    }
}
