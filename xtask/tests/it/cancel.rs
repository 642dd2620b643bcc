//! Ctrl-C (or SIGTERM, SIGHUP) while `up` waits means "cancel": a cold start stops everything
//! it started and exits 130, leaving no process or listener; a converging `up` stops only what
//! it was starting. The next `up` completes, every migration applied once.

use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{TestStack, describe, processes_naming, wait_for};

/// Runs `up` in the background until the supervisor has spawned one of `services` (read from
/// the state file, as `status` would), then sends `signal`.
fn interrupt_up(stack: &TestStack, services: &[&str], signal: Signal) -> std::process::Output {
    let up: Child = stack
        .command(&["up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xtask up");
    let spawned = wait_for(Duration::from_secs(60), || {
        services.iter().any(|service| stack.pid(service).is_some())
    });
    assert!(spawned, "none of {services:?} was spawned by `up`");
    kill(Pid::from_raw(up.id() as i32), signal).expect("signal up");
    let began = Instant::now();
    let output = wait_with_deadline(up, Duration::from_secs(30));
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "a cancelled up took {:?} to return",
        began.elapsed()
    );
    output
}

pub(crate) fn wait_with_deadline(mut child: Child, timeout: Duration) -> std::process::Output {
    if !wait_for(timeout, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
    }
    child.wait_with_output().expect("collect up's output")
}

/// The ports of the stack that still accept connections, as `VAR=port`.
pub(crate) fn listening_ports(stack: &TestStack) -> Vec<String> {
    stack
        .env
        .iter()
        .filter(|(key, _)| key.ends_with("_PORT"))
        .filter(|(_, port)| TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok())
        .map(|(key, port)| format!("{key}={port}"))
        .collect()
}

pub(crate) fn migrations_applied_once(stack: &TestStack) {
    let rows = stack
        .postgres()
        .query(
            "SELECT version, count(*), bool_and(success) FROM flyway_schema_history \
             WHERE version IS NOT NULL GROUP BY version ORDER BY version",
            &[],
        )
        .expect("read the schema history");
    let files = std::fs::read_dir(crate::util::repo_root().join("migrations/sql"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with('V') && name.ends_with(".sql")
        })
        .count();
    assert_eq!(rows.len(), files, "not every migration is in the history");
    for row in rows {
        let (version, count, success): (String, i64, bool) = (row.get(0), row.get(1), row.get(2));
        assert!(
            count == 1 && success,
            "V{version}: applied {count} times, success {success}"
        );
    }
}

#[test]
fn ctrl_c_during_a_cold_up_stops_what_it_started_and_the_next_up_completes() {
    let stack = TestStack::new("cancel-cold");
    let output = interrupt_up(&stack, &["postgres", "valkey", "garage"], Signal::SIGINT);
    let said = describe(&output);
    assert_eq!(output.status.code(), Some(130), "{said}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("cancelled: stopped "), "{said}");

    let gone = wait_for(Duration::from_secs(2), || {
        processes_naming(&stack.state_dir.display().to_string()).is_empty()
            && listening_ports(&stack).is_empty()
    });
    assert!(
        gone,
        "2 s after the cancel: processes {:?}, listeners {:?}",
        processes_naming(&stack.state_dir.display().to_string()),
        listening_ports(&stack)
    );
    assert_eq!(
        stack.xtask(&["status"]).status.code(),
        Some(3),
        "status after a cancel"
    );

    stack.up();
    migrations_applied_once(&stack);
    stack.ok(&["verify"]);
}

#[test]
fn sigterm_during_a_converging_up_leaves_what_ran_before() {
    let stack = TestStack::new("cancel-converge");
    stack.ok(&["up", "pgbouncer"]);
    let postgres = stack.pid("postgres").expect("postgres runs");
    let pgbouncer = stack.pid("pgbouncer").expect("pgbouncer runs");

    let output = interrupt_up(&stack, &["valkey", "garage", "nginx"], Signal::SIGTERM);
    let said = describe(&output);
    assert_eq!(output.status.code(), Some(130), "{said}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("left running what ran before"),
        "{said}"
    );
    assert_eq!(stack.pid("postgres"), Some(postgres), "{said}");
    assert_eq!(stack.pid("pgbouncer"), Some(pgbouncer), "{said}");
    let stopped = wait_for(Duration::from_secs(2), || {
        ["valkey", "garage", "nginx", "healthcheck", "github-mcp"]
            .iter()
            .all(|service| stack.pid(service).is_none())
    });
    assert!(
        stopped,
        "what the cancelled up started still runs: {}",
        stack.status()
    );
    let one = stack.ok(&["psql", "--", "-X", "-A", "-t", "-c", "select 1"]);
    assert_eq!(one.trim(), "1");

    stack.up();
    assert_eq!(
        stack.pid("postgres"),
        Some(postgres),
        "the next up restarted postgres"
    );
    migrations_applied_once(&stack);
}
