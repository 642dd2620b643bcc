//! Issue 17's faults on the supervisor's side, each on a real stack of its own (the fewest
//! services that show it, so no test waits for Garage): hostile control-socket callers, a
//! hung service, commands racing, and a port stolen at run time.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{TestStack, describe, wait_for};

/// What every command here must return within, however the stack is treated: far above what
/// each takes (a second or two), far below "hangs".
const BOUND: Duration = Duration::from_secs(30);

/// Runs `command` and returns its output, failing the test (and killing it) when it has not
/// returned within [`BOUND`].
fn within_bound(command: Command) -> Output {
    finish(start(command))
}

/// Starts `command` in the background, its output kept.
fn start(mut command: Command) -> Child {
    let piped = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    piped.spawn().expect("run xtask")
}

/// Waits for a background command, which must end within [`BOUND`] (else it is killed).
fn finish(child: Child) -> Output {
    let pid = Pid::from_raw(child.id() as i32);
    let (sender, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match output.recv_timeout(BOUND) {
        Ok(output) => output.expect("wait for xtask"),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("a command did not return within {BOUND:?}")
        }
    }
}

/// `status --json` of `stack`, which must return within [`BOUND`] and print JSON.
fn status(stack: &TestStack) -> serde_json::Value {
    let output = within_bound(stack.command(&["status", "--json"]));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "status --json printed no JSON ({err}):\n{}",
            describe(&output)
        )
    })
}

fn service(status: &serde_json::Value, name: &str) -> serde_json::Value {
    let services = status["services"].as_array().expect("services");
    let found = services.iter().find(|s| s["name"] == name);
    found
        .unwrap_or_else(|| panic!("{name} missing from {status:#}"))
        .clone()
}

fn supervisor_log(stack: &TestStack) -> String {
    std::fs::read_to_string(stack.state_dir.join("logs/supervisor.log")).unwrap_or_default()
}

/// What the supervisor answers on a raw connection that sent `bytes`, then shut its writing.
fn answer_to(socket: &str, bytes: &[u8]) -> serde_json::Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    let _ = stream.write_all(bytes); // an oversized line is cut off part way
    let _ = stream.shutdown(std::net::Shutdown::Write);
    stream.set_read_timeout(Some(BOUND)).unwrap();
    // The reply, then the end; or a reset, when the supervisor hung up on unread bytes.
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    while let Ok(read @ 1..) = stream.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    serde_json::from_str(answer.trim_end())
        .unwrap_or_else(|err| panic!("not one JSON reply ({err}): {answer:?}"))
}

