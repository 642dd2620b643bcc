//! `cargo xtask images`: the apps' deploy images, each built from `apps/<app>/Dockerfile` with
//! the repository root as the context (the apps use the workspace's crates), by docker or
//! podman.
//!
//! # Theory of operation
//!
//! The native dev stack never runs these images: they are what a deployment runs (the Compose
//! files build the same Dockerfiles). Each Dockerfile pins its base images by tag and digest in
//! build arguments (`RUST_IMAGE`, `RUNTIME_IMAGE`), which `--build-arg` overrides. `GIT_SHA`
//! is HEAD's commit unless given: the binary's `--version` and `/health` show it.
//!
//! Docker is used when its daemon answers, else podman: a docker CLI without a daemon (common
//! on CI machines and in containers) cannot build. The tool's own output is streamed, as the
//! first build of an image compiles every dependency of its app in release mode.
//!
//! [`offline`] is `cargo xtask test --images`: both images built with podman from base images
//! it makes itself, without any registry.

mod debian;
pub(crate) mod offline;

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};

/// An app with a deploy image.
pub(crate) struct App {
    pub(crate) name: &'static str,
    /// The port its image exposes: the seed's container port.
    pub(crate) port: u16,
}

/// The apps the seed's service map builds from a Dockerfile.
pub(crate) const APPS: [App; 2] = [
    App {
        name: "healthcheck",
        port: 8080,
    },
    App {
        name: "github-mcp",
        port: 8090,
    },
];

impl App {
    /// Its Dockerfile, relative to the repository root (the build context).
    pub(crate) fn dockerfile(&self) -> String {
        format!("apps/{}/Dockerfile", self.name)
    }
}

/// The program that builds the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Tool {
    Docker,
    Podman,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

impl Tool {
    fn program(self) -> &'static str {
        match self {
            Tool::Docker => "docker",
            Tool::Podman => "podman",
        }
    }

    /// Docker when its daemon answers, else podman; says which and why.
    fn detect() -> anyhow::Result<Tool> {
        let docker = which::which("docker").is_ok();
        if docker && docker_daemon_answers() {
            println!("images: building with docker (its daemon answers)");
            return Ok(Tool::Docker);
        }
        if which::which("podman").is_ok() {
            let why = if docker {
                "docker is installed but its daemon does not answer"
            } else {
                "docker is not installed"
            };
            println!("images: building with podman ({why})");
            return Ok(Tool::Podman);
        }
        if docker {
            bail!(
                "docker is installed but its daemon does not answer (`docker info` fails); start \
                 it (`sudo systemctl start docker`), or install podman, which needs no daemon \
                 (`sudo apt-get install podman`)"
            );
        }
        bail!(
            "neither docker nor podman is installed; install one: `sudo apt-get install podman` \
             (Debian, Ubuntu), or Docker Engine (https://docs.docker.com/engine/install/)"
        )
    }

    /// The tool asked for with `--tool`, if it is there.
    fn require(self) -> anyhow::Result<Tool> {
        if which::which(self.program()).is_err() {
            bail!(
                "{self} is not installed; install it (`sudo apt-get install {}`) or leave out \
                 --tool to use what is there",
                match self {
                    Tool::Docker => "docker.io",
                    Tool::Podman => "podman",
                }
            );
        }
        println!("images: building with {self} (--tool)");
        Ok(self)
    }
}

fn docker_daemon_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// How `build` runs the tool: the program, the flags before its `build` subcommand, and
/// variables of its environment.
pub(crate) struct Engine {
    tool: Tool,
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Engine {
    pub(crate) fn new(tool: Tool) -> Engine {
        Engine {
            tool,
            argv: vec![tool.program().into()],
            env: Vec::new(),
        }
    }

    /// The tool with `args` after its global flags.
    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut command = Command::new(&self.argv[0]);
        command
            .args(&self.argv[1..])
            .args(args.into_iter().map(Into::into))
            .envs(self.env.iter().map(|(key, value)| (key, value)));
        command
    }

