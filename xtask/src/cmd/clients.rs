//! `cargo xtask psql` and `cargo xtask valkey-cli`: the stack's command-line clients, connected
//! to the running stack with its address, account and password.
//!
//! One module for both: they differ only in the command they build. The password goes in the
//! child's environment (`PGPASSWORD`, `REDISCLI_AUTH`), never on its command line, which `ps`
//! shows to every user of the machine; the environment of a process only its owner and root
//! can read. The client's exit code is the xtask's.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, ExitStatus};

use anyhow::{Context, bail};
use nix::sys::signal::{SigHandler, Signal};

use crate::config::StackConfig;
use crate::os::process::Launch;
use crate::repo::Repo;
use crate::stack::programs;
use crate::stack::{pgbouncer, postgres, valkey};
use crate::supervisor::run_state::{RunState, Status};

/// Which server `psql` talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Database {
    /// PgBouncer, as the apps do (`DATABASE_URL`).
    ThroughPgBouncer,
    /// Postgres itself (`DIRECT_DATABASE_URL`): sessions, `LISTEN`, administration.
    Direct,
}

/// `cargo xtask psql [--direct] [-- ARGS]`.
pub(crate) fn psql(repo: &Repo, database: Database, args: &[OsString]) -> anyhow::Result<ExitCode> {
    let server = match database {
        Database::ThroughPgBouncer => pgbouncer::UNIT.name,
        Database::Direct => postgres::UNIT.name,
    };
    let cfg = running(repo, server)?;
    let program = programs::client(&["psql"], "postgresql-client-15 (apt) or libpq (Homebrew)")?;
    run(&psql_launch(&cfg, &program, database, args))
}

/// `cargo xtask valkey-cli [-- ARGS]`.
pub(crate) fn valkey_cli(repo: &Repo, args: &[OsString]) -> anyhow::Result<ExitCode> {
    let cfg = running(repo, valkey::UNIT.name)?;
    let program = programs::client(
        &["valkey-cli", "redis-cli"],
        "redis-tools (apt) or valkey (Homebrew)",
    )?;
    run(&valkey_cli_launch(&cfg, &program, args))
}

/// `psql ARGS` with the whole connection in libpq's variables, none of it in the arguments: the
/// user's own `-d`, `-U`, `-h`, `-p` or a positional database name still win.
fn psql_launch(cfg: &StackConfig, program: &Path, database: Database, args: &[OsString]) -> Launch {
    let port = match database {
        Database::ThroughPgBouncer => cfg.port(pgbouncer::PORT),
        Database::Direct => cfg.port(postgres::PORT),
    };
    let launch = Launch::new(program)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", &cfg.postgres_user)
        .env("PGDATABASE", &cfg.postgres_db)
        .env("PGPASSWORD", &cfg.postgres_password);
    args.iter().fold(launch, |launch, arg| launch.arg(arg))
}

/// `valkey-cli -h 127.0.0.1 -p PORT ARGS`: a later `-h` or `-p` of the user's wins. valkey-cli
/// reads `VALKEYCLI_AUTH` first, then `REDISCLI_AUTH`, which is all redis-cli knows.
fn valkey_cli_launch(cfg: &StackConfig, program: &Path, args: &[OsString]) -> Launch {
    let launch = Launch::new(program)
        .arg("-h")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(cfg.port(valkey::PORT).to_string())
        .env("VALKEYCLI_AUTH", &cfg.valkey_password)
        .env("REDISCLI_AUTH", &cfg.valkey_password);
    args.iter().fold(launch, |launch, arg| launch.arg(arg))
}

/// The configuration of the running stack, whose `server` is ready, with the ports it runs on.
fn running(repo: &Repo, server: &str) -> anyhow::Result<StackConfig> {
    let not_running = "the stack is not running; start it with `cargo xtask up`";
    let Some(cfg) = repo.existing_config()? else {
        bail!(not_running);
    };
    let Some(state) = RunState::read_live(&cfg.state_dir) else {
        bail!(not_running);
    };
    if let Some(unit) = state.units.iter().find(|unit| unit.name == server)
        && unit.status != Status::Ready
    {
        bail!(
            "{server} is {}; see `cargo xtask status` and `cargo xtask logs {server}`",
            crate::cmd::status::not_ready(unit)
        );
    }
    Ok(state.live_config(&cfg))
}

