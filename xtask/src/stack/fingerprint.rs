//! What a daemon was started from, so that a second `up` restarts exactly the services that
//! would start differently now, and says why.
//!
//! A daemon's behaviour is fixed by its program (path, version and, for a binary of the
//! workspace, its bytes), its command line and environment (the `-c` flags, ports, passwords)
//! and the files it reads. Those files are rendered from `infra/<service>/` and the
//! configuration, so that directory's contents, the ports the service can name (its own and
//! its dependencies') and every other setting stand for them: the files are not rendered
//! again to compare, since the running service may be reading them.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::path::Path;

use crate::config::StackConfig;
use crate::stack::contract::Contract;
use crate::stack::programs::Installed;
use crate::stack::{Daemon, Program, Unit};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    program: String,
    version: String,
    /// A hash of the program's bytes, for the workspace's own binaries (which change on every
    /// build); a machine's server program is told apart by its path and version.
    binary: Option<u64>,
    /// A hash of the arguments and the environment (values never kept in clear: passwords).
    command: u64,
    /// A hash of every file under `infra/<service>/`.
    infra: u64,
    /// The port variables and ports (further ports included) of the service and of its
    /// dependencies.
    ports: Vec<(&'static str, u16)>,
    /// A hash of every other setting (users, passwords, paths, GitHub).
    settings: u64,
}

impl Fingerprint {
    /// The fingerprint of `unit` as it would start now with this configuration; `dependencies`
    /// are the rows it depends on, whose ports it may name.
    pub(crate) fn of(
        unit: &Unit,
        dependencies: &[&Unit],
        daemon: &Daemon,
        cfg: &StackConfig,
        installed: &Installed,
        contract: &Contract,
    ) -> Fingerprint {
        let launch = (daemon.launch)(cfg, installed, contract);
        let mut command = DefaultHasher::new();
        launch.args.hash(&mut command);
        launch.env.hash(&mut command);
        let ports = std::iter::once(unit)
            .chain(dependencies.iter().copied())
            .flat_map(Unit::ports)
            .map(|port| (port.var, cfg.port(port)))
            .collect();
        Fingerprint {
            ports,
            settings: cfg.settings_hash(),
            program: installed.path.display().to_string(),
            version: installed.version.clone(),
            binary: matches!(unit.program, Program::Workspace { .. })
                .then(|| hash_file(&installed.path)),
            command: command.finish(),
            infra: hash_tree(&cfg.repo_root.join("infra").join(unit.name)),
        }
    }

    /// What differs in `now` from this fingerprint, in words (empty when nothing does).
    pub(crate) fn changes(&self, now: &Fingerprint) -> Vec<String> {
        let mut changes = Vec::new();
        if self.program != now.program {
            changes.push(format!("its program is now {}", now.program));
        }
        if self.version != now.version {
            changes.push(format!("version {} -> {}", self.version, now.version));
        }
        if self.binary != now.binary {
            changes.push("its binary was rebuilt".to_owned());
        }
        if self.command != now.command {
            changes.push("its flags or environment changed".to_owned());
        }
        if self.infra != now.infra {
            changes.push("its configuration in infra/ changed".to_owned());
        }
        for ((var, was), (_, is)) in self.ports.iter().zip(&now.ports) {
            if was != is {
                changes.push(format!("{var} {was} -> {is}"));
            }
        }
        if self.settings != now.settings {
            changes.push(
                "the stack's settings changed (user, database, passwords or GitHub)".to_owned(),
            );
        }
        changes
    }
}

/// A checksum of a file's bytes and its length; a file that cannot be read sums as unreadable
/// (and so differs from any readable one). CRC-32 (crc32fast, built optimised even in the dev
/// profile) rather than the std hasher, which the dev profile leaves unoptimised: the apps'
/// debug binaries are tens of megabytes, and every app start and every second `up` sums them.
fn hash_file(path: &Path) -> u64 {
    let mut crc = crc32fast::Hasher::new();
    let mut len: u64 = 0;
    let Ok(mut file) = std::fs::File::open(path) else {
        return u64::MAX;
    };
    let mut buf = vec![0; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                crc.update(&buf[..n]);
                len += n as u64;
            }
            Err(_) => return u64::MAX - 1,
        }
    }
    (len << 32) ^ u64::from(crc.finalize())
}

/// A hash of the names and contents of every file under `dir`, in a stable order (nothing
/// when `dir` does not exist).
fn hash_tree(dir: &Path) -> u64 {
    let mut files: Vec<_> = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .build()
        .flatten()
        .filter(|entry| entry.file_type().is_some_and(|t| t.is_file()))
        .map(|entry| entry.into_path())
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        hash_file(&file).hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> Fingerprint {
        Fingerprint {
            program: "/usr/sbin/pgbouncer".into(),
            version: "1.18.0".into(),
            binary: None,
            command: 1,
            infra: 2,
            ports: vec![("PGBOUNCER_PORT", 6432), ("POSTGRES_PORT", 5432)],
            settings: 4,
        }
    }

    #[test]
    fn each_change_is_named() {
        let old = fingerprint();
        assert!(old.changes(&fingerprint()).is_empty());
        let now = Fingerprint {
            version: "1.22.1".into(),
            infra: 3,
            ports: vec![("PGBOUNCER_PORT", 6432), ("POSTGRES_PORT", 5440)],
            ..fingerprint()
        };
        assert_eq!(
            old.changes(&now),
            [
                "version 1.18.0 -> 1.22.1",
                "its configuration in infra/ changed",
                "POSTGRES_PORT 5432 -> 5440"
            ]
        );
    }

    #[test]
    fn an_edited_file_under_infra_changes_the_hash() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "pool_mode = transaction\n").unwrap();
        let before = hash_tree(dir);
        assert_eq!(before, hash_tree(dir), "stable");
        std::fs::write(dir.join("conf.d/a.conf"), "pool_mode = session\n").unwrap();
        assert_ne!(before, hash_tree(dir));
        assert_ne!(hash_file(dir), hash_file(Path::new("/dev/null")));
    }
}
