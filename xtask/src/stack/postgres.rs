//! PostgreSQL 15, started like the Compose `postgres` service: initdb with SCRAM for host and
//! local auth, the role and database from `POSTGRES_USER`/`POSTGRES_DB`, and each setting of
//! `infra/postgres/postgresql.conf` as a `-c` flag.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use crate::binaries::{self, Installed, Wanted};
use crate::config::{StackConfig, write_private};
use crate::contract::{self, Setting};
use crate::process::{self, Launch, give_to, unprivileged_account};

pub(crate) const WANTED: Wanted = Wanted {
    names: &["postgres"],
    version_arg: "--version",
    pin: "15",
    install_hint: "postgresql-15 (apt) or postgresql@15 (Homebrew)",
};

pub(crate) fn locate(_cfg: &StackConfig) -> anyhow::Result<Installed> {
    binaries::locate(&WANTED)
}

fn data_dir(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir("postgres").join("data")
}

pub(crate) fn prepare(cfg: &StackConfig, installed: &Installed) -> anyhow::Result<Launch> {
    let account = unprivileged_account()?;
    let dir = cfg.service_dir("postgres");
    for path in [&dir, &cfg.runtime_dir] {
        fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
        give_to(path, account.as_ref())?;
    }
    let data = data_dir(cfg);
    if !data.join("PG_VERSION").exists() {
        initdb(cfg, installed, &data)?;
    }
    let socket_lock = cfg
        .runtime_dir
        .join(format!(".s.PGSQL.{}.lock", cfg.ports.postgres));
    for lock in [data.join("postmaster.pid"), socket_lock] {
        remove_stale_lock(&lock, &data)?;
    }

    let mut launch = Launch::new(&installed.path, stop_signal())
        .arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(cfg.ports.postgres.to_string())
        .arg("-h")
        .arg("127.0.0.1")
        .arg("-k")
        .arg(&cfg.runtime_dir)
        .run_as(account);
    for setting in contract::postgres(&cfg.repo_root)? {
        launch = launch
            .arg("-c")
            .arg(format!("{}={}", setting.key, setting.value));
    }
    Ok(launch)
}

/// SIGINT is Postgres' "fast shutdown": roll back open transactions, checkpoint, exit.
/// (SIGTERM waits for every client to disconnect, which can take forever.)
fn stop_signal() -> Signal {
    Signal::SIGINT
}

/// Creates the cluster in a scratch dir and renames it into place only when initdb succeeded,
/// so a failed initdb never leaves a half-made data dir: the next `up` simply starts over.
fn initdb(cfg: &StackConfig, installed: &Installed, data: &Path) -> anyhow::Result<()> {
    let account = unprivileged_account()?;
    let dir = cfg.service_dir("postgres");
    let scratch = dir.join("data.initdb");
    if scratch.exists() {
        fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot remove the leftover {}", scratch.display()))?;
    }
    // initdb reads the superuser password from a file, never the command line.
    let pwfile = dir.join("initdb.pw");
    write_private(&pwfile, cfg.postgres_password.as_bytes())?;
    give_to(&pwfile, account.as_ref())?;

    let initdb = installed.path.with_file_name("initdb");
    let log = cfg.log_file("postgres");
    let mut command = Command::new(&initdb);
    command
        .arg("-D")
        .arg(&scratch)
        .arg("-U")
        .arg(&cfg.postgres_user)
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(contract::initdb_args(&cfg.repo_root)?)
        // A dev cluster: skip fsync (much faster; a crash of the machine may lose it) and use
        // the C locale, which exists everywhere.
        .args(["--no-sync", "--encoding=UTF8", "--locale=C"])
        .stdin(Stdio::null())
        .stdout(fs::File::options().create(true).append(true).open(&log)?)
        .stderr(fs::File::options().append(true).open(&log)?);
    if let Some(account) = &account {
        use std::os::unix::process::CommandExt;
        command.uid(account.uid.as_raw()).gid(account.gid.as_raw());
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", initdb.display()));
    let _ = fs::remove_file(&pwfile);
    if !status?.success() {
        let _ = fs::remove_dir_all(&scratch);
        bail!(
            "initdb failed; nothing was kept, the next `up` starts over. Its output:\n{}",
            process::log_tail(&log, 20)
        );
    }
    fs::rename(&scratch, data).context("cannot move the new cluster into place")?;
    Ok(())
}

/// After a crash or reboot `postmaster.pid` and the socket's lock file may name a pid that is
/// now a zombie (an init that does not reap) or belongs to another program; Postgres would
/// refuse to start while that pid exists.
fn remove_stale_lock(lock: &Path, data: &Path) -> anyhow::Result<()> {
    let Ok(text) = fs::read_to_string(lock) else {
        return Ok(());
    };
    let pid: Option<i32> = text.lines().next().and_then(|l| l.trim().parse().ok());
    let running_postgres = pid
        .and_then(process::command_name)
        .is_some_and(|name| name.starts_with("postgres"));
    if running_postgres {
        bail!(
            "a Postgres (pid {}) is still running on {}; stop it (`cargo xtask down`) first",
            pid.unwrap_or_default(),
            data.display()
        );
    }
    fs::remove_file(lock).with_context(|| format!("cannot remove {}", lock.display()))
}

/// Connects straight to Postgres (not through PgBouncer) as the stack's role.
pub(crate) fn connect(
    cfg: &StackConfig,
    port: u16,
    dbname: &str,
) -> anyhow::Result<::postgres::Client> {
    ::postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(&cfg.postgres_user)
        .password(&cfg.postgres_password)
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(2))
        .connect(::postgres::NoTls)
        .with_context(|| format!("cannot connect to 127.0.0.1:{port}/{dbname}"))
}

