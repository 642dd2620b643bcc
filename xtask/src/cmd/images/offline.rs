//! `cargo xtask test --images`: both apps' deploy images built for real, with podman and
//! without any registry, then checked.
//!
//! # Theory of operation
//!
//! The Dockerfiles take their base images as build arguments; this test puts images of its own
//! in their place, made from what the machine already has:
//!
//! 1. Two Debian bookworm root file systems from `debootstrap`, with the Debian mirror apt
//!    uses here: `minbase` for `RUNTIME_IMAGE` (what debian:bookworm-slim is), and one with
//!    gcc, libc6-dev and ca-certificates for `RUST_IMAGE` (what rust:bookworm adds that the
//!    build uses), whose Cargo reads the vendored crates and stays offline. `podman import`
//!    makes them images. Both debootstraps and `cargo vendor` run at once. Debian's packages
//!    are kept in `~/.cache/amtp/debootstrap` (about 120 MB) for the next run.
//! 2. The Rust toolchain is the machine's own (`rustc --print sysroot`) and the crates come
//!    from `cargo vendor`: both are mounted read-only into the build's `RUN` steps.
//! 3. Each app is built (`--isolation chroot`: `podman run` cannot start containers on every
//!    machine, a chroot build can), then its `version-check` stage, whose
//!    `RUN <binary> --version` must print this commit: the binary starts in its runtime image.
//! 4. `podman image inspect`: the user is not root, the app's port is exposed, the healthcheck
//!    runs `--health`, and the image adds no more than the binary to its base.
//!
//! podman runs in a network namespace of its own (`unshare --net`), so no registry, crates.io
//! or mirror can be reached while images are imported and built, and with its own storage in
//! the scratch directory (`--root`, `--runroot`, `--tmpdir`, `TMPDIR`), so the machine's image
//! store does not grow. The scratch directory is a tmpfs of its own, in memory (a few GB at
//! most: the bases, the crates, podman's layers and the release builds' target dir), unmounted
//! at the end, on failure too.
//!
//! debootstrap and the network namespace need root; CI runs as root.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::Value;

use super::debian::{deb_cache, debian_mirror, debootstrap};
use super::{APPS, App, BuildRequest, Engine, Tool, head_commit, stdout_of};
use crate::stack::build;

/// What the build base adds to `minbase`: the C toolchain ring's build script and the linker
/// use, and the CA bundle github-mcp's image copies.
const BUILD_PACKAGES: [&str; 3] = ["gcc", "libc6-dev", "ca-certificates"];

const RUST_BASE: &str = "localhost/amtp-test/rust-base:bookworm";
const RUNTIME_BASE: &str = "localhost/amtp-test/runtime-base:bookworm";

/// Where the build base's Cargo finds the vendored crates, and the toolchain its PATH names.
const VENDOR_MOUNT: &str = "/opt/amtp-vendor";
const TOOLCHAIN_MOUNT: &str = "/usr/local/rust";

/// An image adds at most this much to its base: the binary (a few MB to tens of MB), not a
/// toolchain or a source tree.
const MAX_ADDED_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) fn run(root: &Path) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    preflight()?;
    let mirror = debian_mirror()?;
    let git_sha = head_commit(root)?;
    // A Ctrl-C reaches podman and us alike: we survive it to clean up.
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupted)?;

    let scratch = Scratch::create()?;
    println!("images test: scratch directory {}", scratch.dir.display());
    let outcome = build_and_check(root, &scratch, &mirror, &git_sha);
    let cleaned = scratch.remove();
    let problems = outcome?;
    cleaned?;
    let took = began.elapsed().as_secs();
    if problems.is_empty() {
        println!(
            "images test: both images built offline and checked in {} min {} s",
            took / 60,
            took % 60
        );
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        eprintln!("images test: {problem}");
    }
    eprintln!("images test: {} problem(s) after {took} s", problems.len());
    Ok(ExitCode::FAILURE)
}

