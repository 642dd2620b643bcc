//! PgBouncer in front of the dev Postgres, with `infra/pgbouncer/pgbouncer.ini`'s settings.
//!
//! The auth file holds the role's SCRAM verifier read from Postgres, so clients log in with
//! SCRAM and PgBouncer reuses their proof towards the server (SCRAM pass-through).

use std::fs;
use std::path::PathBuf;

use anyhow::Context;
use nix::sys::signal::Signal;
use postgres::SimpleQueryMessage;

use crate::binaries::{self, Installed, Wanted};
use crate::config::{StackConfig, write_private};
use crate::contract::{self, Setting};
use crate::process::{Launch, give_to, unprivileged_account};

pub(crate) const WANTED: Wanted = Wanted {
    names: &["pgbouncer"],
    version_arg: "--version",
    pin: "1.22.1",
    install_hint: "pgbouncer (apt or Homebrew)",
};

/// Keys of the contract that older PgBouncer versions reject, with the version that added them.
pub(crate) const ADDED_IN: [(&str, (u32, u32)); 1] = [("max_prepared_statements", (1, 21))];

pub(crate) fn locate(cfg: &StackConfig) -> anyhow::Result<Installed> {
    let mut installed = binaries::locate(&WANTED)?;
    for setting in unsupported(&contract::pgbouncer(&cfg.repo_root)?, &installed.version) {
        installed.drift.push(format!(
            "{}={} left out: PgBouncer {} does not support it",
            setting.key, setting.value, installed.version
        ));
    }
    Ok(installed)
}

/// The contract's settings this PgBouncer version does not know (it refuses to start on them).
pub(crate) fn unsupported(settings: &[Setting], version: &str) -> Vec<Setting> {
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

fn auth_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir("pgbouncer").join("userlist.txt")
}

/// Written by Postgres' `on_ready`, before PgBouncer starts.
pub(crate) fn write_auth_file(cfg: &StackConfig, scram_verifier: &str) -> anyhow::Result<()> {
    let dir = cfg.service_dir("pgbouncer");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = auth_file(cfg);
    write_private(
        &path,
        format!("\"{}\" \"{scram_verifier}\"\n", cfg.postgres_user).as_bytes(),
    )?;
    give_to(&path, unprivileged_account()?.as_ref())
}

pub(crate) fn prepare(cfg: &StackConfig, installed: &Installed) -> anyhow::Result<Launch> {
    let account = unprivileged_account()?;
    let path = cfg.service_dir("pgbouncer").join("pgbouncer.ini");
    let settings = contract::pgbouncer(&cfg.repo_root)?;
    let skipped = unsupported(&settings, &installed.version);
    let kept: Vec<Setting> = settings
        .into_iter()
        .filter(|s| !skipped.contains(s))
        .collect();
    fs::write(&path, render_ini(cfg, &kept))
        .with_context(|| format!("cannot write {}", path.display()))?;
    give_to(&path, account.as_ref())?;
    Ok(Launch::new(&installed.path, stop_signal())
        .arg(&path)
        .run_as(account))
}

/// SIGINT is PgBouncer's safe shutdown: it waits for running queries, then exits.
fn stop_signal() -> Signal {
    Signal::SIGINT
}

fn render_ini(cfg: &StackConfig, settings: &[Setting]) -> String {
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
        pg_port = cfg.ports.postgres,
        port = cfg.ports.pgbouncer,
        auth_file = auth_file(cfg).display(),
        user = cfg.postgres_user,
    );
    for setting in settings {
        ini.push_str(&format!("{} = {}\n", setting.key, setting.value));
    }
    ini
}

/// Logs in through PgBouncer (SCRAM end to end) and runs a query on the server.
pub(crate) fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    super::postgres::connect(cfg, cfg.ports.pgbouncer, &cfg.postgres_db)?
        .simple_query("SELECT 1")?;
    Ok(())
}

/// Each documented key as the admin console's `SHOW CONFIG` reports it (`None`: not known to
/// this version).
pub(crate) fn live_settings(cfg: &StackConfig) -> anyhow::Result<Vec<(Setting, Option<String>)>> {
    let mut admin = super::postgres::connect(cfg, cfg.ports.pgbouncer, "pgbouncer")?;
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
    Ok(contract::pgbouncer(&cfg.repo_root)?
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

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str) -> Setting {
        Setting {
            key: key.into(),
            value: value.into(),
        }
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
}
