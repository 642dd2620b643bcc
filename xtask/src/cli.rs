//! Every subcommand and flag of `cargo xtask`; the doc comments are the help text.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Run the AMTP stack (PostgreSQL, PgBouncer, Valkey, nginx and the team's services) as native
/// processes, with exactly the flags of the production Compose stack.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the stack and return once every service is healthy; a background supervisor keeps
    /// it running (restarting crashed services) until `down`. On a running stack: start what
    /// is not running, and restart each service whose configuration, flags, program or binary
    /// changed since it started (saying why).
    Up {
        /// Only these services and what they depend on (a later `up` adds the rest).
        #[arg(value_parser = service_names())]
        services: Vec<String>,
        /// Stay in the foreground; Ctrl-C stops everything.
        #[arg(long)]
        attach: bool,
        /// Open the live view (`cargo xtask ui`) at once: the build's output, then each
        /// service on its way to ready; quitting the view lets the start go on.
        #[arg(long, conflicts_with_all = ["attach", "no_recreate"])]
        ui: bool,
        /// On a running stack, leave changed services running as they are (only say what
        /// changed).
        #[arg(long)]
        no_recreate: bool,
        /// Once ready, show each service's start as the supervisor recorded it (dependencies
        /// ready, spawned, listening, ready) and the critical path.
        #[arg(long, conflicts_with_all = ["attach", "ui"])]
        timings: bool,
    },
    /// Restart services of the running stack, leaving the others running; returns once they
    /// are ready again, or fails with the last lines of their log.
    Restart {
        #[arg(required = true, value_parser = service_names())]
        services: Vec<String>,
    },
    /// Stop services of the running stack; the supervisor leaves them stopped until `start`.
    Stop {
        #[arg(required = true, value_parser = service_names())]
        services: Vec<String>,
    },
    /// Start stopped services of the running stack (and the stopped services they depend on);
    /// returns once they are ready.
    Start {
        #[arg(required = true, value_parser = service_names())]
        services: Vec<String>,
    },
    /// Rebuild the apps when their sources change and restart those whose binary changed; a
    /// failed build leaves them running. Ctrl-C ends watching, not the stack.
    Watch,
    /// Stop the stack gracefully, each service once nothing that depends on it runs; data is
    /// kept.
    Down {
        /// Also delete the state dir: the database, generated passwords, logs and snapshots.
        #[arg(long)]
        volumes: bool,
    },
    /// Stop the stack and delete its state, snapshots included (same as `down --volumes`);
    /// with SERVICE, only empty that service's data (after a yes on the terminal), leaving the
    /// others running: Postgres gets a fresh cluster and the migrations, Garage a fresh node,
    /// bucket and key.
    Reset {
        #[arg(value_parser = crate::cmd::reset::service_names())]
        service: Option<String>,
        /// Do not ask (needed without a terminal).
        #[arg(long, requires = "service")]
        yes: bool,
    },
    /// Copy the stack's data (the Postgres cluster, Garage's metadata and objects) to
    /// `<state>/snapshots/NAME`; on a running stack Postgres, Garage and what depends on them
    /// stop for the copy and start again.
    Snapshot {
        /// Its name: letters, digits, `.`, `_`, `-` [default: the time, e.g. 20261207-174002].
        #[arg(value_parser = crate::cmd::snapshot::parse_name)]
        name: Option<String>,
        /// Delete the snapshot NAME instead (only this deletes one, besides `reset`).
        #[arg(long, value_name = "NAME", conflicts_with = "name",
              value_parser = crate::cmd::snapshot::parse_name)]
        delete: Option<String>,
    },
    /// List the snapshots: name, when taken, size and services.
    Snapshots,
    /// Put the stack's data back as snapshot NAME holds it; on a running stack Postgres, Garage
    /// and what depends on them stop for the swap and start again. A failed restore leaves the
    /// data as it was.
    Restore {
        #[arg(value_parser = crate::cmd::snapshot::parse_name)]
        name: String,
    },
    /// A live view of the running stack: each service's state, health, CPU and memory, the
    /// selected one's log, and keys for restart, stop, start and verify (the commands of the
    /// same names). Quitting the view leaves the stack running.
    Ui,
    /// Wait until the running stack's services (those named, or all it runs) are ready, for
    /// scripts and CI steps that start it in the background (`cargo xtask up &`); fails at once
    /// on a stopped service or a failed start, and at the timeout names the service that is
    /// not ready and why.
    Wait {
        #[arg(value_parser = service_names())]
        services: Vec<String>,
        /// How long to wait (`60s`, `2m`, `1m30s`).
        #[arg(long, default_value = "60s", value_parser = crate::cmd::wait::parse_timeout)]
        timeout: std::time::Duration,
    },
    /// Show each service's pid, port, health, uptime, version and drift from the contract;
    /// exits non-zero when something is unhealthy or the stack is not running.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the services' logs (all of them, or those named) merged in time order, each line
    /// prefixed by its service, as `docker compose logs` does.
    Logs {
        /// The services whose logs to show (default: all).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::cmd::logs::names()))]
        services: Vec<String>,
        /// Keep printing new lines of every chosen service as they are written.
        #[arg(short, long)]
        follow: bool,
        /// Only lines written since then: a duration back from now (`10m`, `1h30m`, `45s`, `2d`)
        /// or a time (`2026-12-01T10:00:00`, local; with `Z` or `+01:00` for UTC or an offset).
        #[arg(long, value_parser = crate::cmd::logs::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// How many of each service's last lines to show first, or `all` [default: 50, or all
        /// with --since].
        #[arg(short = 'n', long, alias = "lines", value_parser = crate::cmd::logs::parse_tail)]
        tail: Option<crate::cmd::logs::Tail>,
        /// Show the time the supervisor read each line (UTC).
        #[arg(short, long)]
        timestamps: bool,
        /// Leave out the service name before each line.
        #[arg(long)]
        no_prefix: bool,
    },
    /// Print the recent traces the stack's OpenTelemetry collector received, oldest first: each
    /// an indented span tree with durations and key attributes (tool, repository, ref, cache
    /// hit or miss, GitHub's status).
    Traces {
        /// Only traces with a span of this service (its `OTEL_SERVICE_NAME`, e.g.
        /// `amtp-github-mcp`).
        #[arg(long)]
        service: Option<String>,
        /// Only traces begun since then: a duration back from now (`10m`, `1h30m`) or a time
        /// (`2026-12-01T10:00:00`, local; with `Z` or `+01:00` for UTC or an offset).
        #[arg(long, value_parser = crate::cmd::logs::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only traces whose root span took at least this long (`50ms`, `2s`).
        #[arg(long, value_parser = crate::cmd::traces::parse_slow)]
        slow: Option<chrono::TimeDelta>,
        /// Only the trace with this id (or a prefix of it).
        #[arg(long)]
        trace: Option<String>,
        /// Print JSON instead of trees: each trace with its spans in tree order (depth, ids,
        /// parent ids, times, attributes).
        #[arg(long)]
        json: bool,
    },
    /// Print the counters the stack's OpenTelemetry collector received (each series' latest
    /// value and rate), beside the same series read now from the app's own `/metrics`.
    Metrics {
        /// Only this service's (its `OTEL_SERVICE_NAME`, e.g. `amtp-github-mcp`).
        #[arg(long)]
        service: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the connection settings of the stack (DATABASE_URL through PgBouncer,
    /// DIRECT_DATABASE_URL, VALKEY_URL, the apps' URLs).
    Env {
        /// `shell` (export lines, for `eval "$(cargo xtask env)"`) or `dotenv`.
        #[arg(long, default_value = "shell")]
        format: EnvFormat,
        /// The same as `--format shell`: export lines, e.g. for direnv's `.envrc`
        /// (`eval "$(cargo xtask env --export)"`).
        #[arg(long, conflicts_with = "format")]
        export: bool,
    },
    /// Run psql against the running stack, as its user on its database: through PgBouncer, as
    /// the apps connect, or straight to Postgres with `--direct`. The password goes in psql's
    /// environment, never on its command line; exits with psql's exit code.
    Psql {
        /// Connect to Postgres itself, not PgBouncer (sessions, LISTEN, administration).
        #[arg(long)]
        direct: bool,
        /// Arguments passed on to psql (after `--`), e.g. `-- -c 'select 1'`.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Run valkey-cli (or redis-cli) against the running stack's Valkey. The password goes in
    /// its environment, never on its command line; exits with its exit code.
    #[command(name = "valkey-cli")]
    ValkeyCli {
        /// Arguments passed on to valkey-cli (after `--`), e.g. `-- PING`.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Run the workspace tests against a fresh, isolated stack (temporary state dir, free
    /// ports), then verify it against the contract; the stack is always torn down.
    Test {
        /// Instead: build both apps' deploy images offline with podman, from base images made
        /// with debootstrap, and check them (user, port, healthcheck, the binary starting);
        /// needs root, podman and debootstrap, and leaves nothing behind.
        #[arg(long, conflicts_with = "cargo_args")]
        images: bool,
        /// Arguments passed on to `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<OsString>,
    },
    /// Apply, inspect, validate or repair the SQL migrations (Flyway's rules).
    Migrate(amtp_migrate::cli::MigrateArgs),
    /// Read every documented setting back from the running stack and compare it with infra/.
    Verify {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Render the documentation in docs/ to a static site.
    Docs {
        /// Output directory (default: docs/site).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Write docker-compose.yml and docker-compose.override.yml, the Compose stack, from infra/.
    Compose {
        /// Compare the files with what infra/ gives instead of writing them; exits non-zero and
        /// names each differing line when they differ.
        #[arg(long)]
        check: bool,
        /// Directory of the two files (default: the repository root).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Build the apps' deploy images (amtp-healthcheck, amtp-github-mcp) from
    /// apps/<app>/Dockerfile with docker, or podman where docker's daemon does not answer. The
    /// native stack does not use them.
    Images {
        /// Build with this tool instead of the first that works (docker, then podman).
        #[arg(long, value_enum)]
        tool: Option<crate::cmd::images::Tool>,
        /// A build argument of both Dockerfiles, e.g. `RUST_IMAGE=rust:1.95-bookworm` or
        /// `RUNTIME_IMAGE=…` (base images), `GIT_SHA=…` (default: HEAD's commit); repeatable.
        #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = crate::cmd::images::parse_build_arg)]
        build_args: Vec<(String, String)>,
    },
    /// The port variables of the services with their defaults, one `VAR=port` a line (internal:
    /// the integration tests give each a free port).
    #[command(name = "__port-vars", hide = true)]
    PortVars,
    /// Kills the services' process groups if the supervisor that started it dies (internal).
    #[command(name = "__guard", hide = true)]
    Guard,
    /// The background supervisor that `up` starts (internal).
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// Start only these services and their dependencies.
        services: Vec<String>,
    },
}

/// The services of the table, for the commands that name some.
fn service_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::stack::UNITS.iter().map(|unit| unit.name))
}

/// How `status` and `verify` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Table,
    Json,
}

impl Output {
    /// From the `--json` flag.
    pub(crate) fn json_if(json: bool) -> Output {
        if json { Output::Json } else { Output::Table }
    }
}

/// Where `up` leaves the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attach {
    /// In the background, `up` returns once the stack is ready.
    Detached,
    /// In the foreground (`--attach`): Ctrl-C stops everything.
    Attached,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum EnvFormat {
    Shell,
    Dotenv,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap's own consistency checks of every subcommand and flag (conflicting names, a
    /// required argument after an optional one, …), which otherwise fail only when that
    /// subcommand is parsed.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
