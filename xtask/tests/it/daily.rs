//! The daily loop on a running stack: restart, stop and start one service, start a subset,
//! a second `up` that restarts only what changed, `watch`, and the control socket's owner
//! check. Each test runs its own stack.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{TestStack, binaries_unchanged, describe, repo_root, wait_for};

/// Each service's pid, by name (`None` for one not running).
fn pids(stack: &TestStack) -> BTreeMap<String, Option<i64>> {
    stack.status()["services"]
        .as_array()
        .expect("status lists services")
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["pid"].as_i64()))
        .collect()
}

fn health(stack: &TestStack, service: &str) -> String {
    let found = stack
        .service(service)
        .unwrap_or_else(|| panic!("{service} missing from status: {}", stack.status()));
    found["health"].as_str().unwrap().to_owned()
}

/// Asserts that exactly the `changed` services have another pid in `after`.
fn only_these_changed(
    before: &BTreeMap<String, Option<i64>>,
    after: &BTreeMap<String, Option<i64>>,
    changed: &[&str],
) {
    for (name, pid) in before {
        if changed.contains(&name.as_str()) {
            assert_ne!(after[name], *pid, "{name} was not restarted");
            assert!(after[name].is_some(), "{name} does not run");
        } else {
            assert_eq!(after[name], *pid, "{name} was restarted too");
        }
    }
}

#[test]
fn restart_stop_and_start_act_on_one_service_and_leave_the_others() {
    let stack = TestStack::new("restart");
    stack.up();
    let before = pids(&stack);

    let restarted = stack.ok(&["restart", "healthcheck"]);
    assert!(
        restarted.contains("restarted healthcheck in"),
        "{restarted}"
    );
    let after = pids(&stack);
    only_these_changed(&before, &after, &["healthcheck"]);
    assert_eq!(health(&stack, "healthcheck"), "healthy");

    stack.ok(&["restart", "postgres"]);
    only_these_changed(&after, &pids(&stack), &["postgres"]);
    assert_eq!(health(&stack, "postgres"), "healthy");
    assert_eq!(health(&stack, "pgbouncer"), "healthy");

    let stopped = stack.ok(&["stop", "valkey"]);
    assert!(stopped.contains("stopped valkey"), "{stopped}");
    assert_eq!(pids(&stack)["valkey"], None);
    // That it stays stopped however long (no crash-restart) is the supervisor's unit test
    // `a_stopped_service_stays_stopped_until_start_which_brings_its_dependencies`.
    assert_eq!(health(&stack, "valkey"), "stopped");
    assert_eq!(stack.xtask(&["status"]).status.code(), Some(1));

    stack.ok(&["start", "valkey"]);
    assert_eq!(health(&stack, "valkey"), "healthy");
    assert!(
        wait_for(Duration::from_secs(10), || health(&stack, "healthcheck")
            == "healthy"),
        "the healthcheck did not see valkey come back"
    );

    let unknown = stack.xtask(&["restart", "mysql"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("healthcheck"),
        "the error lists the services: {}",
        describe(&unknown)
    );
}

#[test]
fn up_service_starts_only_it_and_its_dependencies_and_a_second_up_restarts_only_what_changed() {
    let _binaries = binaries_unchanged();
    let mut stack = TestStack::new("subset");
    stack.ok(&["up", "pgbouncer"]);
    let subset = pids(&stack);
    for (name, pid) in &subset {
        let wanted = name == "postgres" || name == "pgbouncer";
        assert_eq!(pid.is_some(), wanted, "{name}: {pid:?}");
    }
    assert_eq!(health(&stack, "nginx"), "stopped");
    let one = stack.ok(&["psql", "--", "-X", "-A", "-t", "-c", "select 1"]);
    assert_eq!(one.trim(), "1");
    let direct = stack.ok(&["psql", "--direct", "--", "-X", "-A", "-t", "-c", "select 2"]);
    assert_eq!(direct.trim(), "2");

    let all = stack.ok(&["up"]);
    assert!(all.contains("nginx: starting"), "{all}");
    let before = pids(&stack);
    assert!(
        before.values().filter(|p| p.is_none()).count() == 1,
        "{before:?}"
    );
    assert_eq!(before["postgres"], subset["postgres"], "postgres restarted");

    let nothing = stack.ok(&["up"]);
    assert!(nothing.contains("nothing to do"), "{nothing}");
    only_these_changed(&before, &pids(&stack), &[]);

    // Nothing depends on PgBouncer's port: it alone starts again, on the new port.
    let port = amtp_testkit::free_port();
    stack.env.insert("PGBOUNCER_PORT".into(), port.to_string());
    let moved = stack.ok(&["up"]);
    assert!(
        moved.contains("pgbouncer: restarting: PGBOUNCER_PORT"),
        "{moved}"
    );
    let after = pids(&stack);
    only_these_changed(&before, &after, &["pgbouncer"]);
    let one = stack.ok(&["psql", "--", "-X", "-A", "-t", "-c", "select 1"]);
    assert_eq!(one.trim(), "1");

    stack.env.insert(
        "PGBOUNCER_PORT".into(),
        amtp_testkit::free_port().to_string(),
    );
    let kept = stack.ok(&["up", "--no-recreate"]);
    assert!(kept.contains("pgbouncer: not recreated"), "{kept}");
    only_these_changed(&after, &pids(&stack), &[]);

    // A restart that fails says why, with the end of the service's log.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    stack.env.insert("PGBOUNCER_PORT".into(), port.to_string());
    let failed = stack.xtask(&["up"]);
    let said = describe(&failed);
    assert!(!failed.status.success(), "{said}");
    let refused = format!("port {port} for pgbouncer is already in use");
    assert!(said.contains(&refused), "{said}");
    assert!(said.contains("last lines of"), "{said}");
}

/// `python3`, as another account, connecting to the socket and sending a request.
fn connect_as_nobody(socket: &str) -> std::process::Output {
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX)\n\
        try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print('connect:', e.strerror); sys.exit(0)\n\
        try:\n    s.sendall(b'{\"stop\":{\"services\":[\"valkey\"]}}\\n')\nexcept OSError:\n    pass\n\
        print(s.makefile().readline())\n";
    Command::new("python3")
        .args(["-c", script, socket])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run python3 (apt-get install python3)")
}

