//! Which account a daemon runs as: Postgres and PgBouncer refuse root, so when the xtask runs
//! as root (CI, containers) they, and nginx, run as the unprivileged `postgres` account, and
//! their directories are given to it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;
use nix::unistd::{Gid, Uid, User, chown};

/// An unprivileged account for the programs that refuse to run as root.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
}

/// When running as root, the account Postgres, PgBouncer and nginx run as (Debian's
/// `postgres`); otherwise none: they run as the current user.
pub(crate) fn unprivileged_account() -> anyhow::Result<Option<Account>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .context("cannot look up the `postgres` account")?
        .context(
            "running as root, but there is no `postgres` account for Postgres and PgBouncer, \
             which refuse to run as root; run as a normal user or `useradd --system postgres`",
        )?;
    Ok(Some(Account {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
    }))
}

/// Gives `path` to `account` (no-op without one), so a daemon running as it can write there.
/// Refuses, naming the directory and the fix, when the account could not even reach `path`.
pub(crate) fn give_to(path: &Path, account: Option<&Account>) -> anyhow::Result<()> {
    if let Some(account) = account {
        for dir in path.ancestors().skip(1) {
            let Ok(meta) = fs::metadata(dir) else {
                continue;
            };
            if !may_enter(meta.mode(), meta.uid(), meta.gid(), account) {
                anyhow::bail!(
                    "user {} cannot enter {} (mode {:o}), so the services running as it cannot \
                     reach {}; `chmod o+x {}`, or put the state elsewhere \
                     (AMTP_STATE_DIR=/var/tmp/amtp)",
                    account.name,
                    dir.display(),
                    meta.mode() & 0o7777,
                    path.display(),
                    dir.display()
                );
            }
        }
        chown(path, Some(account.uid), Some(account.gid))
            .with_context(|| format!("cannot give {} to user {}", path.display(), account.name))?;
    }
    Ok(())
}

/// Whether `account` may pass through a directory with this mode and owner.
fn may_enter(mode: u32, uid: u32, gid: u32, account: &Account) -> bool {
    let bit = if uid == account.uid.as_raw() {
        0o100
    } else if gid == account.gid.as_raw() {
        0o010
    } else {
        0o001
    };
    mode & bit != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_enters_by_the_bit_of_its_class_only() {
        let account = Account {
            name: "postgres".into(),
            uid: Uid::from_raw(100),
            gid: Gid::from_raw(200),
        };
        // Owner, group, others: each is judged by its own bit alone.
        assert!(may_enter(0o700, 100, 0, &account));
        assert!(!may_enter(0o077, 100, 200, &account));
        assert!(may_enter(0o710, 0, 200, &account));
        assert!(!may_enter(0o701, 0, 200, &account));
        assert!(may_enter(0o701, 0, 0, &account));
        assert!(!may_enter(0o750, 0, 0, &account), "root's 0750 home");
    }
}
