//! A github-mcp server in-process on 127.0.0.1:0, wired to a GitHub stand-in and a throwaway
//! Valkey, plus an rmcp client to talk to it. Each test gets its own of all three.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use amtp_github_mcp::config::Config;
use amtp_github_mcp::{AppState, app};
use amtp_github_standin::{AppKey, StandIn, StandInConfig, StandInHandle};
use amtp_testkit::ValkeyServer;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const APP_ID: u64 = 314;
pub const INSTALLATION_ID: u64 = 2718;
pub const VALKEY_PASSWORD: &str = "mcp-test-pw";

/// One App key per test binary: RSA key generation is the slowest step of a test.
pub fn app_key() -> &'static AppKey {
    static KEY: OnceLock<AppKey> = OnceLock::new();
    KEY.get_or_init(|| AppKey::generate().expect("generate the App key"))
}

/// The App's private key written to a file (mode 0600), as `GITHUB_APP_KEY_FILE` expects.
/// It lives in Cargo's scratch dir for tests, not in /tmp: nothing deletes it at exit.
pub fn key_file() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("github-mcp-test-key-{}.pem", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .expect("create the key file");
        file.write_all(app_key().private_pem().expect("private pem").as_bytes())
            .expect("write the key file");
        path
    })
    .clone()
}

pub struct Harness {
    pub standin: StandInHandle,
    pub valkey: ValkeyServer,
    pub url: String,
    pub base: String,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The environment a test server runs with; tests override single variables.
pub fn env(standin: &StandInHandle, valkey: &ValkeyServer) -> HashMap<String, String> {
    [
        ("GITHUB_API_URL", standin.url()),
        ("GITHUB_APP_ID", APP_ID.to_string()),
        ("GITHUB_APP_INSTALLATION_ID", INSTALLATION_ID.to_string()),
        ("GITHUB_APP_KEY_FILE", key_file().display().to_string()),
        ("VALKEY_HOST", "127.0.0.1".to_owned()),
        ("VALKEY_PORT", valkey.port.to_string()),
        ("VALKEY_PASSWORD", VALKEY_PASSWORD.to_owned()),
        ("OTEL_SDK_DISABLED", "true".to_owned()),
        ("MCP_GITHUB_TIMEOUT_MS", "500".to_owned()),
        ("MCP_MAX_FILE_BYTES", "2000000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra or overriding environment variables.
    pub async fn start_with(overrides: &[(&str, &str)]) -> Self {
        let standin = StandIn::spawn(StandInConfig::new(APP_ID, INSTALLATION_ID, app_key()))
            .await
            .expect("spawn the GitHub stand-in");
        let valkey = ValkeyServer::start(VALKEY_PASSWORD);
        let mut vars = env(&standin, &valkey);
        for (name, value) in overrides {
            vars.insert(name.to_string(), value.to_string());
        }
        let config = Config::from_env(|name| vars.get(name).cloned()).expect("test configuration");
        let state = Arc::new(AppState::new(&config).expect("build the server state"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        let router = app(state, shutdown.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .expect("serve");
        });
        Harness {
            standin,
            valkey,
            url: format!("http://{addr}/mcp"),
            base: format!("http://{addr}"),
            shutdown,
        }
    }

    pub async fn client(&self) -> RunningService<RoleClient, ()> {
        ().serve(StreamableHttpClientTransport::from_uri(self.url.clone()))
            .await
            .expect("MCP initialize")
    }

    /// Calls a tool through a fresh MCP client.
    pub async fn call(&self, tool: &'static str, arguments: Value) -> CallToolResult {
        let client = self.client().await;
        let Value::Object(arguments) = arguments else {
            panic!("tool arguments must be an object")
        };
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            client.call_tool(CallToolRequestParams::new(tool).with_arguments(arguments)),
        )
        .await
        .expect("tool call must not hang")
        .expect("tool call answered");
        let _ = client.cancel().await;
        result
    }

    /// `TTL key` in the test's Valkey, in seconds (-2 = no key, -1 = no TTL).
    pub fn ttl(&self, key: &str) -> i64 {
        let reply = self.valkey.command(&["TTL", key]);
        reply
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("TTL {key}: {reply}"))
    }
}

/// All text content of a tool result, joined.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text(text) => Some(text.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// The listed paths of a `repo.tree` answer (directories without their trailing '/').
pub fn tree_paths(result: &CallToolResult) -> Vec<String> {
    text(result)
        .lines()
        .skip(1)
        .filter(|line| !line.starts_with("WARNING") && !line.starts_with("NOTE"))
        .map(|line| {
            line.split(" (")
                .next()
                .unwrap_or(line)
                .trim_end_matches('/')
                .to_owned()
        })
        .collect()
}
