//! Traces and metrics end to end with real programs: github-mcp called through rmcp's client
//! sends its spans and counters over OTLP/HTTP to the stack's Rotel collector, `xtask traces
//! --json` and `xtask metrics --json` read them back from the collector's log, and a second
//! Rotel instance stands in for an upstream endpoint.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;

use crate::util::{TestStack, wait_for};

/// Longest wait for a span to travel app → collector → log (the app's batch delay is 500 ms).
const ARRIVAL: Duration = Duration::from_secs(15);

/// A stack whose apps send to its own collector, whatever the developer's shell names.
fn stack(name: &str) -> TestStack {
    let mut stack = TestStack::new(name);
    stack
        .env
        .insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), String::new());
    stack.env.insert("AMTP_OTLP_FORWARD".into(), String::new());
    stack
}

/// `repo.tree` of the stand-in's sample repository through a fresh MCP client; the result
/// must not be an error.
fn repo_tree(mcp_url: &str) {
    // reqwest needs a TLS provider even for plain HTTP; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client =
            ().serve(StreamableHttpClientTransport::from_uri(mcp_url.to_owned()))
                .await
                .expect("MCP initialize");
        let serde_json::Value::Object(arguments) =
            serde_json::json!({ "owner": "amtp", "repo": "sample" })
        else {
            unreachable!()
        };
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            client.call_tool(CallToolRequestParams::new("repo.tree").with_arguments(arguments)),
        )
        .await
        .expect("repo.tree must not hang")
        .expect("repo.tree answered");
        assert_ne!(result.is_error, Some(true), "repo.tree failed: {result:?}");
        let _ = client.cancel().await;
    });
}

/// The `repo.tree` traces `xtask traces --json` shows.
fn tree_traces(stack: &TestStack) -> Vec<Value> {
    let json = stack.ok(&["traces", "--json", "--service", "amtp-github-mcp"]);
    let traces: Vec<Value> = serde_json::from_str(&json).expect("traces --json prints JSON");
    traces
        .into_iter()
        .filter(|trace| trace["name"] == "repo.tree")
        .collect()
}

/// Waits until there are `count` `repo.tree` traces and returns them.
fn wait_for_tree_traces(stack: &TestStack, count: usize) -> Vec<Value> {
    let mut traces = Vec::new();
    wait_for(ARRIVAL, || {
        traces = tree_traces(stack);
        traces.len() >= count
    });
    assert_eq!(
        traces.len(),
        count,
        "repo.tree traces after {ARRIVAL:?}: {traces:#?}\ncollector log:\n{}",
        stack.ok(&["logs", "otel-collector", "--tail", "40"])
    );
    traces
}

fn spans_named<'a>(trace: &'a Value, prefix: &str) -> Vec<&'a Value> {
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter(|span| span["name"].as_str().unwrap_or("").starts_with(prefix))
        .collect()
}

/// A second Rotel that logs what it receives: the upstream of `AMTP_OTLP_FORWARD`. Killed,
/// and its files removed, when dropped.
struct Upstream {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Upstream {
    fn start(name: &str) -> Upstream {
        let program = which_rotel();
        let port = amtp_testkit::free_port();
        let grpc = amtp_testkit::free_port();
        let log =
            std::env::temp_dir().join(format!("amtp-upstream-{name}-{}.log", std::process::id()));
        let child = Command::new(program)
            .args(["start", "--log-format", "json", "--exporter", "blackhole"])
            .args(["--debug-log", "traces", "--debug-log-verbosity", "detailed"])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{port}")])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .stdout(File::create(&log).expect("create the upstream's log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start the upstream rotel-agent");
        let up = wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "the upstream rotel-agent did not listen on {port}");
        Upstream { child, log, port }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn which_rotel() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("rotel-agent"))
        .find(|path| path.is_file())
        .expect(
            "rotel-agent is not on PATH; install it as .ci/run does: `python3 -m pip install \
             --target /opt/rotel rotel==0.0.1a15 && ln -s /opt/rotel/rotel/rotel-agent \
             /usr/local/bin/`",
        )
}

