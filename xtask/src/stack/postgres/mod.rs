//! PostgreSQL 15, started like the Compose `postgres` service: initdb with SCRAM for host and
//! local auth, the role and database from `POSTGRES_USER`/`POSTGRES_DB`, and each setting of
//! `infra/postgres/postgresql.conf` as a `-c` flag.

mod checks;
mod cluster;
mod role_password;
pub(crate) use cluster::Released;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use super::{Daemon, Kind, Liveness, Program, RunAs, Unit};
use crate::config::{PortVar, StackConfig, write_private};
use crate::os::account::{give_to, unprivileged_account};
use crate::os::process::{self, Launch};
use crate::stack::compose::{self, Image, Service, Volume};
use crate::stack::contract::{Contract, Format, InfraFile, Setting};
use crate::stack::programs::{Installed, OffPin, Wanted};

pub(crate) const PORT: PortVar = PortVar {
    var: "POSTGRES_PORT",
    default: 5432,
};

/// The server's `-c` flags.
pub(crate) const CONF: InfraFile = InfraFile {
    path: "infra/postgres/postgresql.conf",
    format: Format::KeyEqualsValue,
};

/// initdb's arguments, one a line.
pub(crate) const INITDB_ARGS: InfraFile = InfraFile {
    path: "infra/postgres/initdb.args",
    format: Format::Lines,
};

