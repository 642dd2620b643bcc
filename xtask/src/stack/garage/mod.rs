//! Garage, the S3-compatible store of the test-bundle archives that `artifacts.storage_uri`
//! points at: one node with `infra/garage/garage.toml`, bootstrapped from
//! `infra/garage/bootstrap.conf`.
//!
//! `prepare` generates the node's secrets once (RPC secret, admin token, the stack's S3
//! access key: files of mode 0600 in `<state>/garage`). Once the node answers, `bootstrap`
//! gives it its role in the cluster layout, creates the bucket, imports the access key, allows
//! it on the bucket (admin API v2, bearer token) and sets the bucket's lifecycle rule (S3
//! `PutBucketLifecycleConfiguration`, as S3 clients set it). Each step first asks whether the
//! node already has it, so a second `up` changes nothing.
//!
//! This module is the row, the node's configuration (native and in Compose) and its launch;
//! [`secrets`] generates and reads the secret files, [`metadata`] judges the node's database
//! before a start, [`admin`] and [`s3`] are the two APIs the stack calls, [`bootstrap`] the
//! first-`up` work and [`checks`] `verify`'s.

mod admin;
mod bootstrap;
mod checks;
mod metadata;
mod s3;
mod secrets;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use self::admin::Admin;
use self::bootstrap::Bootstrap;
use self::secrets::{AccessKey, admin_token_file, rpc_secret_file};
use super::{ClientVar, Daemon, Kind, Liveness, Program, Unit};
use crate::config::{PortVar, StackConfig};
use crate::os::process::Launch;
use crate::stack::compose::{Image, Secret, Service, Volume};
use crate::stack::contract::{Contract, Format, InfraFile};
use crate::stack::programs::{Installed, OffPin, Wanted};

/// The S3 API, the seed's port 3900.
pub(crate) const PORT: PortVar = PortVar {
    var: "GARAGE_S3_PORT",
    default: 3900,
};

/// Node-to-node RPC; Garage needs it bound even alone.
pub(crate) const RPC_PORT: PortVar = PortVar {
    var: "GARAGE_RPC_PORT",
    default: 3901,
};

/// The admin API: `/health`, layout, buckets and keys.
pub(crate) const ADMIN_PORT: PortVar = PortVar {
    var: "GARAGE_ADMIN_PORT",
    default: 3903,
};

/// The node's configuration, with placeholders for the state dir and the ports.
pub(crate) const TOML: InfraFile = InfraFile {
    path: "infra/garage/garage.toml",
    format: Format::Template,
};

/// What `up` makes of a fresh node: the bucket, its key and lifecycle rule, the node's role.
pub(crate) const BOOTSTRAP: InfraFile = InfraFile {
    path: "infra/garage/bootstrap.conf",
    format: Format::KeyEqualsValue,
};

/// The release `.ci/run` installs and the README names; the flake's may differ (docs/nix.md).
const PIN: &str = "2.5.0";

