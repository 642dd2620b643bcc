//! The workspace's own programs (the apps, the xtask): where they are built, and building them
//! when their sources changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context;

use crate::stack;

/// The target dir (and profile) the running xtask was built into, where the workspace's other
/// programs are built too.
///
/// Not `current_exe()` itself: `cargo test` relinks the xtask binary with the tests' features
/// while `cargo xtask test` runs, and the running file then reads as `xtask (deleted)`. Its
/// directory stays right, and the fresh file at the same name is the same program.
pub(crate) fn workspace_target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let dir = exe
        .parent()
        .with_context(|| format!("{} has no directory", exe.display()))?;
    Ok(dir.to_owned())
}

/// A program built by this workspace, in [`workspace_target_dir`].
pub(crate) fn built_by_workspace(name: &str) -> anyhow::Result<PathBuf> {
    Ok(workspace_target_dir()?.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}

/// `cargo` (the one running us, if any) in `root`, without the variables `cargo run` sets for
/// the xtask itself (`CARGO_PKG_NAME=xtask`, …). Build scripts that read those (ring's does)
/// would otherwise see them change between `cargo test` and `cargo xtask test`, and Cargo would
/// compile them and everything above them again.
pub(crate) fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo_run {
            command.env_remove(key);
        }
    }
    command
}

/// Builds the workspace's services when their sources changed since the last build.
///
/// Even a no-op `cargo build` takes over a second on a small machine (it fingerprints every
/// dependency), which would double a warm `up`; a scan of the workspace's own sources takes
/// milliseconds. Cargo stays the judge whenever anything is newer.
///
/// `AMTP_SKIP_BUILD=1` runs what is built (a CI job that built before, the integration tests
/// while `watch`'s test edits a source).
pub(crate) fn build_apps(root: &Path) -> anyhow::Result<()> {
    let stamp = apps_built_stamp()?;
    let skip = std::env::var_os("AMTP_SKIP_BUILD").is_some_and(|v| v == "1");
    if apps_are_fresh(root, &stamp) || skip {
        return Ok(());
    }
    if !stamp.exists() {
        println!(
            "building the workspace: the first build takes a few minutes (it compiles every \
             dependency once; `cargo test` and later builds reuse them)"
        );
    }
    let began = SystemTime::now();
    anyhow::ensure!(
        cargo_build_apps(root)?,
        "cannot build the stack's services (see above)"
    );
    record_apps_built(began)
}

/// Builds the workspace's services (`up` and `watch`); false when the build failed (Cargo
/// printed why).
///
/// The same feature unification as `cargo test --workspace`, so the two share every compiled
/// dependency: examples, like tests, turn on the dev-dependencies' features (with `--bins`
/// alone, tokio, reqwest, rmcp and the apps would be compiled a second time). Cargo's own
/// progress on a terminal, never `--quiet`: a build can take minutes.
pub(crate) fn cargo_build_apps(root: &Path) -> anyhow::Result<bool> {
    let status = cargo(root)
        .args(["build", "--workspace", "--bins", "--examples"])
        .status()
        .context("cannot run cargo build")?;
    Ok(status.success())
}

/// Notes that the services were built from the sources as they were at `began` (before the
/// build: a file saved while it ran still counts as newer). `cargo xtask test` calls it after
/// its `cargo test --workspace` build, which builds the services' binaries too.
pub(crate) fn record_apps_built(began: SystemTime) -> anyhow::Result<()> {
    let stamp = apps_built_stamp()?;
    fs::File::create(&stamp)
        .and_then(|file| file.set_modified(began))
        .with_context(|| format!("cannot write {}", stamp.display()))
}

fn apps_built_stamp() -> anyhow::Result<std::path::PathBuf> {
    Ok(workspace_target_dir()?.join(APPS_BUILT_STAMP))
}

/// Written next to the binaries after each successful build of the services.
const APPS_BUILT_STAMP: &str = "amtp-apps-built.stamp";

/// True when the services are built and no source of the workspace changed since.
fn apps_are_fresh(root: &Path, stamp: &Path) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    let binaries_exist = stack::workspace_programs()
        .all(|(_, binary)| built_by_workspace(binary).is_ok_and(|path| path.is_file()));
    let Some(built) = modified(stamp).filter(|_| binaries_exist) else {
        return false;
    };
    let sources = ["apps", "crates"]
        .iter()
        .flat_map(|dir| ignore::WalkBuilder::new(root.join(dir)).build().flatten())
        .map(|entry| entry.into_path())
        .chain([root.join("Cargo.toml"), root.join("Cargo.lock")]);
    sources
        .filter_map(|path| modified(&path))
        .all(|time| time <= built)
}