pub(crate) fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    connect(cfg, cfg.ports.postgres, "postgres")?.simple_query("SELECT 1")?;
    Ok(())
}

/// What the postgres image's entrypoint does after initdb: create `POSTGRES_DB`. Then hand
/// the role's SCRAM verifier to PgBouncer, which needs it for SCRAM pass-through.
pub(crate) fn on_ready(cfg: &StackConfig) -> anyhow::Result<()> {
    let mut client = connect(cfg, cfg.ports.postgres, "postgres")?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&cfg.postgres_db],
        )?
        .is_some();
    if !exists {
        let name = cfg.postgres_db.replace('"', "\"\"");
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .with_context(|| format!("cannot create database {}", cfg.postgres_db))?;
    }
    let verifier: Option<String> = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&cfg.postgres_user],
        )?
        .get(0);
    match verifier {
        Some(v) if v.starts_with("SCRAM-SHA-256$") => super::pgbouncer::write_auth_file(cfg, &v),
        _ => bail!(
            "role {} has no SCRAM password; set one with ALTER ROLE ... PASSWORD",
            cfg.postgres_user
        ),
    }
}

/// The migration step of `up`: Flyway's rules, applied directly (not through PgBouncer).
pub(crate) fn migrate(cfg: &StackConfig) -> anyhow::Result<String> {
    let settings = migration_settings(cfg);
    let report = amtp_migrate::migrate(&settings).context("migrations failed")?;
    let version = report.schema_version.as_deref().unwrap_or("none");
    Ok(match report.applied.len() {
        0 => format!("schema up to date at version {version}"),
        n => format!("applied {n} migrations, schema now at version {version}"),
    })
}

pub(crate) fn migration_settings(cfg: &StackConfig) -> amtp_migrate::Settings {
    amtp_migrate::Settings {
        url: url(cfg, cfg.ports.postgres),
        location: cfg.repo_root.join("migrations/sql"),
    }
}

/// `postgres://user:password@127.0.0.1:<port>/<db>` (Postgres itself, or PgBouncer's port).
pub(crate) fn url(cfg: &StackConfig, port: u16) -> String {
    format!(
        "postgres://{}:{}@127.0.0.1:{port}/{}",
        crate::env::url_encode(&cfg.postgres_user),
        crate::env::url_encode(&cfg.postgres_password),
        crate::env::url_encode(&cfg.postgres_db)
    )
}

/// Each documented setting as the running server reports it (`SHOW`).
pub(crate) fn live_settings(cfg: &StackConfig) -> anyhow::Result<Vec<(Setting, String)>> {
    let mut client = connect(cfg, cfg.ports.postgres, &cfg.postgres_db)?;
    contract::postgres(&cfg.repo_root)?
        .into_iter()
        .map(|setting| {
            let live: String = client
                .query_one(&format!("SHOW {}", setting.key), &[])?
                .get(0);
            Ok((setting, live))
        })
        .collect()
}

/// How the role's password is stored (`SCRAM-SHA-256` or `md5`), never the password itself.
pub(crate) fn stored_password_kind(cfg: &StackConfig) -> anyhow::Result<String> {
    let mut client = connect(cfg, cfg.ports.postgres, &cfg.postgres_db)?;
    let stored: Option<String> = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&cfg.postgres_user],
        )?
        .get(0);
    Ok(match stored {
        Some(s) if s.starts_with("SCRAM-SHA-256$") => "SCRAM-SHA-256".into(),
        Some(s) if s.starts_with("md5") => "md5".into(),
        Some(_) => "other".into(),
        None => "none".into(),
    })
}

/// The auth methods in `pg_hba.conf` for host and local connections, as the server loaded them.
pub(crate) fn live_auth_methods(cfg: &StackConfig) -> anyhow::Result<Vec<(String, String)>> {
    let mut client = connect(cfg, cfg.ports.postgres, &cfg.postgres_db)?;
    Ok(client
        .query(
            "SELECT DISTINCT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}
