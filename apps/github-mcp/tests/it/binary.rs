//! The real `github-mcp` binary: refuses to start without its App id, serves, exits 0 on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amtp_github_standin::{StandIn, StandInConfig};
use amtp_testkit::ValkeyServer;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;

const BINARY: &str = env!("CARGO_BIN_EXE_github-mcp");

/// Kills the server if the test fails before stopping it.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn start_is_refused_without_github_app_id() {
    let output = Command::new(BINARY)
        .env_clear()
        .env("GITHUB_APP_INSTALLATION_ID", "1")
        .env("VALKEY_PASSWORD", "pw")
        .output()
        .expect("run github-mcp");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GITHUB_APP_ID is not set"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_with_an_unreachable_collector_and_exits_zero_on_sigterm() {
    amtp_github_mcp::github::install_crypto_providers();
    let standin = StandIn::spawn(StandInConfig::new(
        crate::common::APP_ID,
        crate::common::INSTALLATION_ID,
        crate::common::app_key(),
    ))
    .await
    .expect("spawn the stand-in");
    let valkey = ValkeyServer::start(crate::common::VALKEY_PASSWORD);
    let port = amtp_testkit::free_port();
    let mut env = crate::common::env(&standin, &valkey);
    // Telemetry on, towards a port where nothing listens: requests must not notice.
    env.remove("OTEL_SDK_DISABLED");
    let collector = format!("http://127.0.0.1:{}", amtp_testkit::free_port());
    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector);
    env.insert("MCP_HTTP_PORT".into(), port.to_string());
    let child = Command::new(BINARY)
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn github-mcp");
    let mut guard = KillOnDrop(Some(child));
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await {
            break response;
        }
        if let Some(Ok(Some(status))) = guard.0.as_mut().map(Child::try_wait) {
            panic!("github-mcp exited early: {status}");
        }
        assert!(Instant::now() < deadline, "github-mcp not ready after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.expect("health json");
    assert_eq!(body["valkey"], "up");
    // The build's version, as `--version` prints it; `--health` (the image's HEALTHCHECK)
    // reads the same environment and asks the same /health.
    let version = Command::new(BINARY)
        .arg("--version")
        .output()
        .expect("--version");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!(
            "github-mcp {}",
            body["version"].as_str().expect("a version string")
        )
    );
    assert!(
        body["version"]
            .as_str()
            .is_some_and(|v| v.starts_with(env!("CARGO_PKG_VERSION"))),
        "{body}"
    );
    let checked = Command::new(BINARY)
        .arg("--health")
        .env_clear()
        .envs(&env)
        .output()
        .expect("--health");
    assert!(checked.status.success(), "{checked:?}");

    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://127.0.0.1:{port}/mcp"
        )))
        .await
        .expect("MCP initialize");
    let arguments = serde_json::json!({ "owner": "amtp", "repo": "sample" });
    let serde_json::Value::Object(arguments) = arguments else {
        unreachable!()
    };
    let started = Instant::now();
    let result = client
        .call_tool(CallToolRequestParams::new("repo.tree").with_arguments(arguments))
        .await
        .expect("repo.tree through the binary");
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let _ = client.cancel().await;

    let stopping = Instant::now();
    let child = guard
        .0
        .take()
        .expect("the server is still owned by the test");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert!(output.status.success(), "exit status {}", output.status);
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
    }
    assert!(
        !stderr.contains(crate::common::VALKEY_PASSWORD),
        "a log line shows the Valkey password"
    );
}
