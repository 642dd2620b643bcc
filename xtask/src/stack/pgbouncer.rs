//! PgBouncer in front of the dev Postgres, with `infra/pgbouncer/pgbouncer.ini`'s settings.
//!
//! The auth file holds the role's SCRAM verifier read from Postgres, so clients log in with
//! SCRAM and PgBouncer reuses their proof towards the server (SCRAM pass-through).

use std::fs;
use std::path::PathBuf;

use ::postgres::SimpleQueryMessage;
use anyhow::Context;
use nix::sys::signal::Signal;

use super::{Daemon, Kind, Program, RunAs, Unit, postgres};
use crate::config::{PortVar, StackConfig, write_private};
use crate::os::account::{Account, give_to, unprivileged_account};
use crate::os::process::Launch;
use crate::stack::check::{Check, Verdict, equivalent, private_file};
use crate::stack::compose::{self, Condition, Image, Service};
use crate::stack::contract::{Contract, Format, InfraFile, Setting};
use crate::stack::programs::{Drift, Installed, OffPin, Wanted};

pub(crate) const PORT: PortVar = PortVar {
    var: "PGBOUNCER_PORT",
    default: 6432,
};

/// Its `[pgbouncer]` settings.
pub(crate) const INI: InfraFile = InfraFile {
    path: "infra/pgbouncer/pgbouncer.ini",
    format: Format::IniSection("pgbouncer"),
};

pub(crate) const UNIT: Unit = Unit {
    name: "pgbouncer",
    program: Program::External(Wanted {
        names: &["pgbouncer"],
        version_arg: "--version",
        pin: "1.22.1",
        install_hint: "pgbouncer (apt or Homebrew)",
        off_pin: OffPin::Drift,
    }),
    depends_on: &["postgres"],
    checks,
    infra: &[INI],
    // The URL clients use: through PgBouncer.
    client_vars: |cfg, _| vec![("DATABASE_URL", postgres::url(cfg, cfg.port(PORT)))],
    compose: Some(compose),
    kind: Kind::Daemon(Daemon {
        port: PORT,
        // PgBouncer's safe shutdown: it waits for running queries, then exits.
        stop_signal: Signal::SIGINT,
        run_as: RunAs::UnprivilegedWhenRoot,
        drift: left_out,
        prepare,
        launch,
        probe,
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// Keys of the contract that older PgBouncer versions reject, with the version that added them.
pub(crate) const ADDED_IN: [(&str, (u32, u32)); 1] = [("max_prepared_statements", (1, 21))];

/// The contract's keys this version does not take, which the rendered config leaves out.
fn left_out(cfg: &StackConfig, installed: &Installed) -> anyhow::Result<Vec<Drift>> {
    Ok(
        unsupported(&INI.settings(&cfg.repo_root)?, &installed.version)
            .into_iter()
            .map(|setting| Drift::SettingLeftOut {
                key: setting.key,
                value: setting.value,
                program: "PgBouncer".to_owned(),
                version: installed.version.clone(),
            })
            .collect(),
    )
}

/// The contract's settings this PgBouncer version does not know (it refuses to start on them).
fn unsupported(settings: &[Setting], version: &str) -> Vec<Setting> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    settings
        .iter()
        .filter(|s| {
            ADDED_IN
                .iter()
                .any(|(key, since)| s.key == *key && have < *since)
        })
        .cloned()
        .collect()
}

/// The edoburu/pgbouncer image: the server it pools, and each key of `pgbouncer.ini` in
/// capitals (the seed's table of the image's variables).
fn compose(contract: &Contract) -> anyhow::Result<Service> {
    let mut environment = compose::env([
        ("DB_HOST", "postgres"),
        ("DB_PORT", "5432"),
        ("DB_USER", postgres::COMPOSE_USER),
        ("DB_PASSWORD", postgres::COMPOSE_PASSWORD),
        ("LISTEN_PORT", "5432"),
    ]);
    let settings = contract.settings(&INI).iter();
    environment.extend(settings.map(|s| (s.key.to_uppercase(), s.value.clone())));
    Ok(Service {
        environment,
        ports: vec!["${PGBOUNCER_PORT:-6432}:5432"],
        depends_on: vec![("postgres", Condition::Healthy)],
        ..Service::new("pgbouncer", Image::Pull("edoburu/pgbouncer:1.22.1"))
    })
}

fn auth_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir("pgbouncer").join("userlist.txt")
}

/// The role and its SCRAM verifier, read from Postgres (a dependency, so ready by now).
fn write_auth_file(cfg: &StackConfig, account: Option<&Account>) -> anyhow::Result<()> {
    let path = auth_file(cfg);
    let line = auth_line(&cfg.postgres_user, &postgres::scram_verifier(cfg)?);
    write_private(&path, line.as_bytes())?;
    give_to(&path, account)
}

/// One line of the auth file: `"user" "verifier"`, a `"` inside doubled (PgBouncer's syntax).
fn auth_line(user: &str, verifier: &str) -> String {
    let quoted = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    format!("{} {}\n", quoted(user), quoted(verifier))
}

fn ini_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name).join("pgbouncer.ini")
}

