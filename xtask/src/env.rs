//! `cargo xtask env`: the connection settings of the stack, for shells, `.env` files and tests.

use std::process::ExitCode;

use crate::cli::EnvFormat;
use crate::config::StackConfig;
use crate::stack::{postgres, valkey};
use crate::supervisor::RunState;

/// Every variable a client of the stack needs, in a stable order.
pub(crate) fn vars(cfg: &StackConfig) -> Vec<(&'static str, String)> {
    let ports = &cfg.ports;
    let mut vars = vec![
        ("DATABASE_URL", postgres::url(cfg, ports.pgbouncer)),
        ("DIRECT_DATABASE_URL", postgres::url(cfg, ports.postgres)),
        ("VALKEY_URL", valkey::url(cfg)),
        ("VALKEY_HOST", "127.0.0.1".to_owned()),
        ("VALKEY_PORT", ports.valkey.to_string()),
        ("VALKEY_PASSWORD", cfg.valkey_password.clone()),
        (
            "HEALTHCHECK_URL",
            format!("http://127.0.0.1:{}", ports.healthcheck),
        ),
        ("MCP_URL", format!("http://127.0.0.1:{}/mcp", ports.mcp)),
        ("DOCS_URL", format!("http://127.0.0.1:{}", ports.docs)),
    ];
    // The valkey-server the stack runs, for tests that start throwaway servers of their own.
    let valkey_bin = RunState::read(&cfg.state_dir)
        .and_then(|state| state.units.into_iter().find(|u| u.name == "valkey"))
        .and_then(|unit| unit.installed)
        .map(|installed| installed.path.display().to_string());
    if let Some(path) = valkey_bin {
        vars.push(("AMTP_VALKEY_SERVER_BIN", path));
    }
    vars
}

pub(crate) fn run(cfg: &StackConfig, format: EnvFormat) -> anyhow::Result<ExitCode> {
    if RunState::read_live(&cfg.state_dir).is_none() {
        eprintln!("note: the stack is not running; start it with `cargo xtask up`");
    }
    for (key, value) in vars(cfg) {
        match format {
            EnvFormat::Shell => println!("export {key}='{}'", value.replace('\'', r"'\''")),
            EnvFormat::Dotenv => println!("{key}={value}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes what may not stand in a URL's user info or path segment.
pub(crate) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_percent_encoded() {
        assert_eq!(url_encode("amtp"), "amtp");
        assert_eq!(url_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