pub(crate) const UNIT: Unit = Unit {
    name: "garage",
    program: Program::External(Wanted {
        names: &["garage"],
        version_arg: "--version",
        pin: PIN,
        // Only the LMDB engine the stack uses, linked against the system's libsodium and zstd
        // (Debian: libsodium-dev libzstd-dev pkg-config), optimised where its speed shows
        // (infra/garage/cargo-install.toml): 0.46 of the default build's CPU time,
        // Garage as fast (docs/benchmarks/build.md).
        install_hint: "it with Cargo, from the checkout's root: `cargo --config \
                       infra/garage/cargo-install.toml install garage --version 2.5.0 --locked \
                       --no-default-features --features lmdb,system-libs` (with libsodium-dev, \
                       libzstd-dev and pkg-config installed; 4 to 8 minutes on 2 cores, \
                       once per machine)",
        off_pin: OffPin::Drift,
    }),
    depends_on: &[],
    checks: checks::checks,
    infra: &[TOML, BOOTSTRAP],
    client_vars,
    compose: Some(compose),
    // The metadata (layout, bucket, key, the index of every object) and the objects' blocks;
    // its secrets and rendered configuration stay, so a fresh node gets the same key.
    // `metadata_dir` and `data_dir` of infra/garage/garage.toml.
    data: &["meta", "data"],
    kind: Kind::Daemon(Daemon {
        port: PORT,
        more_ports: &[RPC_PORT, ADMIN_PORT],
        // Garage's graceful stop (server.rs): its API servers and background workers end,
        // the metadata database is closed, then it exits.
        stop_signal: Signal::SIGTERM,
        prepare,
        launch,
        probe,
        on_ready: bootstrap::bootstrap,
        // It holds the stack's objects (uploads in flight would be cut off): reported, never
        // restarted by its probe.
        liveness: Liveness::ReportAfter(3),
        disk_need: metadata::disk_need,
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// Every request to the node: loopback, so anything slower is a node that does not answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn dir(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name)
}

fn conf_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("garage.toml")
}

/// `s3_region` of `infra/garage/garage.toml`: the region S3 clients sign for.
pub(crate) fn region(repo_root: &Path) -> anyhow::Result<String> {
    region_of(&TOML.text(repo_root)?)
        .context("infra/garage/garage.toml has no `s3_region = \"...\"` in [s3_api]; add it")
}

fn region_of(toml: &str) -> Option<String> {
    toml.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "s3_region").then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn prepare(cfg: &StackConfig, _: &Installed, contract: &Contract) -> anyhow::Result<()> {
    super::create_service_dir(cfg, UNIT.name)?;
    for path in UNIT.data_dirs(cfg) {
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    }
    metadata::check(cfg)?;
    secrets::generate_once(cfg)?;
    let toml = render_toml(contract.text(&TOML), &native_values(cfg)?, "cargo xtask up")?;
    let path = conf_file(cfg);
    fs::write(&path, toml).with_context(|| format!("cannot write {}", path.display()))
}

/// `infra/garage/garage.toml` with its placeholders filled in from these values, under a
/// line that says by what (`cargo xtask up`); an unknown placeholder is an error. Comment
/// lines stay as they are: the template's header names the placeholders.
fn render_toml(template: &str, values: &[(&str, String)], by: &str) -> anyhow::Result<String> {
    let mut rendered =
        format!("# Rendered by `{by}` from infra/garage/garage.toml; edit that file.\n");
    for line in template.lines() {
        if line.trim_start().starts_with('#') {
            rendered.push_str(line);
        } else {
            let line = values.iter().fold(line.to_owned(), |text, (name, value)| {
                text.replace(&format!("${{{name}}}"), value)
            });
            if let Some(start) = line.find("${") {
                let name: String = line[start..].chars().take_while(|c| *c != '}').collect();
                let known: Vec<&str> = values.iter().map(|(name, _)| *name).collect();
                anyhow::bail!(
                    "infra/garage/garage.toml has an unknown placeholder `{name}}}`; known: {}",
                    known.join(", ")
                );
            }
            rendered.push_str(&line);
        }
        rendered.push('\n');
    }
    Ok(rendered)
}

/// The placeholders' values for this stack: its state dir, secret files and ports, loopback.
fn native_values(cfg: &StackConfig) -> anyhow::Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("AMTP_GARAGE_DIR", toml_string_content(&dir(cfg))?),
        ("AMTP_GARAGE_BIND", "127.0.0.1".to_owned()),
        ("GARAGE_S3_PORT", cfg.port(PORT).to_string()),
        ("GARAGE_RPC_PORT", cfg.port(RPC_PORT).to_string()),
        ("GARAGE_ADMIN_PORT", cfg.port(ADMIN_PORT).to_string()),
        (
            "AMTP_GARAGE_RPC_SECRET_FILE",
            toml_string_content(&rpc_secret_file(cfg))?,
        ),
        (
            "AMTP_GARAGE_ADMIN_TOKEN_FILE",
            toml_string_content(&admin_token_file(cfg))?,
        ),
    ])
}

/// The image of the pinned release.
const IMAGE: &str = "dxflrs/garage:v2.5.0";

/// The Compose secrets the node reads its RPC secret and admin token from (32 random bytes in
/// hex each, mode 0600: `openssl rand -hex 32 > secrets/garage_rpc_secret`).
const COMPOSE_SECRETS: [Secret; 2] = [
    Secret {
        name: "garage_rpc_secret",
        file: "secrets/garage_rpc_secret",
    },
    Secret {
        name: "garage_admin_token",
        file: "secrets/garage_admin_token",
    },
];

