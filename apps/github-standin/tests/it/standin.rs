//! The stand-in answers like GitHub: App JWT checks, tokens, trees, contents, blobs, faults.

use std::sync::OnceLock;

use amtp_github_standin::{AppKey, Fault, FaultKind, StandIn, StandInConfig, StandInHandle};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const APP_ID: u64 = 4242;
const INSTALLATION_ID: u64 = 77;

fn app_key() -> &'static AppKey {
    static KEY: OnceLock<AppKey> = OnceLock::new();
    KEY.get_or_init(|| AppKey::generate().expect("generate app key"))
}

fn other_key() -> &'static AppKey {
    static KEY: OnceLock<AppKey> = OnceLock::new();
    KEY.get_or_init(|| AppKey::generate().expect("generate other key"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn jwt(key: &AppKey, claims: Value) -> String {
    let pem = key.private_pem().expect("private pem");
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &encoding).expect("sign jwt")
}

fn good_jwt() -> String {
    jwt(
        app_key(),
        json!({ "iat": now() - 60, "exp": now() + 540, "iss": APP_ID.to_string() }),
    )
}

async fn standin() -> StandInHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    StandIn::spawn(StandInConfig::new(APP_ID, INSTALLATION_ID, app_key()))
        .await
        .expect("spawn stand-in")
}

async fn request_token(standin: &StandInHandle, jwt: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{}/app/installations/{INSTALLATION_ID}/access_tokens",
            standin.url()
        ))
        .bearer_auth(jwt)
        .send()
        .await
        .expect("POST access_tokens")
}

async fn token(standin: &StandInHandle) -> String {
    let response = request_token(standin, &good_jwt()).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("token json");
    body["token"].as_str().expect("token field").to_owned()
}

async fn get(standin: &StandInHandle, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", standin.url()))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .expect("GET")
}

async fn assert_github_error(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = response.json().await.expect("error json");
    assert!(body["documentation_url"].is_string(), "{body}");
    body["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn a_valid_app_jwt_gets_an_hour_long_installation_token() {
    let standin = standin().await;
    let response = request_token(&standin, &good_jwt()).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert!(body["token"].as_str().expect("token").starts_with("ghs_"));
    assert_eq!(body["repository_selection"], "all");
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("expires_at"))
            .expect("RFC 3339");
    let lifetime = expires_at.timestamp() - now();
    assert!((3500..=3600).contains(&lifetime), "lifetime {lifetime}");
}

#[tokio::test]
async fn bad_app_jwts_are_refused_with_401() {
    let standin = standin().await;
    let t = now();
    let cases = [
        (
            "wrong key",
            jwt(
                other_key(),
                json!({ "iat": t - 60, "exp": t + 540, "iss": APP_ID }),
            ),
        ),
        (
            "expired",
            jwt(
                app_key(),
                json!({ "iat": t - 1200, "exp": t - 700, "iss": APP_ID }),
            ),
        ),
        (
            "lifetime over 10 min",
            jwt(
                app_key(),
                json!({ "iat": t - 60, "exp": t + 900, "iss": APP_ID }),
            ),
        ),
        (
            "wrong issuer",
            jwt(
                app_key(),
                json!({ "iat": t - 60, "exp": t + 540, "iss": APP_ID + 1 }),
            ),
        ),
        (
            "missing iat",
            jwt(app_key(), json!({ "exp": t + 540, "iss": APP_ID })),
        ),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (case, token) in cases {
        let response = request_token(&standin, &token).await;
        assert_eq!(response.status(), 401, "{case}");
        assert_github_error(response, 401).await;
    }
    let wrong_installation = reqwest::Client::new()
        .post(format!(
            "{}/app/installations/1/access_tokens",
            standin.url()
        ))
        .bearer_auth(good_jwt())
        .send()
        .await
        .expect("POST");
    assert_github_error(wrong_installation, 404).await;
}

#[tokio::test]
async fn repository_endpoints_require_an_installation_token() {
    let standin = standin().await;
    let missing = reqwest::get(format!("{}/repos/amtp/sample", standin.url()))
        .await
        .expect("GET");
    assert_github_error(missing, 401).await;
    let bad = get(&standin, "ghs_notissued", "/repos/amtp/sample").await;
    assert_eq!(assert_github_error(bad, 401).await, "Bad credentials");
    // The App JWT itself is not an installation token.
    let jwt_as_token = get(&standin, &good_jwt(), "/repos/amtp/sample").await;
    assert_github_error(jwt_as_token, 401).await;
}

#[tokio::test]
async fn answers_carry_githubs_headers() {
    let standin = standin().await;
    let token = token(&standin).await;
    let response = get(&standin, &token, "/repos/amtp/sample").await;
    assert_eq!(response.status(), 200);
    for header in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-used",
        "x-ratelimit-resource",
        "x-github-request-id",
    ] {
        assert!(response.headers().contains_key(header), "missing {header}");
    }
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["default_branch"], "main");
    assert_github_error(get(&standin, &token, "/repos/amtp/missing").await, 404).await;
}

