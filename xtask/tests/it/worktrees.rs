//! Stacks per worktree (issue 22): two stacks with `AMTP_PORTS=auto` side by side, each
//! command reaching its own; a new `POSTGRES_DB`, a changed `POSTGRES_PASSWORD` and a new
//! `POSTGRES_USER` on an existing cluster; `wait` for a stack started in the background.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::util::{TestStack, describe};

/// Each service's port as `status --json` reports it.
fn ports(stack: &TestStack) -> BTreeMap<String, u16> {
    let status = stack.status();
    status["services"]
        .as_array()
        .expect("status --json lists the services")
        .iter()
        .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["port"].as_u64()? as u16)))
        .collect()
}

/// `psql [--direct] -- -X -At -c SQL`'s output, trimmed.
fn sql(stack: &TestStack, direct: bool, query: &str) -> String {
    let mut args = vec!["psql"];
    if direct {
        args.push("--direct");
    }
    args.extend(["--", "-X", "-At", "-c", query]);
    stack.ok(&args).trim().to_owned()
}

#[test]
fn two_stacks_with_auto_ports_run_at_once_and_each_command_reaches_its_own() {
    let a = TestStack::with_auto_ports("auto-ports-a");
    let up = a.ok(&["up", "pgbouncer", "valkey"]);
    assert!(up.contains("AMTP_PORTS=auto: ports "), "{up}");

    // `b` says `AMTP_PORTS=auto` in its `.env`, and finds a port of its own block taken.
    // Declared first, dropped last: `b`'s teardown reads its passwords from it.
    let dotenv = tempfile::NamedTempFile::new().unwrap();
    let mut b = TestStack::with_auto_ports("auto-ports-b");
    std::fs::write(
        dotenv.path(),
        "AMTP_PORTS=auto\nPOSTGRES_PASSWORD=b-pg\nVALKEY_PASSWORD=b-vk\n",
    )
    .unwrap();
    b.env.remove("AMTP_PORTS");
    b.env
        .insert("AMTP_ENV_FILE".into(), dotenv.path().display().to_string());
    let home_valkey: u16 = b.env_var("VALKEY_PORT").parse().unwrap();
    let held = std::net::TcpListener::bind(("127.0.0.1", home_valkey)).expect("hold a port");
    let up = b.ok(&["up", "pgbouncer", "valkey"]);
    assert!(
        up.contains(&format!("(port {home_valkey} is already in use"))
            && up.contains("for VALKEY_PORT); trying the next"),
        "{up}"
    );
    drop(held);
    let (ports_a, ports_b) = (ports(&a), ports(&b));
    assert_ne!(ports_b["valkey"], home_valkey);
    for service in ["postgres", "pgbouncer", "valkey"] {
        let (port_a, port_b) = (ports_a[service], ports_b[service]);
        assert_ne!(port_a, port_b, "{service}: both on {port_a}");
        for port in [port_a, port_b] {
            assert!((20000..32000).contains(&port), "{service} on {port}");
        }
    }

    // Each psql reaches its own cluster, through PgBouncer and straight.
    sql(&a, false, "create table only_in_a (x int)");
    assert_eq!(
        sql(&a, true, "select to_regclass('only_in_a') is not null"),
        "t"
    );
    assert_eq!(
        sql(&b, false, "select to_regclass('only_in_a') is null"),
        "t"
    );
    assert_eq!(
        sql(&b, true, "select inet_server_port()"),
        ports_b["postgres"].to_string()
    );
    assert_eq!(
        a.ok(&["valkey-cli", "--", "SET", "owner", "a"]).trim(),
        "OK"
    );
    assert_eq!(a.ok(&["valkey-cli", "--", "GET", "owner"]).trim(), "a");
    assert_eq!(b.ok(&["valkey-cli", "--", "EXISTS", "owner"]).trim(), "0");

    // The running stack's ports win over what the configuration says now, in every command:
    // here `AMTP_PORTS` is gone and `POSTGRES_PORT` names another port.
    let reconfigured = |args: &[&str]| {
        let output = a
            .command(args)
            .env_remove("AMTP_PORTS")
            .env("POSTGRES_PORT", amtp_testkit::free_port().to_string())
            .output()
            .expect("run xtask");
        assert!(output.status.success(), "{}", describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let port = reconfigured(&[
        "psql",
        "--direct",
        "--",
        "-X",
        "-At",
        "-c",
        "select inet_server_port()",
    ]);
    assert_eq!(port.trim(), ports_a["postgres"].to_string());
    let env = reconfigured(&["env", "--export"]);
    for (var, service) in [
        ("DIRECT_DATABASE_URL", "postgres"),
        ("DATABASE_URL", "pgbouncer"),
    ] {
        let line = env
            .lines()
            .find(|line| line.starts_with(&format!("export {var}=")))
            .unwrap_or_else(|| panic!("no {var} in\n{env}"));
        assert!(line.contains(&format!(":{}/", ports_a[service])), "{line}");
    }
    assert!(
        env.contains(&format!("export VALKEY_PORT='{}'", ports_a["valkey"])),
        "{env}"
    );
    reconfigured(&["wait", "--timeout", "30s"]);
}

#[test]
fn a_new_postgres_db_is_created_at_up_and_migrated_without_losing_the_old_one() {
    let mut stack = TestStack::new("new-database");
    stack.ok(&["up", "migrations"]);
    sql(
        &stack,
        true,
        "create table kept (x int); insert into kept values (42)",
    );
    stack.ok(&["down"]);

    stack.env.insert("POSTGRES_DB".into(), "second".into());
    stack.ok(&["up", "migrations"]);
    assert_eq!(sql(&stack, true, "select current_database()"), "second");
    let applied = sql(
        &stack,
        true,
        "select count(*) from flyway_schema_history where success",
    );
    assert!(applied.parse::<u32>().unwrap() > 0, "{applied}");
    let kept = stack.ok(&[
        "psql",
        "--direct",
        "--",
        "-X",
        "-At",
        "-d",
        "amtp",
        "-c",
        "select x from kept",
    ]);
    assert_eq!(kept.trim(), "42");

    // On a running stack too: `up` restarts Postgres, which creates it, and the migrations run
    // again.
    stack.env.insert("POSTGRES_DB".into(), "third".into());
    let converged = stack.ok(&["up", "migrations"]);
    assert!(converged.contains("postgres: restarting"), "{converged}");
    assert!(
        converged.contains("migrations: running again"),
        "{converged}"
    );
    assert_eq!(sql(&stack, true, "select current_database()"), "third");
    let applied = sql(&stack, true, "select count(*) from flyway_schema_history");
    assert!(applied.parse::<u32>().unwrap() > 0, "{applied}");
}

#[test]
fn a_changed_postgres_password_is_given_to_the_role_at_the_next_up() {
    let mut stack = TestStack::new("new-password");
    stack
        .env
        .insert("POSTGRES_PASSWORD".into(), "first-password".into());
    stack.ok(&["up", "pgbouncer"]);
    sql(
        &stack,
        true,
        "create table kept (x int); insert into kept values (7)",
    );
    stack.ok(&["down"]);

    stack
        .env
        .insert("POSTGRES_PASSWORD".into(), "second-password".into());
    stack.ok(&["up", "pgbouncer"]);
    assert_eq!(sql(&stack, false, "select x from kept"), "7");
    assert_eq!(sql(&stack, true, "select x from kept"), "7");
    let url = stack.env_var("DIRECT_DATABASE_URL");
    let old = url.replace("second-password", "first-password");
    let refused = postgres::Client::connect(&old, postgres::NoTls).map(|_| ());
    let refused = refused.expect_err("the old password still logs in");
    assert!(
        format!("{refused:?}").contains("password authentication failed"),
        "{refused:?}"
    );
    let log = std::fs::read_to_string(stack.state_dir.join("logs/supervisor.log")).unwrap();
    assert!(log.contains("POSTGRES_PASSWORD changed"), "{log}");
    assert!(!log.contains("second-password"), "the password in the log");

    // On a running stack: `up` restarts what uses it, with the role's password set first.
    stack
        .env
        .insert("POSTGRES_PASSWORD".into(), "third-password".into());
    let converged = stack.ok(&["up", "pgbouncer"]);
    assert!(converged.contains("pgbouncer: restarting"), "{converged}");
    assert_eq!(sql(&stack, false, "select x from kept"), "7");
}

#[test]
fn a_new_postgres_user_is_created_at_the_next_up_and_owns_the_database() {
    let mut stack = TestStack::new("new-user");
    stack.ok(&["up", "pgbouncer"]);
    sql(
        &stack,
        true,
        "create table kept (x int); insert into kept values (5)",
    );

    // On a running stack: `up` restarts Postgres, the role made before it starts.
    stack
        .env
        .insert("POSTGRES_USER".into(), "second_user".into());
    let converged = stack.ok(&["up", "pgbouncer"]);
    assert!(converged.contains("postgres: restarting"), "{converged}");
    assert_eq!(sql(&stack, false, "select current_user"), "second_user");
    assert_eq!(sql(&stack, false, "select x from kept"), "5");
    let standing = "select rolsuper and rolcanlogin, pg_get_userbyid(datdba) from pg_roles, \
                    pg_database where rolname = current_user and datname = current_database()";
    assert_eq!(sql(&stack, true, standing), "t|second_user");
    let log = std::fs::read_to_string(stack.state_dir.join("logs/supervisor.log")).unwrap();
    assert!(log.contains("POSTGRES_USER changed"), "{log}");

    // Recorded: the next start finds the role made, and the first one is kept.
    stack.ok(&["down"]);
    stack.ok(&["up", "pgbouncer"]);
    let log = std::fs::read_to_string(stack.state_dir.join("logs/supervisor.log")).unwrap();
    assert_eq!(log.matches("POSTGRES_USER changed").count(), 1, "{log}");
    let first = "select count(*) from pg_roles where rolname = 'amtp'";
    assert_eq!(sql(&stack, true, first), "1");
}

#[test]
fn wait_follows_a_stack_started_in_the_background_and_names_a_stopped_service() {
    let stack = TestStack::new("wait");
    let mut up = stack
        .command(&["up", "pgbouncer", "valkey"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start xtask up");
    let waited = stack.xtask(&["wait", "--timeout", "180s"]);
    assert!(up.wait().expect("wait for up").success(), "up failed");
    assert!(waited.status.success(), "{}", describe(&waited));
    let said = String::from_utf8_lossy(&waited.stdout);
    assert!(said.contains("ready: postgres"), "{said}");
    assert!(said.contains("valkey"), "{said}");
    assert!(
        !said.contains("nginx"),
        "not started, not waited for: {said}"
    );

    stack.ok(&["stop", "valkey"]);
    let began = std::time::Instant::now();
    let stopped = stack.xtask(&["wait", "valkey", "postgres", "--timeout", "60s"]);
    assert!(!stopped.status.success(), "{}", describe(&stopped));
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        stderr.contains("valkey is stopped; start it with `cargo xtask start valkey`"),
        "{}",
        describe(&stopped)
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "it waited for nothing"
    );
    stack.ok(&["wait", "postgres", "pgbouncer", "--timeout", "10s"]);
}

#[test]
fn wait_fails_at_once_when_the_start_in_the_background_fails() {
    let stack = TestStack::new("wait-failed");
    let port = stack.port("POSTGRES_PORT");
    let _held = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold postgres' port");
    let mut up = stack
        .command(&["up", "pgbouncer"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start xtask up");
    let began = std::time::Instant::now();
    let waited = stack.xtask(&["wait", "--timeout", "120s"]);
    assert!(!up.wait().expect("wait for up").success(), "up started");
    assert!(!waited.status.success(), "{}", describe(&waited));
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(
        stderr.contains("the stack did not start")
            && stderr.contains(&format!("port {port} for postgres is already in use")),
        "{}",
        describe(&waited)
    );
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "it waited for the timeout"
    );
}
