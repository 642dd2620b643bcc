//! `cargo xtask __port-vars` (internal): each port variable of the unit table with its default,
//! `VAR=port` a line, so that the integration tests give every one a free port.

use std::process::ExitCode;

pub(crate) fn run() -> ExitCode {
    for port in crate::stack::port_vars() {
        println!("{}={}", port.var, port.default);
    }
    ExitCode::SUCCESS
}