#[test]
fn hostile_control_socket_callers_get_an_error_and_everyone_else_is_served() {
    let stack = TestStack::new("fault-socket");
    stack.ok(&["up", "github-standin"]);
    let before = status(&stack);
    let socket = before["control_socket"].as_str().unwrap().to_owned();
    let supervisor = before["supervisor_pid"].clone();

    // A hundred callers that connect and never write, one that sends half a request.
    let idle: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let mut trickler = UnixStream::connect(&socket).unwrap();
    trickler.write_all(b"{\"restart\":{\"serv").unwrap();
    let began = Instant::now();
    let restart = within_bound(stack.command(&["restart", "github-standin"]));
    assert!(restart.status.success(), "{}", describe(&restart));
    let served_in = began.elapsed();

    let bad = |bytes: &[u8]| {
        answer_to(&socket, bytes)["done"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let oversized = bad(&vec![b'{'; 2 << 20]);
    assert_eq!(
        oversized,
        "bad request: the request line is longer than 1048576 bytes"
    );
    let invalid = bad(b"{\"restart\": [nonsense\n");
    assert!(
        invalid.starts_with("bad request: not a request of this version"),
        "{invalid}"
    );
    let unknown = bad(b"{\"format_disk\":{\"services\":[]}}\n");
    assert!(
        unknown.contains("unknown variant `format_disk`"),
        "{unknown}"
    );
    let unfinished = bad(b"{\"stop\":{\"services\":[\"valkey\"]}}");
    assert_eq!(
        unfinished,
        "bad request: the connection ended before a whole request line"
    );
    let mut cut_off = String::new();
    trickler.read_to_string(&mut cut_off).unwrap();
    assert!(
        cut_off.contains("no whole request line within 5s"),
        "{cut_off}"
    );
    drop(idle);

    let after = status(&stack);
    assert_eq!(
        after["supervisor_pid"], supervisor,
        "the supervisor was replaced"
    );
    assert_eq!(service(&after, "github-standin")["health"], "healthy");
    assert!(
        served_in < Duration::from_secs(5),
        "the restart waited {served_in:?}, behind the idle callers' 5 s"
    );
    eprintln!("restart served in {served_in:?} beside 101 idle callers");
}

#[test]
fn a_stopped_app_and_database_are_named_the_app_restarted_and_the_database_left() {
    let stack = TestStack::new("fault-hung");
    stack.ok(&["up", "github-standin", "valkey"]);
    let before = status(&stack);
    let app = service(&before, "github-standin")["pid"].as_i64().unwrap() as i32;
    let db = service(&before, "valkey")["pid"].as_i64().unwrap() as i32;
    for pid in [app, db] {
        kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    }
    let stopped_at = Instant::now();

    // status, verify and up all return, and name what does not answer.
    let now = status(&stack);
    for name in ["github-standin", "valkey"] {
        let entry = service(&now, name);
        let reason = entry["reason"].as_str().unwrap_or_default();
        let named = reason.starts_with(&format!("{name} "));
        assert!(named && reason.contains("does not answer"), "{entry:#}");
    }
    let verify = within_bound(stack.command(&["verify"]));
    let said = describe(&verify);
    assert!(!verify.status.success(), "{said}");
    assert!(said.contains("Valkey does not answer"), "{said}");
    let up = within_bound(stack.command(&["up", "github-standin", "valkey"]));
    let said = describe(&up);
    assert!(said.contains("valkey does not answer"), "{said}");

    // The app's liveness rule restarts it; the database is only reported.
    let restart_note = "`cargo xtask restart valkey` restarts it";
    let acted = wait_for(BOUND, || {
        let now = status(&stack);
        let (app, db) = (service(&now, "github-standin"), service(&now, "valkey"));
        let reported = db["reason"]
            .as_str()
            .is_some_and(|r| r.contains(restart_note));
        app["restarts"] == 1 && app["health"] == "healthy" && reported
    });
    let now = status(&stack);
    assert!(
        acted,
        "github-standin not restarted, or valkey not reported: {now:#}"
    );
    eprintln!(
        "github-standin restarted {:?} after SIGSTOP",
        stopped_at.elapsed()
    );
    let app_now = service(&now, "github-standin");
    assert_ne!(app_now["pid"].as_i64(), Some(app as i64));
    let why = app_now["last_restart"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("github-standin: did not answer 3 liveness probes in a row"),
        "{app_now:#}"
    );
    let valkey = service(&now, "valkey");
    assert_eq!(valkey["pid"].as_i64(), Some(db as i64), "{valkey:#}");
    assert_eq!(valkey["restarts"], 0, "{valkey:#}");

    let log = supervisor_log(&stack);
    for line in [
        "github-standin: did not answer 3 liveness probes in a row",
        "github-standin: restarting in",
        "valkey: did not answer 3 liveness probes in a row",
    ] {
        assert!(log.contains(line), "{line:?} missing from the log:\n{log}");
    }

    kill(Pid::from_raw(db), Signal::SIGCONT).unwrap();
    assert!(
        wait_for(BOUND, || service(&status(&stack), "valkey")["health"]
            == "healthy"),
        "valkey did not answer again after SIGCONT"
    );
    let again = "valkey: answers its liveness probe again";
    assert!(wait_for(BOUND, || supervisor_log(&stack).contains(again)));
    assert_eq!(
        service(&status(&stack), "valkey")["reason"],
        serde_json::Value::Null
    );
}

/// Takes 127.0.0.1:`port` as soon as it is free, within `limit`.
fn steal(port: u16, limit: Duration) -> Option<TcpListener> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return Some(listener);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

#[test]
fn a_port_stolen_from_a_crashed_service_is_named_and_the_service_comes_back_once_freed() {
    let stack = TestStack::new("fault-port");
    stack.ok(&["up", "github-standin"]);
    let port = stack.port("GITHUB_STANDIN_PORT");
    // Its first restart comes 500 ms after the crash: the port is taken before that.
    let thief = (0..3).find_map(|_| {
        let pid = service(&status(&stack), "github-standin")["pid"].as_i64()?;
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        steal(port, Duration::from_millis(400))
    });
    let thief = thief.expect("the port was never free between the crash and the restart");
    let holder = format!(
        "port {port} for github-standin is already in use (pid {}",
        std::process::id()
    );
    let named = wait_for(BOUND, || {
        let entry = service(&status(&stack), "github-standin");
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with(&holder))
    });
    let entry = service(&status(&stack), "github-standin");
    assert!(named, "{entry:#}");
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.ends_with("stop it or set GITHUB_STANDIN_PORT"),
        "{reason}"
    );
    // Retried meanwhile, with a growing delay: the log says each attempt.
    assert!(wait_for(BOUND, || supervisor_log(&stack)
        .matches(&holder)
        .count()
        >= 2));
    assert!(supervisor_log(&stack).contains("github-standin: restarting in 1000 ms"));
    drop(thief);
    let back = wait_for(BOUND, || {
        service(&status(&stack), "github-standin")["health"] == "healthy"
    });
    assert!(back, "{:#}", status(&stack));
}

