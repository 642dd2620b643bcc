//! `github-mcp`: read the environment, serve until SIGTERM or SIGINT, exit 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use amtp_github_mcp::config::Config;
use amtp_github_mcp::{AppState, app, telemetry};

/// Longest wait for open requests after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() {
    if let Err(error) = run() {
        eprintln!("github-mcp: {error:#}");
        std::process::exit(1);
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
    let state = Arc::new(AppState::new(&config)?);
    let addr = SocketAddr::new(config.bind_addr, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}; set MCP_HTTP_PORT or BIND_ADDR"))?;
    tracing::info!(%addr, github = %config.github.api_url, valkey_host = %config.valkey.host, valkey_port = config.valkey.port, "github-mcp listening");
    let shutdown = CancellationToken::new();
    let server = axum::serve(listener, app(state, shutdown.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });
    shutdown_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(joined) => joined
            .context("join the server task")?
            .context("serve HTTP")?,
        Err(_) => {
            tracing::warn!("open requests did not finish within {SHUTDOWN_GRACE:?}; exiting anyway")
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
