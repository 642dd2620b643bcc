//! `GET /health` and `GET /metrics` through the in-process router, against real Valkey servers
//! that each test starts (and breaks) on its own.

use std::net::TcpListener;

use crate::util::{assert_degraded, get, health, state};
use amtp_testkit::{ValkeyServer, free_port};
use axum::http::StatusCode;
use tokio::task::JoinSet;

const PASSWORD: &str = "probe-test-pw";

#[tokio::test]
async fn healthy_valkey_answers_200_with_the_exact_body() {
    let valkey = ValkeyServer::start(PASSWORD);
    let state = state(valkey.port, PASSWORD);
    let (status, body, raw) = health(&state).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert!(
        raw.starts_with(r#"{"status":"ok","valkey":"up","latency_ms":"#),
        "{raw}"
    );
    assert_eq!(body.as_object().expect("object").len(), 3, "{raw}");
    let latency = body["latency_ms"].as_f64().expect("latency_ms is a number");
    assert!((0.0..500.0).contains(&latency), "{raw}");
    let number = raw
        .trim_end_matches('}')
        .rsplit(':')
        .next()
        .expect("latency text");
    let decimals = number
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    assert!(decimals <= 2, "latency_ms has more than 2 decimals: {raw}");
    // The probe really wrote its key, with the 1 s TTL.
    assert_eq!(valkey.command(&["GET", "_amtp_health_ping"]), "$1");
    let ttl = valkey.command(&["PTTL", "_amtp_health_ping"]);
    let ttl: i64 = ttl.trim_start_matches(':').parse().expect("PTTL reply");
    assert!((0..=1000).contains(&ttl), "PTTL {ttl}");
}

#[tokio::test]
async fn stopped_valkey_fails_the_ping_step() {
    let mut valkey = ValkeyServer::start(PASSWORD);
    let state = state(valkey.port, PASSWORD);
    valkey.stop();
    let body = assert_degraded(&state, "ping").await;
    assert!(
        body["error"].as_str().expect("error").contains("refused"),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_password_fails_the_ping_step_without_echoing_it() {
    let valkey = ValkeyServer::start(PASSWORD);
    let state = state(valkey.port, "not-the-password");
    let body = assert_degraded(&state, "ping").await;
    let error = body["error"].as_str().expect("error");
    assert!(
        error.contains("WRONGPASS") || error.contains("uthentication"),
        "{body}"
    );
    assert!(!error.contains("not-the-password"), "{body}");
}

#[tokio::test]
async fn silent_address_times_out_at_500_ms_in_the_ping_step() {
    // Accepts connections and never answers, like a hung server or a black-holed route.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let state = state(port, PASSWORD);
    for _ in 0..2 {
        let body = assert_degraded(&state, "ping").await;
        let latency = body["latency_ms"].as_f64().expect("latency");
        assert!((495.0..700.0).contains(&latency), "{body}");
        assert_eq!(body["error"], "probe timed out after 500 ms", "{body}");
    }
}

#[tokio::test]
async fn valkey_out_of_memory_fails_the_set_step_while_ping_answers() {
    let valkey = ValkeyServer::start_with(PASSWORD, &["--maxmemory-policy", "noeviction"]);
    let state = state(valkey.port, PASSWORD);
    assert_eq!(
        health(&state).await.0,
        StatusCode::OK,
        "healthy before filling"
    );
    // About 2 MB of data, then a cap below it: used memory > maxmemory, nothing evictable,
    // exactly the state the seed describes (every write refused with OOM).
    let value = "x".repeat(64 * 1024);
    for key in 0..32 {
        assert_eq!(
            valkey.command(&["SET", &format!("fill:{key}"), &value]),
            "+OK"
        );
    }
    assert_eq!(
        valkey.command(&["CONFIG", "SET", "maxmemory", "1mb"]),
        "+OK"
    );
    let reply = valkey.command(&["SET", "canary", "1"]);
    assert!(
        reply.starts_with("-OOM"),
        "valkey still accepts writes: {reply}"
    );
    assert_eq!(valkey.command(&["PING"]), "+PONG", "PING must still answer");
    let body = assert_degraded(&state, "set").await;
    assert!(
        body["error"].as_str().expect("error").contains("OOM"),
        "{body}"
    );
    // Memory freed (here: the cap raised again) turns the same service green.
    assert_eq!(
        valkey.command(&["CONFIG", "SET", "maxmemory", "512mb"]),
        "+OK"
    );
    assert_eq!(
        health(&state).await.0,
        StatusCode::OK,
        "healthy once writes work again"
    );
}

#[tokio::test]
async fn recovers_after_valkey_restarts_without_restarting_the_service() {
    let mut valkey = ValkeyServer::start(PASSWORD);
    let state = state(valkey.port, PASSWORD);
    assert_eq!(health(&state).await.0, StatusCode::OK);
    valkey.stop();
    assert_degraded(&state, "ping").await;
    valkey.restart();
    let (status, _, raw) = health(&state).await;
    assert_eq!(status, StatusCode::OK, "first probe after restart: {raw}");
    // A restart between two probes: the closed connection is replaced within the probe.
    valkey.restart();
    let (status, _, raw) = health(&state).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "first probe after an unseen restart: {raw}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_probes_all_succeed() {
    let valkey = ValkeyServer::start(PASSWORD);
    let state = state(valkey.port, PASSWORD);
    let mut probes = JoinSet::new();
    for _ in 0..200 {
        let state = state.clone();
        probes.spawn(async move { health(&state).await });
    }
    let mut healthy = 0;
    while let Some(result) = probes.join_next().await {
        let (status, _, raw) = result.expect("probe task");
        assert_eq!(status, StatusCode::OK, "false negative: {raw}");
        healthy += 1;
    }
    assert_eq!(healthy, 200);
}

#[tokio::test]
async fn metrics_count_probes_by_result_and_step() {
    let mut valkey = ValkeyServer::start(PASSWORD);
    let state = state(valkey.port, PASSWORD);
    assert_eq!(health(&state).await.0, StatusCode::OK);
    let (_, text) = get(&state, "/metrics").await;
    assert!(text.contains("healthcheck_valkey_up 1"), "{text}");
    valkey.stop();
    assert_degraded(&state, "ping").await;
    let (status, text) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"healthcheck_probes_total{result="ok",failed_step="none"} 1"#,
        r#"healthcheck_probes_total{result="degraded",failed_step="ping"} 1"#,
        r#"healthcheck_probes_total{result="degraded",failed_step="set"} 0"#,
        "healthcheck_probe_duration_seconds_count 2",
        "healthcheck_valkey_up 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let state = state(free_port(), PASSWORD);
    assert_eq!(get(&state, "/nope").await.0, StatusCode::NOT_FOUND);
}