fn prepare(cfg: &StackConfig, installed: &Installed, contract: &Contract) -> anyhow::Result<()> {
    let account = unprivileged_account()?;
    super::create_service_dir(cfg, UNIT.name)?;
    write_auth_file(cfg, account.as_ref())?;
    let path = ini_file(cfg);
    let skipped = unsupported(contract.settings(&INI), &installed.version);
    let kept: Vec<Setting> = contract
        .settings(&INI)
        .iter()
        .filter(|s| !skipped.contains(s))
        .cloned()
        .collect();
    fs::write(&path, render_ini(cfg, &kept)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    give_to(&path, account.as_ref())
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    Launch::new(&installed.path).arg(ini_file(cfg))
}

fn render_ini(cfg: &StackConfig, settings: &[Setting]) -> anyhow::Result<String> {
    let mut ini = format!(
        "; Rendered by `cargo xtask up` from infra/pgbouncer/pgbouncer.ini; edit that file.\n\
         [databases]\n\
         {db} = host=127.0.0.1 port={pg_port} dbname={db}\n\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         ; TCP only: with no other address to fall back on, PgBouncer exits at once when the\n\
         ; port is taken instead of running without it.\n\
         unix_socket_dir =\n\
         auth_file = {auth_file}\n\
         admin_users = {user}\n",
        db = cfg.postgres_db,
        pg_port = cfg.port(postgres::PORT),
        port = cfg.port(PORT),
        auth_file = ini_value(&auth_file(cfg).display().to_string())?,
        user = ini_value(&cfg.postgres_user)?,
    );
    for setting in settings {
        ini.push_str(&format!(
            "{} = {}\n",
            setting.key,
            ini_value(&setting.value)?
        ));
    }
    Ok(ini)
}

/// A value as PgBouncer's ini parser reads it: everything after `=` up to the end of the
/// line, surrounding blanks trimmed, quotes kept as part of the value. So a path with spaces
/// goes in as it is, and only what that syntax cannot carry is refused.
fn ini_value(value: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        !value.contains(['\n', '\r']) && value.trim() == value,
        "{value:?} cannot stand in pgbouncer.ini (a line break or surrounding blanks); \
         choose a state dir and settings without them"
    );
    Ok(value)
}

/// Logs in through PgBouncer (SCRAM end to end) and runs a query on the server.
fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    postgres::connect(cfg, cfg.port(PORT), &cfg.postgres_db)?.simple_query("SELECT 1")?;
    Ok(())
}

/// Each documented key as the admin console's `SHOW CONFIG` reports it (`None`: not known to
/// this version).
fn live_settings(cfg: &StackConfig) -> anyhow::Result<Vec<(Setting, Option<String>)>> {
    let mut admin = postgres::connect(cfg, cfg.port(PORT), "pgbouncer")?;
    let live: Vec<(String, String)> = admin
        .simple_query("SHOW CONFIG")?
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some((
                row.get(0).unwrap_or_default().to_owned(),
                row.get(1).unwrap_or_default().to_owned(),
            )),
            _ => None,
        })
        .collect();
    Ok(INI
        .settings(&cfg.repo_root)?
        .into_iter()
        .map(|setting| {
            let value = live
                .iter()
                .find(|(key, _)| *key == setting.key)
                .map(|(_, value)| value.clone());
            (setting, value)
        })
        .collect())
}

