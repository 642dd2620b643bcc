//! Benchmark: `repo.tree` on the stand-in's 20,000-entry `amtp/large`, through MCP over HTTP.
//!
//! Starts a throwaway Valkey, the release `github-standin` and `github-mcp` binaries on free
//! loopback ports, then measures cold calls (cache flushed before each) and cached calls with one
//! rmcp client, counts GitHub requests per cold call, and reads github-mcp's RSS.
//!
//! ```sh
//! cargo build --release -p amtp-github-mcp -p amtp-github-standin
//! cargo run --release -p amtp-github-mcp --example bench_tree [COLD_RUNS] [CACHED_RUNS]
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amtp_testkit::{ValkeyServer, free_port};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;

const APP_ID: &str = "1";
const INSTALLATION_ID: &str = "1";
const VALKEY_PASSWORD: &str = "bench-pw";

/// Kills the child when the benchmark ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn release_binary(name: &str) -> PathBuf {
    // This example runs from target/release/examples/; the binaries sit one level up.
    let exe = std::env::current_exe().expect("path of this example");
    let path = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target/release")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release -p amtp-github-mcp -p amtp-github-standin` first",
        path.display()
    );
    path
}

async fn wait_ready(url: &str, child: &mut Daemon) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{url}: the server exited early ({status})");
        }
        assert!(Instant::now() < deadline, "{url} not ready after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label:<9} n={:<4} p50={:>8.2} ms  p95={:>8.2} ms  min={:>8.2} ms  max={:>8.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        percentile(&samples, 0.0),
        percentile(&samples, 1.0)
    );
}

/// GitHub API requests the stand-in saw, without the hourly installation-token request.
async fn github_calls(standin: &str) -> usize {
    let calls: serde_json::Value = reqwest::get(format!("{standin}/_standin/calls?prefix=/repos"))
        .await
        .expect("GET calls")
        .json()
        .await
        .expect("calls json");
    calls["total"].as_u64().expect("total") as usize
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("RSS field")
}

#[tokio::main]
async fn main() {
    amtp_github_mcp::github::install_crypto_providers();
    let mut args = std::env::args().skip(1);
    let cold_runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let cached_runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);

    let valkey = ValkeyServer::start(VALKEY_PASSWORD);
    let work = std::env::temp_dir().join(format!("github-mcp-bench-{}", std::process::id()));
    let key_file = work.join("github_app_key.pem");
    let standin_port = free_port();
    let standin_url = format!("http://127.0.0.1:{standin_port}");
    let mut standin = Daemon(
        Command::new(release_binary("github-standin"))
            .args([
                "--listen",
                &format!("127.0.0.1:{standin_port}"),
                "--app-id",
                APP_ID,
                "--installation-id",
                INSTALLATION_ID,
            ])
            .arg("--app-key")
            .arg(&key_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn github-standin"),
    );
    wait_ready(&format!("{standin_url}/_standin/health"), &mut standin).await;

    let mcp_port = free_port();
    let mut mcp = Daemon(
        Command::new(release_binary("github-mcp"))
            .env_clear()
            .env("GITHUB_API_URL", &standin_url)
            .env("GITHUB_APP_ID", APP_ID)
            .env("GITHUB_APP_INSTALLATION_ID", INSTALLATION_ID)
            .env("GITHUB_APP_KEY_FILE", &key_file)
            .env("MCP_HTTP_PORT", mcp_port.to_string())
            .env("VALKEY_HOST", "127.0.0.1")
            .env("VALKEY_PORT", valkey.port.to_string())
            .env("VALKEY_PASSWORD", VALKEY_PASSWORD)
            .env("OTEL_SDK_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn github-mcp"),
    );
    let mcp_base = format!("http://127.0.0.1:{mcp_port}");
    wait_ready(&format!("{mcp_base}/health"), &mut mcp).await;

    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{mcp_base}/mcp"
        )))
        .await
        .expect("MCP initialize");
    let arguments = serde_json::json!({ "owner": "amtp", "repo": "large", "ref": "main" });
    let serde_json::Value::Object(arguments) = arguments else {
        unreachable!()
    };
    let call = || {
        client.call_tool(CallToolRequestParams::new("repo.tree").with_arguments(arguments.clone()))
    };

    // The first call also fetches the installation token; keep it out of the figures.
    let first = call().await.expect("repo.tree");
    assert_ne!(first.is_error, Some(true), "{first:?}");
    let listed = match first.content.first() {
        Some(rmcp::model::ContentBlock::Text(text)) => text.text.lines().count() - 1,
        _ => 0,
    };

    let mut cold = Vec::with_capacity(cold_runs);
    let mut calls_per_cold = Vec::with_capacity(cold_runs);
    for _ in 0..cold_runs {
        assert_eq!(valkey.command(&["FLUSHALL"]), "+OK");
        reqwest::Client::new()
            .delete(format!("{standin_url}/_standin/calls"))
            .send()
            .await
            .expect("reset calls");
        let started = Instant::now();
        let result = call().await.expect("repo.tree");
        cold.push(started.elapsed());
        assert_ne!(result.is_error, Some(true));
        calls_per_cold.push(github_calls(&standin_url).await);
    }

    reqwest::Client::new()
        .delete(format!("{standin_url}/_standin/calls"))
        .send()
        .await
        .expect("reset calls");
    let mut cached = Vec::with_capacity(cached_runs);
    for _ in 0..cached_runs {
        let started = Instant::now();
        let result = call().await.expect("repo.tree");
        cached.push(started.elapsed());
        assert_ne!(result.is_error, Some(true));
    }
    // The same cached call as a plain JSON-RPC POST: the server's share without rmcp's client-side
    // parsing of the ~680 KB answer.
    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "repo.tree", "arguments": arguments },
    })
    .to_string();
    let mut raw = Vec::with_capacity(cached_runs);
    for _ in 0..cached_runs {
        let started = Instant::now();
        let response = http
            .post(format!("{mcp_base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.clone())
            .send()
            .await
            .expect("POST tools/call");
        assert!(response.status().is_success());
        let bytes = response.bytes().await.expect("read answer");
        raw.push(started.elapsed());
        assert!(bytes.len() > 100_000);
    }
    let calls_while_cached = github_calls(&standin_url).await;
    let pid = mcp.0.id();
    let (rss, peak) = (rss_kib(pid, "VmRSS:"), rss_kib(pid, "VmHWM:"));
    let _ = client.cancel().await;

    println!(
        "repo.tree amtp/large@main: 20000 tree entries, {listed} listed after .gitignore filtering"
    );
    summary("cold", cold);
    summary("cached", cached);
    summary("raw POST", raw);
    println!(
        "GitHub requests per cold call: {:?} (1 tree + 1 per .gitignore blob); during {} cached calls: {calls_while_cached}",
        calls_per_cold
            .iter()
            .collect::<std::collections::BTreeSet<_>>(),
        2 * cached_runs
    );
    println!(
        "github-mcp RSS after the run: {:.1} MiB (peak {:.1} MiB)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(mcp);
    drop(standin);
    let _ = std::fs::remove_dir_all(&work);
}
