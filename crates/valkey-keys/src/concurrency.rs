//! Per-repo concurrency counter on `amtp:rl:repo:{repo}:concurrency`.
//!
//! The counter is the number of runs in flight for a repo. Acquiring checks and increments in
//! one Lua script (a client-side `GET` then `INCR` would let two workers both see `max - 1`),
//! and re-arms the 3600 s safety TTL, so a counter leaked by a crashed worker expires an hour
//! after the last acquisition. Releasing never takes the counter below zero: a release after
//! the key expired or was evicted (`allkeys-lru`) finds nothing in flight and leaves it so.
//! The key is deleted when the last slot is released.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::Error;
use crate::keys;

/// KEYS[1] counter; ARGV[1] max in flight; ARGV[2] safety TTL in seconds.
/// Returns {granted (0/1), in flight after the call}.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local in_flight = tonumber(redis.call('GET', KEYS[1]) or '0')
if in_flight >= tonumber(ARGV[1]) then
  return {0, in_flight}
end
in_flight = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, in_flight}
",
    )
});

/// KEYS[1] counter. Returns in flight after the call, never below zero.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local in_flight = tonumber(redis.call('GET', KEYS[1]) or '0')
if in_flight <= 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
return redis.call('DECR', KEYS[1])
",
    )
});

/// The answer to an acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquisition {
    /// Whether a slot was taken; if so, the caller must [`release`] it when the run ends.
    pub granted: bool,
    /// Runs in flight for the repo after the call (this one included when granted).
    pub in_flight: u64,
}

/// Takes a slot for `repo` if fewer than `max` runs are in flight.
pub async fn acquire<C: ConnectionLike>(
    conn: &mut C,
    repo: &str,
    max: u64,
) -> Result<Acquisition, Error> {
    let key = keys::repo_concurrency(repo);
    let (granted, in_flight): (bool, u64) = ACQUIRE
        .key(&key)
        .arg(max)
        .arg(keys::REPO_CONCURRENCY_TTL.as_secs())
        .invoke_async(conn)
        .await
        .map_err(Error::valkey("concurrency acquire", &key))?;
    Ok(Acquisition { granted, in_flight })
}

/// Gives back a slot of `repo`; returns the runs still in flight.
pub async fn release<C: ConnectionLike>(conn: &mut C, repo: &str) -> Result<u64, Error> {
    let key = keys::repo_concurrency(repo);
    RELEASE
        .key(&key)
        .invoke_async(conn)
        .await
        .map_err(Error::valkey("concurrency release", &key))
}