/// Root and the programs this test runs, each missing one named with its install command.
fn preflight() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "the images test needs root (debootstrap, and podman in a network namespace of its \
             own); run it as root, as CI does"
        );
    }
    let missing: Vec<&str> = ["podman", "debootstrap", "unshare", "tar", "mount", "umount"]
        .into_iter()
        .filter(|program| which::which(program).is_err())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the images test needs {}; install them: `apt-get install podman debootstrap` \
             (unshare, tar, mount and umount are in util-linux, tar and mount)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The scratch directory and podman's storage inside it.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn create() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("amtp-images-{}", std::process::id()));
        let scratch = Scratch { dir };
        if scratch.dir.exists() {
            scratch.remove()?;
        }
        std::fs::create_dir_all(&scratch.dir)
            .with_context(|| format!("create {}", scratch.dir.display()))?;
        // Memory, not the disk: debootstrap's dpkg and the release builds create tens of
        // thousands of small files, and unmounting drops them at once (on a slow disk the two
        // root file systems alone took 2 min, and deleting the scratch more).
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0700", "amtp-images"])
            .arg(&scratch.dir)
            .status()
            .context("run mount")?;
        if !mounted.success() {
            let _ = std::fs::remove_dir(&scratch.dir);
            bail!(
                "cannot mount a tmpfs on {} ({mounted}); the images test needs root",
                scratch.dir.display()
            );
        }
        // Mounted now: a failure from here on unmounts it again.
        let made = ["tmp", "vendor"].into_iter().try_for_each(|sub| {
            let path = scratch.dir.join(sub);
            std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))
        });
        if let Err(err) = made {
            let _ = scratch.remove();
            return Err(err);
        }
        Ok(scratch)
    }

    fn runtime_fs(&self) -> PathBuf {
        self.dir.join("runtime-fs")
    }

    fn build_fs(&self) -> PathBuf {
        self.dir.join("build-fs")
    }

    fn vendor(&self) -> PathBuf {
        self.dir.join("vendor")
    }

    /// podman with this directory's storage, in a network namespace of its own.
    fn podman(&self) -> Engine {
        let mut argv: Vec<OsString> = vec!["unshare".into(), "--net".into(), "--".into()];
        argv.push("podman".into());
        for (flag, sub) in [
            ("--root", "storage"),
            ("--runroot", "run"),
            ("--tmpdir", "tmp"),
        ] {
            argv.push(flag.into());
            argv.push(self.dir.join(sub).into());
        }
        argv.extend(["--events-backend".into(), "none".into()]);
        Engine {
            tool: Tool::Podman,
            argv,
            // buildah's temporary files too.
            env: vec![("TMPDIR".into(), self.dir.join("tmp").into())],
        }
    }

    fn podman_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.podman().command(args)
    }

    /// Removes the images, then everything: first whatever is still mounted below (a build or
    /// a debootstrap that was cut off leaves overlay, proc or sys mounts).
    fn remove(&self) -> anyhow::Result<()> {
        if self.dir.join("storage").exists() {
            let _ = self
                .podman_command(["rmi", "--all", "--force"])
                .stdout(Stdio::null())
                .status();
        }
        unmount_below(&self.dir)?;
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("remove {}; delete it by hand", self.dir.display()))
    }
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_below(dir: &Path) -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut below: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    below.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in below {
        let status = Command::new("umount")
            .args(["--lazy", point])
            .status()
            .context("run umount")?;
        if !status.success() {
            bail!(
                "cannot unmount {point}; unmount it, then delete {}",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Every step after the preflight; the problems found, or the error that stopped it.
fn build_and_check(
    root: &Path,
    scratch: &Scratch,
    mirror: &str,
    git_sha: &str,
) -> anyhow::Result<Vec<String>> {
    step(
        "debootstrap the two bases and cargo vendor, at once",
        || bases_and_crates(root, scratch, mirror),
    )?;
    write_cargo_config(&scratch.build_fs())?;
    let sysroot = rust_sysroot(root)?;
    step("podman import the two base images", || {
        import(
            scratch,
            &scratch.runtime_fs(),
            RUNTIME_BASE,
            &[r#"CMD ["bash"]"#],
        )?;
        import(
            scratch,
            &scratch.build_fs(),
            RUST_BASE,
            &[
                &format!(
                    "ENV PATH={TOOLCHAIN_MOUNT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:\
                     /usr/bin:/sbin:/bin"
                ),
                "ENV CARGO_HOME=/usr/local/cargo",
            ],
        )
    })?;

    let podman = scratch.podman();
    let build_args = [
        ("RUST_IMAGE".to_owned(), RUST_BASE.to_owned()),
        ("RUNTIME_IMAGE".to_owned(), RUNTIME_BASE.to_owned()),
        ("GIT_SHA".to_owned(), git_sha.to_owned()),
    ];
    let mount = |from: &Path, to: &str| -> OsString {
        let mut spec = OsString::from(from);
        spec.push(format!(":{to}:ro"));
        spec
    };
    let extra: Vec<OsString> = vec![
        "--isolation".into(),
        "chroot".into(),
        "--pull=never".into(),
        "--volume".into(),
        mount(&sysroot, TOOLCHAIN_MOUNT),
        "--volume".into(),
        mount(&scratch.vendor(), VENDOR_MOUNT),
    ];
    let base = inspect(scratch, RUNTIME_BASE)?;
    let base_size = base["Size"].as_u64().unwrap_or_default();
    let mut problems = Vec::new();
    for app in &APPS {
        let tag = format!("localhost/amtp-test/{}:{git_sha}", app.name);
        step(&format!("build {}", app.dockerfile()), || {
            podman.build(
                root,
                app,
                &BuildRequest {
                    tags: std::slice::from_ref(&tag),
                    target: None,
                    build_args: &build_args,
                    extra: &extra,
                },
            )
        })?;
        let output = step(
            &format!("build {} --target version-check", app.name),
            || {
                podman.build(
                    root,
                    app,
                    &BuildRequest {
                        tags: &[format!("{tag}-version-check")],
                        target: Some("version-check"),
                        build_args: &build_args,
                        extra: &extra,
                    },
                )
            },
        )?;
        problems.extend(version_problem(app, &output, git_sha));
        problems.extend(image_problems(app, &inspect(scratch, &tag)?, base_size));
    }
    Ok(problems)
}

/// The two root file systems and the vendored crates, at once: debootstrap mostly waits on the
/// mirror and on dpkg, not on the CPU.
fn bases_and_crates(root: &Path, scratch: &Scratch, mirror: &str) -> anyhow::Result<()> {
    let cache = deb_cache()?;
    std::thread::scope(|threads| {
        let runtime =
            threads.spawn(|| debootstrap(mirror, &cache.runtime, &scratch.runtime_fs(), &[]));
        let build = threads
            .spawn(|| debootstrap(mirror, &cache.build, &scratch.build_fs(), &BUILD_PACKAGES));
        let vendored = vendor(root, &scratch.vendor());
        for base in [runtime, build] {
            base.join()
                .map_err(|_| anyhow::anyhow!("a debootstrap thread panicked"))??;
        }
        vendored
    })
}

/// Runs one step, saying what and how long it took.
fn step<T>(what: &str, run: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    println!("images test: {what}");
    let began = Instant::now();
    let result = run().with_context(|| format!("images test: {what}"))?;
    println!("images test: {what}: {} s", began.elapsed().as_secs());
    Ok(result)
}

/// The build base's Cargo configuration: the vendored crates, never the network.
fn write_cargo_config(build_fs: &Path) -> anyhow::Result<()> {
    let dir = build_fs.join("usr/local/cargo");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let config = format!(
        "# Written by `cargo xtask test --images`: crates from `cargo vendor`, mounted here.\n\
         [source.crates-io]\nreplace-with = \"vendored-sources\"\n\n\
         [source.vendored-sources]\ndirectory = \"{VENDOR_MOUNT}\"\n\n\
         [net]\noffline = true\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).with_context(|| format!("write {}", path.display()))
}

/// Every crate of Cargo.lock, from Cargo's cache here (crates.io only for one it lacks).
fn vendor(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut command = build::cargo(root);
    command.args(["vendor", "--locked", "--quiet"]).arg(dir);
    stdout_of(&mut command, "cargo vendor").map(drop)
}

/// The toolchain this workspace builds with.
fn rust_sysroot(root: &Path) -> anyhow::Result<PathBuf> {
    let mut command = Command::new("rustc");
    command.args(["--print", "sysroot"]).current_dir(root);
    let stdout = stdout_of(&mut command, "rustc --print sysroot")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&stdout).trim()))
}

/// `tar -C fs -c . | podman import --change … - tag`.
fn import(scratch: &Scratch, fs: &Path, tag: &str, changes: &[&str]) -> anyhow::Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(fs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("run tar")?;
    let mut import = scratch.podman_command(["import"]);
    for change in changes {
        import.args(["--change", change]);
    }
    let imported = import
        .args(["-", tag])
        .stdin(tar.stdout.take().context("tar's stdout is piped")?)
        .stdout(Stdio::null())
        .status()
        .context("run podman import")?;
    let archived = tar.wait().context("wait for tar")?;
    if !archived.success() || !imported.success() {
        bail!(
            "cannot import {} as {tag} (tar: {archived}, podman import: {imported})",
            fs.display()
        );
    }
    Ok(())
}

/// `podman image inspect`: the image's one entry.
fn inspect(scratch: &Scratch, image: &str) -> anyhow::Result<Value> {
    let stdout = stdout_of(
        &mut scratch.podman_command(["image", "inspect", image]),
        &format!("podman image inspect {image}"),
    )?;
    let parsed: Value = serde_json::from_slice(&stdout)
        .with_context(|| format!("podman image inspect {image} printed no JSON"))?;
    parsed
        .get(0)
        .cloned()
        .with_context(|| format!("podman image inspect {image} printed no image"))
}

/// The version-check stage must have printed `<app> <version>+<commit>`.
fn version_problem(app: &App, build_output: &str, git_sha: &str) -> Option<String> {
    let printed = build_output.lines().any(|line| {
        let line = line.trim();
        line.starts_with(&format!("{} ", app.name)) && line.ends_with(&format!("+{git_sha}"))
    });
    (!printed).then(|| {
        format!(
            "{}: the version-check stage did not print `{} <version>+{git_sha}`",
            app.name, app.name
        )
    })
}

/// What `podman image inspect` must show of an app's image. podman puts the healthcheck (and
/// the user) at the top level as well as under `Config`; docker only under `Config`.
fn image_problems(app: &App, image: &Value, base_size: u64) -> Vec<String> {
    let field = |name: &str| {
        image["Config"]
            .get(name)
            .filter(|value| !value.is_null())
            .or_else(|| image.get(name))
            .unwrap_or(&Value::Null)
    };
    let mut problems = Vec::new();
    let user = field("User").as_str().unwrap_or_default();
    let account = user.split(':').next().unwrap_or_default();
    if matches!(account, "" | "0" | "root") {
        problems.push(format!("{}: runs as root (User {user:?})", app.name));
    }
    let port = format!("{}/tcp", app.port);
    if field("ExposedPorts").get(&port).is_none() {
        problems.push(format!(
            "{}: port {port} is not exposed ({})",
            app.name,
            field("ExposedPorts")
        ));
    }
    let test: Vec<&str> = field("Healthcheck")["Test"]
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let runs_health = matches!(test.first(), Some(&"CMD" | &"CMD-SHELL"))
        && test.iter().any(|part| part.contains("--health"));
    if !runs_health {
        problems.push(format!(
            "{}: no healthcheck running `{} --health` (Test {test:?})",
            app.name, app.name
        ));
    }
    let size = image["Size"].as_u64().unwrap_or_default();
    let added = size.saturating_sub(base_size);
    if added > MAX_ADDED_BYTES {
        problems.push(format!(
            "{}: adds {} MB to its base image, more than a binary",
            app.name,
            added / 1_000_000
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            name: "healthcheck",
            port: 8080,
        }
    }

    #[test]
    fn an_image_passes_with_a_user_its_port_a_healthcheck_and_only_a_binary_added() {
        // The shape of `podman image inspect` (4.3): healthcheck and user also at the top.
        let image = serde_json::json!({
            "Size": 210_000_000u64,
            "User": "10001:10001",
            "Config": {
                "User": "10001:10001",
                "ExposedPorts": {"8080/tcp": {}},
            },
            "Healthcheck": {"Test": ["CMD", "/usr/local/bin/healthcheck", "--health"]},
        });
        assert_eq!(
            image_problems(&app(), &image, 204_000_000),
            Vec::<String>::new()
        );
    }

    #[test]
    fn root_a_missing_port_or_healthcheck_and_a_fat_image_are_each_named() {
        let image = serde_json::json!({
            "Size": 900_000_000u64,
            "Config": {"User": "", "ExposedPorts": {"80/tcp": {}}},
        });
        let problems = image_problems(&app(), &image, 204_000_000);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("runs as root"));
        assert!(problems[1].contains("8080/tcp is not exposed"));
        assert!(problems[2].contains("no healthcheck"));
        assert!(problems[3].contains("adds 696 MB"));
        let root = serde_json::json!({"Config": {"User": "0:0"}});
        assert!(image_problems(&app(), &root, 0)[0].contains("runs as root"));
    }

    #[test]
    fn the_version_check_must_print_this_commit() {
        let output = "[3/3] STEP 2/2: RUN [\"/usr/local/bin/healthcheck\", \"--version\"]\n\
                      healthcheck 0.1.0+abc123\n[3/3] COMMIT\n";
        assert_eq!(version_problem(&app(), output, "abc123"), None);
        assert!(version_problem(&app(), output, "def456").is_some());
        assert!(version_problem(&app(), "healthcheck 0.1.0\n", "abc123").is_some());
    }
}
