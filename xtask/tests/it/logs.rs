//! `cargo xtask logs` over the logs of the isolated stack that `cargo xtask test` runs (its
//! state dir comes from the environment; without it these tests fail and say how to run them):
//! several services merged in time order, each line prefixed, and `--since` filtering; and on a
//! stack of its own, rotation by size.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use amtp_testkit::stack_env;

use crate::util::{TestStack, describe, wait_for};

/// `xtask logs <args>` on the isolated stack, its output; fails the test unless it succeeds.
fn logs(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("logs")
        .args(args)
        .env("AMTP_STATE_DIR", stack_env("AMTP_STATE_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run xtask logs");
    assert!(
        output.status.success(),
        "xtask logs {args:?}:\n{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A line of `logs --timestamps`: service, timestamp, text.
fn parse(line: &str) -> (&str, &str, &str) {
    let (service, rest) = line
        .split_once(" | ")
        .unwrap_or_else(|| panic!("no `service | ` prefix: {line:?}"));
    let (stamp, text) = rest.split_at(rest.len().min(24));
    (service.trim_end(), stamp, text.trim_start())
}

#[test]
fn logs_merge_several_services_in_time_order_with_their_prefixes() {
    let merged = logs(&["--tail", "all", "--timestamps"]);
    let lines: Vec<(&str, &str, &str)> = merged.lines().map(parse).collect();
    let mut services: Vec<&str> = lines.iter().map(|(service, _, _)| *service).collect();
    services.sort();
    services.dedup();
    for wanted in ["postgres", "valkey", "nginx", "supervisor"] {
        assert!(
            services.contains(&wanted),
            "no {wanted} lines in:\n{merged}"
        );
    }
    // Every line of this stack was written by the supervisor's pumps: all carry a timestamp,
    // and the merge puts them in order.
    for (service, stamp, text) in &lines {
        assert!(
            stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{service} line without a timestamp: {stamp}{text}"
        );
    }
    for pair in lines.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "out of order:\n{:?}\n{:?}",
            pair[0],
            pair[1]
        );
    }
    // The names are padded to one width, so the bars line up.
    let bars: Vec<usize> = merged.lines().map(|l| l.find(" | ").unwrap()).collect();
    assert!(bars.windows(2).all(|w| w[0] == w[1]), "{merged}");
    assert!(
        merged.contains("supervisor") && merged.contains("stack ready"),
        "{merged}"
    );
}

#[test]
fn since_keeps_only_the_lines_written_after_it() {
    let docs = stack_env("DOCS_URL");
    let marker = format!("logs-test-{}", std::process::id());
    let request = |path: &str| {
        // A 404 is logged like any request.
        let _ = ureq::get(&format!("{docs}/{path}")).call();
    };
    let written = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if logs(&["nginx", "--since", "1m"]).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    request(&format!("{marker}-before"));
    assert!(
        written(&format!("{marker}-before")),
        "the request is not in nginx's log"
    );
    std::thread::sleep(Duration::from_millis(100));
    let between = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    std::thread::sleep(Duration::from_millis(100));
    request(&format!("{marker}-after"));
    assert!(
        written(&format!("{marker}-after")),
        "the request is not in nginx's log"
    );

    let recent = logs(&["--since", "10m"]);
    assert!(recent.contains(&format!("{marker}-before")), "{recent}");
    assert!(recent.contains(&format!("{marker}-after")), "{recent}");
    let since = logs(&["nginx", "postgres", "--since", &between, "--timestamps"]);
    assert!(since.contains(&format!("{marker}-after")), "{since}");
    assert!(!since.contains(&format!("{marker}-before")), "{since}");
    for line in since.lines() {
        let (_, stamp, _) = parse(line);
        assert!(stamp >= between.as_str(), "{line} is older than {between}");
    }
    let none = logs(&["--since", "2999-01-01T00:00:00Z"]);
    assert!(none.is_empty(), "{none}");
}

#[test]
fn a_small_size_limit_rotates_the_real_logs_and_since_still_reads_them() {
    const LIMIT: u64 = 4096;
    let mut stack = TestStack::new("logs-rotation");
    stack
        .env
        .insert("AMTP_LOG_MAX_BYTES".into(), LIMIT.to_string());
    stack.up();
    let docs = format!("http://127.0.0.1:{}", stack.port("DOCS_HOST_PORT"));
    // About 120 bytes a line: three rotations of nginx's log, less than the four files kept.
    for n in 0..80 {
        let _ = ureq::get(&format!("{docs}/rotation-{n:03}")).call();
    }
    let log = stack.state_dir.join("logs/nginx.log");
    let rotated = |n: usize| PathBuf::from(format!("{}.{n}", log.display()));
    let last_written = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("rotation-079"))
    });
    assert!(last_written, "the last request is not in {}", log.display());
    for path in [log.clone(), rotated(1), rotated(2)] {
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .len();
        assert!(size <= LIMIT, "{} has {size} bytes", path.display());
    }
    assert!(!rotated(4).exists(), "more than three rotated files kept");

    let output = stack.ok(&["logs", "nginx", "--since", "10m", "--no-prefix"]);
    let requests: Vec<&str> = output
        .lines()
        .filter_map(|line| line.split("GET /").nth(1)?.split(' ').next())
        .filter(|path| path.starts_with("rotation-"))
        .collect();
    let wanted: Vec<String> = (0..80).map(|n| format!("rotation-{n:03}")).collect();
    assert_eq!(
        requests, wanted,
        "every request once, in order, across the rotated files"
    );
}
