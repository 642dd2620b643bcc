//! A throwaway server and the raw reads the assertions need.

use std::time::{Duration, Instant};

use amtp_testkit::ValkeyServer;
use amtp_valkey::redis::{self, aio::MultiplexedConnection};

/// How many tasks race in the concurrency tests.
pub const RACERS: usize = 16;

pub struct Valkey {
    _server: ValkeyServer,
    client: redis::Client,
}

impl Valkey {
    pub fn start() -> Self {
        let server = ValkeyServer::start("primitives-test-password");
        let client = redis::Client::open(server.url()).expect("valid redis:// URL from testkit");
        Valkey {
            _server: server,
            client,
        }
    }

    /// A connection of its own (its own TCP socket), so racing tasks really interleave on
    /// the server rather than queue behind one socket.
    pub async fn connect(&self) -> MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the throwaway valkey")
    }
}

/// `TTL key` in seconds (-2 absent, -1 no TTL).
pub async fn ttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("TTL")
}

/// `PTTL key` in milliseconds (-2 absent, -1 no TTL).
pub async fn pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("PTTL")
}

/// `GET key`.
pub async fn get(conn: &mut MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("GET")
}

/// `DEL key`; returns how many keys were deleted.
pub async fn del(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("DEL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("DEL")
}

/// Polls until `key` no longer exists (expired), failing after 5 s.
pub async fn wait_until_gone(conn: &mut MultiplexedConnection, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pttl(conn, key).await != -2 {
        assert!(
            Instant::now() < deadline,
            "`{key}` did not expire within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts `key`'s TTL is the contract's `expected`, allowing for the seconds a slow machine
/// takes between the write and the read.
pub async fn assert_fresh_ttl(conn: &mut MultiplexedConnection, key: &str, expected: Duration) {
    let ttl_secs = ttl(conn, key).await;
    let expected = i64::try_from(expected.as_secs()).expect("TTL fits i64");
    assert!(
        ttl_secs <= expected && ttl_secs > expected - 10,
        "`{key}` has TTL {ttl_secs} s, expected just under {expected} s"
    );
}