    /// Builds `app` from `root` with `build_args` (and `extra` flags of `build`), tagged
    /// `tags`, up to `target` (the Dockerfile's last stage when `None`). The tool's output is
    /// streamed as it comes; its standard output is also returned.
    pub(crate) fn build(
        &self,
        root: &Path,
        app: &App,
        request: &BuildRequest<'_>,
    ) -> anyhow::Result<String> {
        let mut command = self.command(["build"]);
        if self.tool == Tool::Podman {
            // The OCI format has no HEALTHCHECK: podman would drop it with a warning.
            command.args(["--format", "docker"]);
        }
        command.arg("--file").arg(root.join(app.dockerfile()));
        for tag in request.tags {
            command.args(["--tag", tag]);
        }
        if let Some(target) = request.target {
            command.args(["--target", target]);
        }
        for (key, value) in request.build_args {
            command.arg("--build-arg").arg(format!("{key}={value}"));
        }
        command.args(request.extra).arg(root);
        println!(
            "images: {} {}{}",
            self.tool,
            app.dockerfile(),
            request
                .target
                .map(|target| format!(" (target {target})"))
                .unwrap_or_default()
        );
        let (success, stdout) =
            run_streamed(command).with_context(|| format!("run {}", self.tool))?;
        if !success {
            bail!(
                "{} could not build {} (its output is above)",
                self.tool,
                app.dockerfile()
            );
        }
        Ok(stdout)
    }
}

/// What one build makes.
pub(crate) struct BuildRequest<'a> {
    pub(crate) tags: &'a [String],
    pub(crate) target: Option<&'a str>,
    pub(crate) build_args: &'a [(String, String)],
    pub(crate) extra: &'a [OsString],
}

/// Runs `command`, echoing its standard output line by line (its standard error goes straight
/// to ours) and keeping it.
fn run_streamed(mut command: Command) -> anyhow::Result<(bool, String)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {command:?}"))?;
    let mut kept = String::new();
    let stdout = child.stdout.take().context("the child's stdout is piped")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("read the build's output")?;
        println!("{line}");
        kept.push_str(&line);
        kept.push('\n');
    }
    let status = child.wait().context("wait for the build")?;
    Ok((status.success(), kept))
}

/// HEAD's commit, for `GIT_SHA`.
pub(crate) fn head_commit(root: &Path) -> anyhow::Result<String> {
    let mut command = Command::new("git");
    command.args(["rev-parse", "HEAD"]).current_dir(root);
    let stdout = stdout_of(&mut command, "git rev-parse HEAD").context(
        "cannot read the commit; build from a git checkout, or pass --build-arg GIT_SHA=<commit>",
    )?;
    Ok(String::from_utf8_lossy(&stdout).trim().to_owned())
}

