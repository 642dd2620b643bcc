//! Whole directory trees: copied with their owners and modes (what `snapshot` and `restore`
//! do to the services' data), and measured.
//!
//! Each file is copied with `std::fs::copy`, which asks the kernel to do the work: Linux's
//! `copy_file_range` (a reflink on Btrfs and XFS, an in-kernel copy on ext4), macOS'
//! `fclonefileat` (a clone on APFS). Files are never hard-linked: Postgres and LMDB write
//! theirs in place, so a link would let the live data change the snapshot.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Copies `from` (a directory) to `to`, which must not exist: every file, directory and
/// symbolic link, with its mode and, where they differ from the copier's, its owner and group
/// (the Postgres cluster belongs to the unprivileged account when the xtask runs as root, and
/// Postgres refuses a data dir it does not own). Returns the bytes of the files copied.
pub(crate) fn copy(from: &Path, to: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(from)?;
    fs::create_dir(to).map_err(|err| named(err, "cannot create", to))?;
    let mut bytes = 0;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            bytes += copy(&source, &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &target)
                .map_err(|err| named(err, "cannot create", &target))?;
            keep_owner(&source, &target, &fs::symlink_metadata(&source)?)?;
        } else {
            bytes +=
                fs::copy(&source, &target).map_err(|err| named(err, "cannot copy", &source))?;
            keep_owner(&source, &target, &entry.metadata()?)?;
        }
    }
    // Last, so that a read-only directory could still be filled.
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    keep_owner(from, to, &meta)?;
    Ok(bytes)
}

/// The bytes of the files under `dir` (their lengths, as `du --apparent-size` counts); 0 when
/// it does not exist.
pub(crate) fn size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Gives `target` the owner and group of `source` when the copy got others (only root can).
fn keep_owner(source: &Path, target: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let made = fs::symlink_metadata(target)?;
    if (made.uid(), made.gid()) == (meta.uid(), meta.gid()) {
        return Ok(());
    }
    std::os::unix::fs::lchown(target, Some(meta.uid()), Some(meta.gid())).map_err(|err| {
        named(
            err,
            &format!("cannot give {} the owner of", target.display()),
            source,
        )
    })
}

/// An I/O error that names its path.
fn named(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_copied_with_its_files_links_and_modes() {
        let scratch = tempfile::tempdir().unwrap();
        let from = scratch.path().join("from");
        fs::create_dir_all(from.join("base/1")).unwrap();
        fs::write(from.join("PG_VERSION"), "15\n").unwrap();
        fs::write(from.join("base/1/1259"), vec![7u8; 10_000]).unwrap();
        std::os::unix::fs::symlink("base/1", from.join("link")).unwrap();
        fs::set_permissions(&from, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(from.join("PG_VERSION"), fs::Permissions::from_mode(0o600)).unwrap();

        let to = scratch.path().join("to");
        assert_eq!(copy(&from, &to).unwrap(), 10_003);

        assert_eq!(fs::read(to.join("base/1/1259")).unwrap(), vec![7u8; 10_000]);
        assert_eq!(fs::read_link(to.join("link")).unwrap(), Path::new("base/1"));
        let mode = |path: &Path| fs::metadata(path).unwrap().mode() & 0o7777;
        assert_eq!(mode(&to), 0o700);
        assert_eq!(mode(&to.join("PG_VERSION")), 0o600);
        assert_eq!(size(&to), 10_003);
        assert_eq!(size(&scratch.path().join("nowhere")), 0);
    }

    #[test]
    fn a_copy_never_overwrites() {
        let scratch = tempfile::tempdir().unwrap();
        fs::create_dir(scratch.path().join("to")).unwrap();
        let err = copy(scratch.path(), &scratch.path().join("to")).unwrap_err();
        assert!(err.to_string().contains("cannot create"), "{err}");
    }
}
