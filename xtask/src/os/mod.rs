//! The operating system underneath: processes and their process groups (and what they use),
//! log files, the guardian, ports, free disk space, directory trees, and the one polling
//! helper. Nothing here knows the stack's services.

pub(crate) mod account;
pub(crate) mod disk;
pub(crate) mod guardian;
pub(crate) mod logfile;
pub(crate) mod poll;
pub(crate) mod ports;
pub(crate) mod process;
pub(crate) mod signals;
pub(crate) mod tree;
pub(crate) mod usage;