/// The node in a container: the image's `/etc/garage.toml` rendered from the same template,
/// on every interface of the container and the ports' defaults, its metadata and data in
/// named volumes, its secrets from Compose; the S3 and admin APIs on loopback for development.
fn compose(contract: &Contract) -> anyhow::Result<Service> {
    let [rpc_secret, admin_token] = COMPOSE_SECRETS.map(|s| format!("/run/secrets/{}", s.name));
    let values = [
        ("AMTP_GARAGE_DIR", "/var/lib/garage".to_owned()),
        ("AMTP_GARAGE_BIND", "0.0.0.0".to_owned()),
        ("GARAGE_S3_PORT", PORT.default.to_string()),
        ("GARAGE_RPC_PORT", RPC_PORT.default.to_string()),
        ("GARAGE_ADMIN_PORT", ADMIN_PORT.default.to_string()),
        ("AMTP_GARAGE_RPC_SECRET_FILE", rpc_secret),
        ("AMTP_GARAGE_ADMIN_TOKEN_FILE", admin_token),
    ];
    let toml = render_toml(contract.text(&TOML), &values, "cargo xtask compose")?;
    Ok(Service {
        secrets: COMPOSE_SECRETS.to_vec(),
        volumes: vec![
            Volume::Rendered {
                file: "docker-compose.garage.toml",
                content: toml,
                target: "/etc/garage.toml",
            },
            Volume::Named {
                name: "amtp_garage_meta",
                target: "/var/lib/garage/meta",
            },
            Volume::Named {
                name: "amtp_garage_data",
                target: "/var/lib/garage/data",
            },
        ],
        local_ports: vec![(PORT, PORT.default), (ADMIN_PORT, ADMIN_PORT.default)],
        ..Service::new("garage", Image::Pull(IMAGE))
    })
}

/// A path as the inside of a TOML basic string (the template's `"..."`): `\` and `"` escaped,
/// so a state dir with spaces or quotes stays one path.
fn toml_string_content(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8; TOML cannot hold it", path.display()))?;
    anyhow::ensure!(
        !text.chars().any(char::is_control),
        "{text:?} holds a control character; choose a state dir without one"
    );
    Ok(text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    // The secrets are in files the config names, never on the command line. Garage's own
    // default log level, whatever RUST_LOG the xtask was run with: its request lines and the
    // lifecycle worker's passes, which the tests read.
    Launch::new(&installed.path)
        .arg("-c")
        .arg(conf_file(cfg))
        .arg("server")
        .env("RUST_LOG", "netapp=info,garage=info")
}

/// Ready when `/health` says so, or when a fresh node answers that it has no layout yet
/// (quorum needs one, and `bootstrap`, which runs next, gives it).
fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    let admin = Admin::new(cfg)?;
    let (status, sentence) = admin.health()?;
    if status == 200 {
        return Ok(());
    }
    let assigned = !admin.cluster_layout()?.roles.is_empty();
    anyhow::ensure!(!assigned, "/health answered {status}: {sentence}");
    Ok(())
}

/// The S3 endpoint clients use (`AWS_ENDPOINT_URL`).
pub(crate) fn endpoint(cfg: &StackConfig) -> String {
    format!("http://127.0.0.1:{}", cfg.port(PORT))
}

