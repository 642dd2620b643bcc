//! The cluster on disk: whether an existing data dir is one this stack can open (its major,
//! its owner), and the shared memory a killed server leaves behind.
//!
//! A Postgres 15 server (and each `postgres --boot`/`--single` that initdb runs) makes a small
//! System V segment whose header names its data dir (device and inode), and a POSIX segment
//! `/dev/shm/PostgreSQL.<handle>` that lists its dynamic segments. A server that stops cleanly
//! removes them; a killed one cannot. The next server on the same data dir finds them by that
//! header and removes them, but a data dir deleted first (`reset`, or the scratch dir of an
//! initdb cut off) leaves them to the machine until it reboots, `nattch` 0 in `ipcs -m`. So
//! before such a dir is deleted, [`release_shared_memory`] does what that next server would.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::bail;

use crate::os::account::Account;

/// The major this stack runs (the unit's pin), as `PG_VERSION` says it.
const MAJOR: &str = "15";

/// Refuses a data dir this stack must not start on, naming it and the fix: another major's
/// (Postgres 15 cannot open it, and upgrading it is `pg_upgrade`'s work), or one owned by an
/// account other than the one Postgres runs as here (Postgres would refuse it too, less
/// clearly). Both hold data, so nothing is changed.
pub(super) fn check_existing(data: &Path, account: Option<&Account>) -> anyhow::Result<()> {
    let version_file = data.join("PG_VERSION");
    let major = fs::read_to_string(&version_file).unwrap_or_default();
    let major = major.trim();
    if major != MAJOR {
        let what = if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            "an unreadable PG_VERSION".to_owned()
        } else {
            format!("PostgreSQL {major}")
        };
        bail!(
            "{} holds a cluster of {what}; this stack runs PostgreSQL {MAJOR} and does not \
             touch it. Move it away (or upgrade it with pg_upgrade to {MAJOR}) and run `up` again, \
             or `cargo xtask reset` to start over (deletes that data)",
            data.display()
        );
    }
    let owner = fs::metadata(data)?.uid();
    let (wanted, name) = match account {
        Some(account) => (account.uid.as_raw(), account.name.clone()),
        None => {
            let uid = nix::unistd::Uid::effective();
            let name = nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map_or_else(|| format!("uid {uid}"), |user| user.name);
            (uid.as_raw(), name)
        }
    };
    if owner != wanted {
        let holder = nix::unistd::User::from_uid(owner.into())
            .ok()
            .flatten()
            .map_or_else(
                || format!("uid {owner}"),
                |user| format!("{} (uid {owner})", user.name),
            );
        bail!(
            "{} belongs to {holder}, but Postgres runs as {name} here and would refuse it; give it \
             back (`chown -R {name} {}`), or `cargo xtask reset` to start over (deletes that data)",
            data.display(),
            data.display()
        );
    }
    Ok(())
}

/// What [`release_shared_memory`] removed, to say so.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) sysv_segments: Vec<i32>,
    pub(crate) posix_segments: Vec<String>,
}

impl std::fmt::Display for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .sysv_segments
            .iter()
            .map(|id| format!("System V segment {id}"))
            .collect();
        parts.extend(
            self.posix_segments
                .iter()
                .map(|name| format!("/dev/shm/{name}")),
        );
        f.write_str(&parts.join(", "))
    }
}

impl Released {
    pub(crate) fn is_empty(&self) -> bool {
        self.sysv_segments.is_empty() && self.posix_segments.is_empty()
    }
}

/// Removes the shared memory that killed servers of the data dir `dir` left: every System V
/// segment no process is attached to whose Postgres header names `dir`, and the POSIX
/// segments its dynamic-shared-memory control segment lists (as the next server on `dir` would).
/// Segments in use, or of other data dirs, are left alone.
#[cfg(target_os = "linux")]
pub(crate) fn release_shared_memory(dir: &Path) -> Released {
    let mut released = Released::default();
    let Ok(meta) = fs::metadata(dir) else {
        return released;
    };
    let Ok(table) = fs::read_to_string("/proc/sysvipc/shm") else {
        return released;
    };
    for shmid in unattached_segments(&table) {
        let Some(header) = sysv::read_header(shmid) else {
            continue;
        };
        if header.device != meta.dev() || header.inode != meta.ino() {
            continue;
        }
        if header.dsm_control != 0 {
            released
                .posix_segments
                .extend(dsm::destroy_with_control(header.dsm_control));
        }
        if sysv::remove(shmid) {
            released.sysv_segments.push(shmid);
        }
    }
    released
}

/// Elsewhere there is no `/proc/sysvipc` to list segments from; nothing is released.
#[cfg(not(target_os = "linux"))]
pub(crate) fn release_shared_memory(_dir: &Path) -> Released {
    Released::default()
}

/// The ids of the segments of `/proc/sysvipc/shm` that no process is attached to.
fn unattached_segments(table: &str) -> Vec<i32> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // key shmid perms size cpid lpid nattch ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            let shmid = fields.get(1)?.parse().ok()?;
            (*fields.get(6)? == "0").then_some(shmid)
        })
        .collect()
}

/// The fields of Postgres' `PGShmemHeader` (storage/pg_shmem.h) that say whose segment it is.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    dsm_control: u32,
    device: u64,
    inode: u64,
}

/// `PGShmemMagic`.
const SHMEM_MAGIC: i32 = 679_834_894;
/// `sizeof(PGShmemHeader)` on a 64-bit machine: magic, creatorPID, totalsize, freeoffset,
/// dsm_control, index, device, inode.
const HEADER_LEN: usize = 56;