#[test]
fn a_repo_tree_call_is_one_trace_of_its_cache_lookup_and_github_calls_and_goes_upstream() {
    let upstream = Upstream::start("forward");
    let mut stack = stack("traces-tree");
    stack.env.insert(
        "AMTP_OTLP_FORWARD".into(),
        format!("http://127.0.0.1:{}", upstream.port),
    );
    stack.ok(&["up", "github-mcp"]);
    let mcp_url = stack.env_var("MCP_URL");

    repo_tree(&mcp_url);
    let traces = wait_for_tree_traces(&stack, 1);
    let trace = &traces[0];
    let root = &trace["spans"][0];
    assert_eq!(root["depth"], 0);
    assert_eq!(root["parent_id"], "");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["attributes"]["mcp.tool"], "repo.tree");
    assert_eq!(root["attributes"]["repo.owner"], "amtp");
    assert_eq!(root["attributes"]["repo.name"], "sample");
    assert_eq!(root["attributes"]["git.ref"], "HEAD");
    let lookups = spans_named(trace, "valkey GET");
    assert_eq!(lookups.len(), 1, "{trace:#}");
    assert_eq!(lookups[0]["parent_id"], root["span_id"]);
    assert_eq!(lookups[0]["kind"], "client");
    assert_eq!(lookups[0]["attributes"]["cache.result"], "miss");
    let github = spans_named(trace, "GitHub");
    assert!(!github.is_empty(), "no GitHub span: {trace:#}");
    for span in &github {
        assert_eq!(span["parent_id"], root["span_id"], "{span:#}");
        assert_eq!(span["kind"], "client");
        let status = span["attributes"]["http.response.status_code"].as_str();
        assert!(matches!(status, Some("200" | "201")), "{span:#}");
    }
    assert!(
        github
            .iter()
            .any(|span| span["attributes"]["url.path"] == "/repos/amtp/sample/git/trees/HEAD"),
        "{trace:#}"
    );

    // The same call again is answered from the cache: a hit, and GitHub is not asked.
    repo_tree(&mcp_url);
    let traces = wait_for_tree_traces(&stack, 2);
    let cached = &traces[1];
    let lookups = spans_named(cached, "valkey GET");
    assert_eq!(lookups.len(), 1, "{cached:#}");
    assert_eq!(lookups[0]["attributes"]["cache.result"], "hit");
    assert!(spans_named(cached, "GitHub").is_empty(), "{cached:#}");

    // The upstream received the same spans.
    for trace in &traces {
        let id = trace["trace_id"].as_str().unwrap().to_owned();
        let arrived = wait_for(ARRIVAL, || upstream.received().contains(&id));
        assert!(arrived, "trace {id} not upstream:\n{}", upstream.received());
    }

    // The tree as text names what the call did.
    let text = stack.ok(&["traces", "--trace", traces[0]["trace_id"].as_str().unwrap()]);
    assert!(text.contains("repo.tree"), "{text}");
    assert!(text.contains("result=miss"), "{text}");
    assert!(text.contains("status=200"), "{text}");
}

#[test]
fn a_stopped_collector_leaves_the_app_serving_and_is_said_once() {
    let stack = stack("traces-stopped");
    stack.ok(&["up", "github-mcp"]);
    let mcp_url = stack.env_var("MCP_URL");
    stack.ok(&["stop", "otel-collector"]);
    let app = stack.pid("github-mcp");
    // Several batches, each export refused.
    for _ in 0..4 {
        repo_tree(&mcp_url);
        std::thread::sleep(Duration::from_millis(700));
    }
    assert_eq!(stack.pid("github-mcp"), app, "github-mcp was restarted");
    let log = || stack.ok(&["logs", "github-mcp", "--tail", "all", "--no-prefix"]);
    let said = |log: &str| log.matches("does not take spans").count();
    let warned = wait_for(ARRIVAL, || said(&log()) >= 1);
    assert!(
        warned,
        "github-mcp never said the collector is down:\n{}",
        log()
    );
    assert_eq!(said(&log()), 1, "said more than once:\n{}", log());

    // Back: the app says so, and its spans arrive again.
    stack.ok(&["start", "otel-collector"]);
    repo_tree(&mcp_url);
    let back = wait_for(ARRIVAL, || log().contains("takes spans again"));
    assert!(
        back,
        "github-mcp did not notice the collector again:\n{}",
        log()
    );
    assert!(!tree_traces(&stack).is_empty());
}

