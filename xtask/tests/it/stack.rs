//! The stack's lifecycle end to end: each test runs its own stack (own state dir and ports)
//! through the real `xtask` binary, beside the isolated stack of `cargo xtask test`.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{TestStack, describe, is_alive, processes_naming, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn data_survives_down_and_up_and_a_second_up_changes_nothing() {
    // A deep state dir: Postgres' socket path would exceed the OS limit if it lived there. With
    // a space, as in a checkout under `~/My Projects/`: every rendered config must quote it.
    let stack = TestStack::new(&format!("life cycle-{}", "d".repeat(90)));
    stack.up();
    let postgres_pid = stack.pid("postgres").expect("postgres runs");

    let again = stack.ok(&["up"]);
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(
        stack.pid("postgres"),
        Some(postgres_pid),
        "a second up restarted postgres"
    );
    // A moved port is applied: Valkey and the apps that connect to it start again.
    let valkey_port = amtp_testkit::free_port();
    let moved = stack
        .command(&["up"])
        .env("VALKEY_PORT", valkey_port.to_string())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&moved.stdout);
    assert!(
        moved.status.success() && said.contains("valkey: restarting: VALKEY_PORT"),
        "{}",
        describe(&moved)
    );
    assert!(said.contains("healthcheck: restarting"), "{said}");
    assert_eq!(stack.pid("postgres"), Some(postgres_pid), "{said}");

    stack
        .postgres()
        .batch_execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)")
        .unwrap();
    let pids = stack.all_pids();
    let down = stack.ok(&["down"]);
    assert!(down.contains("stack stopped"), "{down}");
    let survivors: Vec<i32> = pids.into_iter().filter(|p| is_alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "down left processes running: {survivors:?}"
    );
    assert_eq!(
        stack.xtask(&["status"]).status.code(),
        Some(3),
        "status of a stopped stack"
    );

    stack.up();
    let count: i64 = stack
        .postgres()
        .query_one("SELECT count(*) FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "rows were lost across down/up");

    stack.ok(&["down", "--volumes"]);
    assert!(
        !stack.state_dir.exists(),
        "down --volumes kept the state dir"
    );
}

#[test]
fn a_killed_service_comes_back() {
    let stack = TestStack::new("killed-service");
    stack.up();
    let valkey = stack.pid("valkey").expect("valkey runs");
    kill(Pid::from_raw(valkey), Signal::SIGKILL).unwrap();
    let back = wait_for(Duration::from_secs(20), || {
        stack.pid("valkey").is_some_and(|pid| pid != valkey)
            && stack.xtask(&["status"]).status.success()
    });
    assert!(
        back,
        "valkey did not come back:\n{}",
        describe(&stack.xtask(&["status"]))
    );
    let status = stack.status();
    let valkey = status["services"]
        .as_array()
        .and_then(|services| services.iter().find(|s| s["name"] == "valkey"));
    assert_eq!(valkey.expect("valkey in status")["restarts"], 1);
}

#[test]
fn killing_the_supervisor_leaves_no_orphan_and_the_next_up_recovers() {
    let stack = TestStack::new("orphans");
    stack.up();
    kill_the_supervisor_and_expect_no_survivor_then_up(&stack);
}

/// Where the parent-death signal is missing (macOS), the guardian alone ends the services.
#[test]
fn without_the_parent_death_signal_the_guardian_leaves_no_orphan() {
    let mut stack = TestStack::new("guardian");
    stack.env.insert("AMTP_NO_PDEATHSIG".into(), "1".into());
    stack.up();
    kill_the_supervisor_and_expect_no_survivor_then_up(&stack);
}

fn kill_the_supervisor_and_expect_no_survivor_then_up(stack: &TestStack) {
    let pids = stack.all_pids();
    assert!(
        pids.len() >= 8,
        "expected the supervisor and every service: {pids:?}"
    );
    kill(Pid::from_raw(pids[0]), Signal::SIGKILL).unwrap();
    let gone = wait_for(Duration::from_secs(15), || {
        pids.iter().all(|p| !is_alive(*p))
    });
    let survivors: Vec<i32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
    assert!(gone, "processes outlived the supervisor: {survivors:?}");

    // Stale state file and postmaster.pid: the next `up` must cope without help. (It is also
    // what frees the shared memory the killed Postgres left: a new postmaster on the same data
    // dir removes its predecessor's segments.)
    stack.up();
    assert!(stack.xtask(&["status"]).status.success());
}

