//! nginx serving the docs site with `infra/nginx/default.conf`, as any user: prefix, pid file,
//! temp paths and logs all live in the state dir, and it stays in the foreground.

mod checks;

pub(crate) use checks::{gzip_types, headers};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use nix::sys::signal::Signal;

use super::{Daemon, Kind, Program, RunAs, Unit};
use crate::config::{PortVar, StackConfig};
use crate::os::account::{give_to, unprivileged_account};
use crate::os::process::Launch;
use crate::stack::compose::{self, Image, Service, Volume};
use crate::stack::contract::{Contract, Format, InfraFile};
use crate::stack::programs::{Installed, OffPin, Wanted};

pub(crate) const PORT: PortVar = PortVar {
    var: "DOCS_HOST_PORT",
    // The seed's port 80 needs root.
    default: 8088,
};

/// The server block, with its placeholders for the listen address and the root.
pub(crate) const SERVER_BLOCK: InfraFile = InfraFile {
    path: "infra/nginx/default.conf",
    format: Format::Template,
};

/// As root, nginx runs as the unprivileged account too: with `master_process off` there are no
/// workers to drop privileges to, and a file server has no business running as root.
pub(crate) const UNIT: Unit = Unit {
    name: "nginx",
    program: Program::External(Wanted {
        names: &["nginx"],
        version_arg: "-v",
        pin: "1.27",
        install_hint: "nginx-light (apt) or nginx (Homebrew)",
        off_pin: OffPin::Drift,
    }),
    depends_on: &[],
    checks: checks::checks,
    infra: &[SERVER_BLOCK],
    client_vars: |cfg, _| vec![("DOCS_URL", format!("http://127.0.0.1:{}", cfg.port(PORT)))],
    compose: Some(compose),
    kind: Kind::Daemon(Daemon {
        port: PORT,
        // nginx's graceful shutdown (finish open requests); SIGTERM would be fast.
        stop_signal: Signal::SIGQUIT,
        run_as: RunAs::UnprivilegedWhenRoot,
        prepare,
        launch,
        probe,
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// The seed's `docs` service: the image's entrypoint fills the server block's two placeholders
/// from the environment (envsubst replaces only variables that are set, so nginx's own `$uri`
/// stays); the site is what `cargo xtask docs` writes.
fn compose(_: &Contract) -> anyhow::Result<Service> {
    Ok(Service {
        environment: compose::env([
            ("AMTP_DOCS_LISTEN", "80"),
            ("AMTP_DOCS_ROOT", "/usr/share/nginx/html"),
        ]),
        volumes: vec![
            Volume::Repo {
                path: SERVER_BLOCK.path,
                target: "/etc/nginx/templates/default.conf.template",
            },
            Volume::Repo {
                path: "docs/site",
                target: "/usr/share/nginx/html",
            },
        ],
        ports: vec!["${DOCS_HOST_PORT:-80}:80"],
        healthcheck: ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1/healthz"]
            .map(str::to_owned)
            .to_vec(),
        ..Service::new("docs", Image::Pull("nginx:1.27-alpine"))
    })
}

/// Where `up` renders the docs site that nginx serves (see `docs::render_for_nginx`).
pub(crate) fn docs_root(cfg: &StackConfig) -> PathBuf {
    cfg.state_dir.join("docs-site")
}

fn conf_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name).join("nginx.conf")
}

fn prepare(cfg: &StackConfig, installed: &Installed, contract: &Contract) -> anyhow::Result<()> {
    let account = unprivileged_account()?;
    let dir = cfg.service_dir("nginx");
    let temp_dir = dir.join("temp");
    fs::create_dir_all(&temp_dir)
        .with_context(|| format!("cannot create {}", temp_dir.display()))?;
    let temp_kinds = temp_path_kinds(&installed.path)?;
    // Also what an earlier run as another user left (nginx makes the temp dirs at start).
    let temp_paths = temp_kinds.iter().map(|kind| temp_dir.join(kind));
    for path in [dir.clone(), temp_dir.clone()]
        .into_iter()
        .chain(temp_paths)
    {
        if path.exists() {
            give_to(&path, account.as_ref())?;
        }
    }
    // A pid file left by a killed nginx may belong to another user; nobody else writes it.
    let _ = fs::remove_file(pid_file(cfg));
    // `up` renders the site before the supervisor starts; nginx needs its root even when
    // that failed.
    let root = docs_root(cfg);
    fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;

    let conf = render_main_conf(
        cfg,
        &fill_placeholders(contract.text(&SERVER_BLOCK), cfg.port(PORT), &root)?,
        &temp_kinds,
    )?;
    let conf_path = conf_file(cfg);
    fs::write(&conf_path, conf).with_context(|| format!("cannot write {}", conf_path.display()))
}

/// In the foreground (`daemon off` in the config), its prefix in the state dir, errors on
/// stderr (its log) from the first line on.
fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    let mut prefix = cfg.service_dir(UNIT.name).into_os_string();
    prefix.push("/");
    Launch::new(&installed.path)
        .arg("-p")
        .arg(prefix)
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(conf_file(cfg))
}

fn pid_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir("nginx").join("nginx.pid")
}

