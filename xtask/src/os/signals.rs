//! Ctrl-C, SIGTERM and SIGHUP turned into a flag that a command's waits look at, so that the
//! command can undo what it began instead of dying half way (`up` stops what it started,
//! `test` tears its stack down).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Whether the user asked the running command to stop.
pub(crate) struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// From now on, SIGINT, SIGTERM and SIGHUP no longer end the process: they set the flag.
    pub(crate) fn catch() -> anyhow::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            signal_hook::flag::register(signal, Arc::clone(&flag))
                .with_context(|| format!("cannot handle signal {signal}"))?;
        }
        Ok(Interrupt(flag))
    }

    pub(crate) fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_signal_sets_the_flag_and_the_process_goes_on() {
        let interrupt = Interrupt::catch().unwrap();
        assert!(!interrupt.requested());
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
        assert!(interrupt.requested());
    }
}
