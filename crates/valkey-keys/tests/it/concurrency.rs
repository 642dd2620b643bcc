use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amtp_valkey::concurrency::{Acquisition, acquire, release};
use amtp_valkey::keys;

use crate::util::{self, RACERS, Valkey};

const REPO: &str = "acme/widgets";

#[tokio::test]
async fn grants_up_to_max_then_refuses_and_sets_the_safety_ttl() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let key = keys::repo_concurrency(REPO);
    for in_flight in 1..=2 {
        let answer = acquire(&mut conn, REPO, 2).await.expect("acquire");
        assert_eq!(
            answer,
            Acquisition {
                granted: true,
                in_flight
            }
        );
    }
    util::assert_fresh_ttl(&mut conn, &key, keys::REPO_CONCURRENCY_TTL).await;
    let refused = acquire(&mut conn, REPO, 2).await.expect("acquire");
    assert_eq!(
        refused,
        Acquisition {
            granted: false,
            in_flight: 2
        }
    );
    assert_eq!(release(&mut conn, REPO).await.expect("release"), 1);
    assert_eq!(release(&mut conn, REPO).await.expect("release"), 0);
    assert_eq!(
        util::pttl(&mut conn, &key).await,
        -2,
        "the last release deletes the key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_acquires_never_exceed_max() {
    const MAX: u64 = 4;
    const ATTEMPTS: usize = 25;
    let valkey = Valkey::start();
    let holders = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let mut conn = valkey.connect().await;
        let holders = Arc::clone(&holders);
        tasks.spawn(async move {
            let mut granted = 0;
            for _ in 0..ATTEMPTS {
                let answer = acquire(&mut conn, REPO, MAX).await.expect("acquire");
                assert!(answer.in_flight <= MAX, "{answer:?} exceeds max {MAX}");
                if !answer.granted {
                    tokio::task::yield_now().await;
                    continue;
                }
                granted += 1;
                let before = holders.fetch_add(1, Ordering::SeqCst);
                assert!(
                    before < MAX,
                    "{} slots held at once, max is {MAX}",
                    before + 1
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                release(&mut conn, REPO).await.expect("release");
            }
            granted
        });
    }
    let granted: u64 = tasks.join_all().await.into_iter().sum();
    assert!(granted >= MAX, "only {granted} slots granted in the race");
    let mut conn = valkey.connect().await;
    assert_eq!(
        util::get(&mut conn, &keys::repo_concurrency(REPO)).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_releases_never_go_below_zero() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let key = keys::repo_concurrency(REPO);
    for _ in 0..3 {
        assert!(acquire(&mut conn, REPO, 10).await.expect("acquire").granted);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..2 * RACERS {
        let mut conn = valkey.connect().await;
        // Each answer is read as u64: a negative reply would fail the release.
        tasks.spawn(async move { release(&mut conn, REPO).await });
    }
    let mut remaining: Vec<u64> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|answer| answer.expect("release"))
        .collect();
    remaining.sort_unstable();
    let mut expected = vec![0; 2 * RACERS - 2];
    expected.extend([1, 2]);
    assert_eq!(remaining, expected);
    assert_eq!(util::get(&mut conn, &key).await, None);
    let next = acquire(&mut conn, REPO, 10).await.expect("acquire");
    assert_eq!(
        next,
        Acquisition {
            granted: true,
            in_flight: 1
        }
    );
}

#[tokio::test]
async fn release_after_eviction_leaves_nothing_in_flight() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let key = keys::repo_concurrency(REPO);
    assert!(acquire(&mut conn, REPO, 1).await.expect("acquire").granted);
    assert_eq!(util::del(&mut conn, &key).await, 1, "simulate eviction");
    assert_eq!(release(&mut conn, REPO).await.expect("release"), 0);
    assert_eq!(util::pttl(&mut conn, &key).await, -2);
}
