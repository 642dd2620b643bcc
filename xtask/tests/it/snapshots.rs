//! `snapshot`, `restore` and `reset SERVICE` on stacks of their own, through real clients:
//! rows through the postgres crate, objects through the S3 client of the Garage tests, keys
//! through redis. What a snapshot held comes back byte for byte and what came later goes, on
//! a running stack and on a stopped one; a restore that fails leaves the data from before;
//! `reset postgres` and `reset garage` leave the other services' data alone.

use std::fs;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::garage::{S3Account, archive_bytes, block_on};
use crate::util::{TestStack, describe};

/// Every row of the tables the test writes, as Postgres prints them (so equal text is equal
/// bytes), and the Flyway history.
fn rows(stack: &TestStack) -> (Vec<String>, Vec<String>) {
    let mut db = stack.postgres();
    let text = |db: &mut postgres::Client, sql: &str| -> Vec<String> {
        db.query(sql, &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    (
        text(&mut db, "SELECT p::text FROM projects p ORDER BY id"),
        text(
            &mut db,
            "SELECT h::text FROM flyway_schema_history h ORDER BY installed_rank",
        ),
    )
}

fn insert_project(stack: &TestStack, repo: &str) {
    stack
        .postgres()
        .execute(
            "INSERT INTO projects (github_owner, github_repo, installation_id) \
             VALUES ('amtp-test', $1, 1)",
            &[&repo],
        )
        .expect("insert a project");
}

/// The object's bytes, or `None` when the bucket does not have it.
fn object(bucket: &impl ObjectStore, key: &str) -> Option<Vec<u8>> {
    match block_on(async { bucket.get(&Path::from(key)).await?.bytes().await }) {
        Ok(bytes) => Some(bytes.to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(err) => panic!("GET {key}: {err}"),
    }
}

fn put(bucket: &impl ObjectStore, key: &str, bytes: &[u8]) {
    block_on(bucket.put(&Path::from(key), PutPayload::from(bytes.to_vec())))
        .unwrap_or_else(|err| panic!("PUT {key}: {err}"));
}

/// Runs `xtask <args>`, which must fail saying `says`.
fn assert_refused(stack: &TestStack, args: &[&str], says: &str) {
    let output = stack.xtask(args);
    assert!(
        !output.status.success() && String::from_utf8_lossy(&output.stderr).contains(says),
        "xtask {args:?} should fail saying {says:?}:\n{}",
        describe(&output)
    );
}

fn assert_verify_clean(stack: &TestStack) {
    let verify = stack.xtask(&["verify"]);
    assert!(verify.status.success(), "verify:\n{}", describe(&verify));
}

#[test]
fn a_restored_snapshot_brings_back_its_rows_and_objects_and_drops_later_ones() {
    let stack = TestStack::new("snapshot-restore");
    stack.up();
    let bucket = S3Account::of(&stack).bucket(&stack.env_var("ARTIFACTS_BUCKET"));
    insert_project(&stack, "kept");
    let bundle = archive_bytes(700 * 1024, 22);
    put(&bucket, "runs/1/test-bundle.tar.gz", &bundle);
    let before = rows(&stack);

    stack.ok(&["snapshot", "before"]);
    let listed = stack.ok(&["snapshots"]);
    assert!(listed.contains("before"), "{listed}");
    assert!(listed.contains("postgres, garage"), "{listed}");

    // A name taken is refused, saying how to free it; a bad name is refused by its rule.
    assert_refused(
        &stack,
        &["snapshot", "before"],
        "cargo xtask snapshot --delete before",
    );
    assert_refused(&stack, &["snapshot", "../up"], "letters, digits");

    // Later: a row changed, one added, the object overwritten and another added.
    stack
        .postgres()
        .execute("UPDATE projects SET github_repo = 'changed'", &[])
        .unwrap();
    insert_project(&stack, "later");
    put(&bucket, "runs/1/test-bundle.tar.gz", b"overwritten");
    put(&bucket, "runs/2/later.tar.gz", b"later");
    assert_ne!(rows(&stack), before);

    stack.ok(&["restore", "before"]);
    assert_eq!(rows(&stack), before, "the rows and the Flyway history");
    assert!(
        object(&bucket, "runs/1/test-bundle.tar.gz").as_deref() == Some(bundle.as_slice()),
        "the object did not come back byte for byte"
    );
    assert_eq!(object(&bucket, "runs/2/later.tar.gz"), None);
    assert_verify_clean(&stack);

    // A snapshot the server refuses (another major's cluster): the restore fails, and the
    // data from before is back and running.
    stack.ok(&["snapshot", "damaged"]);
    fs::write(
        stack
            .state_dir
            .join("snapshots/damaged/postgres/data/PG_VERSION"),
        "14\n",
    )
    .unwrap();
    insert_project(&stack, "after-restore");
    let current = rows(&stack);
    assert_refused(
        &stack,
        &["restore", "damaged"],
        "the data from before is back in place",
    );
    assert_eq!(rows(&stack), current);
    assert_verify_clean(&stack);

    // On a stopped stack, the files directly.
    stack.ok(&["down"]);
    stack.ok(&["restore", "before"]);
    stack.up();
    assert_eq!(rows(&stack), before);
    assert_verify_clean(&stack);

    // A restore killed right after its swap leaves the snapshot's copy in place, the data from
    // before beside it and its journal: the next `up` puts the data from before back.
    insert_project(&stack, "before-the-cut");
    let current = rows(&stack);
    stack.ok(&["down"]);
    let live = stack.state_dir.join("postgres/data");
    fs::rename(&live, stack.state_dir.join("postgres/data.previous")).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(stack.state_dir.join("snapshots/before/postgres/data"))
        .arg(&live)
        .status()
        .unwrap();
    assert!(copied.success());
    let journal = serde_json::json!([{ "live": live, "had_live": true }]);
    fs::write(
        stack.state_dir.join(".swapping-data.json"),
        journal.to_string(),
    )
    .unwrap();
    let up = stack.ok(&["up"]);
    assert!(
        up.contains("put back the data from before a restore or reset that was cut off"),
        "{up}"
    );
    assert_eq!(rows(&stack), current);
    assert!(!stack.state_dir.join("postgres/data.previous").exists());

    stack.ok(&["snapshot", "--delete", "before"]);
    assert!(!stack.state_dir.join("snapshots/before").exists());
    assert_refused(&stack, &["restore", "before"], "no snapshot named before");
}

#[test]
fn reset_postgres_or_garage_empties_it_and_leaves_the_others_alone() {
    let stack = TestStack::new("reset-postgres");
    stack.up();
    let bucket = S3Account::of(&stack).bucket(&stack.env_var("ARTIFACTS_BUCKET"));
    let mut valkey = redis::Client::open(stack.env_var("VALKEY_URL"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("amtp:test:kept")
        .arg("yes")
        .query(&mut valkey)
        .unwrap();
    put(&bucket, "kept.bin", b"kept");
    insert_project(&stack, "gone");
    let (_, history) = rows(&stack);

    // No terminal (the test's stdin is not one) and no --yes: refused, naming --yes.
    assert_refused(&stack, &["reset", "postgres"], "pass --yes");
    assert_eq!(rows(&stack).0.len(), 1, "a refused reset deleted the rows");

    stack.ok(&["reset", "postgres", "--yes"]);
    let (projects, history_after) = rows(&stack);
    assert_eq!(projects, Vec::<String>::new());
    assert_eq!(
        history_after.len(),
        history.len(),
        "the migrations ran again: {history_after:?}"
    );
    let kept: String = redis::cmd("GET")
        .arg("amtp:test:kept")
        .query(&mut valkey)
        .expect("Valkey kept its connection and its key");
    assert_eq!(kept, "yes");
    assert_eq!(object(&bucket, "kept.bin").as_deref(), Some(&b"kept"[..]));
    assert_verify_clean(&stack);

    // And Garage: a fresh node with its bucket and the same key, Postgres' rows left alone.
    insert_project(&stack, "kept");
    stack.ok(&["reset", "garage", "--yes"]);
    assert_eq!(object(&bucket, "kept.bin"), None);
    put(&bucket, "new.bin", b"new");
    assert_eq!(object(&bucket, "new.bin").as_deref(), Some(&b"new"[..]));
    assert_eq!(rows(&stack).0.len(), 1);
    assert_verify_clean(&stack);
}
