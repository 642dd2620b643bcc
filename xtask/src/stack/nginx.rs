//! nginx serving the docs site with `infra/nginx/default.conf`, as any user: prefix, pid file,
//! temp paths and logs all live in the state dir, and it stays in the foreground.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::binaries::{self, Installed, Wanted};
use crate::config::StackConfig;
use crate::contract;
use crate::process::{Launch, give_to, unprivileged_account};

pub(crate) const WANTED: Wanted = Wanted {
    names: &["nginx"],
    version_arg: "-v",
    pin: "1.27",
    install_hint: "nginx-light (apt) or nginx (Homebrew)",
};

pub(crate) fn locate(_cfg: &StackConfig) -> anyhow::Result<Installed> {
    binaries::locate(&WANTED)
}

/// Where `up` renders the docs site that nginx serves.
pub(crate) fn docs_root(cfg: &StackConfig) -> PathBuf {
    cfg.state_dir.join("docs-site")
}

/// As root, nginx runs as the unprivileged account too: with `master_process off` there are no
/// workers to drop privileges to, and a file server has no business running as root.
pub(crate) fn prepare(cfg: &StackConfig, installed: &Installed) -> anyhow::Result<Launch> {
    let account = unprivileged_account()?;
    let dir = cfg.service_dir("nginx");
    let temp_dir = dir.join("temp");
    fs::create_dir_all(&temp_dir)
        .with_context(|| format!("cannot create {}", temp_dir.display()))?;
    let access_log = cfg.log_file("nginx-access");
    fs::File::options()
        .create(true)
        .append(true)
        .open(&access_log)
        .with_context(|| format!("cannot create {}", access_log.display()))?;
    let temp_kinds = temp_path_kinds(&installed.path)?;
    // Also what an earlier run as another user left (nginx makes the temp dirs at start).
    let temp_paths = temp_kinds.iter().map(|kind| temp_dir.join(kind));
    for path in [dir.clone(), temp_dir.clone(), access_log]
        .into_iter()
        .chain(temp_paths)
    {
        if path.exists() {
            give_to(&path, account.as_ref())?;
        }
    }
    // A pid file left by a killed nginx may belong to another user; nobody else writes it.
    let _ = fs::remove_file(pid_file(cfg));
    crate::docs::build_site(&cfg.repo_root, &docs_root(cfg))?;

    let server_block = contract::nginx_server_block(&cfg.repo_root)?;
    let conf = render_main_conf(
        cfg,
        &fill_placeholders(&server_block, cfg.ports.docs, &docs_root(cfg)),
        &temp_kinds,
    );
    let conf_path = dir.join("nginx.conf");
    fs::write(&conf_path, conf).with_context(|| format!("cannot write {}", conf_path.display()))?;
    let mut prefix = dir.into_os_string();
    prefix.push("/");
    Ok(Launch::new(&installed.path, stop_signal())
        .arg("-p")
        .arg(prefix)
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(conf_path)
        .run_as(account))
}

fn pid_file(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir("nginx").join("nginx.pid")
}

/// SIGQUIT is nginx's graceful shutdown (finish open requests); SIGTERM would be fast.
fn stop_signal() -> Signal {
    Signal::SIGQUIT
}

fn fill_placeholders(server_block: &str, port: u16, root: &Path) -> String {
    server_block
        .replace("${AMTP_DOCS_LISTEN}", &format!("127.0.0.1:{port}"))
        .replace("${AMTP_DOCS_ROOT}", &root.display().to_string())
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

fn render_main_conf(cfg: &StackConfig, server_block: &str, temp_kinds: &[String]) -> String {
    let dir = cfg.service_dir("nginx");
    let temp_paths: String = temp_kinds
        .iter()
        .map(|kind| {
            format!(
                "    {kind}_temp_path {};\n",
                dir.join("temp").join(kind).display()
            )
        })
        .collect();
    format!(
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
         \x20   access_log {access_log};\n\
         \x20   sendfile on;\n\
         {temp_paths}\
         {server_block}\
         }}\n",
        pid = pid_file(cfg).display(),
        access_log = cfg.log_file("nginx-access").display(),
    )
}

/// A response as the contract checks see it: status, headers, body (still compressed if the
/// server compressed it).
pub(crate) struct Response {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// `GET http://127.0.0.1:<port><path>`, asking for gzip when `gzip` is set.
pub(crate) fn get(port: u16, path: &str, gzip: bool) -> anyhow::Result<Response> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(&format!("http://127.0.0.1:{port}{path}"));
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let mut response = request.call()?;
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let bytes = response.body_mut().read_to_vec()?;
    Ok(Response {
        status: response.status().as_u16(),
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

pub(crate) fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    let body = super::http_ok(cfg.ports.docs, "/healthz")?;
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
            fill_placeholders(block, 8088, Path::new("/s/docs-site")),
            "listen 127.0.0.1:8088;\nroot /s/docs-site;\n"
        );
    }
}
