//! `cargo xtask ui` in a real terminal: tmux runs it on a stack of the test's own, the test
//! reads the screen with `capture-pane` and types with `send-keys`, as a person would.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::{TestStack, describe, wait_for};

/// A tmux server of the test's own (its own socket, no configuration file), with one pane
/// running `xtask ui`; killed, socket and all, when dropped.
struct Tmux {
    socket: PathBuf,
    /// Where the pane's shell writes the view's exit code once it has exited.
    exit_file: PathBuf,
}

impl Tmux {
    /// `xtask ui` with the stack's environment in a `width`×`height` pane.
    fn start(stack: &TestStack, width: u16, height: u16) -> Tmux {
        match Command::new("tmux").arg("-V").output() {
            Ok(output) if output.status.success() => {}
            _ => panic!("tmux is missing: apt-get install tmux (the view is tested in it)"),
        }
        let socket = std::env::temp_dir().join(format!("amtp-ui-tmux-{}.sock", std::process::id()));
        let exit_file = socket.with_extension("exit");
        let _ = std::fs::remove_file(&exit_file);
        // The view runs under sh, which writes its exit code to a file: tmux's own record of
        // how a pane's program ended (`#{pane_dead_status}`) was sometimes never filled in,
        // the program left a zombie that the tmux server had not reaped seconds later.
        let mut program = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("\"$@\"; echo $? > '{}'", exit_file.display()),
            "sh".to_owned(),
        ];
        let tmux = Tmux { socket, exit_file };
        // The pane's program gets the stack's variables through env(1) (the server's own
        // environment is the test's), without the secrets `TestStack::command` leaves out.
        program.push("env".to_owned());
        for secret in ["POSTGRES_PASSWORD", "VALKEY_PASSWORD", "GITHUB_APP_ID"] {
            if !stack.env.contains_key(secret) {
                program.extend(["-u".to_owned(), secret.to_owned()]);
            }
        }
        program.extend(
            stack
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}")),
        );
        program.extend([env!("CARGO_BIN_EXE_xtask").to_owned(), "ui".to_owned()]);
        let (width, height) = (width.to_string(), height.to_string());
        let mut args = vec!["new-session", "-d", "-s", "ui", "-x", &width, "-y", &height];
        args.extend(program.iter().map(String::as_str));
        // Kept after it exits, to read how it ended.
        args.extend([";", "set-option", "-t", "ui", "remain-on-exit", "on"]);
        tmux.ok(&args);
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "tmux {args:?}:\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "ui"])
    }

    fn press(&self, key: &str) {
        self.ok(&["send-keys", "-t", "ui", key]);
    }

    /// The view's exit code once it has exited (`0` after `q`), else empty.
    fn ended(&self) -> String {
        std::fs::read_to_string(&self.exit_file)
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Waits until `found` finds something on the screen; fails with the last screen.
    fn wait_for<T>(&self, what: &str, timeout: Duration, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if let Some(found) = found(&screen) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on the screen within {timeout:?} (view: {}):\n{screen}",
                self.ended()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.exit_file);
    }
}

/// A service's row of the table: its state, pid and health words.
fn row<'a>(screen: &'a str, service: &str) -> Option<(&'a str, Option<i64>, &'a str)> {
    let line = screen
        .lines()
        .find(|line| line.split_whitespace().next() == Some(service))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    Some((fields[1], fields[2].parse().ok(), *fields.last()?))
}

#[test]
fn the_view_restarts_healthcheck_with_one_key_and_quitting_leaves_the_stack_running() {
    let began = Instant::now();
    let stack = TestStack::new("ui-tmux");
    let piped = stack.xtask(&["ui"]);
    assert!(
        !piped.status.success()
            && String::from_utf8_lossy(&piped.stderr).contains("needs a terminal"),
        "{}",
        describe(&piped)
    );
    stack.up();
    let tmux = Tmux::start(&stack, 100, 30);
    let before = tmux.wait_for(
        "healthy healthcheck",
        Duration::from_secs(20),
        |screen| match row(screen, "healthcheck") {
            Some(("ready", Some(pid), "healthy")) => Some(pid),
            _ => None,
        },
    );
    assert_eq!(
        Some(before as i32),
        stack.pid("healthcheck"),
        "the table's pid is status's"
    );
    let screen = tmux.screen();
    for service in stack.status()["services"].as_array().unwrap() {
        let name = service["name"].as_str().unwrap();
        assert!(
            row(&screen, name).is_some(),
            "{name} is not in the table:\n{screen}"
        );
    }

    // Down the table until the log pane follows the healthcheck's log.
    // Each press waits for the log pane to follow the next service: the screen changes on its
    // own too (uptimes, CPU), and a second press before the first took effect skipped a row.
    let followed = |screen: &str| {
        screen
            .lines()
            .find_map(|line| line.split("log: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    for _ in 0..stack.status()["services"].as_array().unwrap().len() {
        let selected = followed(&tmux.screen());
        if selected.as_deref() == Some("healthcheck") {
            break;
        }
        tmux.press("j");
        tmux.wait_for("the next service", Duration::from_secs(5), |screen| {
            (followed(screen) != selected).then_some(())
        });
    }
    tmux.wait_for("the healthcheck's log", Duration::from_secs(5), |screen| {
        screen.contains("log: healthcheck").then_some(())
    });

    tmux.press("r");
    let after = tmux.wait_for(
        "a new healthcheck",
        Duration::from_secs(30),
        |screen| match row(screen, "healthcheck") {
            Some(("ready", Some(pid), "healthy")) if pid != before => Some(pid),
            _ => None,
        },
    );
    assert_eq!(
        Some(after as i32),
        stack.pid("healthcheck"),
        "status --json has the new pid"
    );
    tmux.wait_for("the restart's outcome", Duration::from_secs(10), |screen| {
        screen
            .contains("restart healthcheck: done in")
            .then_some(())
    });

    tmux.press("q");
    assert!(
        wait_for(Duration::from_secs(5), || tmux.ended() == "0"),
        "the view did not exit with 0 on q ({}):\n{}",
        tmux.ended(),
        tmux.screen()
    );
    let status = stack.xtask(&["status"]);
    assert!(
        status.status.success(),
        "the stack is not healthy after the view:\n{}",
        describe(&status)
    );
    assert_eq!(stack.pid("healthcheck"), Some(after as i32));
    eprintln!(
        "the view's test took {:.1} s",
        began.elapsed().as_secs_f64()
    );
}
