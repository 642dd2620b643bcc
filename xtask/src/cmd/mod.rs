//! One module per subcommand of `cargo xtask`: each turns its flags into calls on the stack,
//! the supervisor and the OS layer, and prints what the user reads.

pub(crate) mod clients;
pub(crate) mod collector_log;
pub(crate) mod compose;
pub(crate) mod down;
pub(crate) mod env;
pub(crate) mod images;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod migrate;
pub(crate) mod port_vars;
pub(crate) mod progress;
pub(crate) mod reset;
pub(crate) mod restart;
pub(crate) mod snapshot;
pub(crate) mod status;
pub(crate) mod supervise;
pub(crate) mod test;
pub(crate) mod traces;
pub(crate) mod ui;
pub(crate) mod up;
pub(crate) mod verify;
pub(crate) mod wait;
pub(crate) mod watch;

/// How a command that prints ends: a reader that went away (`logs | head`) is no error.
pub(crate) fn printed(
    result: std::io::Result<()>,
    what: &str,
) -> anyhow::Result<std::process::ExitCode> {
    match result {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(err).context(format!("cannot print the {what}")))
        }
        _ => Ok(std::process::ExitCode::SUCCESS),
    }
}
