//! GitHub REST client acting as a GitHub App installation.
//!
//! Auth: an RS256 App JWT (issued 60 s in the past to absorb clock drift, valid 9 minutes, under
//! GitHub's 10) buys an installation token, which is reused until five minutes before it
//! expires. Requests that fail with 5xx or time out are retried a bounded number of times with
//! backoff; every other failure becomes a [`GitHubError`] that says what the caller can do.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, USER_AGENT};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::api_path;
use crate::config::GitHubConfig;
use crate::gitignore::TreeEntry;
use crate::metrics::Metrics;

/// Attempts per request when GitHub answers 5xx or does not answer in time.
pub const MAX_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// A token this close to expiry is replaced.
const TOKEN_REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
const JSON_MEDIA_TYPE: &str = "application/vnd.github+json";
const RAW_MEDIA_TYPE: &str = "application/vnd.github.raw";

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error(
        "not found on GitHub: {0} (check owner, repo, ref and path; private repositories need the App installed)"
    )]
    NotFound(String),
    #[error("the repository is empty (no commits yet)")]
    EmptyRepository,
    #[error(
        "GitHub authentication failed: {0}; check GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID and GITHUB_APP_KEY_FILE"
    )]
    Unauthorized(String),
    #[error(
        "GitHub refused access: {0}; the App installation lacks permission for this repository"
    )]
    Forbidden(String),
    #[error("GitHub rate limit exceeded; retry after {retry_after_secs} s (at {retry_at})")]
    RateLimited {
        retry_after_secs: u64,
        retry_at: String,
    },
    #[error("GitHub is unavailable (HTTP {status}) after {MAX_ATTEMPTS} attempts; try again later")]
    Unavailable { status: u16 },
    #[error(
        "GitHub did not answer within {timeout_ms} ms, {MAX_ATTEMPTS} attempts; try again later"
    )]
    Timeout { timeout_ms: u128 },
    #[error("cannot reach GitHub at {api_url}: {reason}")]
    Unreachable { api_url: String, reason: String },
    #[error("GitHub answered HTTP {status}: {message}")]
    Unexpected { status: u16, message: String },
    #[error("unexpected answer from GitHub: {0}")]
    Decode(String),
    #[error("cannot read the GitHub App key {path}: {reason}")]
    Key { path: String, reason: String },
}

/// A recursive tree as GitHub returns it.
#[derive(Debug, Deserialize)]
pub struct Tree {
    pub sha: String,
    pub tree: Vec<TreeEntry>,
    #[serde(default)]
    pub truncated: bool,
}

/// What the contents endpoint says about a path.
#[derive(Debug)]
pub enum Contents {
    File {
        sha: String,
        size: u64,
        inline: Option<Vec<u8>>,
    },
    Directory,
    Other {
        kind: String,
    },
}

#[derive(Deserialize)]
struct ContentsBody {
    #[serde(rename = "type")]
    kind: String,
    sha: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct BlobBody {
    content: String,
    encoding: String,
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

struct InstallationToken {
    token: String,
    expires_at: DateTime<Utc>,
}

/// Result of the last exchange with GitHub, for `/health`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LastContact {
    Never,
    Ok,
    Failed,
}

pub struct GitHubClient {
    http: reqwest::Client,
    config: GitHubConfig,
    key: EncodingKey,
    token: Mutex<Option<InstallationToken>>,
    metrics: Arc<Metrics>,
    last_contact: std::sync::Mutex<LastContact>,
}

/// Installs rustls' ring provider once per process (reqwest is built without a default one).
pub fn install_crypto_providers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

impl GitHubClient {
    /// Reads the App key and builds the HTTP client; nothing is sent yet.
    pub fn new(config: GitHubConfig, metrics: Arc<Metrics>) -> Result<Self, GitHubError> {
        install_crypto_providers();
        let key_error = |reason: String| GitHubError::Key {
            path: config.key_file.display().to_string(),
            reason,
        };
        let pem = std::fs::read(&config.key_file).map_err(|e| key_error(e.to_string()))?;
        let key = EncodingKey::from_rsa_pem(&pem)
            .map_err(|e| key_error(format!("not an RSA private key PEM ({e})")))?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| GitHubError::Unreachable {
                api_url: config.api_url.clone(),
                reason: e.to_string(),
            })?;
        Ok(GitHubClient {
            http,
            config,
            key,
            token: Mutex::new(None),
            metrics,
            last_contact: std::sync::Mutex::new(LastContact::Never),
        })
    }