#[test]
fn ctrl_c_on_an_attached_up_stops_everything() {
    let stack = TestStack::new("attach");
    let mut attached = stack
        .command(&["up", "--attach"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_for(Duration::from_secs(60), || {
        stack.xtask(&["status"]).status.success()
    });
    assert!(ready, "{}", describe(&stack.xtask(&["status"])));
    let pids = stack.all_pids();

    // What a terminal's Ctrl-C does: SIGINT to the foreground process group, here just `up`.
    kill(Pid::from_raw(attached.id() as i32), Signal::SIGINT).unwrap();
    let exited = wait_for(Duration::from_secs(20), || {
        attached.try_wait().unwrap().is_some()
    });
    assert!(exited, "up --attach ignored Ctrl-C");
    let survivors: Vec<i32> = pids.into_iter().filter(|p| is_alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "processes outlived Ctrl-C: {survivors:?}"
    );
    assert_eq!(stack.xtask(&["status"]).status.code(), Some(3));
}

#[test]
fn verify_reports_exactly_the_setting_changed_at_run_time() {
    let stack = TestStack::new("verify");
    stack.up();
    let clean = stack.xtask(&["verify", "--json"]);
    assert!(
        clean.status.success(),
        "fresh stack drifts:\n{}",
        describe(&clean)
    );

    let valkey_url = stack.env_var("VALKEY_URL");
    let mut valkey = redis::Client::open(valkey_url)
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut valkey)
        .unwrap();
    // Not ALTER SYSTEM: the documented flags are `-c` options, which outrank
    // postgresql.auto.conf. A per-database setting outranks them for every new session.
    stack
        .postgres()
        .batch_execute("ALTER DATABASE amtp SET work_mem = '4MB'")
        .unwrap();

    let output = stack.xtask(&["verify", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let drifted: Vec<(&str, &str)> = checks
        .iter()
        .filter(|c| c["verdict"] == "drift")
        .map(|c| (c["check"].as_str().unwrap(), c["live"].as_str().unwrap()))
        .collect();
    assert_eq!(
        drifted,
        [
            ("postgres work_mem", "4MB"),
            ("valkey maxmemory-policy", "noeviction")
        ]
    );
}

#[test]
fn a_taken_port_is_named_before_anything_starts() {
    let stack = TestStack::new("port-taken");
    let listener = std::net::TcpListener::bind(("127.0.0.1", stack.port("VALKEY_PORT"))).unwrap();
    // A daemon's further port (Garage's admin API) is checked like its main one.
    let admin_port = stack.port("GARAGE_ADMIN_PORT");
    let admin = std::net::TcpListener::bind(("127.0.0.1", admin_port)).unwrap();
    let output = stack.xtask(&["up"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "port {} for valkey is already in use (pid {}",
        stack.port("VALKEY_PORT"),
        std::process::id()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("set VALKEY_PORT"), "{stderr}");
    let expected = format!("port {admin_port} for garage is already in use");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("set GARAGE_ADMIN_PORT"), "{stderr}");
    // Nothing was started: Postgres never got a data dir.
    assert!(!stack.state_dir.join("postgres/data").exists());
    drop((listener, admin));
}

#[test]
fn a_failed_initdb_is_recovered_by_the_next_up() {
    let mut stack = TestStack::new("initdb");
    // initdb refuses role names starting with pg_.
    stack
        .env
        .insert("POSTGRES_USER".into(), "pg_reserved".into());
    let output = stack.xtask(&["up"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("initdb failed"), "{stderr}");
    assert!(
        !stack.state_dir.join("postgres/data").exists(),
        "a half-made cluster was kept"
    );

    stack.env.remove("POSTGRES_USER");
    stack.up();
}

#[test]
fn a_failed_start_ends_every_child_initdb_included() {
    // nginx cannot take a `$` in its paths, so its preparation fails at once, while Postgres'
    // initdb (a second or more) is still writing the new cluster.
    let stack = TestStack::new("reap-$dollar");
    let output = stack.xtask(&["up"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without `$`"), "{stderr}");
    let state_dir = stack.state_dir.display().to_string();
    let survivors = processes_naming(&state_dir);
    assert!(
        survivors.is_empty(),
        "processes outlived the failed up: {survivors:?}"
    );
    for left in ["postgres/data", "postgres/data.initdb"] {
        assert!(
            !stack.state_dir.join(left).exists(),
            "{left} was written after the stack was stopped"
        );
    }
}

#[test]
fn a_malformed_env_file_is_named() {
    let mut stack = TestStack::new("dotenv");
    let file = stack.state_dir.with_extension("env");
    std::fs::write(&file, "POSTGRES_DB=amtp\nTHIS IS NOT AN ASSIGNMENT\n").unwrap();
    stack
        .env
        .insert("AMTP_ENV_FILE".into(), file.display().to_string());
    let output = stack.xtask(&["up"]);
    std::fs::remove_file(&file).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{} is malformed at line 2", file.display())),
        "{stderr}"
    );
}

/// `up SERVICE` on a stack that runs only some services: what it asked for (and what that
/// needs) runs, so it succeeds, as Compose's `up -d SERVICE` does; the services nobody asked
/// for stay stopped and fail nothing (`status` still shows them stopped).
#[test]
fn up_of_one_more_service_on_a_partial_stack_succeeds_and_leaves_the_others_stopped() {
    let stack = TestStack::new("partial-up");
    stack.ok(&["up", "valkey"]);
    let up = stack.xtask(&["up", "github-standin"]);
    assert!(up.status.success(), "{}", describe(&up));
    let status = stack.status();
    let health = |name: &str| {
        let services = status["services"].as_array().expect("services");
        let service = services.iter().find(|s| s["name"] == name);
        service.map(|s| s["health"].clone()).unwrap_or_default()
    };
    assert_eq!(health("github-standin"), "healthy", "{status:#}");
    assert_eq!(health("valkey"), "healthy", "{status:#}");
    assert_eq!(health("postgres"), "stopped", "{status:#}");
}

/// The passwords came only from a `.env`, deleted while the stack runs: every command that
/// reaches the stack finds it by its state dir. `status` names the missing password (it needs
/// it to probe), `stop` and `down` work without it, and `down` leaves nothing running.
#[test]
fn a_stack_whose_dotenv_with_the_passwords_was_deleted_is_still_found_and_stopped() {
    let mut stack = TestStack::new("dotenv-deleted");
    let file = stack.state_dir.with_extension("env");
    std::fs::write(
        &file,
        "POSTGRES_PASSWORD=pg-from-dotenv\nVALKEY_PASSWORD=vk-from-dotenv\n",
    )
    .unwrap();
    stack
        .env
        .insert("AMTP_ENV_FILE".into(), file.display().to_string());
    stack.ok(&["up", "valkey", "github-standin"]);
    let pids = stack.all_pids();
    std::fs::remove_file(&file).unwrap();

    let status = stack.xtask(&["status"]);
    let said = describe(&status);
    assert_eq!(status.status.code(), Some(1), "{said}");
    assert!(
        said.contains("runs (supervisor pid") && said.contains("POSTGRES_PASSWORD is not set"),
        "{said}"
    );
    let logs = stack.xtask(&["logs", "--tail", "5", "valkey"]);
    let said = describe(&logs);
    assert!(
        logs.status.success(),
        "logs need only the state dir: {said}"
    );
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("valkey"),
        "{said}"
    );
    stack.ok(&["stop", "github-standin"]);
    let down = stack.xtask(&["down"]);
    let said = describe(&down);
    assert!(
        down.status.success() && said.contains("stack stopped"),
        "{said}"
    );
    assert!(said.contains("POSTGRES_PASSWORD is not set"), "{said}");
    let survivors: Vec<i32> = pids.into_iter().filter(|p| is_alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "down left processes running: {survivors:?}"
    );
}

#[test]
fn status_says_why_a_service_is_not_healthy() {
    let stack = TestStack::new("reason");
    stack.up();
    assert_eq!(stack.status()["schema_version"], 1);
    let valkey = stack.pid("valkey").expect("valkey runs");
    kill(Pid::from_raw(valkey), Signal::SIGKILL).unwrap();
    // Its port taken as soon as it is free: each restart is refused, naming the holder.
    let mut listener = None;
    let taken = wait_for(Duration::from_secs(5), || {
        listener = std::net::TcpListener::bind(("127.0.0.1", stack.port("VALKEY_PORT"))).ok();
        listener.is_some()
    });
    assert!(taken, "valkey's port stayed in use after its end");
    let valkey_row = || {
        let status = stack.status();
        status["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "valkey").cloned())
            .unwrap_or_default()
    };
    let taken_by_us = format!(
        "port {} for valkey is already in use (pid {}",
        stack.port("VALKEY_PORT"),
        std::process::id()
    );
    let said = wait_for(Duration::from_secs(20), || {
        let row = valkey_row();
        row["health"] == "restarting"
            && row["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(&taken_by_us))
    });
    assert!(said, "no reason for valkey: {}", valkey_row());
    let table = stack.xtask(&["status"]);
    assert_eq!(table.status.code(), Some(1), "{}", describe(&table));
    let stdout = String::from_utf8_lossy(&table.stdout);
    // Restarting: the reason is the taken port.
    let line = stdout.lines().find(|l| l.starts_with("valkey is "));
    assert!(
        line.is_some_and(|l| l.contains(&format!(": {taken_by_us}"))),
        "{}",
        describe(&table)
    );
    drop(listener);
}

#[test]
fn up_timings_show_each_start_and_down_stops_dependents_before_what_they_need() {
    let stack = TestStack::new("timings");
    let out = stack.ok(&["up", "--timings"]);
    // One row per unit: its name, what it waited for, then began, spawned, listening, ready
    // (ms since the supervisor started; a task has neither spawn nor port).
    let table = out
        .split_once("\nservice ")
        .unwrap_or_else(|| panic!("no timings table:\n{out}"))
        .1;
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let ms = |field: &str| -> u64 { field.parse().unwrap_or_else(|_| panic!("{field}:\n{out}")) };
    for name in ["postgres", "valkey", "garage", "nginx"] {
        let fields = row(name);
        assert_eq!(fields[1], "-", "{name} waits for nothing:\n{out}");
        let (began, spawned, listening, ready) = (
            ms(&fields[2]),
            ms(&fields[3]),
            ms(&fields[4]),
            ms(&fields[5]),
        );
        assert!(
            began <= spawned && spawned <= listening && listening <= ready,
            "{out}"
        );
    }
    let pgbouncer = row("pgbouncer");
    assert_eq!(pgbouncer[1], "postgres", "{out}");
    assert!(ms(&pgbouncer[2]) >= ms(&row("postgres")[5]), "{out}");
    let migrations = row("migrations");
    assert_eq!(
        (migrations[3].as_str(), migrations[4].as_str()),
        ("-", "-"),
        "{out}"
    );
    let path = out
        .lines()
        .find_map(|line| line.strip_prefix("critical path (ms): "))
        .unwrap_or_else(|| panic!("no critical path:\n{out}"));
    let first = path.split_whitespace().next().unwrap();
    assert_eq!(
        row(first)[1],
        "-",
        "the path begins at a unit that waits for nothing:\n{out}"
    );

    stack.ok(&["down"]);
    let log = std::fs::read_to_string(stack.state_dir.join("logs/supervisor.log")).unwrap();
    let stopped_at = |name: &str| {
        let line = format!("{name}: stopped");
        log.rfind(&line)
            .unwrap_or_else(|| panic!("no {line:?} in the supervisor's log:\n{log}"))
    };
    for (dependent, dependency) in [
        ("pgbouncer", "postgres"),
        ("healthcheck", "postgres"),
        ("healthcheck", "valkey"),
        ("github-mcp", "valkey"),
        ("github-mcp", "otel-collector"),
        ("github-mcp", "github-standin"),
    ] {
        assert!(
            stopped_at(dependent) < stopped_at(dependency),
            "{dependent} stopped after {dependency}:\n{log}"
        );
    }
}
