//! `github-standin`: serve the GitHub stand-in until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use amtp_github_standin::{AppKey, StandInConfig, StandInState, app, fixture};

/// A local stand-in for the GitHub REST API (App auth, trees, contents, blobs).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: SocketAddr,
    /// The GitHub App id that JWTs must name in `iss`.
    #[arg(long)]
    app_id: u64,
    /// The installation id that tokens are issued for.
    #[arg(long)]
    installation_id: u64,
    /// The App's private key PEM; generated (RSA-2048, mode 0600) if the file does not exist.
    #[arg(long)]
    app_key: PathBuf,
}

/// Longest wait for open requests after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let shutdown =
        amtp_graceful::shutdown_signal().context("install the SIGTERM/SIGINT handlers")?;
    let key = AppKey::load_or_generate(&cli.app_key)
        .with_context(|| format!("load or create the app key at {}", cli.app_key.display()))?;
    let config = StandInConfig::new(cli.app_id, cli.installation_id, &key);
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("listen on {}; pick a free port with --listen", cli.listen))?;
    let addr = listener
        .local_addr()
        .context("read the listening address")?;
    let state = Arc::new(StandInState::new(&config, format!("http://{addr}")));
    // The port is bound already; the fixtures are built meanwhile, so the first tree call is fast too.
    std::thread::spawn(fixture::build_all);
    tracing::info!(%addr, app_id = cli.app_id, installation_id = cli.installation_id, "github stand-in listening");
    amtp_graceful::serve(listener, app(state), shutdown, SHUTDOWN_GRACE)
        .await
        .context("serve the github stand-in")?;
    Ok(())
}