fn health(status: &serde_json::Value, name: &str) -> String {
    service(status, name)["health"].as_str().unwrap().to_owned()
}

#[test]
fn commands_racing_each_return_in_time_and_the_last_one_wins() {
    let stack = TestStack::new("fault-race");
    // `stop` of a dependency while its dependents start: Valkey is ready long before initdb
    // lets the migrations, then the healthcheck, start.
    let up = start(stack.command(&["up", "healthcheck"]));
    let valkey_first = wait_for(BOUND, || {
        let now = status(&stack);
        now["phase"] == "starting"
            && service(&now, "valkey")["health"] == "healthy"
            && service(&now, "healthcheck")["health"] != "healthy"
    });
    assert!(valkey_first, "{:#}", status(&stack));
    let stop = within_bound(stack.command(&["stop", "valkey"]));
    assert!(stop.status.success(), "{}", describe(&stop));
    let up = finish(up);
    assert!(up.status.success(), "{}", describe(&up));
    let now = status(&stack);
    assert_eq!(health(&now, "valkey"), "stopped");
    assert_eq!(health(&now, "healthcheck"), "stopped", "{now:#}");
    assert_eq!(health(&now, "postgres"), "healthy");
    assert!(
        within_bound(stack.command(&["start", "healthcheck"]))
            .status
            .success()
    );
    assert_eq!(health(&status(&stack), "healthcheck"), "healthy");

    // Twenty `status --json` during a restart: each returns and parses.
    let restart = start(stack.command(&["restart", "healthcheck", "valkey"]));
    let statuses: Vec<_> = (0..20)
        .map(|_| start(stack.command(&["status", "--json"])))
        .collect();
    for child in statuses {
        let output = finish(child);
        let parsed: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", describe(&output)));
        assert_eq!(parsed["running"], true);
    }
    let restart = finish(restart);
    assert!(restart.status.success(), "{}", describe(&restart));

    // `down` during a restart: the restart is told, and the stack is down.
    let restart = start(stack.command(&["restart", "postgres"]));
    assert!(wait_for(BOUND, || health(&status(&stack), "postgres") != "healthy"));
    let down = within_bound(stack.command(&["down"]));
    assert!(down.status.success(), "{}", describe(&down));
    let restart = finish(restart);
    assert_eq!(status(&stack)["running"], false);
    if !restart.status.success() {
        let said = describe(&restart);
        assert!(said.contains("the stack is stopping"), "{said}");
    }

    // `restart` during a cold `up` (initdb makes it long enough): both return, and
    // everything runs.
    stack.ok(&["reset"]);
    let up = start(stack.command(&["up", "github-standin", "postgres"]));
    assert!(wait_for(BOUND, || status(&stack)["phase"] == "starting"));
    let restart = within_bound(stack.command(&["restart", "github-standin"]));
    assert!(restart.status.success(), "{}", describe(&restart));
    let up = finish(up);
    assert!(up.status.success(), "{}", describe(&up));
    let now = status(&stack);
    assert_eq!(health(&now, "postgres"), "healthy", "{now:#}");
    assert_eq!(health(&now, "github-standin"), "healthy", "{now:#}");
}