fn fill_placeholders(server_block: &str, port: u16, root: &Path) -> anyhow::Result<String> {
    Ok(server_block
        .replace("${AMTP_DOCS_LISTEN}", &format!("127.0.0.1:{port}"))
        .replace("${AMTP_DOCS_ROOT}", &quote(root)?))
}

/// A path as one argument of an nginx directive: double-quoted with `"` and `\` escaped, so
/// spaces and `;` stay inside it. nginx reads `$` in a path as a variable and has no escape for
/// it, so such a path is refused.
fn quote(path: &Path) -> anyhow::Result<String> {
    let text = path.display().to_string();
    anyhow::ensure!(
        !text.contains('$'),
        "nginx cannot use {text}: it reads `$` as a variable; choose a state dir \
         (AMTP_STATE_DIR) without `$`"
    );
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The temp directories compiled into this nginx (`--http-<kind>-temp-path`), each of which
/// must move into the state dir: the compiled paths are root-owned system directories.
fn temp_path_kinds(nginx: &Path) -> anyhow::Result<Vec<String>> {
    let output = Command::new(nginx)
        .arg("-V")
        .output()
        .with_context(|| format!("cannot run {} -V", nginx.display()))?;
    let text = String::from_utf8_lossy(&output.stderr);
    Ok(text
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("--http-")?.split_once("-temp-path"))
        .map(|(kind, _)| kind.replace('-', "_"))
        .collect())
}

fn render_main_conf(
    cfg: &StackConfig,
    server_block: &str,
    temp_kinds: &[String],
) -> anyhow::Result<String> {
    let dir = cfg.service_dir("nginx");
    let temp_paths: String = temp_kinds
        .iter()
        .map(|kind| {
            Ok(format!(
                "    {kind}_temp_path {};\n",
                quote(&dir.join("temp").join(kind))?
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(format!(
        "# Rendered by `cargo xtask up`; the server block comes from infra/nginx/default.conf.\n\
         daemon off;\n\
         # One process: no worker can outlive the supervisor (workers ignore a killed master).\n\
         master_process off;\n\
         pid {pid};\n\
         error_log stderr notice;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   types {{\n\
         \x20       text/html html htm;\n\
         \x20       text/css css;\n\
         \x20       application/javascript js mjs;\n\
         \x20       application/json json;\n\
         \x20       image/svg+xml svg;\n\
         \x20       image/png png;\n\
         \x20       text/plain txt md;\n\
         \x20   }}\n\
         \x20   default_type application/octet-stream;\n\
         \x20   # Into the supervisor's pipe with the errors, as the nginx image sends it to\n\
         \x20   # stdout: timestamped, merged by `logs`, rotated with nginx.log.\n\
         \x20   access_log /dev/stderr;\n\
         \x20   sendfile on;\n\
         {temp_paths}\
         {server_block}\
         }}\n",
        pid = quote(&pid_file(cfg))?,
    ))
}

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    let body = super::http_ok(cfg.port(PORT), "/healthz")?;
    anyhow::ensure!(body == "ok", "/healthz answered {body:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_loopback_listen_and_root() {
        let block = "listen ${AMTP_DOCS_LISTEN};\nroot ${AMTP_DOCS_ROOT};\n";
        assert_eq!(
            fill_placeholders(block, 8088, Path::new("/s/docs site")).unwrap(),
            "listen 127.0.0.1:8088;\nroot \"/s/docs site\";\n"
        );
    }

    #[test]
    fn every_path_of_the_main_config_is_quoted() {
        let cfg = crate::config::tests::config_in(Path::new("/tmp/rt sp/state dir"));
        let kinds = ["client_body".to_owned(), "proxy".to_owned()];
        let conf = render_main_conf(&cfg, "    server { listen 127.0.0.1:1; }\n", &kinds).unwrap();
        for line in [
            "pid \"/tmp/rt sp/state dir/nginx/nginx.pid\";",
            "access_log /dev/stderr;",
            "client_body_temp_path \"/tmp/rt sp/state dir/nginx/temp/client_body\";",
            "proxy_temp_path \"/tmp/rt sp/state dir/nginx/temp/proxy\";",
            "master_process off;",
            "server { listen 127.0.0.1:1; }",
        ] {
            assert!(conf.contains(line), "{line} not in\n{conf}");
        }
    }

    #[test]
    fn nginx_runs_with_its_prefix_and_config() {
        let cfg = crate::config::tests::config_in(Path::new("/s t"));
        let launch = launch(
            &cfg,
            &crate::stack::tests::installed("/usr/sbin/nginx"),
            &Contract::default(),
        );
        assert_eq!(
            crate::stack::tests::args(&launch),
            [
                "-p",
                "/s t/nginx/",
                "-e",
                "stderr",
                "-c",
                "/s t/nginx/nginx.conf"
            ]
        );
    }

    #[test]
    fn quotes_are_escaped_and_dollars_refused() {
        assert_eq!(quote(Path::new(r#"/a "b"\c"#)).unwrap(), r#""/a \"b\"\\c""#);
        let err = quote(Path::new("/tmp/$HOME")).unwrap_err().to_string();
        assert!(err.contains("without `$`"), "{err}");
    }
}
