//! PR serialization lock on `amtp:rl:repo:{repo}:pr_lock`.
//!
//! Acquire is `SET key <token> NX PX <ttl>` with a fresh random token, so at most one holder
//! exists per repo and a crashed holder's lock frees itself after the TTL (120 s by contract).
//! Release and extend are Lua scripts that act only while the key still holds the caller's
//! token: a holder whose lock expired, and was then taken by someone else, gets `false` and
//! leaves the new holder's lock alone. A plain `DEL` or `PEXPIRE` from the client would not.
//!
//! There is no release on drop (it would need an async drop); call [`PrLock::release`]. A lock
//! that is never released expires by its TTL.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::Error;
use crate::keys;

/// KEYS[1] lock; ARGV[1] token. Deletes only the caller's own lock; returns 1 if it did.
static COMPARE_AND_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// KEYS[1] lock; ARGV[1] token; ARGV[2] ttl in ms. Re-arms only the caller's own lock.
static COMPARE_AND_PEXPIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Proof of holding a repo's PR lock: the key and the random token stored in it.
#[must_use = "the lock stays held until released or until its TTL runs out"]
pub struct PrLock {
    key: String,
    token: String,
    ttl: Duration,
}

/// Takes the PR lock of `repo` for the contract's [`keys::PR_LOCK_TTL`]; `None` if it is held.
pub async fn try_acquire<C: ConnectionLike>(
    conn: &mut C,
    repo: &str,
) -> Result<Option<PrLock>, Error> {
    try_acquire_for(conn, repo, keys::PR_LOCK_TTL).await
}

/// Takes the PR lock of `repo` for `ttl` (at least 1 ms); `None` if it is held.
pub async fn try_acquire_for<C: ConnectionLike>(
    conn: &mut C,
    repo: &str,
    ttl: Duration,
) -> Result<Option<PrLock>, Error> {
    let key = keys::pr_lock(repo);
    let token = random_token()?;
    let reply: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis())
        .query_async(conn)
        .await
        .map_err(Error::valkey("PR lock acquire", &key))?;
    Ok(reply.map(|_ok| PrLock { key, token, ttl }))
}

impl PrLock {
    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The TTL the lock was taken with, which [`Self::extend`] re-arms.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Resets the lock's TTL to its full length; `false` if the lock is no longer ours.
    pub async fn extend<C: ConnectionLike>(&self, conn: &mut C) -> Result<bool, Error> {
        COMPARE_AND_PEXPIRE
            .key(&self.key)
            .arg(&self.token)
            .arg(self.ttl.as_millis())
            .invoke_async(conn)
            .await
            .map_err(Error::valkey("PR lock extend", &self.key))
    }

    /// Releases the lock; `false` if it was no longer ours (it expired, maybe taken by another).
    pub async fn release<C: ConnectionLike>(self, conn: &mut C) -> Result<bool, Error> {
        COMPARE_AND_DELETE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(conn)
            .await
            .map_err(Error::valkey("PR lock release", &self.key))
    }
}

/// The token is what lets a holder release the lock, so it stays out of logs.
impl fmt::Debug for PrLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrLock")
            .field("key", &self.key)
            .field("token", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// 128 random bits in lowercase hex: unguessable, and unique across holders in practice.
fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    Ok(keys::lower_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        let (a, b) = (a.expect("token a"), b.expect("token b"));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_the_token() {
        let lock = PrLock {
            key: keys::pr_lock("o/r"),
            token: "sekrit".into(),
            ttl: keys::PR_LOCK_TTL,
        };
        assert!(!format!("{lock:?}").contains("sekrit"));
    }
}
