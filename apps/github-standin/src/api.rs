//! The GitHub REST endpoints the MCP server uses, with GitHub's bodies, headers and status codes.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::SharedState;
use crate::control::FaultKind;
use crate::fixture::{PathTarget, Repository, TreeItem};

/// GitHub's contents API returns file content inline only up to this size.
pub const CONTENTS_INLINE_LIMIT: usize = 1024 * 1024;
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
const RAW_CONTENT_TYPE: &str = "application/vnd.github.raw; charset=utf-8";
const DOCS: &str = "https://docs.github.com/rest";

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route(
            "/app/installations/{installation_id}/access_tokens",
            post(create_installation_token),
        )
        .route("/repos/{owner}/{repo}", get(get_repository))
        .route("/repos/{owner}/{repo}/git/trees/{*tree_ref}", get(get_tree))
        .route("/repos/{owner}/{repo}/git/blobs/{sha}", get(get_blob))
        .route("/repos/{owner}/{repo}/contents", get(get_root_contents))
        .route("/repos/{owner}/{repo}/contents/{*path}", get(get_contents))
        .fallback(|| async { github_error(StatusCode::NOT_FOUND, "Not Found") })
}

/// GitHub's JSON error body: `{"message", "documentation_url", "status"}`.
pub fn github_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({ "message": message, "documentation_url": DOCS, "status": status.as_u16().to_string() }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, JSON_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// The message GitHub sends with a status when a fault asks for it.
fn status_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "Bad credentials",
        403 => "Resource not accessible by integration",
        404 => "Not Found",
        409 => "Git Repository is empty.",
        422 => "Validation Failed",
        500 => "Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Marks a trees request that a fault truncates.
#[derive(Clone, Copy)]
struct TruncateTree(usize);

/// Records the call, applies an injected fault and adds GitHub's standard headers.
pub async fn github_layer(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    state
        .control
        .record(request.method().as_str(), &path_and_query);
    let rate = state.rate_limit.tick(Utc::now());
    let mut rate_limited = false;
    let mut response = match state.control.take_fault(request.uri().path()) {
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            github_error(status, status_message(status))
        }
        Some(FaultKind::RateLimited {
            status,
            retry_after_secs,
        }) => {
            rate_limited = true;
            rate_limited_response(status, retry_after_secs, state.installation_id)
        }
        Some(FaultKind::Delay { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(request).await
        }
        Some(FaultKind::TruncatedTree { keep }) => {
            request.extensions_mut().insert(TruncateTree(keep));
            next.run(request).await
        }
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    let request_id = format!(
        "{:04X}:{:06X}:{:08X}",
        std::process::id() & 0xFFFF,
        rate.used,
        rate.reset
    );
    insert(headers, "x-github-request-id", &request_id);
    insert(headers, "x-github-media-type", "github.v3; format=json");
    insert(headers, "x-ratelimit-limit", &rate.limit.to_string());
    if !rate_limited {
        insert(
            headers,
            "x-ratelimit-remaining",
            &rate.remaining().to_string(),
        );
        insert(headers, "x-ratelimit-reset", &rate.reset.to_string());
    }
    insert(headers, "x-ratelimit-used", &rate.used.to_string());
    insert(headers, "x-ratelimit-resource", "core");
    response
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn rate_limited_response(status: u16, retry_after_secs: u64, installation_id: u64) -> Response {
    let reset = Utc::now().timestamp() as u64 + retry_after_secs;
    let (status, message) = if status == 429 {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.".to_owned(),
        )
    } else {
        (
            StatusCode::FORBIDDEN,
            format!("API rate limit exceeded for installation ID {installation_id}."),
        )
    };
    let mut response = github_error(status, &message);
    let headers = response.headers_mut();
    insert(headers, "x-ratelimit-remaining", "0");
    insert(headers, "x-ratelimit-reset", &reset.to_string());
    if status == StatusCode::TOO_MANY_REQUESTS {
        insert(headers, RETRY_AFTER.as_str(), &retry_after_secs.to_string());
    }
    response
}

fn bearer_or_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| credential.trim())
}