    pub fn last_contact(&self) -> LastContact {
        *self.last_contact.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn api_url(&self) -> &str {
        &self.config.api_url
    }

    pub fn max_file_bytes(&self) -> u64 {
        self.config.max_file_bytes
    }

    /// `GET /repos/{owner}/{repo}/git/trees/{ref}?recursive=1`.
    pub async fn tree(&self, owner: &str, repo: &str, git_ref: &str) -> Result<Tree, GitHubError> {
        let path = api_path::tree(owner, repo, git_ref);
        let response = self
            .get(
                &path,
                JSON_MEDIA_TYPE,
                &format!("{owner}/{repo} at {git_ref}"),
            )
            .await?;
        response
            .json()
            .await
            .map_err(|e| GitHubError::Decode(format!("tree of {owner}/{repo}: {e}")))
    }

    /// `GET /repos/{owner}/{repo}/git/blobs/{sha}`, decoded.
    pub async fn blob(&self, owner: &str, repo: &str, sha: &str) -> Result<Vec<u8>, GitHubError> {
        let path = api_path::blob(owner, repo, sha);
        let response = self
            .get(&path, JSON_MEDIA_TYPE, &format!("blob {sha}"))
            .await?;
        let body: BlobBody = response
            .json()
            .await
            .map_err(|e| GitHubError::Decode(format!("blob {sha}: {e}")))?;
        if body.encoding != "base64" {
            return Err(GitHubError::Decode(format!(
                "blob {sha} has encoding {}",
                body.encoding
            )));
        }
        decode_base64(&body.content)
    }

    /// `GET /repos/{owner}/{repo}/contents/{path}[?ref=]`.
    pub async fn contents(
        &self,
        owner: &str,
        repo: &str,
        path: &str,
        git_ref: Option<&str>,
    ) -> Result<Contents, GitHubError> {
        let response = self
            .get(
                &api_path::contents(owner, repo, path, git_ref),
                JSON_MEDIA_TYPE,
                &format!("{path} in {owner}/{repo}"),
            )
            .await?;
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| GitHubError::Decode(format!("contents of {path}: {e}")))?;
        if body.is_array() {
            return Ok(Contents::Directory);
        }
        let body: ContentsBody = serde_json::from_value(body)
            .map_err(|e| GitHubError::Decode(format!("contents of {path}: {e}")))?;
        if body.kind != "file" {
            return Ok(Contents::Other { kind: body.kind });
        }
        let inline = match (body.encoding.as_deref(), body.content) {
            (Some("base64"), Some(content)) => Some(decode_base64(&content)?),
            _ => None,
        };
        Ok(Contents::File {
            sha: body.sha,
            size: body.size,
            inline,
        })
    }

