//! The one polling helper: every wait of the xtask on something it cannot be told about (a
//! process gone, a port freed, a probe passing) goes through it. Its own module so that the
//! low-level modules (process, logfile, guardian) can all use it without importing each other.

use std::time::{Duration, Instant};

/// Polls `done` every few milliseconds until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