pub(crate) const UNIT: Unit = Unit {
    name: "postgres",
    program: Program::External(Wanted {
        names: &["postgres"],
        version_arg: "--version",
        pin: "15",
        install_hint: "postgresql-15 (apt) or postgresql@15 (Homebrew)",
        // Another major cannot open the cluster a 15 created, nor is it the contract's
        // database: Ubuntu's 14 or 16 is refused rather than reported.
        off_pin: OffPin::Refuse {
            product: "PostgreSQL",
            fix: "install postgresql-15 from the PostgreSQL project's apt repository \
                  (README, Quick start)",
        },
    }),
    depends_on: &[],
    checks: checks::checks,
    infra: &[CONF, INITDB_ARGS],
    client_vars: |cfg, _| vec![("DIRECT_DATABASE_URL", url(cfg, cfg.port(PORT)))],
    compose: Some(compose),
    // The whole cluster: the roles (and their SCRAM verifiers) and every database.
    data: &[DATA],
    kind: Kind::Daemon(Daemon {
        port: PORT,
        // Postgres' "fast shutdown": roll back open transactions, checkpoint, exit. (SIGTERM
        // waits for every client to disconnect, which can take forever.)
        stop_signal: Signal::SIGINT,
        run_as: RunAs::UnprivilegedWhenRoot,
        prepare,
        launch,
        probe,
        on_ready,
        // A kill would cut off its clients' transactions, and crash recovery is the user's
        // call: reported, never restarted by its probe.
        liveness: Liveness::ReportAfter(3),
        disk_need,
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// The cluster's directory in the service dir.
const DATA: &str = "data";

fn data_dir(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name).join(DATA)
}

/// A new cluster: initdb's 38 MiB (a 16 MiB WAL segment among them) and the database the
/// first start copies from template1 (8 MiB), with room for the migrations. An existing one:
/// the next WAL segment.
fn disk_need(cfg: &StackConfig) -> u64 {
    const MIB: u64 = 1024 * 1024;
    if data_dir(cfg).join("PG_VERSION").exists() {
        16 * MIB
    } else {
        64 * MIB
    }
}

/// Where initdb makes a new cluster, renamed to [`data_dir`] once it succeeded.
fn scratch_dir(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name).join("data.initdb")
}

/// Before the state dir is deleted (`reset`): the shared memory that killed servers of this
/// stack's cluster (or of an initdb cut off) left, which no later server would find.
pub(crate) fn release_shared_memory(cfg: &StackConfig) -> Released {
    let mut released = cluster::release_shared_memory(&data_dir(cfg));
    let scratch = cluster::release_shared_memory(&scratch_dir(cfg));
    released.sysv_segments.extend(scratch.sysv_segments);
    released.posix_segments.extend(scratch.posix_segments);
    released
}

fn prepare(cfg: &StackConfig, installed: &Installed, contract: &Contract) -> anyhow::Result<()> {
    let account = unprivileged_account()?;
    let dir = cfg.service_dir("postgres");
    for path in [&dir, &cfg.runtime_dir] {
        fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
        give_to(path, account.as_ref())?;
    }
    let data = data_dir(cfg);
    let existing = data.join("PG_VERSION").exists();
    if existing {
        cluster::check_existing(&data, account.as_ref())?;
    } else {
        initdb(cfg, installed, &data, contract.lines(&INITDB_ARGS))?;
        role_password::record(cfg)?;
    }
    let socket_lock = cfg
        .runtime_dir
        .join(format!(".s.PGSQL.{}.lock", cfg.port(PORT)));
    for lock in [data.join("postmaster.pid"), socket_lock] {
        remove_stale_lock(&lock, &data)?;
    }
    if existing {
        // In the supervisor's log: `up` shows the start, not the preparation.
        match role_password::apply_if_changed(cfg, installed, &data, account.as_ref())? {
            role_password::Outcome::PasswordApplied => eprintln!(
                "postgres: POSTGRES_PASSWORD changed; role {} now has the new one",
                cfg.postgres_user
            ),
            role_password::Outcome::RoleApplied => eprintln!(
                "postgres: POSTGRES_USER changed; role {} logs in with POSTGRES_PASSWORD and \
                 owns database {} (created if it was new; the old role is kept)",
                cfg.postgres_user, cfg.postgres_db
            ),
            role_password::Outcome::Unchanged | role_password::Outcome::Recorded => {}
        }
    }
    Ok(())
}

/// Loopback only, its sockets in the short runtime dir, each documented setting as a `-c`
/// flag (as the Compose `command:` gives them: they outrank `ALTER SYSTEM`).
fn launch(cfg: &StackConfig, installed: &Installed, contract: &Contract) -> Launch {
    let launch = Launch::new(&installed.path)
        .arg("-D")
        .arg(data_dir(cfg))
        .arg("-p")
        .arg(cfg.port(PORT).to_string())
        .arg("-h")
        .arg("127.0.0.1")
        .arg("-k")
        .arg(socket_directories(&cfg.runtime_dir));
    setting_flags(contract.settings(&CONF))
        .into_iter()
        .fold(launch, Launch::arg)
}

/// `-c key=value` for each setting, as the Compose `command:` gives them too.
fn setting_flags(settings: &[Setting]) -> Vec<String> {
    settings
        .iter()
        .flat_map(|setting| {
            [
                "-c".to_owned(),
                format!("{}={}", setting.key, setting.value),
            ]
        })
        .collect()
}

/// The Compose stack's database, role and password: variables with the seed's defaults.
pub(crate) const COMPOSE_DB: &str = "${POSTGRES_DB:-amtp}";
pub(crate) const COMPOSE_USER: &str = "${POSTGRES_USER:-amtp}";
pub(crate) const COMPOSE_PASSWORD: &str = "${POSTGRES_PASSWORD:-amtp}";

/// The image with initdb's arguments and each setting as a `-c` flag, its data in a volume.
fn compose(contract: &Contract) -> anyhow::Result<Service> {
    let initdb_args = contract.lines(&INITDB_ARGS).join(" ");
    let mut command = vec!["postgres".to_owned()];
    command.extend(setting_flags(contract.settings(&CONF)));
    Ok(Service {
        environment: compose::env([
            ("POSTGRES_DB", COMPOSE_DB),
            ("POSTGRES_USER", COMPOSE_USER),
            ("POSTGRES_PASSWORD", COMPOSE_PASSWORD),
            ("POSTGRES_INITDB_ARGS", &initdb_args),
        ]),
        command,
        volumes: vec![Volume::Named {
            name: "amtp_pgdata",
            target: "/var/lib/postgresql/data",
        }],
        local_ports: vec![(PORT, 5432)],
        healthcheck: vec![
            "CMD-SHELL".to_owned(),
            format!("pg_isready -U {COMPOSE_USER} -d {COMPOSE_DB}"),
        ],
        ..Service::new("postgres", Image::Pull("postgres:15-alpine"))
    })
}

/// `-k` sets `unix_socket_directories`, a comma-separated list: a directory with a comma,
/// a blank or a quote is double-quoted, a quote inside doubled (Postgres' list syntax).
fn socket_directories(dir: &Path) -> OsString {
    let text = dir.as_os_str();
    let plain = !text
        .as_encoded_bytes()
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b' ' | b'\t'));
    if plain {
        return text.to_owned();
    }
    let mut quoted = OsString::from("\"");
    quoted.push(dir.to_string_lossy().replace('"', "\"\""));
    quoted.push("\"");
    quoted
}

