//! `cargo xtask test`: the workspace tests against a fresh, isolated stack.
//!
//! The stack gets a temporary state dir and free ports, so it runs beside a developer's own
//! stack on the default ports. Its supervisor is our child with a parent-death signal, and we
//! stop it on every way out (test failure, panic, Ctrl-C), so it never outlives the run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;

use crate::config::{PORT_KEYS, StackConfig};
use crate::lifecycle;

pub(crate) fn run(root: &Path, cargo_args: &[OsString]) -> anyhow::Result<ExitCode> {
    // Compile first, so the stack is not kept waiting (and CI shows build errors plainly).
    let status = cargo_test(root, cargo_args, &[])
        .arg("--no-run")
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        return Ok(ExitCode::FAILURE);
    }
    lifecycle::build_apps(root)?;
    if !check_flake(root)? {
        return Ok(ExitCode::FAILURE);
    }
    let stack = IsolatedStack::start(root)?;
    println!("isolated stack in {}", stack.state_dir.display());
    let vars: Vec<(String, String)> = crate::env::vars(&stack.cfg)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let tests = cargo_test(root, cargo_args, &vars)
        .status()
        .context("cannot run cargo test")?;
    let verified = crate::verify::run(&stack.cfg, false)?;
    let ok = tests.success() && verified == ExitCode::SUCCESS;
    stack.stop(ok)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Parses and evaluates the flake against the stand-in nixpkgs (`nix/check-flake.sh`).
/// Without Nix it cannot run: said loudly, not failed, so Debian users can run the tests.
fn check_flake(root: &Path) -> anyhow::Result<bool> {
    if which::which("nix").is_err() {
        eprintln!(
            "warning: flake NOT evaluated: `nix` is not installed (apt-get install nix-bin); \
             CI installs it"
        );
        return Ok(true);
    }
    let status = Command::new("bash")
        .arg(root.join("nix/check-flake.sh"))
        .status()
        .context("cannot run nix/check-flake.sh")?;
    Ok(status.success())
}

fn cargo_test(root: &Path, cargo_args: &[OsString], vars: &[(String, String)]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["test", "--workspace"])
        .args(cargo_args)
        .envs(vars.iter().map(|(k, v)| (k, v)));
    command
}

/// A stack in a temporary state dir on free ports; stopped when dropped.
struct IsolatedStack {
    cfg: StackConfig,
    state_dir: PathBuf,
    stopped: bool,
}

impl IsolatedStack {
    fn start(root: &Path) -> anyhow::Result<IsolatedStack> {
        let began = Instant::now();
        // Ctrl-C reaches `cargo test` and us alike: we survive it to tear the stack down.
        let interrupted = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupted)?;

        let state_dir = std::env::temp_dir().join(format!("amtp-test-{}", std::process::id()));
        std::fs::create_dir_all(&state_dir)?;
        // SAFETY: set before any other thread of ours starts; children inherit it.
        unsafe {
            std::env::set_var("AMTP_STATE_DIR", &state_dir);
            for (key, _) in PORT_KEYS {
                std::env::set_var(key, amtp_testkit::free_port().to_string());
            }
            // The isolated stack always uses generated passwords and the GitHub stand-in.
            for key in ["POSTGRES_PASSWORD", "VALKEY_PASSWORD", "GITHUB_APP_ID"] {
                std::env::remove_var(key);
            }
        }
        let cfg = StackConfig::load(root, true)?;
        std::fs::write(state_dir.join(".amtp-state"), "")?;
        let mut stack = IsolatedStack {
            cfg,
            state_dir,
            stopped: false,
        };
        let supervisor = lifecycle::start_supervisor(&stack.cfg, false)?;
        if let Err(err) = lifecycle::watch_start(&stack.cfg, supervisor, began) {
            stack.stopped = true;
            lifecycle::down(&stack.cfg, false)?;
            return Err(err.context(format!("logs kept in {}", stack.cfg.log_dir().display())));
        }
        Ok(stack)
    }

    /// Stops the stack; deletes its state unless the run failed (the logs help then).
    fn stop(mut self, delete: bool) -> anyhow::Result<()> {
        self.stopped = true;
        lifecycle::down(&self.cfg, delete)?;
        if !delete {
            println!("state and logs kept in {}", self.state_dir.display());
        }
        Ok(())
    }
}

impl Drop for IsolatedStack {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = lifecycle::down(&self.cfg, false);
        }
    }
}
