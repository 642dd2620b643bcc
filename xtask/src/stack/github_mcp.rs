//! The GitHub MCP server (`apps/github-mcp`): `repo.tree` and `repo.read_file` over a GitHub
//! App, the real one or the workspace's stand-in.

use super::app_metrics::AppMetrics;
use super::{Daemon, Kind, Program, Unit, github_standin, otel_collector, valkey};
use crate::config::{GithubApp, PortVar, StackConfig};
use crate::os::process::Launch;
use crate::stack::compose::{self, Condition, Image, Secret, Service};
use crate::stack::contract::Contract;
use crate::stack::programs::Installed;

pub(crate) const PORT: PortVar = PortVar {
    var: "MCP_HTTP_PORT",
    default: 8090,
};

/// The name its traces and metrics carry (`OTEL_SERVICE_NAME`, the seed's).
pub(crate) const SERVICE_NAME: &str = "amtp-github-mcp";

/// How often, in milliseconds, the app of this stack exports its counters over OTLP.
pub(crate) const METRIC_EXPORT_INTERVAL_MS: u64 = 5000;

pub(crate) const UNIT: Unit = Unit {
    name: "github-mcp",
    program: Program::Workspace {
        package: "amtp-github-mcp",
        binary: "github-mcp",
    },
    depends_on: &["valkey", "otel-collector", "migrations", "github-standin"],
    client_vars: |cfg, _| {
        let url = format!("http://127.0.0.1:{}/mcp", cfg.port(PORT));
        vec![("MCP_URL", url)]
    },
    compose: Some(compose),
    kind: Kind::Daemon(Daemon {
        port: PORT,
        launch,
        probe,
        metrics: Some(AppMetrics {
            path: "/metrics",
            requests: "mcp_tool_calls",
            requests_are: "tool calls",
            otlp_service: Some(SERVICE_NAME),
        }),
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// Built from its Dockerfile, with the real GitHub App (its key as a Compose secret, mounted
/// at `/run/secrets/github_app_key`), Valkey's service and the observability stack's
/// collector.
fn compose(_: &Contract) -> anyhow::Result<Service> {
    let mut environment = compose::env([
        ("GITHUB_APP_ID", "${GITHUB_APP_ID}"),
        (
            "GITHUB_APP_INSTALLATION_ID",
            "${GITHUB_APP_INSTALLATION_ID}",
        ),
        ("MCP_HTTP_PORT", "8090"),
    ]);
    environment.extend(valkey::compose_client_env());
    environment.extend(compose::env([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318"),
        ("OTEL_SERVICE_NAME", SERVICE_NAME),
    ]));
    Ok(Service {
        environment,
        secrets: vec![Secret {
            name: "github_app_key",
            file: "secrets/github_app_key.pem",
        }],
        ports: vec!["${MCP_HTTP_PORT:-8090}:8090"],
        depends_on: vec![("valkey", Condition::Started)],
        ..Service::new("github-mcp", Image::Build("apps/github-mcp"))
    })
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    // The stack's collector unless the user names their own (or a vendor's) endpoint.
    let otlp_endpoint = cfg
        .otlp_endpoint
        .clone()
        .unwrap_or_else(|| otel_collector::endpoint(cfg));
    let launch = super::with_valkey(Launch::new(&installed.path), cfg)
        .env("MCP_HTTP_PORT", cfg.port(PORT).to_string())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint)
        .env("OTEL_SERVICE_NAME", SERVICE_NAME)
        // A span batch leaves after 500 ms rather than the SDK's 5 s: on a dev machine a trace
        // is in `cargo xtask traces` by the time one looks.
        .env("OTEL_BSP_SCHEDULE_DELAY", "500")
        // Counters every 5 s rather than the app's 30: `cargo xtask metrics` and the
        // collector's view keep up with what one just did.
        .env(
            "OTEL_METRIC_EXPORT_INTERVAL",
            METRIC_EXPORT_INTERVAL_MS.to_string(),
        );
    match &cfg.github {
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
    }
}

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.port(PORT), "/health").map(drop)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::tests::installed;

    fn env_of(launch: &Launch, key: &str) -> Option<String> {
        launch
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn without_an_app_the_server_talks_to_the_stand_in() {
        let cfg = crate::config::tests::config_in(Path::new("/s"));
        let launch = launch(&cfg, &installed("/t/github-mcp"), &Contract::default());
        let standin = format!("http://127.0.0.1:{}", cfg.port(github_standin::PORT));
        assert_eq!(env_of(&launch, "GITHUB_API_URL"), Some(standin));
        assert_eq!(env_of(&launch, "GITHUB_APP_ID").as_deref(), Some("1"));
        assert_eq!(
            env_of(&launch, "GITHUB_APP_KEY_FILE").as_deref(),
            Some("/s/github-standin/app_key.pem")
        );
        assert_eq!(
            env_of(&launch, "MCP_HTTP_PORT"),
            Some(cfg.port(PORT).to_string())
        );
        assert!(launch.args.is_empty());
        let collector = format!("http://127.0.0.1:{}", cfg.port(otel_collector::PORT));
        assert_eq!(
            env_of(&launch, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            Some(collector)
        );
        assert_eq!(
            env_of(&launch, "OTEL_SERVICE_NAME").as_deref(),
            Some("amtp-github-mcp")
        );
    }

    #[test]
    fn an_endpoint_of_the_users_wins_over_the_stacks_collector() {
        let mut cfg = crate::config::tests::config_in(Path::new("/s"));
        cfg.otlp_endpoint = Some("https://otlp.vendor.example".into());
        let launch = launch(&cfg, &installed("/t/github-mcp"), &Contract::default());
        assert_eq!(
            env_of(&launch, "OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
            Some("https://otlp.vendor.example")
        );
    }

    #[test]
    fn with_an_app_the_server_talks_to_github() {
        let mut cfg = crate::config::tests::config_in(Path::new("/s"));
        cfg.github = GithubApp::Real {
            app_id: "42".into(),
            installation_id: "7".into(),
            key_file: "/keys/app.pem".into(),
            api_url: "https://api.github.com".into(),
        };
        let launch = launch(&cfg, &installed("/t/github-mcp"), &Contract::default());
        assert_eq!(env_of(&launch, "GITHUB_APP_ID").as_deref(), Some("42"));
        assert_eq!(
            env_of(&launch, "GITHUB_APP_INSTALLATION_ID").as_deref(),
            Some("7")
        );
        assert_eq!(
            env_of(&launch, "GITHUB_APP_KEY_FILE").as_deref(),
            Some("/keys/app.pem")
        );
        assert_eq!(
            env_of(&launch, "GITHUB_API_URL").as_deref(),
            Some("https://api.github.com")
        );
    }
}
