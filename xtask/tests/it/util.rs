//! A stack of one's own for each test: its own state dir and free ports, driven through the
//! real `xtask` binary, torn down (state deleted) when the test ends, with its logs printed
//! when the test failed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The port variables of the xtask's unit table (`xtask __port-vars`), asked once.
fn port_vars() -> &'static [String] {
    static VARS: OnceLock<Vec<String>> = OnceLock::new();
    VARS.get_or_init(|| {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("__port-vars")
            .output()
            .expect("run xtask __port-vars");
        assert!(output.status.success(), "{}", describe(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| Some(line.split_once('=')?.0.to_owned()))
            .collect()
    })
}

pub struct TestStack {
    pub state_dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl TestStack {
    /// A stack whose state dir name includes `name` (make it long to test socket paths). Each
    /// test gives its own name: the tests of this binary run in parallel, and two stacks in one
    /// state dir would tear each other down, so a name used twice fails the second test.
    pub fn new(name: &str) -> TestStack {
        static NAMES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let fresh = NAMES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
        assert!(
            fresh,
            "two tests use the stack name {name:?}; give each test a name of its own"
        );
        let state_dir =
            std::env::temp_dir().join(format!("amtp-xtask-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state_dir);
        let mut env = BTreeMap::new();
        env.insert("AMTP_STATE_DIR".to_owned(), state_dir.display().to_string());
        for var in port_vars() {
            env.insert(var.clone(), amtp_testkit::free_port().to_string());
        }
        // What `cargo test` built: `watch`'s test edits a source meanwhile.
        env.insert("AMTP_SKIP_BUILD".to_owned(), "1".to_owned());
        // A `.env` of the developer's must not leak into the test.
        env.insert("AMTP_ENV_FILE".to_owned(), "/nonexistent/.env".to_owned());
        TestStack { state_dir, env }
    }

    /// A stack as [`TestStack::new`] makes it, but with `AMTP_PORTS=auto` and no port
    /// variable: its ports come from its state dir's path.
    pub fn with_auto_ports(name: &str) -> TestStack {
        let mut stack = TestStack::new(name);
        for var in port_vars() {
            stack.env.remove(var);
        }
        stack.env.insert("AMTP_PORTS".to_owned(), "auto".to_owned());
        stack
    }

    pub fn port(&self, var: &str) -> u16 {
        self.env[var].parse().unwrap()
    }

    /// `xtask <args>` with this stack's environment, to run or spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command.args(args).envs(&self.env);
        // Nothing of the environment `cargo xtask test` gives the tests (`VALKEY_PORT`, …)
        // stands in for what this stack leaves unset.
        let own = [
            "POSTGRES_PASSWORD",
            "VALKEY_PASSWORD",
            "GITHUB_APP_ID",
            "AMTP_PORTS",
        ];
        for var in own
            .iter()
            .copied()
            .chain(port_vars().iter().map(String::as_str))
        {
            if !self.env.contains_key(var) {
                command.env_remove(var);
            }
        }
        command
    }

    /// Runs `xtask <args>` with this stack's environment.
    pub fn xtask(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run xtask")
    }

    /// Runs `xtask <args>` and fails the test with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.xtask(args);
        assert!(
            output.status.success(),
            "xtask {args:?} failed:\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn up(&self) {
        self.ok(&["up"]);
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let output = self.xtask(&["status", "--json"]);
        serde_json::from_slice(&output.stdout).expect("status --json prints JSON")
    }

    /// A service's entry in `status --json` (`None` while status cannot say).
    pub fn service(&self, service: &str) -> Option<serde_json::Value> {
        let status = self.status();
        let services = status["services"].as_array()?;
        services.iter().find(|s| s["name"] == service).cloned()
    }

    /// Pid of a service according to `status`.
    pub fn pid(&self, service: &str) -> Option<i32> {
        self.service(service)?["pid"].as_i64().map(|p| p as i32)
    }

    /// Every process of the stack: the supervisor and each service's process group.
    pub fn all_pids(&self) -> Vec<i32> {
        let status = self.status();
        let mut pids: Vec<i32> = vec![status["supervisor_pid"].as_i64().unwrap() as i32];
        for service in status["services"].as_array().unwrap() {
            if let Some(pid) = service["pid"].as_i64() {
                pids.extend(group_members(pid as i32));
            }
        }
        pids
    }

    /// Reads a variable of `xtask env --format dotenv`.
    pub fn env_var(&self, key: &str) -> String {
        let dotenv = self.ok(&["env", "--format", "dotenv"]);
        dotenv
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing from env:\n{dotenv}"))
            .to_owned()
    }

    pub fn postgres(&self) -> postgres::Client {
        postgres::Client::connect(&self.env_var("DIRECT_DATABASE_URL"), postgres::NoTls)
            .expect("connect to postgres")
    }

    fn dump_logs(&self) {
        let Ok(entries) = fs::read_dir(self.state_dir.join("logs")) else {
            return;
        };
        for entry in entries.flatten() {
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- {} (last 30 lines)", entry.path().display());
            for line in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        let _ = self.xtask(&["down", "--volumes"]);
        let _ = fs::remove_dir_all(&self.state_dir);
    }
}

/// The repository root: the xtask crate lives in `<root>/xtask`.
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_owned()
}

pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| p.pgid == pgid)
        .map(|p| p.pid)
        .collect()
}

/// A live process still exists (zombies, which a non-reaping init keeps, do not count).
pub fn is_alive(pid: i32) -> bool {
    processes().iter().any(|p| p.pid == pid)
}

pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Live processes whose command line mentions `text`, as `pid: command line`.
pub fn processes_naming(text: &str) -> Vec<String> {
    processes()
        .into_iter()
        .filter_map(|p| {
            let cmdline = fs::read(format!("/proc/{}/cmdline", p.pid)).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(text)
                .then(|| format!("{}: {cmdline}", p.pid))
        })
        .collect()
}

struct Proc {
    pid: i32,
    pgid: i32,
}

fn processes() -> Vec<Proc> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
            (fields[0] != "Z").then(|| Proc {
                pid,
                pgid: fields[2].parse().unwrap_or(0),
            })
        })
        .collect()
}

/// Held while the workspace's app binaries must stay as `cargo test` built them: by `watch`'s
/// test, which edits an app and rebuilds it in the shared target dir, and by the tests that
/// compare a stack's processes across a converging `up` (which restarts an app whose binary
/// changed, as it should).
pub fn binaries_unchanged() -> MutexGuard<'static, ()> {
    static BINARIES: Mutex<()> = Mutex::new(());
    BINARIES.lock().unwrap_or_else(PoisonError::into_inner)
}
