//! A faithful local stand-in for the parts of GitHub's REST API that `github-mcp` uses.
//!
//! # Theory of operation
//!
//! The stand-in serves fixture repositories built in code ([`fixture`]) as real git objects, so
//! ids, trees and blobs behave as on GitHub. It authenticates like GitHub: the App JWT posted to
//! `POST /app/installations/{id}/access_tokens` is verified (RS256 against the App's public key,
//! `iss` = App id, `exp - iat` ≤ 10 minutes) and exchanged for an hour-long `ghs_` installation
//! token, which every repository endpoint then requires. Answers carry GitHub's headers
//! (`x-ratelimit-*`, `x-github-request-id`) and its JSON error bodies and status codes.
//!
//! Tests observe and steer it through [`StandInHandle`] in-process, or through `/_standin/...`
//! over HTTP: every GitHub request is recorded (to count calls), and injected [`Fault`]s make the
//! next N matching requests fail (status codes, rate limits), hang (delays) or come back
//! truncated.

mod api;
pub mod auth;
pub mod control;
pub mod fixture;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use auth::AppKey;
pub use control::{Fault, FaultKind, RecordedCall};

use auth::{JwtVerifier, TokenStore};
use control::Control;

/// Errors of the stand-in library.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("app key: {0}")]
    Key(String),
    #[error("{0}")]
    Io(String),
}

/// Who the stand-in believes the App is.
pub struct StandInConfig {
    pub app_id: u64,
    pub installation_id: u64,
    /// The App's public key: JWTs must be signed with its private half.
    pub app_public_key: rsa::RsaPublicKey,
}

impl StandInConfig {
    pub fn new(app_id: u64, installation_id: u64, app_key: &AppKey) -> Self {
        StandInConfig {
            app_id,
            installation_id,
            app_public_key: app_key.public_key(),
        }
    }
}

/// Everything the handlers share.
pub struct StandInState {
    pub(crate) base_url: String,
    pub(crate) installation_id: u64,
    pub(crate) verifier: JwtVerifier,
    pub(crate) tokens: TokenStore,
    pub(crate) control: Control,
    pub(crate) rate_limit: RateLimit,
}

pub(crate) type SharedState = Arc<StandInState>;

impl StandInState {
    /// State for a stand-in reachable at `base_url` (used in the URLs of its answers).
    pub fn new(config: &StandInConfig, base_url: String) -> Self {
        StandInState {
            base_url,
            installation_id: config.installation_id,
            verifier: JwtVerifier::new(config.app_id, &config.app_public_key),
            tokens: TokenStore::default(),
            control: Control::default(),
            rate_limit: RateLimit::default(),
        }
    }
}

/// The stand-in's router: GitHub's endpoints plus `/_standin/...`.
pub fn app(state: Arc<StandInState>) -> Router {
    let github = api::routes().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        api::github_layer,
    ));
    control::routes().merge(github).with_state(state)
}

/// GitHub's hourly primary rate limit for an installation, counted per request.
#[derive(Default)]
pub(crate) struct RateLimit {
    window: Mutex<(i64, u64)>,
}

/// The rate limit as of one request.
pub(crate) struct RateSnapshot {
    pub limit: u64,
    pub used: u64,
    pub reset: i64,
}

impl RateSnapshot {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

impl RateLimit {
    const LIMIT: u64 = 5000;
    const WINDOW_SECS: i64 = 3600;

    pub fn tick(&self, now: DateTime<Utc>) -> RateSnapshot {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = now.timestamp();
        if now >= window.0 + Self::WINDOW_SECS {
            *window = (now, 0);
        }
        window.1 += 1;
        RateSnapshot {
            limit: Self::LIMIT,
            used: window.1,
            reset: window.0 + Self::WINDOW_SECS,
        }
    }
}

/// Runs a stand-in.
pub struct StandIn;

impl StandIn {
    /// Starts a stand-in on a free loopback port, in this process.
    pub async fn spawn(config: StandInConfig) -> Result<StandInHandle, StandInError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| StandInError::Io(format!("bind 127.0.0.1:0: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StandInError::Io(e.to_string()))?;
        let state = Arc::new(StandInState::new(&config, format!("http://{addr}")));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = app(state.clone());
        tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "github stand-in stopped");
            }
        });
        Ok(StandInHandle {
            addr,
            state,
            _shutdown: shutdown,
        })
    }
}

/// A running in-process stand-in; it stops when dropped.
pub struct StandInHandle {
    addr: SocketAddr,
    state: Arc<StandInState>,
    _shutdown: oneshot::Sender<()>,
}

impl StandInHandle {
    /// Base URL, to use as `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Number of GitHub API requests received (the control API is not counted).
    pub fn calls(&self) -> usize {
        self.state.control.count_with_prefix("")
    }

    /// Number of requests whose path starts with `prefix` (e.g. `/repos/amtp/sample/git/blobs`).
    pub fn calls_to(&self, prefix: &str) -> usize {
        self.state.control.count_with_prefix(prefix)
    }

    /// Every request received, in order.
    pub fn call_log(&self) -> Vec<RecordedCall> {
        self.state.control.calls()
    }

    pub fn reset_calls(&self) {
        self.state.control.reset_calls();
    }

    pub fn inject(&self, fault: Fault) {
        self.state.control.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.state.control.clear_faults();
    }
}
