//! `psql` and `valkey-cli` against a real stack: what they print, their exit codes passed on,
//! and the passwords in the clients' environment, never on a command line.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{TestStack, describe, processes_naming, wait_for};

const POSTGRES_PASSWORD: &str = "pg-pw-in-the-environment-only";
const VALKEY_PASSWORD: &str = "valkey-pw-in-the-environment-only";

/// A running stack whose passwords the test knows.
fn started(name: &str) -> TestStack {
    let mut stack = TestStack::new(name);
    stack
        .env
        .insert("POSTGRES_PASSWORD".into(), POSTGRES_PASSWORD.into());
    stack
        .env
        .insert("VALKEY_PASSWORD".into(), VALKEY_PASSWORD.into());
    stack.up();
    stack
}

#[test]
fn psql_answers_through_pgbouncer_and_directly_and_passes_on_its_exit_code() {
    let stack = started("psql");
    assert_eq!(stack.status()["schema_version"], 1);

    for via in [&["psql"][..], &["psql", "--direct"]] {
        let args = [via, &["--", "-X", "-At", "-c", "select 1"]].concat();
        assert_eq!(stack.ok(&args), "1\n", "xtask {args:?}");
    }
    // Only PgBouncer has the admin console: which server answered.
    let version = stack.ok(&[
        "psql",
        "--",
        "-X",
        "-At",
        "-d",
        "pgbouncer",
        "-c",
        "show version",
    ]);
    assert!(version.starts_with("PgBouncer"), "{version}");
    let port = stack.ok(&[
        "psql",
        "--direct",
        "--",
        "-X",
        "-At",
        "-c",
        "select inet_server_port()",
    ]);
    assert_eq!(port.trim(), stack.port("POSTGRES_PORT").to_string());

    // psql's own exit codes: 1 for a failed command, 2 for a failed connection.
    let failed = stack.xtask(&["psql", "--", "-X", "-c", "select nosuchcolumn"]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("nosuchcolumn"),
        "{}",
        describe(&failed)
    );
    let no_console = stack.xtask(&["psql", "--direct", "--", "-X", "-d", "pgbouncer"]);
    assert_eq!(
        no_console.status.code(),
        Some(2),
        "{}",
        describe(&no_console)
    );
    assert!(
        String::from_utf8_lossy(&no_console.stderr)
            .contains("database \"pgbouncer\" does not exist"),
        "{}",
        describe(&no_console)
    );

    assert_eq!(stack.ok(&["valkey-cli", "--", "PING"]), "PONG\n");
}

#[test]
fn the_passwords_are_in_the_clients_environment_never_on_a_command_line() {
    let stack = started("client-secrets");
    let marker = format!("amtp_marker_{}", std::process::id());
    let query = format!("select pg_sleep(2) as {marker}");
    let clients = [
        (
            stack.command(&["psql", "--", "-X", "-c", &query]),
            format!("PGPASSWORD={POSTGRES_PASSWORD}"),
        ),
        (
            // The marker echoed 20 times, a tenth of a second apart.
            stack.command(&["valkey-cli", "--", "-r", "20", "-i", "0.1", "ECHO", &marker]),
            format!("REDISCLI_AUTH={VALKEY_PASSWORD}"),
        ),
    ];
    for (mut command, password_var) in clients {
        let mut xtask = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let xtask_pid = xtask.id();
        // The client: the process other than the xtask whose command line has the marker.
        let mut client = None;
        let found = wait_for(Duration::from_secs(10), || {
            client = processes_naming(&marker).into_iter().find_map(|line| {
                let pid: u32 = line.split(':').next()?.parse().ok()?;
                (pid != xtask_pid).then_some(pid)
            });
            client.is_some()
        });
        assert!(found, "no client of xtask {xtask_pid} came up");
        let pid = client.unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            environ.split('\0').any(|var| var == password_var),
            "{password_var:?} is not in the environment of client {pid}"
        );
        for password in [POSTGRES_PASSWORD, VALKEY_PASSWORD] {
            let shown = processes_naming(password);
            assert!(shown.is_empty(), "a password on a command line: {shown:?}");
        }
        let status = xtask.wait().unwrap();
        assert!(status.success(), "the client ended with {status}");
    }
}

#[test]
fn the_clients_and_status_name_a_stack_that_is_not_running() {
    let stack = TestStack::new("clients-down");
    for client in ["psql", "valkey-cli"] {
        let output = stack.xtask(&[client]);
        assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("the stack is not running; start it with `cargo xtask up`"),
            "{}",
            describe(&output)
        );
    }
    let status = stack.status();
    assert_eq!(status["schema_version"], 1, "{status}");
    assert_eq!(status["running"], false, "{status}");
}