/// Runs the client in the foreground, with the terminal, and returns its exit code.
fn run(launch: &Launch) -> anyhow::Result<ExitCode> {
    let mut child = Command::new(&launch.program)
        .args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .with_context(|| format!("cannot run {}", launch.program.display()))?;
    // Ctrl-C and Ctrl-\ reach the whole foreground group: they are the client's to act on
    // (psql cancels the query). The xtask waits for it, as `system(3)` does, instead of dying
    // and leaving it behind on the terminal. Ignored only after the spawn: the client keeps
    // the default dispositions. (Ignoring a valid signal cannot fail; if it did, the xtask
    // would still wait for the client rather than return without it.)
    for signal in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: ignoring a signal installs no handler.
        let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) };
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {}", launch.program.display()))?;
    Ok(ExitCode::from(exit_code(status)))
}

/// The client's exit code; a client killed by a signal as a shell reports it (128 + signal).
fn exit_code(status: ExitStatus) -> u8 {
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal));
    code.and_then(|code| u8::try_from(code).ok()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::stack::tests::args;

    /// The stack's defaults (ports 5432, 6432, 6379), with passwords that stand out.
    fn config() -> StackConfig {
        let mut cfg = crate::config::tests::config_in(Path::new("/tmp/amtp-client-test"));
        cfg.postgres_user = "alice".into();
        cfg.postgres_db = "shop".into();
        cfg.postgres_password = "pg-secret".into();
        cfg.valkey_password = "vk-secret".into();
        cfg
    }

    fn env(launch: &Launch) -> BTreeMap<&str, &str> {
        launch
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn user_args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn psql_connects_through_its_environment_and_takes_only_the_users_arguments() {
        let cfg = config();
        let extra = user_args(&["-At", "-c", "select 1"]);
        let pooled = psql_launch(
            &cfg,
            Path::new("/bin/psql"),
            Database::ThroughPgBouncer,
            &extra,
        );
        assert_eq!(pooled.program, Path::new("/bin/psql"));
        assert_eq!(args(&pooled), ["-At", "-c", "select 1"]);
        assert_eq!(
            env(&pooled),
            BTreeMap::from([
                ("PGDATABASE", "shop"),
                ("PGHOST", "127.0.0.1"),
                ("PGPASSWORD", "pg-secret"),
                ("PGPORT", "6432"),
                ("PGUSER", "alice"),
            ])
        );
        let direct = psql_launch(&cfg, Path::new("/bin/psql"), Database::Direct, &extra);
        assert_eq!(env(&direct)["PGPORT"], "5432");
        assert_eq!(args(&direct), args(&pooled));
    }

    #[test]
    fn valkey_cli_gets_the_address_as_arguments_and_the_password_in_its_environment() {
        let cfg = config();
        let launch = valkey_cli_launch(&cfg, Path::new("/bin/redis-cli"), &user_args(&["PING"]));
        assert_eq!(args(&launch), ["-h", "127.0.0.1", "-p", "6379", "PING"]);
        assert_eq!(
            env(&launch),
            BTreeMap::from([
                ("REDISCLI_AUTH", "vk-secret"),
                ("VALKEYCLI_AUTH", "vk-secret")
            ])
        );
    }

    #[test]
    fn no_password_is_on_a_command_line() {
        let cfg = config();
        let none = [];
        let launches = [
            psql_launch(&cfg, Path::new("psql"), Database::ThroughPgBouncer, &none),
            psql_launch(&cfg, Path::new("psql"), Database::Direct, &none),
            valkey_cli_launch(&cfg, Path::new("valkey-cli"), &none),
        ];
        for launch in &launches {
            for arg in args(launch) {
                assert!(!arg.contains("secret"), "a password in {:?}", args(launch));
            }
        }
    }

    #[test]
    fn exit_codes_are_passed_on_and_signals_read_as_a_shell_reads_them() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        // Killed by SIGINT (2): 130.
        assert_eq!(exit_code(ExitStatus::from_raw(2)), 130);
    }
}
