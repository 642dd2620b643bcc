//! Issue 17's faults of state and data, each on a stack of its own: the supervisor or the
//! xtask SIGKILLed at chosen points of a cold `up`, of the migrations and of `reset` (this
//! file); corrupt or foreign state (`corrupt`); a full disk (`disk`). Every kill point is a
//! state the test waits for (a directory initdb makes, a unit's status, an index left
//! INVALID), never a sleep. After each: no process or listener within a few seconds, the
//! next `up` completes with every migration applied once, `verify` passes (Garage's bucket,
//! key and lifecycle rule included), and no run leaves Postgres' shared memory behind.

mod corrupt;
mod disk;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cancel::{listening_ports, migrations_applied_once, wait_with_deadline};
use crate::util::{TestStack, describe, processes_naming, wait_for};

/// How long the stack may take to be gone after its supervisor was killed.
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// `<state>/run/state.json` as the supervisor last wrote it.
fn run_state(stack: &TestStack) -> Option<serde_json::Value> {
    let text = fs::read_to_string(stack.state_dir.join("run/state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A unit's status in the state file (`starting`, `ready`, ...).
fn unit_status(stack: &TestStack, unit: &str) -> Option<String> {
    let state = run_state(stack)?;
    let units = state["units"].as_array()?;
    let entry = units.iter().find(|u| u["name"] == unit)?;
    Some(entry["status"].as_str()?.to_owned())
}

fn spawn(stack: &TestStack, args: &[&str]) -> Child {
    stack
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xtask")
}

/// SIGKILLs the supervisor the state file names, then expects every process and listener of
/// the stack gone within [`GONE_WITHIN`] (the guardian's work).
fn kill_supervisor(stack: &TestStack, at: &str) {
    let pid = run_state(stack)
        .and_then(|state| state["supervisor"]["pid"].as_i64())
        .unwrap_or_else(|| panic!("{at}: no supervisor in the state file"));
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL the supervisor");
    expect_nothing_left(stack, at);
}

fn expect_nothing_left(stack: &TestStack, at: &str) {
    let dir = stack.state_dir.display().to_string();
    let gone = wait_for(GONE_WITHIN, || {
        processes_naming(&dir).is_empty() && listening_ports(stack).is_empty()
    });
    assert!(
        gone,
        "{at}: {GONE_WITHIN:?} after the kill, processes {:?}, listeners {:?}",
        processes_naming(&dir),
        listening_ports(stack)
    );
}

/// Fails the test if any output or log says a panic.
pub(crate) fn no_panic(stack: &TestStack, outputs: &[&Output]) {
    for output in outputs {
        let said = describe(output);
        assert!(!said.contains("panicked at"), "a panic:\n{said}");
    }
    let Ok(logs) = fs::read_dir(stack.state_dir.join("logs")) else {
        return;
    };
    for log in logs.flatten() {
        let text = String::from_utf8_lossy(&fs::read(log.path()).unwrap_or_default()).into_owned();
        assert!(
            !text.contains("panicked at"),
            "a panic in {}",
            log.path().display()
        );
    }
}

/// The System V segments nobody is attached to that Postgres made for the directory `dir`:
/// their key is its inode (the next ones if taken), as `ipcs -m` shows them with nattch 0.
fn orphaned_segments(inode: u64) -> Vec<i64> {
    let table = fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    let first = inode as u32 as i32 as i64;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let key: i64 = fields.first()?.parse().ok()?;
            let shmid: i64 = fields.get(1)?.parse().ok()?;
            ((first..first + 8).contains(&key) && *fields.get(6)? == "0").then_some(shmid)
        })
        .collect()
}

fn segment_exists(shmid: i64) -> bool {
    let table = fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    table
        .lines()
        .skip(1)
        .any(|line| line.split_whitespace().nth(1) == Some(shmid.to_string().as_str()))
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .ino()
}

#[test]
fn a_supervisor_killed_during_initdb_or_garage_s_bootstrap_leaves_nothing_and_up_completes() {
    let stack = TestStack::new("faults-kill-cold");
    let mut outputs = Vec::new();

    // 1. During initdb: the scratch cluster exists only while initdb runs.
    let up = spawn(&stack, &["up"]);
    let scratch = stack.state_dir.join("postgres/data.initdb");
    let mut scratch_inode = None;
    assert!(
        wait_for(Duration::from_secs(60), || {
            scratch_inode = fs::metadata(&scratch).ok().map(|m| m.ino());
            scratch_inode.is_some()
        }),
        "initdb never started"
    );
    let scratch_inode = scratch_inode.expect("seen");
    kill_supervisor(&stack, "killed during initdb");
    outputs.push(wait_with_deadline(up, Duration::from_secs(30)));
    let left_by_initdb = orphaned_segments(scratch_inode);

    // 2. `reset` after that, then a cold `up` killed while Garage starts (its probe, then the
    //    bootstrap of its layout, bucket, key and lifecycle rule).
    outputs.push(stack.xtask(&["reset"]));
    for shmid in &left_by_initdb {
        assert!(
            !segment_exists(*shmid),
            "segment {shmid} of the killed initdb outlived reset"
        );
    }
    let up = spawn(&stack, &["up"]);
    assert!(
        wait_for(Duration::from_secs(60), || unit_status(&stack, "garage")
            .as_deref()
            == Some("starting")),
        "garage never started"
    );
    kill_supervisor(&stack, "killed while garage started");
    outputs.push(wait_with_deadline(up, Duration::from_secs(30)));

    // 3. The next `up` completes: each migration once, the contract (bucket, key, lifecycle
    //    rule) whole.
    stack.up();
    migrations_applied_once(&stack);
    stack.ok(&["verify"]);
    let outputs: Vec<&Output> = outputs.iter().collect();
    no_panic(&stack, &outputs);
}

#[test]
fn an_up_killed_while_it_follows_the_start_leaves_the_stack_starting_and_the_next_up_waits() {
    let stack = TestStack::new("faults-kill-xtask");
    let up = spawn(&stack, &["up"]);
    assert!(
        wait_for(Duration::from_secs(60), || unit_status(&stack, "postgres")
            .is_some()),
        "the supervisor never wrote its state"
    );
    kill(Pid::from_raw(up.id() as i32), Signal::SIGKILL).expect("SIGKILL up");
    let killed = wait_with_deadline(up, Duration::from_secs(10));
    let again = stack.xtask(&["up"]);
    assert!(again.status.success(), "{}", describe(&again));
    migrations_applied_once(&stack);
    no_panic(&stack, &[&killed, &again]);
}

/// V6 builds its indexes with `CREATE INDEX CONCURRENTLY`, outside a transaction: killed half
/// way, it leaves an INVALID index and no history row. A transaction holding a snapshot makes
/// the build wait at its last phase, the index already there and invalid: the kill point.
#[test]
fn a_supervisor_killed_during_a_concurrent_index_build_leaves_no_invalid_index_after_up() {
    let stack = TestStack::new("faults-kill-migration");
    stack.ok(&["up", "migrations"]);
    let mut db = stack.postgres();
    let v6 = fs::read_to_string(crate::util::repo_root().join("migrations/sql/V6__indexes.sql"))
        .expect("read V6");
    let indexes: Vec<String> = v6
        .split("CREATE INDEX CONCURRENTLY IF NOT EXISTS")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(!indexes.is_empty(), "V6 builds no index concurrently");
    // V6 as if it had never run.
    for index in &indexes {
        db.batch_execute(&format!("DROP INDEX {index}")).unwrap();
    }
    db.execute("DELETE FROM flyway_schema_history WHERE version = '6'", &[])
        .unwrap();
    let mut holder = stack.postgres();
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();

    let restart = spawn(&stack, &["restart", "migrations"]);
    let mut invalid = || -> i64 {
        db.query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
            .map(|row| row.get(0))
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(30), || invalid() > 0),
        "V6 never began its build"
    );
    kill_supervisor(&stack, "killed during CREATE INDEX CONCURRENTLY");
    let restarted = wait_with_deadline(restart, Duration::from_secs(10));
    drop(holder);

    let up = stack.xtask(&["up", "migrations"]);
    assert!(up.status.success(), "{}", describe(&up));
    migrations_applied_once(&stack);
    let mut db = stack.postgres();
    let invalid: i64 = db
        .query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0, "an invalid index outlived the next up");
    for index in &indexes {
        let valid: Option<bool> = db
            .query_one(
                "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
                &[index],
            )
            .ok()
            .map(|row| row.get(0));
        assert_eq!(valid, Some(true), "index {index} after the next up");
    }
    no_panic(&stack, &[&restarted, &up]);
}

