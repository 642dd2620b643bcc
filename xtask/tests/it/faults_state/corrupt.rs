//! Corrupt or foreign state, one stack stopped and damaged a file at a time: what is derived
//! (the state file, rendered configs, Garage's RPC secret) is made again by `up`; what holds
//! data (the passwords, the cluster, Garage's metadata) is refused, naming the file and
//! `cargo xtask reset`, and nothing is changed until it is put back. Nothing panics.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use super::no_panic;
use crate::util::{TestStack, describe};

/// `up` fails, and says each of `words`; `status` and `down` still answer without a panic.
fn refused(stack: &TestStack, case: &str, words: &[&str], outputs: &mut Vec<Output>) {
    let up = stack.xtask(&["up"]);
    let said = describe(&up);
    assert!(!up.status.success(), "{case}: up started anyway:\n{said}");
    for word in words {
        assert!(
            said.contains(word),
            "{case}: up does not say {word:?}:\n{said}"
        );
    }
    outputs.push(up);
    outputs.push(stack.xtask(&["status"]));
    let down = stack.xtask(&["down"]);
    assert!(
        down.status.success(),
        "{case}: down after it: {}",
        describe(&down)
    );
    outputs.push(down);
}

fn down(stack: &TestStack) {
    stack.ok(&["down"]);
}

fn replace(path: &Path, body: &[u8]) -> Vec<u8> {
    let old = fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    fs::write(path, body).unwrap();
    old
}

#[test]
fn corrupt_state_is_rebuilt_when_derived_and_refused_by_name_when_it_holds_data() {
    let stack = TestStack::new("faults-corrupt");
    stack.up();
    stack
        .postgres()
        .batch_execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        .unwrap();
    down(&stack);
    let dir = &stack.state_dir;
    let mut outputs = Vec::new();

    // Derived: the state file, the rendered configs and Garage's RPC secret, in garbage.
    fs::write(dir.join("run/state.json"), b"{\"supervisor\": {\"pid\"").unwrap();
    outputs.push(stack.xtask(&["status"]));
    for rendered in [
        "pgbouncer/pgbouncer.ini",
        "pgbouncer/userlist.txt",
        "valkey/valkey.conf",
        "nginx/nginx.conf",
        "garage/garage.toml",
    ] {
        fs::write(dir.join(rendered), b"\x00\xffgarbage [[[\n").unwrap();
    }
    fs::write(dir.join("garage/rpc_secret"), b"not hex").unwrap();
    stack.up();
    stack.ok(&["verify"]);
    down(&stack);

    // The passwords the cluster was made with: cut short, or lacking one.
    let secrets = dir.join("secrets.env");
    let whole = fs::read(&secrets).unwrap();
    fs::write(&secrets, &whole[..whole.len() - 5]).unwrap();
    refused(
        &stack,
        "secrets.env truncated",
        &["secrets.env", "truncated", "cargo xtask reset"],
        &mut outputs,
    );
    fs::write(&secrets, b"").unwrap();
    refused(
        &stack,
        "secrets.env empty",
        &["secrets.env", "cargo xtask reset"],
        &mut outputs,
    );
    fs::write(&secrets, &whole).unwrap();

    // A cluster of another major, and one owned by another account.
    let version = dir.join("postgres/data/PG_VERSION");
    let old = replace(&version, b"16\n");
    refused(
        &stack,
        "PG_VERSION 16",
        &["postgres/data", "PostgreSQL 16", "cargo xtask reset"],
        &mut outputs,
    );
    fs::write(&version, old).unwrap();
    let data = dir.join("postgres/data");
    let owner = fs::metadata(&data).unwrap();
    if nix::unistd::Uid::effective().is_root() {
        nix::unistd::chown(&data, Some(65534.into()), None).unwrap();
        refused(
            &stack,
            "a data dir of nobody's",
            &["postgres/data", "belongs to", "chown -R"],
            &mut outputs,
        );
        nix::unistd::chown(&data, Some(owner.uid().into()), None).unwrap();
    } else {
        eprintln!(
            "not root: a data dir of another account cannot be made here; that case is left out"
        );
    }

    // Garage's metadata database overwritten at its start, then truncated.
    let lmdb = dir.join("garage/meta/db.lmdb/data.mdb");
    let whole_lmdb = fs::read(&lmdb).unwrap();
    let mut garbage = whole_lmdb.clone();
    garbage[..64].fill(b'x');
    fs::write(&lmdb, &garbage).unwrap();
    refused(
        &stack,
        "LMDB overwritten",
        &["data.mdb", "not LMDB's", "cargo xtask reset"],
        &mut outputs,
    );
    fs::write(&lmdb, &whole_lmdb[..100]).unwrap();
    refused(
        &stack,
        "LMDB truncated",
        &["data.mdb", "truncated", "cargo xtask reset"],
        &mut outputs,
    );
    fs::write(&lmdb, &whole_lmdb).unwrap();

    // Put back, everything serves with the data it had.
    stack.up();
    let kept: i32 = stack
        .postgres()
        .query_one("SELECT v FROM kept", &[])
        .expect("the row committed before the damage")
        .get(0);
    assert_eq!(kept, 7);
    stack.ok(&["verify"]);
    let outputs: Vec<&Output> = outputs.iter().collect();
    no_panic(&stack, &outputs);
}