/// Runs a short command to its end and gives its standard output; a command that cannot run
/// or fails is named (`what`) with what it said on standard error.
pub(super) fn stdout_of(command: &mut Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let output = command.output().with_context(|| format!("run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// Whether tracked files differ from HEAD (the images would carry HEAD's commit, not them).
fn working_tree_is_dirty(root: &Path) -> bool {
    Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .is_ok_and(|output| output.status.success() && !output.stdout.is_empty())
}

/// `--build-arg KEY=VALUE`.
pub(crate) fn parse_build_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// `cargo xtask images [--tool docker|podman] [--build-arg KEY=VALUE]…`.
pub(crate) fn run(
    root: &Path,
    tool: Option<Tool>,
    mut build_args: Vec<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let tool = match tool {
        Some(tool) => tool.require()?,
        None => Tool::detect()?,
    };
    let git_sha = match build_args.iter().find(|(key, _)| key == "GIT_SHA") {
        Some((_, sha)) => sha.clone(),
        None => {
            let sha = head_commit(root)?;
            if working_tree_is_dirty(root) {
                eprintln!(
                    "warning: tracked files differ from HEAD; the images contain them but say \
                     {sha} (commit first for an image that is exactly its commit)"
                );
            }
            build_args.push(("GIT_SHA".to_owned(), sha.clone()));
            sha
        }
    };
    let engine = Engine::new(tool);
    let mut built = Vec::new();
    for app in &APPS {
        let image = format!("amtp-{}", app.name);
        let tags = [format!("{image}:latest"), format!("{image}:{git_sha}")];
        engine.build(
            root,
            app,
            &BuildRequest {
                tags: &tags,
                target: None,
                build_args: &build_args,
                extra: &[],
            },
        )?;
        built.extend(tags);
    }
    println!("images: built {}", built.join(", "));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_are_key_value_pairs() {
        assert_eq!(
            parse_build_arg("RUST_IMAGE=rust:1.95-bookworm@sha256:ab=cd"),
            Ok((
                "RUST_IMAGE".to_owned(),
                "rust:1.95-bookworm@sha256:ab=cd".to_owned()
            ))
        );
        assert_eq!(
            parse_build_arg("GIT_SHA="),
            Ok(("GIT_SHA".to_owned(), String::new()))
        );
        assert!(parse_build_arg("RUST_IMAGE").is_err());
        assert!(parse_build_arg("=x").is_err());
    }

    /// The `ARG NAME=default` lines of a Dockerfile.
    fn arg_defaults(dockerfile: &str) -> Vec<(String, String)> {
        dockerfile
            .lines()
            .filter_map(|line| line.strip_prefix("ARG "))
            .filter_map(|arg| parse_build_arg(arg).ok())
            .collect()
    }

    /// Both Dockerfiles pin the same base images, by tag and by a full sha256 digest, so a bump
    /// of one pin cannot leave the other image behind.
    #[test]
    fn the_dockerfiles_pin_the_same_base_images_by_tag_and_digest() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let pins: Vec<Vec<(String, String)>> = APPS
            .iter()
            .map(|app| {
                let path = root.join(app.dockerfile());
                let text = std::fs::read_to_string(&path).unwrap();
                arg_defaults(&text)
                    .into_iter()
                    .filter(|(key, _)| key.ends_with("_IMAGE"))
                    .collect()
            })
            .collect();
        let keys: Vec<&str> = pins[0].iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["RUST_IMAGE", "RUNTIME_IMAGE"]);
        assert_eq!(pins[0], pins[1]);
        for (key, image) in &pins[0] {
            let (tag, digest) = image
                .split_once("@sha256:")
                .unwrap_or_else(|| panic!("{key}={image} has no digest"));
            assert!(tag.contains(':'), "{key}={image} has no tag");
            assert!(
                digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                "{key}={image}: not a sha256 digest"
            );
        }
    }

    #[test]
    fn both_builds_share_one_cargo_cache_and_one_feature_set() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let mounts = |text: &str| -> Vec<String> {
            text.split_whitespace()
                .filter(|word| word.starts_with("--mount=type=cache"))
                .map(str::to_owned)
                .collect()
        };
        let mut shared = Vec::new();
        for app in &APPS {
            let text = std::fs::read_to_string(root.join(app.dockerfile())).unwrap();
            let name = app.name;
            // One feature set: what the first build compiled, the second reuses.
            assert!(
                text.contains(&format!(
                    "cargo build --release --locked --workspace --bin {name}"
                )),
                "{name}: the build resolves features for its package alone"
            );
            // A cache mount is no part of the image: the binary leaves it in the same step.
            assert!(
                text.contains(&format!("install -D target/release/{name} /out/{name}"))
                    && text.contains(&format!("COPY --from=build /out/{name} ")),
                "{name}: the binary is not copied out of the cache"
            );
            shared.push(mounts(&text));
        }
        assert_eq!(shared[0].len(), 2, "{:?}", shared[0]);
        assert_eq!(shared[0], shared[1], "the two builds use different caches");
    }
}