    /// The file's bytes through the raw media type, refusing more than `limit` bytes.
    pub async fn raw_contents(
        &self,
        owner: &str,
        repo: &str,
        path: &str,
        git_ref: Option<&str>,
        limit: u64,
    ) -> Result<Vec<u8>, GitHubError> {
        let mut response = self
            .get(
                &api_path::contents(owner, repo, path, git_ref),
                RAW_MEDIA_TYPE,
                &format!("{path} in {owner}/{repo}"),
            )
            .await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(GitHubError::Decode(format!(
                    "{path} grew past {limit} bytes while reading"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn get(
        &self,
        path: &str,
        accept: &str,
        what: &str,
    ) -> Result<reqwest::Response, GitHubError> {
        let token = self.installation_token().await?;
        let url = format!("{}{path}", self.config.api_url);
        let result = self
            .send(|| {
                self.request(Method::GET, &url)
                    .header(ACCEPT, accept)
                    .header(AUTHORIZATION, format!("Bearer {token}"))
            })
            .await;
        match result {
            Err(GitHubError::Unauthorized(message)) => {
                // The token was revoked or expired early: the next call fetches a fresh one.
                *self.token.lock().await = None;
                Err(GitHubError::Unauthorized(message))
            }
            Err(GitHubError::NotFound(_)) => Err(GitHubError::NotFound(what.to_owned())),
            other => other,
        }
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .header(
                USER_AGENT,
                concat!("amtp-github-mcp/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-github-api-version", "2022-11-28")
    }

    /// The cached installation token, or a new one from the App JWT.
    async fn installation_token(&self) -> Result<String, GitHubError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.expires_at - Utc::now() > TOKEN_REFRESH_MARGIN
        {
            return Ok(token.token.clone());
        }
        let jwt = self.app_jwt()?;
        let url = format!(
            "{}/app/installations/{}/access_tokens",
            self.config.api_url, self.config.installation_id
        );
        let response = self
            .send(|| {
                self.request(Method::POST, &url)
                    .header(ACCEPT, JSON_MEDIA_TYPE)
                    .header(AUTHORIZATION, format!("Bearer {jwt}"))
            })
            .await
            .map_err(|error| match error {
                GitHubError::NotFound(_) => GitHubError::Unauthorized(format!(
                    "installation {} of App {} does not exist",
                    self.config.installation_id, self.config.app_id
                )),
                other => other,
            })?;
        let body: TokenBody = response
            .json()
            .await
            .map_err(|e| GitHubError::Decode(format!("installation token: {e}")))?;
        let token = body.token.clone();
        *cached = Some(InstallationToken {
            token: body.token,
            expires_at: body.expires_at,
        });
        Ok(token)
    }

    fn app_jwt(&self) -> Result<String, GitHubError> {
        let now = Utc::now().timestamp();
        let claims =
            serde_json::json!({ "iat": now - 60, "exp": now + 540, "iss": self.config.app_id });
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key).map_err(|e| {
            GitHubError::Key {
                path: self.config.key_file.display().to_string(),
                reason: format!("cannot sign the App JWT ({e})"),
            }
        })
    }

    /// Sends with bounded retries on 5xx and timeouts; maps every other failure.
    async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<reqwest::Response, GitHubError> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let (client, request) = build().build_split();
            let span = request
                .as_ref()
                .map(|request| github_span(request, attempt))
                .unwrap_or_else(|_| tracing::Span::none());
            let sent = match request {
                Ok(request) => client.execute(request).instrument(span.clone()).await,
                Err(error) => Err(error),
            };
            let retryable = match sent {
                Ok(response) if response.status().is_success() => {
                    span.record("http.response.status_code", response.status().as_u16());
                    self.note(&response.status().as_u16().to_string(), LastContact::Ok);
                    return Ok(response);
                }
                Ok(response) => {
                    let status = response.status();
                    span.record("http.response.status_code", status.as_u16());
                    span.record("otel.status_code", "ERROR");
                    self.note(&status.as_u16().to_string(), LastContact::Failed);
                    if !status.is_server_error() {
                        return Err(classify(
                            status,
                            response.headers().clone(),
                            response.text().await.ok(),
                        ));
                    }
                    GitHubError::Unavailable {
                        status: status.as_u16(),
                    }
                }
                Err(error) if error.is_timeout() => {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", "timeout");
                    self.note("timeout", LastContact::Failed);
                    GitHubError::Timeout {
                        timeout_ms: self.config.timeout.as_millis(),
                    }
                }
                Err(error) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", "transport");
                    self.note("error", LastContact::Failed);
                    if !error.is_connect() {
                        return Err(self.transport_error(error));
                    }
                    self.transport_error(error)
                }
            };
            if attempt == MAX_ATTEMPTS {
                return Err(retryable);
            }
            tracing::warn!(attempt, error = %retryable, "GitHub request failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        unreachable!("the loop returns on its last attempt")
    }

    fn note(&self, status: &str, contact: LastContact) {
        self.metrics.github_request(status);
        *self.last_contact.lock().unwrap_or_else(|p| p.into_inner()) = contact;
    }

    fn transport_error(&self, error: reqwest::Error) -> GitHubError {
        // reqwest errors name the URL, which holds no credentials here (they travel in headers).
        GitHubError::Unreachable {
            api_url: self.config.api_url.clone(),
            reason: error.to_string(),
        }
    }
}

/// The client span of one request to GitHub (each retry its own): method, path (the host is
/// the API URL's; no query string, which could carry a credential elsewhere) and status.
fn github_span(request: &reqwest::Request, attempt: u32) -> tracing::Span {
    let method = request.method().as_str();
    tracing::info_span!(
        "github",
        otel.name = format!("GitHub {method}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        server.address = request.url().host_str().unwrap_or(""),
        url.path = request.url().path(),
        http.request.resend_count = attempt - 1,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// GitHub wraps base64 at 60 columns; the newlines are not part of the encoding.
fn decode_base64(content: &str) -> Result<Vec<u8>, GitHubError> {
    let compact: String = content
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| GitHubError::Decode(format!("invalid base64 content: {e}")))
}

/// Turns a non-success, non-5xx answer into what it means for the caller.
fn classify(status: StatusCode, headers: HeaderMap, body: Option<String>) -> GitHubError {
    let message = body
        .as_deref()
        .and_then(|b| serde_json::from_str::<ErrorBody>(b).ok())
        .map(|b| b.message)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    if matches!(status.as_u16(), 403 | 429) && (retry_after.is_some() || exhausted) {
        let now = Utc::now().timestamp();
        let retry_after_secs = retry_after.unwrap_or_else(|| {
            let reset = header("x-ratelimit-reset")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(now + 60);
            u64::try_from(reset - now).unwrap_or(0).max(1)
        });
        let retry_at = DateTime::from_timestamp(now + retry_after_secs as i64, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        return GitHubError::RateLimited {
            retry_after_secs,
            retry_at,
        };
    }
    match status.as_u16() {
        401 => GitHubError::Unauthorized(message),
        403 => GitHubError::Forbidden(message),
        404 => GitHubError::NotFound(message),
        409 => GitHubError::EmptyRepository,
        _ => GitHubError::Unexpected {
            status: status.as_u16(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn rate_limits_are_told_apart_from_permission_errors() {
        let limited = classify(
            StatusCode::TOO_MANY_REQUESTS,
            headers(&[("retry-after", "30")]),
            None,
        );
        assert!(matches!(
            limited,
            GitHubError::RateLimited {
                retry_after_secs: 30,
                ..
            }
        ));
        let reset = (Utc::now().timestamp() + 120).to_string();
        let primary = classify(
            StatusCode::FORBIDDEN,
            headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]),
            None,
        );
        assert!(
            matches!(
                primary,
                GitHubError::RateLimited {
                    retry_after_secs: 119..=120,
                    ..
                }
            ),
            "{primary}"
        );
        let forbidden = classify(
            StatusCode::FORBIDDEN,
            headers(&[("x-ratelimit-remaining", "4999")]),
            Some(r#"{"message":"Resource not accessible by integration"}"#.to_owned()),
        );
        assert!(matches!(forbidden, GitHubError::Forbidden(ref m) if m.contains("integration")));
    }

    #[test]
    fn wrapped_base64_decodes() {
        assert_eq!(decode_base64("aGVs\nbG8K\n").expect("decode"), b"hello\n");
    }
}