/// Creates the cluster in a scratch dir and renames it into place only when initdb succeeded,
/// so a failed initdb never leaves a half-made data dir: the next `up` simply starts over.
fn initdb(
    cfg: &StackConfig,
    installed: &Installed,
    data: &Path,
    contract_args: &[String],
) -> anyhow::Result<()> {
    let account = unprivileged_account()?;
    let dir = cfg.service_dir(UNIT.name);
    let scratch = scratch_dir(cfg);
    if scratch.exists() {
        // An initdb cut off (its supervisor killed): its servers' shared memory goes too.
        cluster::release_shared_memory(&scratch);
        fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot remove the leftover {}", scratch.display()))?;
    }
    // initdb reads the superuser password from a file, never the command line.
    let pwfile = dir.join("initdb.pw");
    write_private(&pwfile, cfg.postgres_password.as_bytes())?;
    give_to(&pwfile, account.as_ref())?;

    let launch = initdb_launch(cfg, installed, &scratch, &pwfile, contract_args).run_as(account);
    let log = cfg.log_file(UNIT.name);
    // A one-shot child of the supervisor: a failed start of another service kills it.
    let status = process::run_once(&launch, &log);
    let _ = fs::remove_file(&pwfile);
    if !status?.success() {
        cluster::release_shared_memory(&scratch);
        let _ = fs::remove_dir_all(&scratch);
        bail!(
            "initdb failed; nothing was kept, the next `up` starts over. Its output:\n{}",
            process::log_tail(&log, 20)
        );
    }
    fs::rename(&scratch, data).with_context(|| {
        format!(
            "cannot move the new cluster {} to {}",
            scratch.display(),
            data.display()
        )
    })?;
    Ok(())
}

/// `initdb` next to `postgres`, into `scratch`, with the contract's arguments.
fn initdb_launch(
    cfg: &StackConfig,
    installed: &Installed,
    scratch: &Path,
    pwfile: &Path,
    contract_args: &[String],
) -> Launch {
    let mut pwfile_arg = OsString::from("--pwfile=");
    pwfile_arg.push(pwfile);
    let launch = Launch::new(&installed.path.with_file_name("initdb"))
        .arg("-D")
        .arg(scratch)
        .arg("-U")
        .arg(&cfg.postgres_user)
        .arg(pwfile_arg);
    contract_args
        .iter()
        // A dev cluster: skip fsync (much faster; a crash of the machine may lose it) and use
        // the C locale, which exists everywhere.
        .map(String::as_str)
        // `--no-clean`: a failed initdb's dir is removed by `initdb()` above, after the shared
        // memory of its servers (initdb's own cleanup would leave that behind).
        .chain(["--no-sync", "--no-clean", "--encoding=UTF8", "--locale=C"])
        .fold(launch, Launch::arg)
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

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    connect(cfg, cfg.port(PORT), "postgres")?.simple_query("SELECT 1")?;
    Ok(())
}

/// What the postgres image's entrypoint does after initdb: create `POSTGRES_DB`. At every
/// start, not only the first: a `POSTGRES_DB` changed later is created on the cluster as it is
/// (the migrations task then migrates it), the other databases untouched.
fn on_ready(cfg: &StackConfig) -> anyhow::Result<()> {
    let mut client = connect(cfg, cfg.port(PORT), "postgres")?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&cfg.postgres_db],
        )?
        .is_some();
    if !exists {
        let name = postgres_protocol::escape::escape_identifier(&cfg.postgres_db);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("cannot create database {}", cfg.postgres_db))?;
    }
    Ok(())
}