impl Header {
    fn parse(bytes: &[u8]) -> Option<Header> {
        let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        (u32_at(0)? as i32 == SHMEM_MAGIC).then_some(())?;
        Some(Header {
            dsm_control: u32_at(24)?,
            device: u64_at(40)?,
            inode: u64_at(48)?,
        })
    }
}

#[cfg(target_os = "linux")]
mod sysv {
    use super::{HEADER_LEN, Header};

    /// The Postgres header of segment `shmid`, read through a read-only attachment; `None`
    /// when it cannot be attached or is no Postgres segment.
    pub(super) fn read_header(shmid: i32) -> Option<Header> {
        // SAFETY: shmat maps the segment read-only at an address the kernel picks; the bytes
        // are copied out (at most the segment's size, checked first) and it is detached
        // before returning. Nothing else in this process knows the mapping.
        unsafe {
            let mut stat: libc::shmid_ds = std::mem::zeroed();
            if libc::shmctl(shmid, libc::IPC_STAT, &mut stat) != 0 || stat.shm_segsz < HEADER_LEN {
                return None;
            }
            let address = libc::shmat(shmid, std::ptr::null(), libc::SHM_RDONLY);
            if address as isize == -1 {
                return None;
            }
            let bytes = std::slice::from_raw_parts(address as *const u8, HEADER_LEN).to_vec();
            libc::shmdt(address);
            Header::parse(&bytes)
        }
    }

    /// Marks the segment for removal (it goes once no process is attached, which is now).
    pub(super) fn remove(shmid: i32) -> bool {
        // SAFETY: IPC_RMID takes no buffer.
        unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) == 0 }
    }
}

#[cfg(target_os = "linux")]
mod dsm {
    use std::fs;

    /// `PG_DYNSHMEM_CONTROL_MAGIC` (storage/ipc/dsm.c).
    const CONTROL_MAGIC: u32 = 0x9a50_3d32;
    /// `offsetof(dsm_control_header, item)`: three `uint32`s, then 8-byte aligned items.
    const ITEMS_AT: usize = 16;
    /// `sizeof(dsm_control_item)`: handle, refcnt, first_page, npages, a pointer, a bool.
    const ITEM_LEN: usize = 40;

    fn name(handle: u32) -> String {
        format!("PostgreSQL.{handle}")
    }

    /// Removes the control segment `control` and the segments it lists as live, as
    /// `dsm_cleanup_using_control_segment` does; returns the names removed.
    pub(super) fn destroy_with_control(control: u32) -> Vec<String> {
        let path = format!("/dev/shm/{}", name(control));
        let Ok(bytes) = fs::read(&path) else {
            return Vec::new();
        };
        let mut removed: Vec<String> = listed_segments(&bytes)
            .into_iter()
            .map(name)
            .filter(|name| fs::remove_file(format!("/dev/shm/{name}")).is_ok())
            .collect();
        if fs::remove_file(&path).is_ok() {
            removed.push(name(control));
        }
        removed
    }

    /// The handles of the segments a control segment lists as in use, without those in the
    /// main shared memory region (odd handles), which have no file of their own.
    pub(super) fn listed_segments(bytes: &[u8]) -> Vec<u32> {
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        let (Some(magic), Some(items)) = (u32_at(0), u32_at(4)) else {
            return Vec::new();
        };
        if magic != CONTROL_MAGIC {
            return Vec::new();
        }
        (0..items as usize)
            .map_while(|i| {
                let at = ITEMS_AT + i * ITEM_LEN;
                Some((u32_at(at)?, u32_at(at + 4)?))
            })
            .filter(|&(handle, refcnt)| refcnt != 0 && handle & 1 == 0)
            .map(|(handle, _)| handle)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_segments_nobody_is_attached_to_are_candidates() {
        let table = "       key      shmid perms                  size  cpid  lpid nattch   uid\n\
                     \x20 5432001         12   600                    56   100   100      0   105\n\
                     \x20 5432002         13   600                    56   101   101      3   105\n";
        assert_eq!(unattached_segments(table), [12]);
    }

    #[test]
    fn a_postgres_header_names_its_data_dir_and_control_segment() {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[..4].copy_from_slice(&SHMEM_MAGIC.to_ne_bytes());
        bytes[24..28].copy_from_slice(&77u32.to_ne_bytes());
        bytes[40..48].copy_from_slice(&5u64.to_ne_bytes());
        bytes[48..56].copy_from_slice(&9u64.to_ne_bytes());
        let header = Header::parse(&bytes).unwrap();
        assert_eq!(
            header,
            Header {
                dsm_control: 77,
                device: 5,
                inode: 9
            }
        );
        bytes[0] ^= 1;
        assert_eq!(Header::parse(&bytes), None, "another program's segment");
        assert_eq!(Header::parse(&bytes[..20]), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_control_segment_lists_its_live_segments_of_their_own() {
        let mut bytes = vec![0u8; 16 + 3 * 40];
        bytes[..4].copy_from_slice(&0x9a50_3d32u32.to_ne_bytes());
        bytes[4..8].copy_from_slice(&3u32.to_ne_bytes());
        for (i, (handle, refcnt)) in [(10u32, 2u32), (11, 2), (12, 0)].into_iter().enumerate() {
            let at = 16 + i * 40;
            bytes[at..at + 4].copy_from_slice(&handle.to_ne_bytes());
            bytes[at + 4..at + 8].copy_from_slice(&refcnt.to_ne_bytes());
        }
        // 11 lives in the main region, 12 is a free slot.
        assert_eq!(dsm::listed_segments(&bytes), [10]);
        assert!(dsm::listed_segments(&bytes[..4]).is_empty());
    }
}
