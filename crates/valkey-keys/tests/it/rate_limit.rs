use amtp_valkey::keys;
use amtp_valkey::rate_limit::{WINDOW_MS, Window, WindowCount, record_run};
use amtp_valkey::redis;

use crate::util::{self, RACERS, Valkey};

/// 2023-11-14T22:13:20Z; any fixed instant will do, the server's clock is never consulted.
const T0: i64 = 1_700_000_000_000;

#[tokio::test]
async fn counts_runs_and_flags_the_one_over_the_limit() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let mut answers = Vec::new();
    for (offset, run) in ["r1", "r2", "r3", "r4"].into_iter().enumerate() {
        let window = Window::ending_at(T0 + offset as i64);
        answers.push(
            record_run(&mut conn, "u1", run, window, 3)
                .await
                .expect("record run"),
        );
    }
    let expected: Vec<WindowCount> = (1..=4)
        .map(|count| WindowCount {
            count,
            over_limit: count > 3,
        })
        .collect();
    assert_eq!(answers, expected);
    // Other users have windows of their own.
    let other = record_run(&mut conn, "u2", "r1", Window::ending_at(T0), 3).await;
    assert_eq!(other.expect("record run").count, 1);
}

#[tokio::test]
async fn an_entry_at_exactly_cutoff_is_evicted_and_one_at_cutoff_plus_one_stays() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let at_cutoff = T0;
    for (run, score) in [("at-cutoff", at_cutoff), ("at-cutoff+1", at_cutoff + 1)] {
        record_run(&mut conn, "u1", run, Window::ending_at(score), 100)
            .await
            .expect("record run");
    }
    let window = Window::ending_at(at_cutoff + WINDOW_MS);
    assert_eq!(window.cutoff_ms, at_cutoff);
    let answer = record_run(&mut conn, "u1", "now", window, 100)
        .await
        .expect("record run");
    assert_eq!(answer.count, 2);
    let members: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg(keys::user_runs("u1"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .expect("ZRANGE");
    assert_eq!(
        members,
        [
            ("at-cutoff+1".to_owned(), at_cutoff + 1),
            ("now".to_owned(), at_cutoff + WINDOW_MS)
        ]
    );
    // One millisecond later the other entry reaches the cutoff too.
    let later = Window::ending_at(at_cutoff + 1 + WINDOW_MS);
    let answer = record_run(&mut conn, "u1", "later", later, 100)
        .await
        .expect("record run");
    assert_eq!(answer.count, 2);
}

#[tokio::test]
async fn every_record_sets_the_safety_ttl() {
    let valkey = Valkey::start();
    let mut conn = valkey.connect().await;
    let key = keys::user_runs("u1");
    record_run(&mut conn, "u1", "r1", Window::ending_at(T0), 10)
        .await
        .expect("record run");
    util::assert_fresh_ttl(&mut conn, &key, keys::USER_RUNS_WINDOW).await;
    redis::cmd("EXPIRE")
        .arg(&key)
        .arg(5)
        .query_async::<()>(&mut conn)
        .await
        .expect("EXPIRE");
    record_run(&mut conn, "u1", "r2", Window::ending_at(T0 + 1), 10)
        .await
        .expect("record run");
    util::assert_fresh_ttl(&mut conn, &key, keys::USER_RUNS_WINDOW).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_runs_each_see_a_distinct_count() {
    let valkey = Valkey::start();
    let mut tasks = tokio::task::JoinSet::new();
    for racer in 0..RACERS {
        let mut conn = valkey.connect().await;
        tasks.spawn(async move {
            let run = format!("run-{racer}");
            record_run(&mut conn, "u1", &run, Window::ending_at(T0), 10).await
        });
    }
    let mut counts: Vec<u64> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|answer| answer.expect("record run").count)
        .collect();
    counts.sort_unstable();
    // MULTI/EXEC: no two transactions interleave, so the counts are exactly 1..=RACERS.
    assert_eq!(counts, (1..=RACERS as u64).collect::<Vec<_>>());
}
