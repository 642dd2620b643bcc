//! Every failure is a tool error (`isError: true`) that says what to do, a JSON-RPC error or an
//! HTTP refusal: never a crash or a hang.

use std::time::{Duration, Instant};

use crate::common::{Harness, is_error, text};
use amtp_github_standin::{Fault, FaultKind};
use serde_json::{Value, json};

const TREE_PATH: &str = "/repos/amtp/sample/git/trees";

fn sample_tree() -> Value {
    json!({ "owner": "amtp", "repo": "sample", "ref": "main" })
}

#[tokio::test]
async fn github_404_is_reported_as_not_found() {
    let harness = Harness::start().await;
    let missing_repo = harness
        .call("repo.tree", json!({ "owner": "amtp", "repo": "missing" }))
        .await;
    assert!(is_error(&missing_repo));
    assert!(
        text(&missing_repo).starts_with("not found"),
        "{}",
        text(&missing_repo)
    );
    let missing_file = harness
        .call(
            "repo.read_file",
            json!({ "owner": "amtp", "repo": "sample", "path": "nope.txt" }),
        )
        .await;
    assert!(
        is_error(&missing_file) && text(&missing_file).contains("not found"),
        "{}",
        text(&missing_file)
    );
    let empty = harness
        .call("repo.tree", json!({ "owner": "amtp", "repo": "empty" }))
        .await;
    assert!(
        is_error(&empty) && text(&empty).contains("empty"),
        "{}",
        text(&empty)
    );
}

#[tokio::test]
async fn github_401_and_403_are_reported_as_authentication_and_permission_errors() {
    let harness = Harness::start().await;
    harness
        .standin
        .inject(Fault::new(TREE_PATH, 1, FaultKind::Status { status: 401 }));
    let unauthorized = harness.call("repo.tree", sample_tree()).await;
    assert!(is_error(&unauthorized));
    assert!(
        text(&unauthorized).contains("authentication failed"),
        "{}",
        text(&unauthorized)
    );

    // That 401 dropped the cached token, so this call presents a new App JWT, which GitHub
    // refuses as it would a key that does not match the App's.
    harness.standin.inject(Fault::new(
        "/app/installations",
        1,
        FaultKind::Status { status: 401 },
    ));
    let bad_jwt = harness
        .call(
            "repo.read_file",
            json!({ "owner": "amtp", "repo": "sample", "path": "README.md" }),
        )
        .await;
    assert!(is_error(&bad_jwt));
    assert!(
        text(&bad_jwt).contains("GITHUB_APP_KEY_FILE"),
        "{}",
        text(&bad_jwt)
    );

    harness
        .standin
        .inject(Fault::new(TREE_PATH, 1, FaultKind::Status { status: 403 }));
    let forbidden = harness.call("repo.tree", sample_tree()).await;
    assert!(is_error(&forbidden));
    assert!(
        text(&forbidden).contains("refused access"),
        "{}",
        text(&forbidden)
    );
}

#[tokio::test]
async fn rate_limits_say_when_to_retry() {
    let harness = Harness::start().await;
    harness.standin.inject(Fault::new(
        TREE_PATH,
        1,
        FaultKind::RateLimited {
            status: 429,
            retry_after_secs: 30,
        },
    ));
    let secondary = harness.call("repo.tree", sample_tree()).await;
    assert!(is_error(&secondary));
    assert!(
        text(&secondary).contains("retry after 30 s"),
        "{}",
        text(&secondary)
    );

    harness.standin.inject(Fault::new(
        TREE_PATH,
        1,
        FaultKind::RateLimited {
            status: 403,
            retry_after_secs: 120,
        },
    ));
    let primary = harness.call("repo.tree", sample_tree()).await;
    assert!(is_error(&primary));
    assert!(
        text(&primary).contains("rate limit exceeded; retry after 1"),
        "{}",
        text(&primary)
    );
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let harness = Harness::start().await;
    harness
        .standin
        .inject(Fault::new(TREE_PATH, 2, FaultKind::Status { status: 503 }));
    let recovered = harness.call("repo.tree", sample_tree()).await;
    assert!(!is_error(&recovered), "{}", text(&recovered));
    assert_eq!(harness.standin.calls_to(TREE_PATH), 3);

    harness.standin.reset_calls();
    harness
        .standin
        .inject(Fault::new(TREE_PATH, 10, FaultKind::Status { status: 502 }));
    let failed = harness
        .call(
            "repo.tree",
            json!({ "owner": "amtp", "repo": "sample", "ref": "HEAD" }),
        )
        .await;
    assert!(is_error(&failed));
    assert!(
        text(&failed).contains("unavailable (HTTP 502) after 3 attempts"),
        "{}",
        text(&failed)
    );
    assert_eq!(harness.standin.calls_to(TREE_PATH), 3);
}

