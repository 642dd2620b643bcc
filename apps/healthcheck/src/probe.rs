//! The three-step write probe: `PING`, `SET _amtp_health_ping 1 EX 1`, `GET _amtp_health_ping`,
//! all inside one 500 ms window that also covers (re)connecting.
//!
//! One multiplexed connection is shared by every probe, so concurrent probes pipeline on one
//! socket instead of opening one each. A connection that failed at the transport level (I/O
//! error or a step that ran out of time) is discarded, and the next probe dials a new one: Valkey
//! coming back is noticed without restarting the service. Only one probe dials at a time; the
//! others wait for it, within their own windows.

use std::time::Duration;

use amtp_valkey::keys::{HEALTH_PROBE_KEY, HEALTH_PROBE_TTL};
use redis::aio::MultiplexedConnection;
use redis::{
    Client, ConnectionAddr, ConnectionInfo, FromRedisValue, RedisConnectionInfo, RedisError, Value,
};
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout_at};

use crate::config::Config;

/// The whole probe, connection included, must finish within this window.
pub const PROBE_WINDOW: Duration = Duration::from_millis(500);

/// A step of the probe, named as in the 503 body's `probe` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    /// Liveness: connecting (and authenticating) counts as part of this step.
    Ping,
    /// The unconditional write.
    Set,
    /// The read-back, which must return `"1"`.
    Get,
}

impl ProbeStep {
    pub const ALL: [ProbeStep; 3] = [ProbeStep::Ping, ProbeStep::Set, ProbeStep::Get];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStep::Ping => "ping",
            ProbeStep::Set => "set",
            ProbeStep::Get => "get",
        }
    }
}

/// Why a step failed; the `Display` text is the 503 body's `error` field.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe timed out after {} ms", PROBE_WINDOW.as_millis())]
    Timeout,
    #[error("{0}")]
    Valkey(RedisError),
    #[error("probe read mismatch")]
    ReadMismatch,
}

impl ProbeError {
    /// Whether the connection that produced this error can no longer be trusted.
    fn breaks_connection(&self) -> bool {
        match self {
            ProbeError::Timeout => true,
            ProbeError::Valkey(err) => err.is_io_error() || err.is_unrecoverable_error(),
            ProbeError::ReadMismatch => false,
        }
    }
}

/// The step that failed and why.
#[derive(Debug)]
pub struct ProbeFailure {
    pub step: ProbeStep,
    pub error: ProbeError,
}

/// Runs probes against one Valkey, keeping a shared connection between them.
pub struct Prober {
    client: Client,
    /// The shared connection; held only long enough to clone or swap it.
    slot: std::sync::Mutex<Slot>,
    /// Held while dialling, so that only one probe dials at a time.
    dialling: Mutex<()>,
    ping: redis::Cmd,
    set: redis::Cmd,
    get: redis::Cmd,
}

#[derive(Default)]
struct Slot {
    current: Option<Lease>,
    /// Connections dialled so far; numbers each one so a late failure report about an old
    /// connection never discards its replacement.
    dialled: u64,
}

#[derive(Clone)]
struct Lease {
    generation: u64,
    connection: MultiplexedConnection,
}

impl Prober {
    /// Prepares a prober; it connects lazily, inside the first probe's window.
    pub fn new(config: &Config) -> Result<Self, RedisError> {
        let client = Client::open(ConnectionInfo {
            addr: ConnectionAddr::Tcp(config.valkey_host.clone(), config.valkey_port),
            redis: RedisConnectionInfo {
                password: Some(config.valkey_password.clone()),
                ..RedisConnectionInfo::default()
            },
        })?;
        let mut set = redis::cmd("SET");
        set.arg(HEALTH_PROBE_KEY)
            .arg("1")
            .arg("EX")
            .arg(HEALTH_PROBE_TTL.as_secs());
        let mut get = redis::cmd("GET");
        get.arg(HEALTH_PROBE_KEY);
        Ok(Prober {
            client,
            slot: std::sync::Mutex::default(),
            dialling: Mutex::new(()),
            ping: redis::cmd("PING"),
            set,
            get,
        })
    }

