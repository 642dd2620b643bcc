//! `cargo xtask env`: the connection settings of the stack, for shells, `.env` files and tests.

use std::process::ExitCode;

use crate::cli::EnvFormat;
use crate::config::StackConfig;
use crate::stack::{self, ClientVar};
use crate::supervisor::run_state::RunState;

/// Every variable a client of the stack needs: each unit's, in table order.
pub(crate) fn vars(cfg: &StackConfig) -> Vec<ClientVar> {
    let state = RunState::read(&cfg.state_dir);
    stack::UNITS
        .iter()
        .flat_map(|unit| {
            let installed = state
                .iter()
                .flat_map(|state| &state.units)
                .find(|running| running.name == unit.name)
                .and_then(|running| running.installed.as_ref());
            (unit.client_vars)(cfg, installed)
        })
        .collect()
}

/// The running stack's settings (its ports as its supervisor recorded them); those of the
/// configuration, with a note, when it does not run.
pub(crate) fn run(cfg: &StackConfig, format: EnvFormat) -> anyhow::Result<ExitCode> {
    let cfg = match RunState::read_live(&cfg.state_dir) {
        Some(state) => state.live_config(cfg),
        None => {
            eprintln!("note: the stack is not running; start it with `cargo xtask up`");
            cfg.clone()
        }
    };
    for (key, value) in vars(&cfg) {
        match format {
            EnvFormat::Shell => println!("export {key}='{}'", value.replace('\'', r"'\''")),
            EnvFormat::Dotenv => println!("{key}={value}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::{pgbouncer, postgres};

    #[test]
    fn every_unit_s_variables_are_there_once() {
        let cfg = crate::config::tests::config_in(Path::new("/nonexistent/amtp-env-test"));
        let vars = vars(&cfg);
        let mut names: Vec<&str> = vars.iter().map(|(name, _)| *name).collect();
        for name in [
            "DATABASE_URL",
            "DIRECT_DATABASE_URL",
            "VALKEY_URL",
            "VALKEY_HOST",
            "VALKEY_PORT",
            "VALKEY_PASSWORD",
            "HEALTHCHECK_URL",
            "MCP_URL",
            "DOCS_URL",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "ARTIFACTS_BUCKET",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let value = |name: &str| &vars.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(
            value("DATABASE_URL"),
            &postgres::url(&cfg, cfg.port(pgbouncer::PORT))
        );
        assert_eq!(
            value("DIRECT_DATABASE_URL"),
            &postgres::url(&cfg, cfg.port(postgres::PORT))
        );
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a variable is given twice");
    }
}
