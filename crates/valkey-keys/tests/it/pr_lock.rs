use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amtp_valkey::keys;
use amtp_valkey::pr_lock::{PrLock, try_acquire, try_acquire_for};
use amtp_valkey::redis::{self, aio::MultiplexedConnection};

use crate::util::{self, RACERS, Valkey};

const REPO: &str = "acme/widgets";

async fn acquire_free_lock(conn: &mut MultiplexedConnection) -> PrLock {
    try_acquire(conn, REPO)
        .await
        .expect("acquire")
        .expect("lock is free")
}

#[tokio::test]
async fn a_held_lock_refuses_others_and_carries_the_contract_ttl() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let lock = acquire_free_lock(&mut conn).await;
    assert_eq!(lock.key(), keys::pr_lock(REPO));
    let pttl = util::pttl(&mut conn, lock.key()).await;
    assert!(
        pttl > 110_000 && pttl <= 120_000,
        "PR lock PTTL {pttl} ms, expected just under 120000"
    );
    assert!(
        try_acquire(&mut conn, REPO)
            .await
            .expect("acquire")
            .is_none()
    );
    // Another repo has a lock of its own.
    let other = try_acquire(&mut conn, "acme/gadgets")
        .await
        .expect("acquire");
    assert!(other.is_some());
    let key = lock.key().to_owned();
    assert!(lock.release(&mut conn).await.expect("release"));
    assert_eq!(util::pttl(&mut conn, &key).await, -2);
    assert!(
        try_acquire(&mut conn, REPO)
            .await
            .expect("acquire")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_tasks_hold_the_lock_one_at_a_time() {
    const ATTEMPTS: usize = 40;
    let valkey = Valkey::start();
    let holders = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for racer in 0..RACERS {
        let mut conn = valkey.connect().await;
        let holders = Arc::clone(&holders);
        tasks.spawn(async move {
            let mut held = 0u64;
            for _ in 0..ATTEMPTS {
                let Some(lock) = try_acquire(&mut conn, REPO).await.expect("acquire") else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                held += 1;
                let others = holders.fetch_add(1, Ordering::SeqCst);
                assert_eq!(
                    others, 0,
                    "racer {racer} got the lock while {others} held it"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                assert!(
                    lock.release(&mut conn).await.expect("release"),
                    "holder releases"
                );
            }
            (racer, held)
        });
    }
    let results = tasks.join_all().await;
    let total: u64 = results.iter().map(|(_, held)| held).sum();
    let winners: BTreeSet<usize> = results
        .iter()
        .filter(|(_, held)| *held > 0)
        .map(|(racer, _)| *racer)
        .collect();
    assert!(total >= 20, "only {total} acquisitions in the race");
    assert!(
        winners.len() >= 2,
        "the lock never changed hands: {winners:?}"
    );
}

#[tokio::test]
async fn a_stale_holder_cannot_release_or_extend_the_new_holders_lock() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let key = keys::pr_lock(REPO);
    let stale = try_acquire_for(&mut conn, REPO, Duration::from_millis(50))
        .await
        .expect("acquire")
        .expect("lock is free");
    util::wait_until_gone(&mut conn, &key).await;
    let current = try_acquire(&mut conn, REPO)
        .await
        .expect("acquire")
        .expect("expired");
    let current_token = util::get(&mut conn, &key).await;

    assert!(
        !stale.extend(&mut conn).await.expect("extend"),
        "stale extend refused"
    );
    let pttl = util::pttl(&mut conn, &key).await;
    assert!(
        pttl > 110_000,
        "stale extend shortened the new lock to {pttl} ms"
    );
    assert!(
        !stale.release(&mut conn).await.expect("release"),
        "stale release refused"
    );
    assert_eq!(
        util::get(&mut conn, &key).await,
        current_token,
        "new lock untouched"
    );

    assert!(current.release(&mut conn).await.expect("release"));
    assert_eq!(util::pttl(&mut conn, &key).await, -2);
}

#[tokio::test]
async fn the_holder_extends_to_the_full_ttl() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let lock = acquire_free_lock(&mut conn).await;
    redis::cmd("PEXPIRE")
        .arg(lock.key())
        .arg(1_000)
        .query_async::<()>(&mut conn)
        .await
        .expect("PEXPIRE");
    assert!(lock.extend(&mut conn).await.expect("extend"));
    let pttl = util::pttl(&mut conn, lock.key()).await;
    assert!(pttl > 110_000, "extend left PTTL at {pttl} ms");
    assert_eq!(lock.ttl(), keys::PR_LOCK_TTL);
    assert!(lock.release(&mut conn).await.expect("release"));
}