    /// Runs `PING`, `SET … EX 1`, `GET` within [`PROBE_WINDOW`].
    pub async fn probe(&self) -> Result<(), ProbeFailure> {
        let deadline = Instant::now() + PROBE_WINDOW;
        let mut lease = self.ping(deadline).await?;
        let result = self.write_and_read(deadline, &mut lease).await;
        if let Err(failure) = &result {
            self.discard_if_broken(&lease, &failure.error);
        }
        result
    }

    /// Step 1. A reused connection that turns out to be closed (Valkey restarted since the last
    /// probe) is replaced once within the window, so recovery costs no failed probe.
    async fn ping(&self, deadline: Instant) -> Result<Lease, ProbeFailure> {
        let (mut lease, reused) = self.lease(deadline).await?;
        let Err(failure) = step::<()>(deadline, ProbeStep::Ping, &self.ping, &mut lease).await
        else {
            return Ok(lease);
        };
        self.discard_if_broken(&lease, &failure.error);
        let closed = matches!(&failure.error, ProbeError::Valkey(err) if err.is_io_error());
        if !(reused && closed) {
            return Err(failure);
        }
        let (mut fresh, _) = self.lease(deadline).await?;
        match step::<()>(deadline, ProbeStep::Ping, &self.ping, &mut fresh).await {
            Ok(()) => Ok(fresh),
            Err(failure) => {
                self.discard_if_broken(&fresh, &failure.error);
                Err(failure)
            }
        }
    }

    /// Steps 2 and 3.
    async fn write_and_read(
        &self,
        deadline: Instant,
        lease: &mut Lease,
    ) -> Result<(), ProbeFailure> {
        step::<()>(deadline, ProbeStep::Set, &self.set, lease).await?;
        match step::<Value>(deadline, ProbeStep::Get, &self.get, lease).await? {
            Value::BulkString(echo) if echo == b"1" => Ok(()),
            _ => Err(ProbeFailure {
                step: ProbeStep::Get,
                error: ProbeError::ReadMismatch,
            }),
        }
    }

    /// The shared connection, dialling one if there is none; `true` when it was already open.
    async fn lease(&self, deadline: Instant) -> Result<(Lease, bool), ProbeFailure> {
        if let Some(lease) = self.current() {
            return Ok((lease, true));
        }
        let _dialling = timeout_at(deadline, self.dialling.lock())
            .await
            .map_err(|_| ProbeFailure {
                step: ProbeStep::Ping,
                error: ProbeError::Timeout,
            })?;
        // Another probe may have dialled while this one waited.
        if let Some(lease) = self.current() {
            return Ok((lease, true));
        }
        let connect = self.client.get_multiplexed_async_connection();
        let connection = within(deadline, ProbeStep::Ping, connect).await?;
        let mut slot = self.lock_slot();
        let lease = Lease {
            generation: slot.dialled,
            connection,
        };
        slot.dialled += 1;
        slot.current = Some(lease.clone());
        Ok((lease, false))
    }

    fn current(&self) -> Option<Lease> {
        self.lock_slot().current.clone()
    }

    /// Drops the shared connection if `error` means it is unusable and nobody replaced it yet.
    fn discard_if_broken(&self, lease: &Lease, error: &ProbeError) {
        if !error.breaks_connection() {
            return;
        }
        let mut slot = self.lock_slot();
        if slot
            .current
            .as_ref()
            .is_some_and(|current| current.generation == lease.generation)
        {
            slot.current = None;
        }
    }

    fn lock_slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // The slot holds no invariant a panicking holder could break (it only clones or
        // assigns), so a poisoned lock is still usable.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sends one prepared command on the lease's connection, within the window.
async fn step<T: FromRedisValue>(
    deadline: Instant,
    step: ProbeStep,
    command: &redis::Cmd,
    lease: &mut Lease,
) -> Result<T, ProbeFailure> {
    within(deadline, step, command.query_async(&mut lease.connection)).await
}

/// Awaits one Valkey call, failing as `step` if the window closes first.
async fn within<T>(
    deadline: Instant,
    step: ProbeStep,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, ProbeFailure> {
    match timeout_at(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(ProbeFailure {
            step,
            error: ProbeError::Valkey(err),
        }),
        Err(_) => Err(ProbeFailure {
            step,
            error: ProbeError::Timeout,
        }),
    }
}