async fn create_installation_token(
    State(state): State<SharedState>,
    Path(installation_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = Utc::now();
    let Some(jwt) = bearer_or_token(&headers) else {
        return github_error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    };
    if let Err(message) = state.verifier.verify(jwt, now) {
        return github_error(StatusCode::UNAUTHORIZED, &message);
    }
    if installation_id != state.installation_id.to_string() {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let (token, expires_at) = state.tokens.issue(now);
    json_response(
        StatusCode::CREATED,
        &json!({
            "token": token,
            "expires_at": expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "permissions": { "contents": "read", "metadata": "read" },
            "repository_selection": "all",
        }),
    )
}

/// The repository, after checking the installation token; or GitHub's error answer.
fn authorized_repo<'a>(
    state: &'a SharedState,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
) -> Result<&'a Repository, (StatusCode, &'static str)> {
    let Some(token) = bearer_or_token(headers) else {
        return Err((StatusCode::UNAUTHORIZED, "Requires authentication"));
    };
    if !state.tokens.is_valid(token, Utc::now()) {
        return Err((StatusCode::UNAUTHORIZED, "Bad credentials"));
    }
    crate::fixture::repository(&format!("{owner}/{repo}"))
        .ok_or((StatusCode::NOT_FOUND, "Not Found"))
}

/// The Git data API (trees, blobs) answers 409 for a repository without commits.
fn git_data_repo<'a>(
    state: &'a SharedState,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
) -> Result<&'a Repository, (StatusCode, &'static str)> {
    let repo = authorized_repo(state, headers, owner, repo)?;
    if repo.is_empty() {
        return Err((StatusCode::CONFLICT, "Git Repository is empty."));
    }
    Ok(repo)
}

fn wants_raw(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.contains("application/vnd.github.raw")
                || accept.contains("application/vnd.github.v3.raw")
        })
}

async fn get_repository(
    State(state): State<SharedState>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(repo) => repo,
        Err((status, message)) => return github_error(status, message),
    };
    let full_name = format!("{}/{}", repo.owner, repo.name);
    json_response(
        StatusCode::OK,
        &json!({
            "id": repo.id,
            "name": repo.name,
            "full_name": full_name,
            "private": true,
            "owner": { "login": repo.owner, "type": "Organization" },
            "html_url": format!("https://github.com/{full_name}"),
            "url": format!("{}/repos/{full_name}", state.base_url),
            "default_branch": repo.default_branch,
            "size": repo.blobs.values().map(|b| b.len()).sum::<usize>() / 1024,
        }),
    )
}

#[derive(Deserialize)]
struct TreeQuery {
    recursive: Option<String>,
}

async fn get_tree(
    State(state): State<SharedState>,
    Path((owner, name, tree_ref)): Path<(String, String, String)>,
    Query(query): Query<TreeQuery>,
    truncate: Option<axum::Extension<TruncateTree>>,
    headers: HeaderMap,
) -> Response {
    let repo = match git_data_repo(&state, &headers, &owner, &name) {
        Ok(repo) => repo,
        Err((status, message)) => return github_error(status, message),
    };
    let Some(tree_sha) = repo.resolve_tree(&tree_ref) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    // GitHub treats any value of `recursive` as true.
    let mut entries = repo.walk(tree_sha, query.recursive.is_some());
    let truncated = match truncate {
        Some(axum::Extension(TruncateTree(keep))) if keep < entries.len() => {
            entries.truncate(keep);
            true
        }
        _ => false,
    };
    let base = format!("{}/repos/{}/{}", state.base_url, repo.owner, repo.name);
    let tree: Vec<Value> = entries
        .iter()
        .map(|(path, item)| tree_entry(&base, path, item))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "sha": tree_sha, "url": format!("{base}/git/trees/{tree_sha}"), "tree": tree, "truncated": truncated }),
    )
}

