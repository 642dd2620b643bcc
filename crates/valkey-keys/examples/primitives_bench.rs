//! Latency and throughput of each primitive against a throwaway Valkey on loopback.
//!
//! `cargo run -p amtp-valkey --example primitives_bench -- [OPS_PER_TASK] [TASKS]`
//! (defaults 5000 and 1, then the same with 16 tasks on their own connections). Every
//! operation is one round trip; the figures are round-trip latencies as a worker sees them.

use std::time::{Duration, Instant};

use amtp_testkit::ValkeyServer;
use amtp_valkey::redis::{self, aio::MultiplexedConnection};
use amtp_valkey::{concurrency, pr_lock, rate_limit};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let ops: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    if ops == 0 {
        return Err("OPS_PER_TASK must be at least 1".into());
    }
    let tasks: Vec<usize> = match args.next() {
        Some(n) => vec![n.parse()?],
        None => vec![1, 16],
    };
    let server = ValkeyServer::start("bench-password");
    let client = redis::Client::open(server.url())?;
    println!("| primitive | tasks | ops | ops/s | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    for &n in &tasks {
        for primitive in [
            Primitive::Ping,
            Primitive::Window,
            Primitive::Counter,
            Primitive::Lock,
        ] {
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                conns.push(client.get_multiplexed_async_connection().await?);
            }
            let started = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for (task, conn) in conns.into_iter().enumerate() {
                set.spawn(run(primitive, conn, task, ops));
            }
            let mut latencies = Vec::with_capacity(n * ops);
            for result in set.join_all().await {
                latencies.extend(result?);
            }
            let elapsed = started.elapsed();
            latencies.sort_unstable();
            println!(
                "| {} | {n} | {} | {:.0} | {} | {} |",
                primitive.name(),
                latencies.len(),
                latencies.len() as f64 / elapsed.as_secs_f64(),
                percentile(&latencies, 50).as_micros(),
                percentile(&latencies, 99).as_micros(),
            );
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Primitive {
    /// Baseline: one bare round trip.
    Ping,
    Window,
    Counter,
    Lock,
}

impl Primitive {
    fn name(self) -> &'static str {
        match self {
            Primitive::Ping => "PING (baseline round trip)",
            Primitive::Window => "rate_limit::record_run",
            Primitive::Counter => "concurrency::acquire + release",
            Primitive::Lock => "pr_lock::try_acquire + release",
        }
    }
}

/// One task's operations on keys of its own (no contention: the cost of the primitive itself).
async fn run(
    primitive: Primitive,
    mut conn: MultiplexedConnection,
    task: usize,
    ops: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error + Send + Sync>> {
    let subject = format!("bench-{task}");
    let mut latencies = Vec::with_capacity(ops);
    for op in 0..ops {
        let started = Instant::now();
        match primitive {
            Primitive::Ping => {
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
            }
            Primitive::Window => {
                let window = rate_limit::Window::ending_at(1_700_000_000_000 + op as i64);
                let run_id = op.to_string();
                rate_limit::record_run(&mut conn, &subject, &run_id, window, 100).await?;
            }
            Primitive::Counter => {
                concurrency::acquire(&mut conn, &subject, 4).await?;
                concurrency::release(&mut conn, &subject).await?;
            }
            Primitive::Lock => {
                if let Some(lock) = pr_lock::try_acquire(&mut conn, &subject).await? {
                    lock.release(&mut conn).await?;
                }
            }
        }
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[(sorted.len() - 1) * pct / 100]
}
