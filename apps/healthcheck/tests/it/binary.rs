//! The real `healthcheck` binary: environment, logs and signals.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use crate::util::{Service, http_get};
use amtp_testkit::{ValkeyServer, free_port};

const PASSWORD: &str = "binary-test-secret";

fn env_for(valkey_port: u16, http_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("VALKEY_HOST", "127.0.0.1".to_owned()),
        ("VALKEY_PORT", valkey_port.to_string()),
        ("VALKEY_PASSWORD", PASSWORD.to_owned()),
        ("PORT", http_port.to_string()),
    ]
}

/// Every stderr line is one JSON object; returns them.
fn log_lines(service: &Service) -> Vec<serde_json::Value> {
    let stderr = service.stderr();
    assert!(
        !stderr.contains(PASSWORD),
        "the password leaked into the logs:\n{stderr}"
    );
    stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

fn messages(lines: &[serde_json::Value]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect()
}

#[test]
fn refuses_to_start_without_valkey_password() {
    let mut env = env_for(free_port(), free_port());
    env.retain(|(name, _)| *name != "VALKEY_PASSWORD");
    let mut service = Service::spawn(&env);
    let status = service.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "stderr:\n{}", service.stderr());
    let lines = log_lines(&service);
    assert_eq!(messages(&lines), ["refusing to start"]);
    assert_eq!(
        lines[0]["error"],
        "VALKEY_PASSWORD is not set; set it to the Valkey requirepass value"
    );
}

#[test]
fn logs_valkey_state_changes_only_and_exits_0_on_sigterm() {
    let mut valkey = ValkeyServer::start(PASSWORD);
    let mut service = Service::spawn(&env_for(valkey.port, free_port()));
    service.wait_ok("/health");
    for _ in 0..5 {
        assert_eq!(http_get(service.addr, "/health").expect("probe").0, 200);
    }
    valkey.stop();
    assert_eq!(http_get(service.addr, "/health").expect("probe").0, 503);
    assert_eq!(http_get(service.addr, "/health").expect("probe").0, 503);
    valkey.restart();
    assert_eq!(http_get(service.addr, "/health").expect("probe").0, 200);

    service.signal("TERM");
    let status = service.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", service.stderr());
    let lines = log_lines(&service);
    assert_eq!(
        messages(&lines),
        [
            "listening",
            "valkey up",
            "valkey down",
            "valkey up",
            "signal received",
            "shutting down",
            "stopped"
        ]
    );
    assert_eq!(lines[0]["addr"], service.addr.to_string());
    assert_eq!(lines[2]["probe"], "ping");
    assert_eq!(lines[2]["previous"], "up");
    assert!(lines[2]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(lines[3]["previous"], "down");
}

#[test]
fn sigterm_lets_an_in_flight_probe_finish_then_exits_0() {
    // A "Valkey" that accepts and never answers keeps a probe in flight for its full window,
    // and tells the test the moment the service dials it.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let silent_port = silent.local_addr().expect("address").port();
    let (dialled, on_dial) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().map_while(Result::ok) {
            held.push(stream);
            let _ = dialled.send(());
        }
    });
    let mut service = Service::spawn(&env_for(silent_port, free_port()));
    let addr = service.addr;
    // Valkey never answers here, so /health cannot turn 200.
    service.wait_ok("/metrics");

    let in_flight = std::thread::spawn(move || http_get(addr, "/health"));
    on_dial
        .recv_timeout(Duration::from_secs(5))
        .expect("the probe dials Valkey");
    service.signal("TERM");
    let (status, body) = in_flight
        .join()
        .expect("request thread")
        .expect("the in-flight request gets its answer");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""probe":"ping""#), "{body}");
    let exit = service.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "stderr:\n{}", service.stderr());
    assert!(
        http_get(addr, "/metrics").is_err(),
        "still accepting after shutdown"
    );
}

/// `healthcheck --health` with `env`: exit status and output.
fn health_flag(env: &[(&'static str, String)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_healthcheck"))
        .arg("--health")
        .env_clear()
        .envs(env.iter().map(|(name, value)| (*name, value)))
        .output()
        .expect("run healthcheck --health")
}

#[test]
fn version_and_health_flags_answer_without_serving() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_healthcheck"))
        .arg("--version")
        .output()
        .expect("run healthcheck --version");
    assert!(output.status.success(), "{output:?}");
    let version = String::from_utf8(output.stdout).expect("utf-8 version");
    assert!(
        version.starts_with(concat!("healthcheck ", env!("CARGO_PKG_VERSION"))),
        "{version:?}"
    );

    let mut valkey = ValkeyServer::start(PASSWORD);
    let env = env_for(valkey.port, free_port());
    let mut service = Service::spawn(&env);
    service.wait_ok("/health");
    let healthy = health_flag(&env);
    assert_eq!(healthy.status.code(), Some(0), "{healthy:?}");
    assert!(String::from_utf8_lossy(&healthy.stdout).contains(r#""status":"ok""#));
    // The version travels in a header: the body stays the seed's.
    let mut stream = std::net::TcpStream::connect(service.addr).expect("connect");
    std::io::Write::write_all(&mut stream, b"GET /health HTTP/1.0\r\n\r\n").expect("send");
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).expect("read");
    assert!(
        response.contains(&format!(
            "amtp-version: {}",
            version.trim_start_matches("healthcheck ").trim()
        )),
        "{response}"
    );

    valkey.stop();
    let unhealthy = health_flag(&env);
    assert_eq!(unhealthy.status.code(), Some(1), "{unhealthy:?}");
    assert!(String::from_utf8_lossy(&unhealthy.stderr).contains("503"));
    drop(service);
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_healthcheck"))
        .arg("--port")
        .output()
        .expect("run healthcheck --port");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
}