#[test]
fn the_collectors_counters_agree_with_the_apps_own_and_status_shows_its_request_rate() {
    let stack = stack("metrics-agree");
    stack.ok(&["up", "github-mcp"]);
    let mcp_url = stack.env_var("MCP_URL");
    // The supervisor has read the app's counter before the calls (every 2 s).
    let counted = wait_for(Duration::from_secs(10), || {
        stack
            .service("github-mcp")
            .is_some_and(|s| s["requests"]["total"] == 0.0)
    });
    assert!(counted, "no request rate in status: {:#}", stack.status());
    for _ in 0..3 {
        repo_tree(&mcp_url);
    }

    // The app exports every 5 s: the collector's view catches up with the app's own /metrics.
    let app_series = || -> Vec<Value> {
        let json = stack.ok(&["metrics", "--json", "--service", "amtp-github-mcp"]);
        serde_json::from_str(&json).expect("metrics --json prints JSON")
    };
    let tool_calls = |series: &[Value]| -> Option<Value> {
        series
            .iter()
            .find(|s| {
                s["name"] == "mcp.tool.calls"
                    && s["attributes"]["tool"] == "repo.tree"
                    && s["attributes"]["result"] == "ok"
            })
            .cloned()
    };
    let mut series = Vec::new();
    let agreed = wait_for(Duration::from_secs(30), || {
        series = app_series();
        tool_calls(&series).is_some_and(|s| s["value"] == 3.0 && s["app"]["value"] == 3.0)
    });
    assert!(
        agreed,
        "the collector and github-mcp's /metrics do not both count 3 repo.tree calls: \
         {series:#?}\ncollector log:\n{}",
        stack.ok(&["logs", "otel-collector", "--tail", "60"])
    );
    // Every series the app exported, the cache's hits and misses and GitHub's answers among
    // them, has the same value in both views (the app is idle now).
    for name in ["mcp.tool.calls", "mcp.cache.lookups", "github.requests"] {
        assert!(
            series.iter().any(|s| s["name"] == name),
            "no {name}: {series:#?}"
        );
    }
    for s in &series {
        assert_eq!(s["value"], s["app"]["value"], "{s:#}");
        assert!(s["app"]["error"].is_null(), "{s:#}");
    }
    let hits = series
        .iter()
        .find(|s| s["name"] == "mcp.cache.lookups" && s["attributes"]["result"] == "hit");
    assert!(
        hits.is_some_and(|s| s["value"].as_f64() >= Some(2.0)),
        "{series:#?}"
    );

    let table = stack.ok(&["metrics"]);
    assert!(
        table.contains("mcp.tool.calls{result=ok,tool=repo.tree}"),
        "{table}"
    );

    // `status` shows the rate of tool calls over the last 30 s, from the same counter, once
    // the supervisor has read it again (every 2 s).
    let mut status = Value::Null;
    let counted = wait_for(Duration::from_secs(10), || {
        status = stack.service("github-mcp").expect("github-mcp in status");
        status["requests"]["total"] == 3.0
    });
    assert!(counted, "status does not count 3 tool calls: {status:#}");
    let requests = &status["requests"];
    assert_eq!(requests["of"], "tool calls", "{status:#}");
    assert!(requests["per_second"].as_f64() > Some(0.0), "{status:#}");
    // (It exits 1: the services `up github-mcp` left out are stopped.)
    let text = String::from_utf8_lossy(&stack.xtask(&["status"]).stdout).into_owned();
    assert!(text.contains("REQ/S"), "{text}");
    assert!(
        text.contains("REQ/S: over the last 30 s, of github-mcp tool calls"),
        "{text}"
    );
}