#[test]
fn the_control_socket_refuses_another_account() {
    let stack = TestStack::new("control");
    stack.ok(&["up", "valkey"]);
    let socket = stack.status()["control_socket"]
        .as_str()
        .expect("status names the control socket")
        .to_owned();
    let output = connect_as_nobody(&socket);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("connect: Permission denied"),
        "{}",
        describe(&output)
    );

    // Even with the file modes opened up, the supervisor asks the kernel who calls.
    let dir = PathBuf::from(&socket).parent().unwrap().to_owned();
    use std::os::unix::fs::PermissionsExt;
    for dir in [dir.parent().unwrap(), &dir] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let output = connect_as_nobody(&socket);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("refused: this stack belongs to uid"),
        "{}",
        describe(&output)
    );
    assert_eq!(
        health(&stack, "valkey"),
        "healthy",
        "the request was carried out"
    );
}

/// Puts a file back as it was when the test ends, however it ends.
struct Restore {
    path: PathBuf,
    text: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        fs::write(&self.path, &self.text).expect("restore the edited source");
    }
}

/// `xtask watch`, killed when the test ends however it ends (before the source is restored).
struct Watching(Child);

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `watch` has printed `text` (its output goes to a file) and returns all it
/// printed; fails the test with that output after the timeout.
fn watch_says(out: &PathBuf, text: &str) -> String {
    let printed = || fs::read_to_string(out).unwrap_or_default();
    // A first build of the apps after a change can take minutes on a small machine.
    let said = wait_for(Duration::from_secs(300), || printed().contains(text));
    assert!(said, "watch never said {text:?}:\n{}", printed());
    printed()
}

#[test]
fn watch_rebuilds_and_restarts_the_healthcheck_and_keeps_it_after_a_broken_edit() {
    let _binaries = binaries_unchanged();
    let stack = TestStack::new("watch");
    stack.ok(&["up", "healthcheck"]);
    let path = repo_root().join("apps/healthcheck/src/main.rs");
    let text = fs::read_to_string(&path).unwrap();
    let _restore = Restore {
        path: path.clone(),
        text: text.clone(),
    };
    let out = stack.state_dir.join("watch.out");
    let file = fs::File::create(&out).unwrap();
    let mut watch = Watching(
        stack
            .command(&["watch"])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    watch_says(&out, "watching");
    let before = pids(&stack)["healthcheck"];

    // A string the binary carries, new at each run (a binary left by an earlier run may carry
    // an older one): the build changes its bytes.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let edited = text.replace(
        r#"tracing::info!("stopped");"#,
        &format!(r#"tracing::info!("stopped (watch test {nonce})");"#),
    );
    assert_ne!(edited, text, "the test's edit no longer applies to main.rs");
    fs::write(&path, &edited).unwrap();
    let said = watch_says(&out, "serving");
    assert!(
        said.contains("healthcheck: restarting: its binary was rebuilt"),
        "{said}"
    );
    let rebuilt = pids(&stack)["healthcheck"];
    assert_ne!(rebuilt, before, "{said}");
    assert_eq!(health(&stack, "healthcheck"), "healthy");

    fs::write(&path, format!("{edited}\nfn broken( {{\n")).unwrap();
    let said = watch_says(&out, "the build failed");
    assert!(
        said.contains("unclosed delimiter"),
        "the compiler's error is shown: {said}"
    );
    assert_eq!(
        pids(&stack)["healthcheck"],
        rebuilt,
        "a broken build replaced the app"
    );
    assert_eq!(health(&stack, "healthcheck"), "healthy");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let ended = watch.0.wait().unwrap();
    assert!(ended.success(), "watch ended with {ended}");
    assert_eq!(
        health(&stack, "healthcheck"),
        "healthy",
        "Ctrl-C stopped the stack"
    );
}

/// `up` in the background, its output kept.
fn spawn_up(stack: &TestStack) -> Child {
    stack
        .command(&["up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn is_starting(stack: &TestStack) -> bool {
    stack.status()["phase"] == "starting"
}

#[test]
fn a_second_up_during_the_start_waits_for_it_and_a_down_stops_it() {
    let stack = TestStack::new("concurrent");
    let first = spawn_up(&stack);
    assert!(
        wait_for(Duration::from_secs(30), || is_starting(&stack)),
        "the first up never showed a starting stack"
    );
    let second = stack.xtask(&["up"]);
    let said = describe(&second);
    assert!(second.status.success(), "{said}");
    assert!(said.contains("waiting until it is ready"), "{said}");
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", describe(&first));
    stack.ok(&["down", "--volumes"]);

    // Again from nothing (initdb makes the start long enough), and `down` in the middle.
    let starting = spawn_up(&stack);
    assert!(wait_for(Duration::from_secs(30), || is_starting(&stack)));
    let down = stack.ok(&["down"]);
    assert!(down.contains("it was still starting"), "{down}");
    let starting = starting.wait_with_output().unwrap();
    let said = describe(&starting);
    assert!(!starting.status.success(), "{said}");
    assert!(
        said.contains("stopped while it was starting, by `cargo xtask down`"),
        "{said}"
    );
    assert_eq!(
        stack.xtask(&["status"]).status.code(),
        Some(3),
        "a process survived"
    );
}