#[tokio::test]
async fn a_github_that_does_not_answer_times_out_after_bounded_retries() {
    let harness = Harness::start().await;
    harness
        .standin
        .inject(Fault::new(TREE_PATH, 3, FaultKind::Delay { millis: 3_000 }));
    let started = Instant::now();
    let result = harness.call("repo.tree", sample_tree()).await;
    assert!(is_error(&result));
    assert!(
        text(&result).contains("did not answer within 500 ms"),
        "{}",
        text(&result)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unsafe_or_oversized_input_is_refused_before_github_is_asked() {
    let harness = Harness::start().await;
    harness.standin.reset_calls();
    let long_path = "a/".repeat(3000);
    let cases = [
        json!({ "owner": "amtp", "repo": "sample", "path": "../../etc/passwd" }),
        json!({ "owner": "amtp", "repo": "sample", "path": "/etc/passwd" }),
        json!({ "owner": "amtp", "repo": "sample", "path": "src/\u{0}main.rs" }),
        json!({ "owner": "amtp", "repo": "sample", "path": long_path }),
        json!({ "owner": "amtp/../x", "repo": "sample", "path": "README.md" }),
        json!({ "owner": "amtp", "repo": "sample", "path": "README.md", "ref": "main..x" }),
        json!({ "owner": "amtp", "repo": "sample", "path": "README.md", "start_line": 0 }),
    ];
    for args in cases {
        let result = harness.call("repo.read_file", args.clone()).await;
        assert!(is_error(&result), "accepted {args}");
    }
    let tree = harness
        .call(
            "repo.tree",
            json!({ "owner": "amtp", "repo": "sample", "path": "../x" }),
        )
        .await;
    assert!(is_error(&tree));
    assert_eq!(
        harness.standin.calls(),
        0,
        "{:?}",
        harness.standin.call_log()
    );
}

#[tokio::test]
async fn with_valkey_stopped_requests_are_served_uncached() {
    let mut harness = Harness::start().await;
    harness.valkey.stop();
    for _ in 0..2 {
        let started = Instant::now();
        let result = harness.call("repo.tree", sample_tree()).await;
        assert!(!is_error(&result), "{}", text(&result));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        harness.standin.calls_to(TREE_PATH),
        2,
        "uncached: GitHub is asked each time"
    );
    let health: Value = reqwest::get(format!("{}/health", harness.base))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["valkey"], "down");

    harness.valkey.restart();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the reconnect pause
    let result = harness.call("repo.tree", sample_tree()).await;
    assert!(!is_error(&result));
    harness.standin.reset_calls();
    harness.call("repo.tree", sample_tree()).await;
    assert_eq!(
        harness.standin.calls(),
        0,
        "cached again once Valkey is back"
    );
}

#[tokio::test]
async fn malformed_json_rpc_gets_a_json_rpc_error() {
    let harness = Harness::start().await;
    let response = reqwest::Client::new()
        .post(&harness.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ")
        .send()
        .await
        .expect("POST");
    assert!(response.status().is_client_error(), "{}", response.status());
    let body: Value = response.json().await.expect("JSON-RPC error body");
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["error"]["code"], -32700, "{body}");

    let not_json_rpc = reqwest::Client::new()
        .post(&harness.url)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "hello": "world" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(not_json_rpc.status(), 400);
    let body: Value = not_json_rpc.json().await.expect("JSON-RPC error body");
    assert_eq!(body["error"]["code"], -32600, "{body}");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403() {
    let harness = Harness::start().await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
    });
    let post = |origin: &'static str| {
        reqwest::Client::new()
            .post(&harness.url)
            .header("accept", "application/json, text/event-stream")
            .header("origin", origin)
            .json(&initialize)
            .send()
    };
    assert_eq!(
        post("https://evil.example").await.expect("POST").status(),
        403
    );
    assert_eq!(
        post("http://localhost:3000").await.expect("POST").status(),
        200
    );
    assert_eq!(post("http://127.0.0.1").await.expect("POST").status(), 200);
}

#[tokio::test]
async fn health_and_metrics_report_state_and_counts() {
    let harness = Harness::start().await;
    harness.call("repo.tree", sample_tree()).await;
    harness.call("repo.tree", sample_tree()).await;
    let health = reqwest::get(format!("{}/health", harness.base))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.expect("json");
    assert_eq!(health["valkey"], "up");
    assert_eq!(health["github"], "ok");
    let metrics = reqwest::get(format!("{}/metrics", harness.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"mcp_tool_calls_total{tool="repo.tree",result="ok"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"mcp_cache_lookups_total{cache="tree",result="hit"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"github_requests_total{status="200"}"#),
        "{metrics}"
    );
}
