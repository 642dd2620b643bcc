//! Helpers shared by the integration tests: a config pointing at a test Valkey, one probe
//! through the in-process router, and the real binary run as a child process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amtp_healthcheck::{AppState, Config, app};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A config for a Valkey on 127.0.0.1:`port`.
pub fn config(port: u16, password: &str) -> Config {
    Config::from_lookup(|name| match name {
        "VALKEY_HOST" => Some("127.0.0.1".to_owned()),
        "VALKEY_PORT" => Some(port.to_string()),
        "VALKEY_PASSWORD" => Some(password.to_owned()),
        _ => None,
    })
    .expect("test config is valid")
}

pub fn state(port: u16, password: &str) -> AppState {
    AppState::new(&config(port, password)).expect("build app state")
}

/// One `GET path` through the router: status and raw body.
pub async fn get(state: &AppState, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).expect("request");
    let response = app(state.clone())
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("read body")
        .to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).expect("utf-8 body"),
    )
}

/// One `GET /health`: status, parsed body and raw body.
pub async fn health(state: &AppState) -> (StatusCode, serde_json::Value, String) {
    let (status, raw) = get(state, "/health").await;
    let body = serde_json::from_str(&raw).unwrap_or_else(|err| panic!("{err}: {raw}"));
    (status, body, raw)
}

/// Asserts a 503 body's shape and step, and returns it.
pub async fn assert_degraded(state: &AppState, step: &str) -> serde_json::Value {
    let (status, body, raw) = health(state).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{raw}");
    // Exact shape and field order: rebuild the expected text from the parsed values.
    let expected = format!(
        r#"{{"status":"degraded","valkey":"down","error":{},"probe":"{step}","latency_ms":{}}}"#,
        body["error"], body["latency_ms"]
    );
    assert_eq!(raw, expected);
    assert_eq!(body["probe"], step, "{raw}");
    assert!(body["latency_ms"].is_f64(), "{raw}");
    body
}

/// The real `healthcheck` binary, killed on drop; its stderr is collected as it runs.
pub struct Service {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Service {
    /// Starts the binary with exactly `env` (nothing inherited).
    pub fn spawn(env: &[(&str, String)]) -> Service {
        let port = env
            .iter()
            .find(|(name, _)| *name == "PORT")
            .map(|(_, port)| port.parse().expect("PORT is a number"))
            .unwrap_or(8080);
        let mut child = Command::new(env!("CARGO_BIN_EXE_healthcheck"))
            .env_clear()
            .envs(env.iter().map(|(name, value)| (*name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the healthcheck binary");
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(
            child.stderr.take().expect("piped stderr"),
            Arc::clone(&stderr),
        );
        Service {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stderr,
        }
    }

    /// What the service wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Polls `GET path` until it answers 200: `/health` for "ready", `/metrics` for "listening"
    /// when Valkey is unreachable on purpose.
    pub fn wait_ok(&mut self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "healthcheck exited early ({status}); stderr:\n{}",
                    self.stderr()
                );
            }
            if let Ok((200, _)) = http_get(self.addr, path) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("GET {path} not 200 after 10 s; stderr:\n{}", self.stderr());
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, failing after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for healthcheck") {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "healthcheck still running after {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stderr: ChildStderr, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut buffer = into.lock().expect("stderr buffer");
            buffer.push_str(&line);
            buffer.push('\n');
        }
    });
}

/// A minimal blocking HTTP/1.1 GET (`Connection: close`): status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or("");
    Ok((status, body.to_owned()))
}
