//! One shutdown shape for the workspace's HTTP services (healthcheck, github-mcp, the GitHub
//! stand-in), so a supervisor's SIGTERM means the same thing to each of them:
//!
//! 1. [`shutdown_signal`] completes on the first SIGTERM or SIGINT. It installs its handlers
//!    when called, so a service calls it before serving and a signal that arrives early is not
//!    lost.
//! 2. [`serve`] then stops accepting, lets in-flight requests finish, and returns once they
//!    have, or after the grace period, whichever comes first: a stalled client never keeps a
//!    service from exiting (the supervisor's own deadline is longer than any grace here).
//!
//! [`flags`] is the other thing the services share: the `--version` and `--health` flags their
//! binaries answer before serving (the deploy images' `HEALTHCHECK` runs `--health`).

pub mod flags;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// Completes on the first SIGTERM or SIGINT, logging which one arrived.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "signal received"),
        }
    })
}

/// Serves `router` on `listener` until `shutdown` completes, then drains open requests for at
/// most `grace`. Returns the server's own error, if it had one.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = signalled.send(());
    });
    let grace_expired = async {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(grace).await,
            // The server finished without a signal; let its own result win the race.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server.into_future() => result,
        () = grace_expired => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "requests still open after the grace period; closing them");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server whose one route answers after `delay`, and a request already inside it.
    async fn server_with_request_in_flight(
        delay: Duration,
        grace: Duration,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
        tokio::task::JoinHandle<String>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/slow",
            get(move || async move {
                tokio::time::sleep(delay).await;
                "done"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            grace,
        ));
        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer).await;
            answer
        });
        // Let the request reach the handler before the signal.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (stop, server, client)
    }

    #[tokio::test]
    async fn an_in_flight_request_finishes_after_the_signal() {
        let (stop, server, client) =
            server_with_request_in_flight(Duration::from_millis(300), Duration::from_secs(5)).await;
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(client.await.unwrap().ends_with("done"));
    }

    #[tokio::test]
    async fn a_stalled_request_is_cut_off_after_the_grace_period() {
        let (stop, server, _client) =
            server_with_request_in_flight(Duration::from_secs(60), Duration::from_millis(200))
                .await;
        let signalled = Instant::now();
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        let took = signalled.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "serve returned after {took:?}"
        );
    }
}
