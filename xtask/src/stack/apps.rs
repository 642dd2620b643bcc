//! The team's own services, built from this workspace: the healthcheck, the GitHub MCP server
//! and, when no GitHub App is configured, the GitHub stand-in it then talks to.

use std::path::PathBuf;

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::binaries::Installed;
use crate::config::{GithubApp, StackConfig};
use crate::process::Launch;

/// Workspace packages `up` builds before it starts the stack.
pub(crate) const PACKAGES: [&str; 3] =
    ["amtp-healthcheck", "amtp-github-mcp", "amtp-github-standin"];

/// The binaries those packages build.
pub(crate) const BINARIES: [&str; 3] = ["healthcheck", "github-mcp", "github-standin"];

/// The stand-in's App and installation ids (any number works; these are the stand-in's own).
const STANDIN_APP_ID: &str = "1";
const STANDIN_INSTALLATION_ID: &str = "1";

/// A binary built next to the running xtask (same target dir and profile).
fn workspace_binary(name: &str) -> anyhow::Result<Installed> {
    let path = crate::binaries::built_by_workspace(name)?;
    anyhow::ensure!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace` (or `cargo xtask up`, which builds it)",
        path.display()
    );
    Ok(Installed {
        path,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        drift: Vec::new(),
    })
}

pub(crate) fn uses_github_standin(cfg: &StackConfig) -> bool {
    matches!(cfg.github, GithubApp::StandIn)
}

fn standin_key_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir("github-standin").join("app_key.pem")
}

pub(crate) fn locate_healthcheck(_cfg: &StackConfig) -> anyhow::Result<Installed> {
    workspace_binary("healthcheck")
}

pub(crate) fn prepare_healthcheck(
    cfg: &StackConfig,
    installed: &Installed,
) -> anyhow::Result<Launch> {
    Ok(
        with_valkey(Launch::new(&installed.path, Signal::SIGTERM), cfg)
            .env("PORT", cfg.ports.healthcheck.to_string()),
    )
}

pub(crate) fn probe_healthcheck(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.ports.healthcheck, "/health").map(drop)
}

pub(crate) fn locate_github_standin(_cfg: &StackConfig) -> anyhow::Result<Installed> {
    workspace_binary("github-standin")
}

pub(crate) fn prepare_github_standin(
    cfg: &StackConfig,
    installed: &Installed,
) -> anyhow::Result<Launch> {
    let dir = cfg.service_dir("github-standin");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(Launch::new(&installed.path, Signal::SIGTERM)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", cfg.ports.github_standin))
        .arg("--app-id")
        .arg(STANDIN_APP_ID)
        .arg("--installation-id")
        .arg(STANDIN_INSTALLATION_ID)
        .arg("--app-key")
        .arg(standin_key_file(cfg)))
}

pub(crate) fn probe_github_standin(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.ports.github_standin, "/_standin/health").map(drop)
}

pub(crate) fn locate_github_mcp(_cfg: &StackConfig) -> anyhow::Result<Installed> {
    workspace_binary("github-mcp")
}

pub(crate) fn prepare_github_mcp(
    cfg: &StackConfig,
    installed: &Installed,
) -> anyhow::Result<Launch> {
    let launch = with_valkey(Launch::new(&installed.path, Signal::SIGTERM), cfg)
        .env("MCP_HTTP_PORT", cfg.ports.mcp.to_string());
    Ok(match &cfg.github {
        GithubApp::Real {
            app_id,
            installation_id,
            key_file,
            api_url,
        } => launch
            .env("GITHUB_APP_ID", app_id)
            .env("GITHUB_APP_INSTALLATION_ID", installation_id)
            .env("GITHUB_APP_KEY_FILE", key_file.display().to_string())
            .env("GITHUB_API_URL", api_url),
        GithubApp::StandIn => launch
            .env("GITHUB_APP_ID", STANDIN_APP_ID)
            .env("GITHUB_APP_INSTALLATION_ID", STANDIN_INSTALLATION_ID)
            .env(
                "GITHUB_APP_KEY_FILE",
                standin_key_file(cfg).display().to_string(),
            )
            .env(
                "GITHUB_API_URL",
                format!("http://127.0.0.1:{}", cfg.ports.github_standin),
            ),
    })
}

pub(crate) fn probe_github_mcp(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.ports.mcp, "/health").map(drop)
}

/// The Valkey connection every app takes (`VALKEY_*`), and a loopback-only listener.
fn with_valkey(launch: Launch, cfg: &StackConfig) -> Launch {
    launch
        .env("VALKEY_HOST", "127.0.0.1")
        .env("VALKEY_PORT", cfg.ports.valkey.to_string())
        .env("VALKEY_PASSWORD", &cfg.valkey_password)
        .env("BIND_ADDR", "127.0.0.1")
}
