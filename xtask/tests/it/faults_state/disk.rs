//! A full disk: the state dir on a small tmpfs this test mounts (and always unmounts). `up`
//! refuses before it starts anything when there is less room than initdb and Garage need;
//! filled at run time, `status` says "disk full at <state dir>"; freed, the stack serves
//! again with every committed row and stored object.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use super::no_panic;
use crate::garage::{S3Account, archive_bytes, block_on};
use crate::util::{TestStack, describe, wait_for};

/// A tmpfs of `mib` MiB, unmounted when dropped (lazily if something still holds it).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, mib: u32) -> Tmpfs {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "mounting a tmpfs needs root: run this test as root (CI does: .ci/run)"
        );
        let path = std::env::temp_dir().join(format!("amtp-xtask-{name}-{}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("run mount (util-linux)");
        assert!(mounted.status.success(), "mount: {}", describe(&mounted));
        Tmpfs { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = Command::new("umount").arg(&self.path).status();
        if !done.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// A stack whose state dir is inside `mount`.
fn stack_on(name: &str, mount: &Tmpfs) -> TestStack {
    let mut stack = TestStack::new(name);
    stack.state_dir = mount.path.join("state");
    stack.env.insert(
        "AMTP_STATE_DIR".to_owned(),
        stack.state_dir.display().to_string(),
    );
    stack
}

#[test]
fn up_refuses_a_state_dir_without_room_for_initdb_and_garage_naming_it_and_the_bytes() {
    let mount = Tmpfs::mount("faults-disk-small", 24);
    let stack = stack_on("faults-disk-small", &mount);
    let up = stack.xtask(&["up"]);
    let said = describe(&up);
    assert!(!up.status.success(), "up started on 24 MiB:\n{said}");
    let place = format!("free at {}", stack.state_dir.display());
    assert!(said.contains(&place), "{said}");
    assert!(
        said.contains("bytes)") && said.contains("postgres"),
        "{said}"
    );
    assert!(
        !stack.state_dir.join("postgres/data.initdb").exists(),
        "initdb ran anyway"
    );
    no_panic(&stack, &[&up]);
}

/// Fills the file system of `dir` until a write fails, with a file it returns.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[test]
fn a_disk_full_at_run_time_is_named_by_status_and_once_freed_every_row_and_object_is_there() {
    let mount = Tmpfs::mount("faults-disk-full", 160);
    let mut stack = stack_on("faults-disk-full", &mount);
    // Small logs, so that rotation happens here: it must keep them within their bounds.
    stack
        .env
        .insert("AMTP_LOG_MAX_BYTES".to_owned(), LOG_MAX_BYTES.to_string());
    stack.up();
    let mut db = stack.postgres();
    db.batch_execute("CREATE TABLE kept (v int); INSERT INTO kept SELECT generate_series(1, 1000)")
        .unwrap();
    let account = S3Account::of(&stack);
    let bucket = account.bucket(&stack.env_var("ARTIFACTS_BUCKET"));
    let object = ObjectPath::from("runs/1/test-bundle.tar.gz");
    let bundle = archive_bytes(256 * 1024, 17);
    block_on(bucket.put(&object, PutPayload::from(bundle.clone()))).expect("PUT before");

    let filler = fill(&mount.path);
    let status = stack.xtask(&["status"]);
    let said = describe(&status);
    assert!(
        !status.status.success(),
        "status is fine with a full disk:\n{said}"
    );
    let place = format!("disk full at {}", stack.state_dir.display());
    assert!(said.contains(&place), "{said}");
    assert_eq!(
        stack.status()["disk_full"],
        stack.state_dir.display().to_string()
    );
    let big = db.batch_execute("INSERT INTO kept SELECT generate_series(1, 200000)");
    assert!(big.is_err(), "Postgres wrote 200000 rows onto a full disk");
    // Garage may take it into memory or refuse it; either way what it stored before stays.
    let _ = block_on(bucket.put(
        &ObjectPath::from("runs/2/test-bundle.tar.gz"),
        PutPayload::from(archive_bytes(4 * 1024 * 1024, 18)),
    ));

    fs::remove_file(&filler).unwrap();
    // A Postgres that could not write its WAL restarts, with the supervisor's growing delay.
    let serves = wait_for(Duration::from_secs(60), || {
        stack.xtask(&["status"]).status.success()
    });
    assert!(
        serves,
        "the stack does not serve once space is freed: {}",
        stack.status()
    );
    let mut db = stack.postgres();
    let count: i64 = db
        .query_one("SELECT count(*) FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1000, "the committed rows, and only those");
    db.batch_execute("INSERT INTO kept VALUES (1001)")
        .expect("Postgres writes again");
    let back = block_on(async { bucket.get(&object).await?.bytes().await })
        .expect("GET the object stored before");
    assert!(back.as_ref() == bundle.as_slice(), "the object changed");
    block_on(bucket.put(
        &ObjectPath::from("runs/3/x"),
        PutPayload::from(vec![1u8; 1024]),
    ))
    .expect("Garage stores again");
    logs_within_their_bounds(&stack.state_dir.join("logs"));
    no_panic(&stack, &[&status]);
}

const LOG_MAX_BYTES: u64 = 64 * 1024;

/// Each log and its rotated files stay under the limit (one line over at most), at most three
/// old files a log, and every line starts with its timestamp: none was left half written by a
/// full disk.
fn logs_within_their_bounds(logs: &Path) {
    for entry in fs::read_dir(logs).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rotated = name.rsplit_once(".log.").map(|(_, n)| n.to_owned());
        if let Some(number) = rotated {
            assert!(
                ["1", "2", "3"].contains(&number.as_str()),
                "{name}: more old logs than the three kept"
            );
        }
        let text = fs::read(&path).unwrap();
        assert!(
            (text.len() as u64) <= LOG_MAX_BYTES + 64 * 1024,
            "{name} is {} bytes, over its {LOG_MAX_BYTES}",
            text.len()
        );
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let stamped =
                line.len() > 24 && line[4] == b'-' && line[10] == b'T' && line[23] == b'Z';
            assert!(
                stamped,
                "{name} has a line without its timestamp: {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
