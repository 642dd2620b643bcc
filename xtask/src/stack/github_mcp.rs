//! The GitHub MCP server (`apps/github-mcp`): `repo.tree` and `repo.read_file` over a GitHub
//! App, the real one or the workspace's stand-in.

use nix::sys::signal::Signal;

use super::{Daemon, Kind, Program, RunAs, Unit, github_standin};
use crate::binaries::Installed;
use crate::config::{GithubApp, PortVar, StackConfig};
use crate::process::Launch;

pub(crate) const PORT: PortVar = PortVar {
    var: "MCP_HTTP_PORT",
    default: 8090,
};

pub(crate) const UNIT: Unit = Unit {
    name: "github-mcp",
    program: Program::Workspace {
        package: "amtp-github-mcp",
        binary: "github-mcp",
    },
    depends_on: &["valkey", "migrations", "github-standin"],
    enabled: super::always,
    kind: Kind::Daemon(Daemon {
        port: PORT,
        // The apps' graceful shutdown (axum's `with_graceful_shutdown`).
        stop_signal: Signal::SIGTERM,
        run_as: RunAs::Invoker,
        drift: super::no_drift,
        prepare,
        probe,
        on_ready: super::nothing,
    }),
};

fn prepare(cfg: &StackConfig, installed: &Installed) -> anyhow::Result<Launch> {
    let launch = super::with_valkey(Launch::new(&installed.path), cfg)
        .env("MCP_HTTP_PORT", cfg.port(PORT).to_string());
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
            .env("GITHUB_APP_ID", github_standin::APP_ID)
            .env(
                "GITHUB_APP_INSTALLATION_ID",
                github_standin::INSTALLATION_ID,
            )
            .env(
                "GITHUB_APP_KEY_FILE",
                github_standin::key_file(cfg).display().to_string(),
            )
            .env(
                "GITHUB_API_URL",
                format!("http://127.0.0.1:{}", cfg.port(github_standin::PORT)),
            ),
    })
}

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.port(PORT), "/health").map(drop)
}
