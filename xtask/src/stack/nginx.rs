//! nginx serving the docs site with `infra/nginx/default.conf`, as any user: prefix, pid file,
//! temp paths and logs all live in the state dir, and it stays in the foreground.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use nix::sys::signal::Signal;

use super::{Daemon, Kind, Program, RunAs, Unit};
use crate::config::{PortVar, StackConfig};
use crate::os::process::{Launch, give_to, unprivileged_account};
use crate::stack::check::{Check, Verdict};
use crate::stack::contract::{Contract, Format, InfraFile, Setting, unquote};
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
    checks,
    infra: &[SERVER_BLOCK],
    client_vars: |cfg, _| vec![("DOCS_URL", format!("http://127.0.0.1:{}", cfg.port(PORT)))],
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

/// The content types `default.conf` compresses (`text/html` always is, once gzip is on).
pub(crate) fn gzip_types(server_block: &str) -> Vec<String> {
    let listed = server_block
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("gzip_types"))
        .unwrap_or("");
    std::iter::once("text/html")
        .chain(listed.trim_end_matches(';').split_whitespace())
        .map(str::to_owned)
        .collect()
}

/// The `add_header NAME "value" always;` lines of `default.conf`.
pub(crate) fn headers(server_block: &str) -> Vec<Setting> {
    server_block
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("add_header "))
        .filter_map(|rest| {
            let (name, value) = rest.split_once(char::is_whitespace)?;
            let value = value
                .trim_end_matches(';')
                .trim()
                .trim_end_matches("always")
                .trim();
            Some(Setting {
                key: name.to_owned(),
                value: unquote(value).to_owned(),
            })
        })
        .collect()
}

/// A response as the contract checks see it: status, headers, body (still compressed if the
/// server compressed it).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Which `Accept-Encoding` a request of the contract checks sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accept {
    Identity,
    Gzip,
}

/// `GET http://127.0.0.1:<port><path>`, asking for gzip with [`Accept::Gzip`].
fn get(port: u16, path: &str, accept: Accept) -> anyhow::Result<Response> {
    let mut request = super::http_agent(std::time::Duration::from_secs(2))
        .get(&format!("http://127.0.0.1:{port}{path}"));
    if accept == Accept::Gzip {
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

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    let body = super::http_ok(cfg.port(PORT), "/healthz")?;
    anyhow::ensure!(body == "ok", "/healthz answered {body:?}");
    Ok(())
}

/// `/healthz`, the documented headers on it, and gzip with the headers for a file of each
/// compressed content type.
fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    let block = match SERVER_BLOCK.text(&cfg.repo_root) {
        Ok(block) => block,
        Err(err) => return vec![Check::failed("nginx default.conf", "readable", &err)],
    };
    let port = cfg.port(PORT);
    let mut checks = Vec::new();
    match get(port, "/healthz", Accept::Identity) {
        Ok(response) => {
            checks.push(Check::new(
                "nginx /healthz",
                "200 ok",
                format!("{} {}", response.status, response.body),
                response.status == 200 && response.body == "ok",
            ));
            for header in headers(&block) {
                let live = response
                    .header(&header.key)
                    .unwrap_or("(missing)")
                    .to_owned();
                checks.push(Check::new(
                    format!("nginx header {} on /healthz", header.key),
                    &header.value,
                    &live,
                    live == header.value,
                ));
            }
        }
        Err(err) => checks.push(Check::failed("nginx /healthz", "200 ok", &err)),
    }
    for content_type in gzip_types(&block) {
        let name = format!("nginx gzip {content_type}");
        let Some(path) = site_file_of_type(cfg, &content_type) else {
            checks.push(Check {
                check: name,
                expected: "Content-Encoding: gzip".into(),
                live: "(the site has no such file to check)".into(),
                verdict: Verdict::Unsupported,
            });
            continue;
        };
        checks.push(match get(port, &path, Accept::Gzip) {
            Ok(response) => {
                let encoding = response
                    .header("content-encoding")
                    .unwrap_or("(none)")
                    .to_owned();
                let headers_ok = headers(&block)
                    .iter()
                    .all(|h| response.header(&h.key) == Some(h.value.as_str()));
                Check::new(
                    format!("{name} + headers: {path}"),
                    "200, gzip, 3 headers",
                    format!(
                        "{}, {encoding}, headers {}",
                        response.status,
                        if headers_ok { "present" } else { "missing" }
                    ),
                    response.status == 200 && encoding == "gzip" && headers_ok,
                )
            }
            Err(err) => Check::failed(name, "gzip", &err),
        });
    }
    checks
}

/// A file of the served site with the given content type, as a URL path.
fn site_file_of_type(cfg: &StackConfig, content_type: &str) -> Option<String> {
    let extension = match content_type {
        "text/html" => "html",
        "text/css" => "css",
        "application/javascript" => "js",
        "application/json" => "json",
        "image/svg+xml" => "svg",
        _ => return None,
    };
    let root = docs_root(cfg);
    let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(&root)
        .build()
        .flatten()
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        // nginx compresses only responses of gzip_min_length (20 bytes) or more.
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.len() >= 64))
        .collect();
    files.sort();
    let relative = files
        .first()?
        .strip_prefix(&root)
        .ok()?
        .to_string_lossy()
        .into_owned();
    Some(format!("/{relative}"))
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
    fn headers_and_gzip_types_are_the_documented_ones() {
        let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let block = SERVER_BLOCK.text(repo).unwrap();
        let headers: Vec<(String, String)> = headers(&block)
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect();
        assert_eq!(
            headers,
            [
                ("X-Frame-Options", "SAMEORIGIN"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "strict-origin-when-cross-origin"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            gzip_types(&block),
            [
                "text/html",
                "text/css",
                "application/javascript",
                "application/json",
                "image/svg+xml"
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
