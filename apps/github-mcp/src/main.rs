//! `github-mcp`: read the environment, serve until SIGTERM or SIGINT, exit 0. `--version`
//! prints the version, `--health` asks the running server's `/health` (the image's
//! `HEALTHCHECK`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use amtp_github_mcp::config::Config;
use amtp_github_mcp::{AppState, app, telemetry};

/// Longest wait for open requests after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let listen = || {
        Config::from_env(|name| std::env::var(name).ok())
            .map(|config| SocketAddr::new(config.bind_addr, config.port))
            .map_err(|err| err.to_string())
    };
    if let Some(code) =
        amtp_graceful::flags::answer("github-mcp", &amtp_github_mcp::version(), listen)
    {
        return code;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("github-mcp: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    amtp_github_mcp::github::install_crypto_providers();
    let config = Config::from_env(|name| std::env::var(name).ok())?;
    // Before the runtime: the OTLP exporters build a blocking HTTP client.
    let telemetry = telemetry::init(&config.telemetry);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let served = runtime.block_on(serve(config));
    runtime.shutdown_timeout(Duration::from_secs(1));
    telemetry.shutdown();
    served
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let signal = amtp_graceful::shutdown_signal().context("install the SIGTERM/SIGINT handlers")?;
    let state = Arc::new(AppState::new(&config)?);
    let addr = SocketAddr::new(config.bind_addr, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}; set MCP_HTTP_PORT or BIND_ADDR"))?;
    tracing::info!(%addr, github = %config.github.api_url, valkey_host = %config.valkey.host, valkey_port = config.valkey.port, version = amtp_github_mcp::version(), "github-mcp listening");
    // Cancelling the token ends open MCP streams, which would otherwise hold the drain open.
    let streams = CancellationToken::new();
    let router = app(state, streams.clone());
    let shutdown = async move {
        signal.await;
        streams.cancel();
    };
    amtp_graceful::serve(listener, router, shutdown, SHUTDOWN_GRACE)
        .await
        .context("serve HTTP")
}
