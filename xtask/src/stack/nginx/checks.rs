//! `verify`'s checks of nginx: `/healthz`, the documented headers on it, and gzip with the
//! headers for a file of each compressed content type; and the readers of those in
//! `default.conf`, which the docs' tables use too.

use std::fs;
use std::path::PathBuf;

use super::{PORT, SERVER_BLOCK, docs_root};
use crate::config::StackConfig;
use crate::stack::check::{Check, Verdict};
use crate::stack::contract::{Setting, unquote};
use crate::stack::programs::Installed;

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
    let mut request = crate::stack::http_agent(std::time::Duration::from_secs(2))
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

/// `/healthz`, the documented headers on it, and gzip with the headers for a file of each
/// compressed content type.
pub(super) fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
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
    use std::path::Path;

    use super::*;

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
}
