//! Free space where the stack keeps its state: checked before a start, and named by `status`
//! when it has run out.

use std::io;
use std::path::Path;

/// Below this much free space a file system counts as full: Postgres cannot extend a table
/// or start a WAL segment, Garage cannot store an object.
pub(crate) const FULL_BELOW: u64 = 1024 * 1024;

/// Bytes an unprivileged writer may still use on the file system of `path` (of its nearest
/// existing ancestor, for a dir not made yet).
pub(crate) fn free_bytes(path: &Path) -> io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("/"));
    let stat = nix::sys::statvfs::statvfs(existing).map_err(io::Error::from)?;
    Ok((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
}

/// Bytes for people: `48.0 MiB (50331648 bytes)`.
pub(crate) fn show_bytes(bytes: u64) -> String {
    format!(
        "{:.1} MiB ({bytes} bytes)",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_not_made_yet_is_measured_where_it_would_be() {
        let scratch = tempfile::tempdir().unwrap();
        let later = scratch.path().join("not/yet/made");
        assert_eq!(
            free_bytes(&later).unwrap() / FULL_BELOW,
            free_bytes(scratch.path()).unwrap() / FULL_BELOW
        );
        assert_eq!(show_bytes(3 * 1024 * 1024), "3.0 MiB (3145728 bytes)");
    }
}
