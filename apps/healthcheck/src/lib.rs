//! The Valkey write-probe health service.
//!
//! # Theory of operation
//!
//! `GET /health` runs the seed's three-step probe ([`probe`]): `PING`, an unconditional
//! `SET _amtp_health_ping 1 EX 1`, and a `GET` that must return `"1"`, all inside one 500 ms
//! window that also covers connecting. The write step is the point: a Valkey at `maxmemory` with
//! `noeviction` still answers `PING` but rejects every write with `OOM`.
//!
//! - 200 `{"status":"ok","valkey":"up","latency_ms":<n>}`
//! - 503 `{"status":"degraded","valkey":"down","error":"…","probe":"<step>","latency_ms":<n>}`
//!   where `probe` is the step that failed or was in progress when the window closed.
//!
//! The seed fixes those bodies field by field, so the build's [`version`] travels beside them,
//! in the `amtp-version` header of both answers.
//!
//! Probes run only on request; there is no background poller. The service never exits because
//! Valkey is down: a broken connection is dropped and the next probe dials again.
//! `GET /metrics` serves Prometheus counters, a latency histogram and a Valkey-up gauge. Logs are
//! one JSON object per line on stderr: start, shutdown, and each change of Valkey's state (never
//! one per healthy probe, never the password).

pub mod config;
pub mod metrics;
pub mod probe;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::time::Instant;

pub use config::{Config, ConfigError};
use metrics::ProbeMetrics;
use probe::{ProbeFailure, Prober};

/// How long shutdown waits for open connections after the signal before giving up on them.
/// In-flight probes end within their 500 ms window; this only cuts off idle or stalled clients.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The header of `/health` that carries [`version`]: the body's fields are the seed's contract.
pub const VERSION_HEADER: &str = "amtp-version";

/// This build's version: the package's, `+<commit>` when it was compiled with `AMTP_GIT_SHA`
/// set (the image's `GIT_SHA` build argument).
pub fn version() -> String {
    amtp_graceful::version!()
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    prober: Prober,
    metrics: ProbeMetrics,
    valkey_state: ValkeyState,
    version: HeaderValue,
}

impl AppState {
    /// Builds the state for `config`; Valkey is contacted only by the first probe.
    pub fn new(config: &Config) -> Result<Self, redis::RedisError> {
        Ok(AppState {
            inner: Arc::new(Shared {
                prober: Prober::new(config)?,
                metrics: ProbeMetrics::new(),
                valkey_state: ValkeyState::default(),
                // A commit given at build time is hex; anything unprintable falls back to the
                // package version rather than failing every probe.
                version: HeaderValue::try_from(version())
                    .unwrap_or(HeaderValue::from_static(env!("CARGO_PKG_VERSION"))),
            }),
        })
    }
}

/// The service's routes: `GET /health` and `GET /metrics`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

#[derive(Serialize)]
struct Healthy {
    status: &'static str,
    valkey: &'static str,
    latency_ms: f64,
}

#[derive(Serialize)]
struct Degraded {
    status: &'static str,
    valkey: &'static str,
    error: String,
    probe: &'static str,
    latency_ms: f64,
}

async fn health(State(state): State<AppState>) -> Response {
    let shared = &state.inner;
    let started = Instant::now();
    let result = shared.prober.probe().await;
    let elapsed = started.elapsed();
    shared
        .metrics
        .record(result.as_ref().map(|_| ()).map_err(|f| f.step), elapsed);
    shared.valkey_state.observe(&result);
    let latency_ms = round_to_hundredths(elapsed.as_secs_f64() * 1000.0);
    let headers = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            HeaderName::from_static(VERSION_HEADER),
            shared.version.clone(),
        ),
    ];
    match result {
        Ok(()) => {
            let body = Healthy {
                status: "ok",
                valkey: "up",
                latency_ms,
            };
            (StatusCode::OK, headers, Json(body)).into_response()
        }
        Err(failure) => {
            let body = Degraded {
                status: "degraded",
                valkey: "down",
                error: failure.error.to_string(),
                probe: failure.step.as_str(),
                latency_ms,
            };
            (StatusCode::SERVICE_UNAVAILABLE, headers, Json(body)).into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.inner.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed").into_response()
        }
    }
}

fn round_to_hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Valkey's last observed state, so that only changes are logged; 0 until the first probe.
#[derive(Default)]
struct ValkeyState(AtomicU8);

impl ValkeyState {
    const UP: u8 = 1;
    const DOWN: u8 = 2;

    fn observe(&self, result: &Result<(), ProbeFailure>) {
        let now = if result.is_ok() { Self::UP } else { Self::DOWN };
        let before = self.0.swap(now, Ordering::Relaxed);
        if before == now {
            return;
        }
        let previous = match before {
            Self::UP => "up",
            Self::DOWN => "down",
            _ => "unknown",
        };
        match result {
            Ok(()) => tracing::info!(previous, "valkey up"),
            Err(failure) => tracing::warn!(
                previous,
                probe = failure.step.as_str(),
                error = %failure.error,
                "valkey down"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_rounded_to_two_decimals() {
        assert_eq!(round_to_hundredths(0.123_456), 0.12);
        assert_eq!(round_to_hundredths(500.999), 501.0);
        assert_eq!(round_to_hundredths(1.005_1), 1.01);
    }

    #[test]
    fn bodies_keep_the_contract_field_order() {
        let healthy = Healthy {
            status: "ok",
            valkey: "up",
            latency_ms: 0.42,
        };
        let text = serde_json_text(&healthy);
        assert_eq!(text, r#"{"status":"ok","valkey":"up","latency_ms":0.42}"#);
        let degraded = Degraded {
            status: "degraded",
            valkey: "down",
            error: "probe read mismatch".to_owned(),
            probe: "get",
            latency_ms: 3.0,
        };
        assert_eq!(
            serde_json_text(&degraded),
            r#"{"status":"degraded","valkey":"down","error":"probe read mismatch","probe":"get","latency_ms":3.0}"#
        );
    }

    fn serde_json_text(body: &impl Serialize) -> String {
        serde_json::to_string(body).expect("serialize body")
    }
}
