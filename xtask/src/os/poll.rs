//! The one polling helper: every wait of the xtask on something it cannot be told about (a
//! process gone, a port freed, a probe passing, a state file changing) goes through it. Its own
//! module so that the low-level modules (process, logfile, guardian) can all use it without
//! importing each other.

use std::time::{Duration, Instant};

/// How often a wait looks again: well under what a person notices, and still idle enough.
const STEP: Duration = Duration::from_millis(10);

/// Polls `ready` every few milliseconds until it gives a value, or `timeout` passes (`None`
/// then). `Duration::MAX` waits as long as it takes.
pub(crate) fn wait_for<T>(timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return None;
        }
        std::thread::sleep(STEP);
    }
}

/// Polls `done` every few milliseconds until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || done().then_some(())).is_some()
}

/// Runs `work` on a thread of its own and gives its result, or `None` when it has none within
/// `timeout`: for a call whose own timeouts do not cover every step (a client library's
/// connect timeout, while a stopped server's kernel accepts the connection and nothing answers
/// it). A thread that has not finished is left to end on its own, once its call fails.
pub(crate) fn within<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (sender, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone when the time was up: nobody wants the result any more.
        let _ = sender.send(work());
    });
    result.recv_timeout(timeout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_gives_the_first_value_or_gives_up_at_its_timeout() {
        let mut calls = 0;
        assert_eq!(
            wait_for(Duration::from_secs(5), || {
                calls += 1;
                (calls == 3).then_some(calls)
            }),
            Some(3)
        );
        let began = Instant::now();
        assert!(!wait_until(Duration::from_millis(30), || false));
        assert!(began.elapsed() >= Duration::from_millis(30));
        assert_eq!(wait_for(Duration::MAX, || Some("at once")), Some("at once"));
    }

    #[test]
    fn work_on_a_thread_gives_its_result_or_nothing_once_its_time_is_up() {
        assert_eq!(within(Duration::from_secs(5), || 42), Some(42));
        let began = Instant::now();
        let hung = within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(5));
            "too late"
        });
        assert_eq!(hung, None);
        assert!(began.elapsed() < Duration::from_secs(1));
    }
}
