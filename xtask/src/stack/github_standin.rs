//! The GitHub stand-in (`apps/github-standin`), which `github-mcp` talks to when no GitHub App
//! is configured: it checks the App JWT against a key it generates and answers like GitHub.

use std::path::PathBuf;

use super::{Daemon, Kind, Program, Unit};
use crate::config::{GithubApp, PortVar, StackConfig};
use crate::os::process::Launch;
use crate::stack::check::{Check, private_file};
use crate::stack::contract::Contract;
use crate::stack::programs::Installed;

pub(crate) const PORT: PortVar = PortVar {
    var: "GITHUB_STANDIN_PORT",
    default: 8091,
};

pub(crate) const UNIT: Unit = Unit {
    name: "github-standin",
    program: Program::Workspace {
        package: "amtp-github-standin",
        binary: "github-standin",
    },
    depends_on: &[],
    enabled: in_use,
    checks,
    kind: Kind::Daemon(Daemon {
        port: PORT,
        prepare,
        launch,
        probe,
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// The stand-in's App and installation ids (any number works; these are the stand-in's own).
pub(crate) const APP_ID: &str = "1";
pub(crate) const INSTALLATION_ID: &str = "1";

/// Only without GitHub App credentials.
pub(crate) fn in_use(cfg: &StackConfig) -> bool {
    matches!(cfg.github, GithubApp::StandIn)
}

/// The App key the stand-in generates and `github-mcp` signs with.
pub(crate) fn key_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name).join("app_key.pem")
}

/// Its directory, where it generates the App key.
fn prepare(cfg: &StackConfig, _: &Installed, _: &Contract) -> anyhow::Result<()> {
    super::create_service_dir(cfg, UNIT.name).map(drop)
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    Launch::new(&installed.path)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", cfg.port(PORT)))
        .arg("--app-id")
        .arg(APP_ID)
        .arg("--installation-id")
        .arg(INSTALLATION_ID)
        .arg("--app-key")
        .arg(key_file(cfg))
}

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.port(PORT), "/_standin/health").map(drop)
}

/// The App key it generated is readable by its owner only.
fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    private_file(&cfg.state_dir, &key_file(cfg))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::tests::{args, installed};

    #[test]
    fn the_stand_in_listens_on_loopback_with_its_own_ids_and_key() {
        let cfg = crate::config::tests::config_in(Path::new("/s t"));
        let launch = launch(&cfg, &installed("/t/github-standin"), &Contract::default());
        let listen = format!("127.0.0.1:{}", cfg.port(PORT));
        assert_eq!(
            args(&launch),
            [
                "--listen",
                listen.as_str(),
                "--app-id",
                "1",
                "--installation-id",
                "1",
                "--app-key",
                "/s t/github-standin/app_key.pem",
            ]
        );
    }
}
