//! The Valkey key contract of the AMTP platform (`infra/valkey/NAMESPACES.md`) and the three
//! coordination primitives built on it.
//!
//! # Design
//!
//! - [`keys`] is the contract: one builder per row of the namespace table and one TTL constant
//!   per row. No caller formats a key by hand; `tests/namespaces_doc.rs` keeps the builders and
//!   the table in `NAMESPACES.md` from drifting apart.
//! - Each primitive is a single round trip that is atomic on the server, so concurrent workers
//!   never see a half-applied update:
//!   - [`rate_limit`]: the seed's sliding window, verbatim — `MULTI`, `ZREMRANGEBYSCORE`, `ZADD`,
//!     `ZCARD`, `EXPIRE`, `EXEC` — with the caller's clock injected as literal epoch-ms integers
//!     ([`rate_limit::Window`]), so the server never evaluates time and tests can pin it.
//!   - [`concurrency`]: a per-repo counter whose check-and-increment and never-below-zero
//!     decrement are Lua scripts (a `GET` followed by `INCR` from the client would race).
//!   - [`pr_lock`]: `SET key token NX PX ttl` with a random token; release and extend are Lua
//!     compare-and-delete / compare-and-pexpire, so a holder whose lock expired cannot touch the
//!     next holder's lock.
//! - Every key a primitive writes carries a TTL, because the server runs `allkeys-lru` without
//!   persistence: state may vanish (eviction, restart) and the primitives are written so that a
//!   vanished key means "nothing in flight", never a stuck or negative state.
//! - Functions take any `redis::aio::ConnectionLike` (a `ConnectionManager` or a cloned
//!   `MultiplexedConnection`); [`redis`] is re-exported so callers build those with the same
//!   version.

pub mod concurrency;
mod error;
pub mod keys;
pub mod pr_lock;
pub mod rate_limit;

pub use error::Error;
pub use redis;