/// Each documented key as `SHOW CONFIG` reports it; one this version lacks is `unsupported`.
fn checks(cfg: &StackConfig, installed: Option<&Installed>) -> Vec<Check> {
    let mut checks = show_config_checks(cfg, installed);
    // It holds the role's SCRAM verifier.
    checks.extend(private_file(&cfg.state_dir, &auth_file(cfg)));
    checks
}

fn show_config_checks(cfg: &StackConfig, installed: Option<&Installed>) -> Vec<Check> {
    let version = installed.map(|i| i.version.clone()).unwrap_or_default();
    let live = match live_settings(cfg) {
        Ok(live) => live,
        Err(err) => {
            return vec![Check::failed(
                "pgbouncer SHOW CONFIG",
                "the contract's keys",
                &err,
            )];
        }
    };
    let settings: Vec<Setting> = live.iter().map(|(s, _)| s.clone()).collect();
    let unsupported = unsupported(&settings, &version);
    live.into_iter()
        .map(|(setting, value)| {
            let name = format!("pgbouncer {}", setting.key);
            match value {
                None if unsupported.contains(&setting) => Check {
                    check: name,
                    expected: setting.value,
                    live: format!("(not in PgBouncer {version})"),
                    verdict: Verdict::Unsupported,
                },
                None => Check::new(name, setting.value, "(missing)", false),
                Some(value) => {
                    let ok = equivalent(&setting.value, &value);
                    Check::new(name, setting.value, value, ok)
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::contract::Document;
    use crate::stack::tests::setting;

    #[test]
    fn compose_gives_the_keys_as_the_image_s_capitalised_variables() {
        let settings = vec![setting("pool_mode", "transaction")];
        let service = compose(&Contract::of([(INI, Document::Settings(settings))])).unwrap();
        let env = &service.environment;
        assert_eq!(
            env.last(),
            Some(&("POOL_MODE".to_owned(), "transaction".to_owned()))
        );
        assert!(env.contains(&("DB_HOST".to_owned(), "postgres".to_owned())));
    }

    #[test]
    fn max_prepared_statements_needs_1_21() {
        let settings = [
            setting("pool_mode", "transaction"),
            setting("max_prepared_statements", "100"),
        ];
        assert_eq!(unsupported(&settings, "1.18.0"), [settings[1].clone()]);
        assert!(unsupported(&settings, "1.21.0").is_empty());
        assert!(unsupported(&settings, "1.22.1").is_empty());
    }

    #[test]
    fn the_ini_takes_a_state_dir_with_spaces_verbatim() {
        let cfg = crate::config::tests::config_in(std::path::Path::new("/tmp/rt sp/state dir"));
        let ini = render_ini(&cfg, &[setting("pool_mode", "transaction")]).unwrap();
        assert!(
            ini.contains("\nauth_file = /tmp/rt sp/state dir/pgbouncer/userlist.txt\n"),
            "{ini}"
        );
        assert!(ini.contains("\nunix_socket_dir =\n"), "{ini}");
        assert!(ini.contains("\nadmin_users = amtp\n"), "{ini}");
        assert!(ini.ends_with("\npool_mode = transaction\n"), "{ini}");
        let db = format!(
            "\namtp = host=127.0.0.1 port={} dbname=amtp\n",
            cfg.port(postgres::PORT)
        );
        assert!(ini.contains(&db), "{ini}");
    }

    #[test]
    fn pgbouncer_gets_only_its_ini() {
        let cfg = crate::config::tests::config_in(std::path::Path::new("/s t"));
        let launch = launch(
            &cfg,
            &crate::stack::tests::installed("/usr/sbin/pgbouncer"),
            &Contract::default(),
        );
        assert_eq!(
            crate::stack::tests::args(&launch),
            ["/s t/pgbouncer/pgbouncer.ini"]
        );
    }

    #[test]
    fn the_auth_file_quotes_user_and_verifier() {
        assert_eq!(
            auth_line("amtp", "SCRAM-SHA-256$4096:salt$key"),
            "\"amtp\" \"SCRAM-SHA-256$4096:salt$key\"\n"
        );
        assert_eq!(auth_line("a\"b", "v"), "\"a\"\"b\" \"v\"\n");
    }

    #[test]
    fn what_the_ini_cannot_carry_is_refused() {
        assert!(ini_value("a\nb").is_err());
        assert!(ini_value(" padded").is_err());
        assert_eq!(ini_value("a b").unwrap(), "a b");
    }
}