/// What an S3 client of the stack needs: endpoint, key, region and bucket. The key appears
/// once the first `up` generated it; an unreadable `infra/garage` is said, not fatal.
fn client_vars(cfg: &StackConfig, _: Option<&Installed>) -> Vec<ClientVar> {
    let mut vars = vec![("AWS_ENDPOINT_URL", endpoint(cfg))];
    match AccessKey::read(cfg) {
        Ok(Some(key)) => {
            vars.push(("AWS_ACCESS_KEY_ID", key.id));
            vars.push(("AWS_SECRET_ACCESS_KEY", key.secret));
        }
        Ok(None) => {}
        Err(err) => eprintln!("warning: {err:#}"),
    }
    match region(&cfg.repo_root) {
        Ok(region) => vars.push(("AWS_REGION", region)),
        Err(err) => eprintln!("warning: {err:#}"),
    }
    match Bootstrap::read(&cfg.repo_root) {
        Ok(wanted) => vars.push(("ARTIFACTS_BUCKET", wanted.bucket)),
        Err(err) => eprintln!("warning: {err:#}"),
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::tests::{args, launched};

    #[test]
    fn the_toml_gets_loopback_ports_and_a_quoted_state_dir() {
        let cfg = crate::config::tests::config_in(Path::new("/tmp/rt sp/st\"ate"));
        let template = TOML.text(&cfg.repo_root).unwrap();
        let toml = render_toml(&template, &native_values(&cfg).unwrap(), "cargo xtask up").unwrap();
        assert!(
            toml.contains("\nmetadata_dir = \"/tmp/rt sp/st\\\"ate/garage/meta\"\n"),
            "{toml}"
        );
        assert!(toml.contains("\nreplication_factor = 1\n"), "{toml}");
        for (key, port) in [
            ("rpc_bind_addr", RPC_PORT),
            ("api_bind_addr", PORT),
            ("api_bind_addr", ADMIN_PORT),
        ] {
            let line = format!("\n{key} = \"127.0.0.1:{}\"\n", cfg.port(port));
            assert!(toml.contains(&line), "{line} missing from\n{toml}");
        }
        assert!(
            toml.contains("\nrpc_secret_file = \"/tmp/rt sp/st\\\"ate/garage/rpc_secret\"\n"),
            "{toml}"
        );
        // Every placeholder is filled in; only the comments still name them.
        let settings = toml.lines().filter(|line| !line.starts_with('#'));
        assert!(settings.clone().all(|line| !line.contains("${")), "{toml}");
        assert!(settings.count() > 10, "{toml}");
    }

    #[test]
    fn the_compose_service_runs_the_pin_from_the_same_template() {
        let repo = crate::config::tests::config_in(Path::new("/s")).repo_root;
        let service = compose(&Contract::read(&repo).unwrap()).unwrap();
        assert_eq!(service.image, Image::Pull(IMAGE));
        assert_eq!(IMAGE, format!("dxflrs/garage:v{PIN}"));
        let Some(Volume::Rendered {
            content, target, ..
        }) = service.volumes.first()
        else {
            panic!("no rendered garage.toml in {:?}", service.volumes)
        };
        assert_eq!(*target, "/etc/garage.toml");
        for line in [
            "# Rendered by `cargo xtask compose` from infra/garage/garage.toml; edit that file.",
            "metadata_dir = \"/var/lib/garage/meta\"",
            "data_dir = \"/var/lib/garage/data\"",
            "rpc_bind_addr = \"0.0.0.0:3901\"",
            "api_bind_addr = \"0.0.0.0:3900\"",
            "api_bind_addr = \"0.0.0.0:3903\"",
            "rpc_secret_file = \"/run/secrets/garage_rpc_secret\"",
            "admin_token_file = \"/run/secrets/garage_admin_token\"",
        ] {
            assert!(
                content.lines().any(|l| l == line),
                "{line} not in\n{content}"
            );
        }
        assert_eq!(
            service.local_ports,
            [(PORT, 3900), (ADMIN_PORT, 3903)],
            "the S3 and admin APIs on loopback"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let cfg = crate::config::tests::config_in(Path::new("/s"));
        let values = native_values(&cfg).unwrap();
        let err = render_toml("data_dir = \"${AMTP_GARAGE_DATA}\"\n", &values, "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown placeholder `${AMTP_GARAGE_DATA}`"),
            "{err}"
        );
    }

    #[test]
    fn garage_gets_its_config_file_and_the_server_command_only() {
        let launch = launched(launch, "/s t", "/root/.cargo/bin/garage");
        assert_eq!(launch.program, Path::new("/root/.cargo/bin/garage"));
        assert_eq!(args(&launch), ["-c", "/s t/garage/garage.toml", "server"]);
        assert_eq!(
            launch.env,
            [("RUST_LOG".to_owned(), "netapp=info,garage=info".to_owned())],
            "the secrets stay in their 0600 files"
        );
    }

    #[test]
    fn a_missing_garage_names_the_install_command_of_the_pin() {
        let Program::External(wanted) = &UNIT.program else {
            panic!("garage is an external program")
        };
        assert_eq!(wanted.pin, "2.5.0");
        let command = format!(
            "cargo --config infra/garage/cargo-install.toml install garage --version {} --locked \
             --no-default-features --features lmdb,system-libs",
            wanted.pin
        );
        assert!(
            wanted.install_hint.contains(&command),
            "{}",
            wanted.install_hint
        );
        let ci = std::fs::read_to_string(
            crate::config::tests::config_in(Path::new("/s"))
                .repo_root
                .join(".ci/run"),
        )
        .unwrap();
        assert!(
            ci.contains(&format!("garage_version={}", wanted.pin)),
            ".ci/run installs another Garage"
        );
        assert!(
            ci.contains("--no-default-features --features lmdb,system-libs"),
            ".ci/run builds Garage with other features"
        );
        assert!(
            ci.contains("--config infra/garage/cargo-install.toml install garage"),
            ".ci/run builds Garage with another profile"
        );
    }
}