fn tree_entry(base: &str, path: &str, item: &TreeItem) -> Value {
    match item.size {
        Some(size) => json!({
            "path": path, "mode": item.mode, "type": "blob", "sha": item.sha, "size": size,
            "url": format!("{base}/git/blobs/{}", item.sha),
        }),
        None => json!({
            "path": path, "mode": item.mode, "type": "tree", "sha": item.sha,
            "url": format!("{base}/git/trees/{}", item.sha),
        }),
    }
}

/// Base64 the way GitHub sends it: wrapped at 60 characters, each line ending in a newline.
fn wrapped_base64(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 60 + 1);
    for chunk in encoded.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn raw_response(bytes: &[u8]) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, RAW_CONTENT_TYPE)],
        Body::from(bytes.to_vec()),
    )
        .into_response()
}

async fn get_blob(
    State(state): State<SharedState>,
    Path((owner, name, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let repo = match git_data_repo(&state, &headers, &owner, &name) {
        Ok(repo) => repo,
        Err((status, message)) => return github_error(status, message),
    };
    let Some(bytes) = repo.blobs.get(&sha) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    if wants_raw(&headers) {
        return raw_response(bytes);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "sha": sha,
            "size": bytes.len(),
            "url": format!("{}/repos/{}/{}/git/blobs/{sha}", state.base_url, repo.owner, repo.name),
            "content": wrapped_base64(bytes),
            "encoding": "base64",
        }),
    )
}

#[derive(Deserialize)]
struct ContentsQuery {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

async fn get_root_contents(
    state: State<SharedState>,
    Path((owner, name)): Path<(String, String)>,
    query: Query<ContentsQuery>,
    headers: HeaderMap,
) -> Response {
    get_contents(state, Path((owner, name, String::new())), query, headers).await
}

async fn get_contents(
    State(state): State<SharedState>,
    Path((owner, name, path)): Path<(String, String, String)>,
    Query(query): Query<ContentsQuery>,
    headers: HeaderMap,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(repo) => repo,
        Err((status, message)) => return github_error(status, message),
    };
    if repo.is_empty() {
        return github_error(StatusCode::NOT_FOUND, "This repository is empty.");
    }
    let path = path.trim_matches('/');
    let Some(tree_sha) = repo.resolve_commit_tree(query.git_ref.as_deref()) else {
        return github_error(
            StatusCode::NOT_FOUND,
            &format!(
                "No commit found for the ref {}",
                query.git_ref.unwrap_or_default()
            ),
        );
    };
    let base = format!("{}/repos/{}/{}", state.base_url, repo.owner, repo.name);
    match repo.lookup(tree_sha, path) {
        None => github_error(StatusCode::NOT_FOUND, "Not Found"),
        Some(PathTarget::Tree { items, .. }) => {
            let listing: Vec<Value> = items
                .iter()
                .map(|item| {
                    let item_path = if path.is_empty() {
                        item.name.clone()
                    } else {
                        format!("{path}/{}", item.name)
                    };
                    json!({
                        "type": if item.is_tree() { "dir" } else { "file" },
                        "name": item.name, "path": item_path, "sha": item.sha,
                        "size": item.size.unwrap_or(0),
                        "url": format!("{base}/contents/{item_path}"),
                    })
                })
                .collect();
            json_response(StatusCode::OK, &Value::Array(listing))
        }
        Some(PathTarget::Blob { item }) => {
            let Some(bytes) = repo.blobs.get(&item.sha) else {
                return github_error(StatusCode::NOT_FOUND, "Not Found");
            };
            if wants_raw(&headers) {
                return raw_response(bytes);
            }
            let (content, encoding) = if bytes.len() > CONTENTS_INLINE_LIMIT {
                (String::new(), "none")
            } else {
                (wrapped_base64(bytes), "base64")
            };
            json_response(
                StatusCode::OK,
                &json!({
                    "type": "file", "encoding": encoding, "size": bytes.len(), "name": item.name,
                    "path": path, "content": content, "sha": item.sha,
                    "url": format!("{base}/contents/{path}"),
                    "git_url": format!("{base}/git/blobs/{}", item.sha),
                }),
            )
        }
    }
}
