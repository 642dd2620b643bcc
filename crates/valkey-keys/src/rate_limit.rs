//! Per-user sliding-window run limit on `amtp:rl:user:{userId}:runs`.
//!
//! One sorted set per user: member = run id, score = the run's start in epoch milliseconds.
//! Recording a run is one `MULTI`/`EXEC` transaction, exactly the seed's sequence:
//!
//! ```text
//! MULTI
//! ZREMRANGEBYSCORE key 0 <cutoff>   evict runs that left the window
//! ZADD key <now> <runId>            record this run
//! ZCARD key                         runs in the window, this one included
//! EXPIRE key 3600                   safety TTL: an idle user's set disappears
//! EXEC
//! ```
//!
//! `now` and `cutoff` come from the caller as literal integers ([`Window`]), never from the
//! server's clock or a script expression.
//!
//! # Boundary
//!
//! `ZREMRANGEBYSCORE` bounds are inclusive, so a run whose score equals `cutoff` is evicted.
//! With `cutoff = now - 3_600_000`, a run counts while `now - score < 3_600_000`: a run started
//! exactly one hour ago has left the window, one started an hour minus a millisecond ago has not.

use redis::aio::ConnectionLike;

use crate::Error;
use crate::keys;

/// Length of the window in milliseconds (the contract's 3600 s).
pub const WINDOW_MS: i64 = keys::USER_RUNS_WINDOW.as_millis() as i64;
/// The `EXPIRE` the transaction sets, in seconds.
const SAFETY_TTL_SECS: i64 = keys::USER_RUNS_WINDOW.as_secs() as i64;

/// The window a run is counted in, as the literal epoch-ms integers put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Score of the run being recorded.
    pub now_ms: i64,
    /// Runs scored at or below this are evicted.
    pub cutoff_ms: i64,
}

impl Window {
    /// The one-hour window ending at `now_ms` (the caller's clock, epoch milliseconds).
    pub fn ending_at(now_ms: i64) -> Self {
        Window {
            now_ms,
            cutoff_ms: now_ms - WINDOW_MS,
        }
    }
}

/// What the window holds after a run was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Runs in the window, the one just recorded included.
    pub count: u64,
    /// `count > limit`: with a limit of 10 the 10th run in an hour is allowed, the 11th is not.
    pub over_limit: bool,
}

/// Records `run_id` for `user_id` in `window` and counts the window, atomically.
///
/// The run is recorded even when it takes the user over `limit` (the seed's sequence adds
/// unconditionally), so a user who keeps retrying stays limited until runs age out. Run ids
/// must be unique per user: recording the same id again moves it rather than adding a run.
pub async fn record_run<C: ConnectionLike>(
    conn: &mut C,
    user_id: &str,
    run_id: &str,
    window: Window,
    limit: u64,
) -> Result<WindowCount, Error> {
    let key = keys::user_runs(user_id);
    let (count,): (u64,) = transaction(&key, run_id, window)
        .query_async(conn)
        .await
        .map_err(Error::valkey("sliding-window run count", &key))?;
    Ok(WindowCount {
        count,
        over_limit: count > limit,
    })
}

/// The `MULTI`/`EXEC` block; only `ZCARD`'s reply is kept.
fn transaction(key: &str, run_id: &str, window: Window) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .zrembyscore(key, 0, window.cutoff_ms)
        .ignore()
        .zadd(key, run_id, window.now_ms)
        .ignore()
        .zcard(key)
        .expire(key, SAFETY_TTL_SECS)
        .ignore();
    pipe
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RESP of a command given as the strings a person would type.
    fn resp(args: &[&str]) -> Vec<u8> {
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        cmd.get_packed_command()
    }

    #[test]
    fn window_is_one_hour_of_literal_milliseconds() {
        let window = Window::ending_at(1_700_000_000_000);
        assert_eq!(window.cutoff_ms, 1_699_996_400_000);
    }

    #[test]
    fn the_wire_carries_the_seed_sequence_with_literal_integers() {
        let key = "amtp:rl:user:42:runs";
        let wire =
            transaction(key, "run-7", Window::ending_at(1_700_000_000_000)).get_packed_pipeline();
        let expected = [
            resp(&["MULTI"]),
            resp(&["ZREMRANGEBYSCORE", key, "0", "1699996400000"]),
            resp(&["ZADD", key, "1700000000000", "run-7"]),
            resp(&["ZCARD", key]),
            resp(&["EXPIRE", key, "3600"]),
            resp(&["EXEC"]),
        ]
        .concat();
        assert_eq!(
            String::from_utf8_lossy(&wire),
            String::from_utf8_lossy(&expected)
        );
    }
}
