//! One module per subcommand of `cargo xtask`: each turns its flags into calls on the stack,
//! the supervisor and the OS layer, and prints what the user reads.

pub(crate) mod clients;
pub(crate) mod compose;
pub(crate) mod down;
pub(crate) mod env;
pub(crate) mod images;
pub(crate) mod logs;
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
pub(crate) mod watch;