/// The role's SCRAM verifier as Postgres stores it (what PgBouncer needs for SCRAM
/// pass-through); never the password itself.
pub(crate) fn scram_verifier(cfg: &StackConfig) -> anyhow::Result<String> {
    let mut client = connect(cfg, cfg.port(PORT), "postgres")?;
    let verifier: Option<String> = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&cfg.postgres_user],
        )?
        .get(0);
    match verifier {
        Some(v) if v.starts_with("SCRAM-SHA-256$") => Ok(v),
        _ => bail!(
            "role {} has no SCRAM password; set one with ALTER ROLE ... PASSWORD",
            cfg.postgres_user
        ),
    }
}

/// `postgres://user:password@127.0.0.1:<port>/<db>` (Postgres itself, or PgBouncer's port).
pub(crate) fn url(cfg: &StackConfig, port: u16) -> String {
    format!(
        "postgres://{}:{}@127.0.0.1:{port}/{}",
        crate::config::url::url_encode(&cfg.postgres_user),
        crate::config::url::url_encode(&cfg.postgres_password),
        crate::config::url::url_encode(&cfg.postgres_db)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::contract::Document;
    use crate::stack::tests::setting;

    #[test]
    fn compose_gets_one_dash_c_per_setting_and_initdb_s_arguments() {
        let contract = Contract::of([
            (
                CONF,
                Document::Settings(vec![
                    setting("max_connections", "200"),
                    setting("work_mem", "16MB"),
                ]),
            ),
            (
                INITDB_ARGS,
                Document::Lines(vec!["--a".into(), "--b".into()]),
            ),
        ]);
        let service = compose(&contract).unwrap();
        assert_eq!(
            service.command,
            [
                "postgres",
                "-c",
                "max_connections=200",
                "-c",
                "work_mem=16MB"
            ]
        );
        let initdb = ("POSTGRES_INITDB_ARGS".to_owned(), "--a --b".to_owned());
        assert!(service.environment.contains(&initdb));
    }

    #[test]
    fn initdb_gets_the_contract_arguments_and_the_password_by_file() {
        let cfg = crate::config::tests::config_in(Path::new("/s t"));
        let installed = Installed {
            path: "/usr/lib/postgresql/15/bin/postgres".into(),
            version: "15.8".into(),
            drift: Vec::new(),
        };
        let launch = initdb_launch(
            &cfg,
            &installed,
            Path::new("/s t/postgres/data.initdb"),
            Path::new("/s t/postgres/initdb.pw"),
            &["--auth-host=scram-sha-256".to_owned()],
        );
        assert_eq!(
            launch.program,
            Path::new("/usr/lib/postgresql/15/bin/initdb")
        );
        assert_eq!(
            launch.args,
            [
                "-D",
                "/s t/postgres/data.initdb",
                "-U",
                "amtp",
                "--pwfile=/s t/postgres/initdb.pw",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "--no-clean",
                "--encoding=UTF8",
                "--locale=C",
            ]
        );
        assert!(
            launch.env.is_empty(),
            "the password never goes in the environment"
        );
    }

    #[test]
    fn postgres_gets_loopback_the_runtime_dir_and_every_setting_as_a_flag() {
        let cfg = crate::config::tests::config_in(Path::new("/s t"));
        let contract = Contract::of([(
            CONF,
            Document::Settings(vec![Setting {
                key: "work_mem".into(),
                value: "16MB".into(),
            }]),
        )]);
        let launch = launch(
            &cfg,
            &crate::stack::tests::installed("/pg/postgres"),
            &contract,
        );
        let port = cfg.port(PORT).to_string();
        let runtime = cfg.runtime_dir.display().to_string();
        assert_eq!(
            crate::stack::tests::args(&launch),
            [
                "-D",
                "/s t/postgres/data",
                "-p",
                port.as_str(),
                "-h",
                "127.0.0.1",
                "-k",
                runtime.as_str(),
                "-c",
                "work_mem=16MB",
            ]
        );
        assert!(
            launch.env.is_empty(),
            "the password never goes in the environment"
        );
    }

    #[test]
    fn a_socket_directory_is_quoted_as_a_list_item_only_when_it_must_be() {
        assert_eq!(socket_directories(Path::new("/tmp/amtp-1")), "/tmp/amtp-1");
        assert_eq!(socket_directories(Path::new("/tmp/a b")), "\"/tmp/a b\"");
        assert_eq!(
            socket_directories(Path::new("/tmp/a,\"b")),
            "\"/tmp/a,\"\"b\""
        );
    }
}
