//! Garage's metadata dir as `up` finds it: the room a new node needs, and whether its database
//! (LMDB, Garage's default engine) is one at all. It holds the layout, the bucket, the key and
//! the index of every object: never rebuilt behind the user's back, so a damaged one is refused.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use anyhow::bail;

use super::dir;
use crate::config::StackConfig;

/// The LMDB file of Garage's metadata (`metadata_dir/db.lmdb/data.mdb`).
fn database_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("meta/db.lmdb/data.mdb")
}

/// A new node: its database, layout and first tables (a few MiB on disk; LMDB grows its file as
/// it writes), and the bucket's first objects. An existing one grows with what it stores.
pub(super) fn disk_need(cfg: &StackConfig) -> u64 {
    const MIB: u64 = 1024 * 1024;
    if database_file(cfg).exists() {
        4 * MIB
    } else {
        16 * MIB
    }
}

/// `MDB_MAGIC`, the first field of LMDB's meta page, after the page header (16 bytes).
const LMDB_MAGIC: u32 = 0xBEEF_C0DE;
const MAGIC_AT: usize = 16;
/// LMDB starts with two meta pages of at least 4 KiB each.
const MIN_LEN: u64 = 2 * 4096;

/// Refuses a metadata database that is not LMDB's (overwritten) or shorter than its two meta
/// pages (truncated), naming the file and the two ways on; Garage would fail on it less
/// clearly, or start over on an empty one and lose track of every stored object.
pub(super) fn check(cfg: &StackConfig) -> anyhow::Result<()> {
    let path = database_file(cfg);
    let Ok(mut file) = fs::File::open(&path) else {
        return Ok(());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = [0u8; MAGIC_AT + 4];
    let magic = file
        .read_exact(&mut head)
        .ok()
        .map(|()| u32::from_le_bytes(head[MAGIC_AT..].try_into().expect("four bytes")));
    if len < MIN_LEN || magic != Some(LMDB_MAGIC) {
        bail!(
            "{} is not a readable LMDB database ({len} bytes{}): Garage's metadata (the layout, \
             the bucket, the key and the index of every object) is damaged; restore \
             {} from a backup, or `cargo xtask reset` to start over (deletes every object)",
            path.display(),
            if len < MIN_LEN {
                ", truncated"
            } else {
                ", not LMDB's"
            },
            dir(cfg).join("meta").display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with_database(bytes: &[u8]) -> (tempfile::TempDir, StackConfig) {
        let scratch = tempfile::tempdir().unwrap();
        let cfg = crate::config::tests::config_in(scratch.path());
        let path = database_file(&cfg);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        (scratch, cfg)
    }

    #[test]
    fn a_truncated_or_foreign_database_is_refused_naming_it_and_reset() {
        let mut lmdb = vec![0u8; MIN_LEN as usize];
        lmdb[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(&LMDB_MAGIC.to_le_bytes());
        let (_keep, cfg) = cfg_with_database(&lmdb);
        check(&cfg).unwrap();

        let (_keep, cfg) = cfg_with_database(&lmdb[..100]);
        let err = check(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("data.mdb") && err.contains("truncated"),
            "{err}"
        );
        assert!(err.contains("cargo xtask reset"), "{err}");

        let (_keep, cfg) = cfg_with_database(&vec![b'x'; MIN_LEN as usize]);
        let err = check(&cfg).unwrap_err().to_string();
        assert!(err.contains("not LMDB's"), "{err}");
    }
}