#[tokio::test]
async fn trees_resolve_branches_head_and_shas_and_list_recursively() {
    let standin = standin().await;
    let token = token(&standin).await;
    let by_branch: Value = get(
        &standin,
        &token,
        "/repos/amtp/sample/git/trees/main?recursive=1",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(by_branch["truncated"], false);
    let paths: Vec<&str> = by_branch["tree"]
        .as_array()
        .expect("tree")
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    assert!(
        paths.contains(&"logs/keep.log") && paths.contains(&"target/debug/app"),
        "{paths:?}"
    );
    let entry = &by_branch["tree"][0];
    for field in ["path", "mode", "type", "sha"] {
        assert!(entry[field].is_string(), "{entry}");
    }
    let sha = by_branch["sha"].as_str().expect("sha");
    let by_sha: Value = get(
        &standin,
        &token,
        &format!("/repos/amtp/sample/git/trees/{sha}?recursive=1"),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(by_sha["tree"], by_branch["tree"]);
    let head: Value = get(&standin, &token, "/repos/amtp/sample/git/trees/HEAD")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(head["sha"], sha);
    assert!(
        head["tree"]
            .as_array()
            .expect("tree")
            .iter()
            .all(|e| !e["path"].as_str().expect("path").contains('/'))
    );
    let large: Value = get(
        &standin,
        &token,
        "/repos/amtp/large/git/trees/main?recursive=1",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(large["tree"].as_array().expect("tree").len(), 20_000);
    assert_github_error(
        get(&standin, &token, "/repos/amtp/sample/git/trees/nope").await,
        404,
    )
    .await;
    assert_github_error(
        get(&standin, &token, "/repos/amtp/empty/git/trees/main").await,
        409,
    )
    .await;
}

#[tokio::test]
async fn contents_inline_small_files_and_defer_large_ones_to_the_raw_media_type() {
    let standin = standin().await;
    let token = token(&standin).await;
    let small: Value = get(
        &standin,
        &token,
        "/repos/amtp/sample/contents/docs/guide.md?ref=main",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(small["encoding"], "base64");
    let encoded: String = small["content"]
        .as_str()
        .expect("content")
        .split_whitespace()
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    assert!(
        String::from_utf8(decoded)
            .expect("utf8")
            .starts_with("# Guide")
    );

    let large: Value = get(
        &standin,
        &token,
        "/repos/amtp/sample/contents/data/large.txt",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(large["encoding"], "none");
    assert_eq!(large["content"], "");
    let size = large["size"].as_u64().expect("size");
    assert!(size > 1024 * 1024);

    let raw = reqwest::Client::new()
        .get(format!(
            "{}/repos/amtp/sample/contents/data/large.txt",
            standin.url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/vnd.github.raw+json")
        .send()
        .await
        .expect("GET raw");
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.bytes().await.expect("bytes").len() as u64, size);

    let blob: Value = get(
        &standin,
        &token,
        &format!(
            "/repos/amtp/sample/git/blobs/{}",
            small["sha"].as_str().expect("sha")
        ),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(blob["encoding"], "base64");
    assert_github_error(
        get(&standin, &token, "/repos/amtp/sample/contents/nope.txt").await,
        404,
    )
    .await;
}

#[tokio::test]
async fn faults_and_call_counts_work_in_process_and_over_http() {
    let standin = standin().await;
    let token = token(&standin).await;
    standin.reset_calls();
    standin.inject(Fault::new(
        "/repos/amtp/sample/git/trees",
        2,
        FaultKind::Status { status: 502 },
    ));
    for _ in 0..2 {
        assert_github_error(
            get(&standin, &token, "/repos/amtp/sample/git/trees/main").await,
            502,
        )
        .await;
    }
    assert_eq!(
        get(&standin, &token, "/repos/amtp/sample/git/trees/main")
            .await
            .status(),
        200
    );
    assert_eq!(standin.calls_to("/repos/amtp/sample/git/trees"), 3);

    let http = reqwest::Client::new();
    let injected = http
        .post(format!("{}/_standin/faults", standin.url()))
        .json(&json!({ "path_prefix": "/repos", "times": 1, "kind": { "type": "rate_limited", "status": 429, "retry_after_secs": 30 } }))
        .send()
        .await
        .expect("POST fault");
    assert_eq!(injected.status(), 201);
    let limited = get(&standin, &token, "/repos/amtp/sample").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "30");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");

    standin.inject(Fault::new(
        "/repos",
        1,
        FaultKind::RateLimited {
            status: 403,
            retry_after_secs: 60,
        },
    ));
    let primary = get(&standin, &token, "/repos/amtp/sample").await;
    assert_eq!(primary.headers()["x-ratelimit-remaining"], "0");
    let message = assert_github_error(primary, 403).await;
    assert!(message.contains("rate limit"), "{message}");

    standin.inject(Fault::new(
        "/repos/amtp/sample/git/trees",
        1,
        FaultKind::TruncatedTree { keep: 3 },
    ));
    let truncated: Value = get(
        &standin,
        &token,
        "/repos/amtp/sample/git/trees/main?recursive=1",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(truncated["truncated"], true);
    assert_eq!(truncated["tree"].as_array().expect("tree").len(), 3);

    let health = http
        .get(format!("{}/_standin/health", standin.url()))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let calls: Value = http
        .get(format!(
            "{}/_standin/calls?prefix=/repos/amtp/sample/git/trees",
            standin.url()
        ))
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("json");
    assert_eq!(calls["total"], 4);
    assert_eq!(
        http.delete(format!("{}/_standin/calls", standin.url()))
            .send()
            .await
            .expect("reset")
            .status(),
        204
    );
    assert_eq!(standin.calls(), 0);
}
