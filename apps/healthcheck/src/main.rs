//! `healthcheck`: serves `GET /health` (Valkey write probe) and `GET /metrics`.
//! Configuration comes from the environment; see the crate README. `--version` prints the
//! version, `--health` asks the running service's `/health` (the image's `HEALTHCHECK`).

use std::process::ExitCode;

use amtp_graceful::shutdown_signal;
use amtp_healthcheck::{AppState, Config, SHUTDOWN_GRACE, app};
use anyhow::Context;

/// Exit status for a configuration the service refuses to start with.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let listen = || {
        Config::from_env()
            .map(|config| config.listen_addr())
            .map_err(|err| err.to_string())
    };
    match amtp_graceful::flags::answer("healthcheck", &amtp_healthcheck::version(), listen) {
        Some(code) => code,
        None => serve(),
    }
}

// Two workers are plenty for a probe endpoint and keep the footprint small.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn serve() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "refusing to start");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal().context("install the SIGTERM/SIGINT handlers")?;
    let state = AppState::new(&config).context("prepare the Valkey client")?;
    let addr = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}; set PORT (and BIND_ADDR) to a free address"))?;
    tracing::info!(
        addr = %listener.local_addr().context("read the listening address")?,
        valkey = format!("{}:{}", config.valkey_host, config.valkey_port),
        version = amtp_healthcheck::version(),
        "listening"
    );
    amtp_graceful::serve(listener, app(state), shutdown, SHUTDOWN_GRACE)
        .await
        .context("serve HTTP")?;
    tracing::info!("stopped");
    Ok(())
}