#[test]
fn a_reset_killed_while_it_stops_keeps_the_data_and_one_after_a_killed_postgres_frees_its_memory() {
    // Postgres and the migrations only: what a reset and Postgres' memory are about.
    let stack = TestStack::new("faults-kill-reset");
    stack.ok(&["up", "migrations"]);
    stack
        .postgres()
        .batch_execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        .unwrap();

    // A reset killed while the supervisor stops the stack: the stack stops, the data stays.
    let reset = spawn(&stack, &["reset"]);
    assert!(
        wait_for(Duration::from_secs(30), || run_state(&stack)
            .is_some_and(|s| s["phase"] == "stopping")),
        "reset never stopped the stack"
    );
    kill(Pid::from_raw(reset.id() as i32), Signal::SIGKILL).expect("SIGKILL reset");
    let killed = wait_with_deadline(reset, Duration::from_secs(10));
    expect_nothing_left(&stack, "reset killed while it stopped the stack");
    stack.ok(&["up", "migrations"]);
    let kept: i32 = stack
        .postgres()
        .query_one("SELECT v FROM kept", &[])
        .expect("the data of a reset that never deleted")
        .get(0);
    assert_eq!(kept, 42);

    // Postgres killed (its supervisor SIGKILLed: the guardian kills the rest): its segments
    // stay with nattch 0 until a server starts on that data dir, which a reset never does.
    let data = stack.state_dir.join("postgres/data");
    let data_inode = inode(&data);
    kill_supervisor(&stack, "killed before reset");
    // The last backends detach as the kernel reaps them.
    let mut orphaned = Vec::new();
    wait_for(Duration::from_secs(3), || {
        orphaned = orphaned_segments(data_inode);
        !orphaned.is_empty()
    });
    assert!(
        !orphaned.is_empty(),
        "a killed Postgres left no System V segment for its data dir (inode {data_inode})"
    );
    let reset = stack.xtask(&["reset"]);
    let said = describe(&reset);
    assert!(reset.status.success(), "{said}");
    assert!(said.contains("released the shared memory"), "{said}");
    for shmid in &orphaned {
        assert!(
            !segment_exists(*shmid),
            "segment {shmid} outlived reset:\n{said}"
        );
    }
    for name in said
        .split_whitespace()
        .filter_map(|word| word.trim_end_matches(',').strip_prefix("/dev/shm/"))
    {
        assert!(
            !Path::new("/dev/shm").join(name).exists(),
            "/dev/shm/{name} outlived reset"
        );
    }
    stack.ok(&["up", "migrations"]);
    migrations_applied_once(&stack);
    no_panic(&stack, &[&killed, &reset]);
}
