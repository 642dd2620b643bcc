//! `github-mcp`: a stateless Streamable-HTTP MCP server with two read-only tools over a GitHub
//! App installation, `repo.tree` and `repo.read_file`, cached in Valkey.
//!
//! # Theory of operation
//!
//! Every POST to `/mcp` is served on its own (no sessions): rmcp's `StreamableHttpService` in
//! stateless mode checks `Host` and `Origin` (DNS-rebinding protection), parses JSON-RPC and
//! calls [`tools::RepoServer`]. The tools validate their arguments ([`input`]), then ask
//! [`tree::TreeService`] or [`read_file`], which talk to GitHub through [`github::GitHubClient`]
//! (App JWT → installation token, bounded retries) and to Valkey through [`cache::Cache`]
//! (optional: any cache failure means "serve uncached"). `/health` and `/metrics` sit beside
//! `/mcp`.

mod api_path;
pub mod cache;
pub mod config;
#[cfg(test)]
mod generated;
pub mod github;
pub mod gitignore;
pub mod input;
pub mod metrics;
pub mod read_file;
pub mod telemetry;
pub mod tools;
pub mod tree;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::ErrorData;
use rmcp::model::{ClientJsonRpcMessage, JsonRpcError};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::config::Config;
use crate::github::{GitHubClient, GitHubError, LastContact};
use crate::metrics::Metrics;
use crate::tree::TreeService;

/// This build's version: the package's, `+<commit>` when it was compiled with `AMTP_GIT_SHA`
/// set (the image's `GIT_SHA` build argument). `/health` reports it.
pub fn version() -> String {
    amtp_graceful::version!()
}

/// What every request shares.
pub struct AppState {
    pub github: Arc<GitHubClient>,
    pub cache: Arc<Cache>,
    pub trees: TreeService,
    pub metrics: Arc<Metrics>,
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
}

impl AppState {
    /// Builds the clients; nothing is contacted yet (Valkey and GitHub are reached lazily).
    pub fn new(config: &Config) -> Result<Self, GitHubError> {
        let metrics = Arc::new(Metrics::new());
        let github = Arc::new(GitHubClient::new(config.github.clone(), metrics.clone())?);
        let cache = Arc::new(Cache::new(&config.valkey, metrics.clone()));
        Ok(AppState {
            trees: TreeService {
                github: github.clone(),
                cache: cache.clone(),
            },
            github,
            cache,
            metrics,
            allowed_origins: config.allowed_origins.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
        })
    }
}

/// `/mcp`, `/health` and `/metrics`. Cancelling `shutdown` ends open MCP streams.
pub fn app(state: Arc<AppState>, shutdown: CancellationToken) -> Router {
    let mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(state.allowed_hosts.clone())
        .with_allowed_origins(state.allowed_origins.clone())
        .enforce_origin_validation()
        .with_cancellation_token(shutdown);
    let tools_state = state.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(tools::RepoServer::new(tools_state.clone())),
        Arc::new(NeverSessionManager::default()),
        mcp_config,
    );
    let mcp = Router::new()
        .fallback_service(mcp)
        .layer(axum::middleware::from_fn(reject_malformed_json_rpc));
    Router::new()
        .nest("/mcp", mcp)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Largest JSON-RPC request body accepted (rmcp's own default).
const MAX_MCP_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Answers a POST whose body is not JSON with JSON-RPC's parse error (-32700), and one that is
/// JSON but no JSON-RPC message with invalid request (-32600); rmcp alone would answer those
/// with a plain-text HTTP error.
async fn reject_malformed_json_rpc(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_MCP_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let error = ErrorData::invalid_request(
                format!("request body over {MAX_MCP_BODY_BYTES} bytes"),
                None,
            );
            return json_rpc_error(StatusCode::PAYLOAD_TOO_LARGE, error);
        }
    };
    let error = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Err(e) => Some(ErrorData::parse_error(
            format!("request body is not JSON: {e}"),
            None,
        )),
        Ok(value) => serde_json::from_value::<ClientJsonRpcMessage>(value)
            .err()
            .map(|e| {
                ErrorData::invalid_request(
                    format!("not a JSON-RPC 2.0 request or notification: {e}"),
                    None,
                )
            }),
    };
    match error {
        Some(error) => json_rpc_error(StatusCode::BAD_REQUEST, error),
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

fn json_rpc_error(status: StatusCode, error: ErrorData) -> Response {
    (status, Json(JsonRpcError::new(None, error))).into_response()
}

/// 200 whenever the server runs: the cache is optional, so Valkey's state is reported, not
/// enforced. GitHub is not called (that would spend rate limit); its last answer is reported.
async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let valkey = if state.cache.is_up().await {
        "up"
    } else {
        "down"
    };
    let github = match state.github.last_contact() {
        LastContact::Never => "unknown",
        LastContact::Ok => "ok",
        LastContact::Failed => "failing",
    };
    (
        StatusCode::OK,
        Json(serde_json::json!({
            "status": "ok",
            "version": version(),
            "valkey": valkey,
            "github": github,
            "github_api_url": state.github.api_url(),
        })),
    )
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
