//! `cargo xtask env`: the connection settings of the stack, for shells, `.env` files and tests.

use std::process::ExitCode;

use crate::cli::EnvFormat;
use crate::config::StackConfig;
use crate::stack::{garage, github_mcp, healthcheck, nginx, pgbouncer, postgres, valkey};
use crate::supervisor::run_state::RunState;

/// Every variable a client of the stack needs, in a stable order.
pub(crate) fn vars(cfg: &StackConfig) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        (
            "DATABASE_URL",
            postgres::url(cfg, cfg.port(pgbouncer::PORT)),
        ),
        (
            "DIRECT_DATABASE_URL",
            postgres::url(cfg, cfg.port(postgres::PORT)),
        ),
        ("VALKEY_URL", valkey::url(cfg)),
        ("VALKEY_HOST", "127.0.0.1".to_owned()),
        ("VALKEY_PORT", cfg.port(valkey::PORT).to_string()),
        ("VALKEY_PASSWORD", cfg.valkey_password.clone()),
        (
            "HEALTHCHECK_URL",
            format!("http://127.0.0.1:{}", cfg.port(healthcheck::PORT)),
        ),
        (
            "MCP_URL",
            format!("http://127.0.0.1:{}/mcp", cfg.port(github_mcp::PORT)),
        ),
        (
            "DOCS_URL",
            format!("http://127.0.0.1:{}", cfg.port(nginx::PORT)),
        ),
    ];
    vars.extend(garage::client_vars(cfg));
    // The valkey-server the stack runs, for tests that start throwaway servers of their own.
    let valkey_bin = RunState::read(&cfg.state_dir)
        .and_then(|state| {
            state
                .units
                .into_iter()
                .find(|u| u.name == valkey::UNIT.name)
        })
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
