//! The Valkey cache, strictly optional: every operation is bounded by a short timeout, and a
//! failure is logged and treated as a miss, so requests are served uncached rather than failed.
//!
//! After a failure the server does not try to reconnect for a second, so a Valkey outage costs
//! requests nothing but a log line instead of a timeout each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::config::ValkeyConfig;
use crate::metrics::Metrics;

const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The client span of one lookup (`GET`, `MGET`): which cache, the (first) key, and the
/// result once known.
fn valkey_span(command: &'static str, cache: &str, key: &str) -> tracing::Span {
    tracing::info_span!(
        "valkey",
        otel.name = format!("valkey {command}"),
        otel.kind = "client",
        db.system.name = "valkey",
        db.operation.name = command,
        cache.name = cache,
        cache.key = key,
        cache.result = tracing::field::Empty,
        cache.hits = tracing::field::Empty,
    )
}

/// Outcome of a lookup.
pub enum Lookup<T> {
    Hit(T),
    Miss,
    /// Valkey could not be asked; the caller goes on without the cache.
    Unavailable,
}

pub struct Cache {
    client: Option<redis::Client>,
    op_timeout: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    last_failure: std::sync::Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl Cache {
    pub fn new(config: &ValkeyConfig, metrics: Arc<Metrics>) -> Self {
        let client = match redis::Client::open(config.url()) {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::error!(host = %config.host, port = config.port, %error, "invalid Valkey address; serving uncached");
                None
            }
        };
        Cache {
            client,
            op_timeout: config.op_timeout,
            connection: Mutex::new(None),
            last_failure: std::sync::Mutex::new(None),
            metrics,
        }
    }

    /// `GET key`, counted under `cache` (`tree`, `blob`, ...).
    pub async fn get(&self, cache: &str, key: &str) -> Lookup<Vec<u8>> {
        let span = valkey_span("GET", cache, key);
        let lookup = match self
            .run(|mut c| async move { c.get::<_, Option<Vec<u8>>>(key).await })
            .instrument(span.clone())
            .await
        {
            Some(Some(value)) => Lookup::Hit(value),
            Some(None) => Lookup::Miss,
            None => Lookup::Unavailable,
        };
        span.record("cache.result", self.count(cache, &lookup));
        lookup
    }

    /// `MGET keys`: one round trip for many lookups; `None` if Valkey is unavailable.
    pub async fn get_many(&self, cache: &str, keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let span = valkey_span("MGET", cache, &keys[0]);
        let values = self
            .run(|mut c| async move { c.mget::<_, Vec<Option<Vec<u8>>>>(keys).await })
            .instrument(span.clone())
            .await;
        match &values {
            Some(values) => {
                let hits = values.iter().filter(|value| value.is_some()).count();
                span.record("cache.hits", hits);
                span.record(
                    "cache.result",
                    if hits == keys.len() { "hit" } else { "miss" },
                );
                for value in values {
                    self.count(
                        cache,
                        &if value.is_some() {
                            Lookup::Hit(())
                        } else {
                            Lookup::Miss
                        },
                    );
                }
            }
            None => {
                span.record(
                    "cache.result",
                    self.count(cache, &Lookup::<()>::Unavailable),
                );
            }
        }
        values
    }

    /// `SET key value EX ttl` for each item, pipelined; failures are logged only.
    pub async fn set_many(&self, items: &[(String, Vec<u8>)], ttl: Duration) {
        if items.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (key, value) in items {
            pipe.set_ex(key, value.as_slice(), ttl.as_secs()).ignore();
        }
        self.run(|mut c| {
            let pipe = pipe.clone();
            async move { pipe.query_async::<()>(&mut c).await }
        })
        .instrument(tracing::info_span!(
            "valkey SET",
            otel.kind = "client",
            db.system.name = "valkey",
            db.operation.name = "SET",
            db.operation.batch.size = items.len(),
        ))
        .await;
    }

    /// `PING`, for `/health`.
    pub async fn is_up(&self) -> bool {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .is_some()
    }

    /// Counts the lookup under `cache` and returns its result (`hit`, `miss`, `unavailable`).
    fn count<T>(&self, cache: &str, lookup: &Lookup<T>) -> &'static str {
        let result = match lookup {
            Lookup::Hit(_) => "hit",
            Lookup::Miss => "miss",
            Lookup::Unavailable => "unavailable",
        };
        self.metrics.cache_lookup(cache, result);
        result
    }

    /// Runs one operation within the timeout; `None` (logged) on any failure.
    async fn run<T, F, Fut>(&self, operation: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        match tokio::time::timeout(self.op_timeout, operation(connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.failed(&format!("valkey operation failed: {error}"))
                    .await;
                None
            }
            Err(_) => {
                self.failed(&format!(
                    "valkey operation timed out after {} ms",
                    self.op_timeout.as_millis()
                ))
                .await;
                None
            }
        }
    }

    async fn connection(&self) -> Option<MultiplexedConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Some(connection.clone());
        }
        let recently_failed = self
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < RECONNECT_PAUSE);
        if recently_failed {
            return None;
        }
        let client = self.client.as_ref()?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.op_timeout)
            .set_response_timeout(self.op_timeout);
        match tokio::time::timeout(
            self.op_timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(Ok(connection)) => {
                *slot = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(error)) => {
                drop(slot);
                self.failed(&format!("cannot connect to valkey: {error}"))
                    .await;
                None
            }
            Err(_) => {
                drop(slot);
                self.failed("cannot connect to valkey: timed out").await;
                None
            }
        }
    }

    async fn failed(&self, reason: &str) {
        tracing::warn!(reason, "cache unavailable; serving uncached");
        *self.connection.lock().await = None;
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
}
