//! The docs site: what `cargo xtask docs` writes is well-formed HTML whose every internal link
//! resolves, and the running stack's nginx serves it with the documented headers and gzip.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use scraper::{Html, Selector};

use crate::util::repo_root;

/// The nginx contract of `infra/nginx/default.conf` (the seed's "Docs Service" section).
const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-frame-options", "SAMEORIGIN"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
];

/// One file of the site per compressed content type.
const GZIP_FILES: [(&str, &str); 5] = [
    ("/index.html", "text/html"),
    ("/style.css", "text/css"),
    ("/site.js", "application/javascript"),
    ("/site.json", "application/json"),
    ("/logo.svg", "image/svg+xml"),
];

/// Runs `xtask docs --out <fresh dir>` and returns the dir.
fn build_site(name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("amtp-docs-site-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("docs")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run xtask docs");
    assert!(
        output.status.success(),
        "xtask docs --out {} failed: {}\nstdout: {}\nstderr: {}",
        out.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Every file under `dir`, as `/`-separated paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).expect("read the site dir") {
            let path = entry.expect("site dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under the dir");
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.sort();
    files
}

/// `href` (relative to the page `from`) as a site path and fragment; `None` for links that
/// leave the site (another scheme or host).
fn resolve(from: &str, href: &str) -> Option<(String, String)> {
    if href.starts_with("//") || href.split_once(':').is_some_and(|(s, _)| !s.contains('/')) {
        return None;
    }
    let (path, fragment) = href.split_once('#').unwrap_or((href, ""));
    if path.is_empty() {
        return Some((from.to_owned(), fragment.to_owned()));
    }
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        let mut dir: Vec<&str> = from.split('/').collect();
        dir.pop();
        dir
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => assert!(parts.pop().is_some(), "{href} on {from} leaves the site"),
            part => parts.push(part),
        }
    }
    let mut target = parts.join("/");
    if path.ends_with('/') || target.is_empty() {
        target = format!("{target}/index.html")
            .trim_start_matches('/')
            .to_owned();
    }
    Some((target, fragment.to_owned()))
}

#[test]
fn every_page_is_well_formed_html_and_every_internal_link_resolves() {
    let out = build_site("links");
    let files = files_under(&out);
    let pages: Vec<&String> = files.iter().filter(|f| f.ends_with(".html")).collect();

    // Every Markdown file of docs/ has its page.
    let docs = repo_root().join("docs");
    for source in files_under(&docs) {
        if source.ends_with(".md") && !source.starts_with("site/") {
            let page = format!("{}.html", source.trim_end_matches(".md"));
            assert!(files.contains(&page), "docs/{source} has no page {page}");
        }
    }

    let selector = |s: &str| Selector::parse(s).expect("valid selector");
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for page in &pages {
        let html = fs::read_to_string(out.join(page)).expect("read page");
        let document = Html::parse_document(&html);
        assert!(
            document.errors.is_empty(),
            "{page} is not well-formed HTML: {:?}",
            document.errors
        );
        for (name, count) in [("title", 1), ("nav", 1), ("main", 1)] {
            assert_eq!(
                document.select(&selector(name)).count(),
                count,
                "{page}: number of <{name}>"
            );
        }
        // The navigation lists every page.
        let nav_links = document.select(&selector("nav a")).count();
        assert_eq!(nav_links, pages.len(), "{page}: the nav lists every page");

        ids.insert(
            page.to_string(),
            document
                .select(&selector("[id]"))
                .filter_map(|e| e.value().attr("id").map(str::to_owned))
                .collect(),
        );
        for element in document.select(&selector("a[href], link[href], img[src]")) {
            let value = element.value();
            let target = value.attr("href").or(value.attr("src")).unwrap_or_default();
            links.push((page.to_string(), target.to_owned()));
        }
    }
    assert!(pages.len() >= 9, "only {} pages: {pages:?}", pages.len());

    let mut checked = 0;
    for (page, href) in &links {
        let Some((target, fragment)) = resolve(page, href) else {
            continue;
        };
        assert!(
            files.contains(&target),
            "{page}: link {href} → missing {target}"
        );
        if !fragment.is_empty() {
            let known = ids.get(&target).expect("fragments only point into pages");
            assert!(
                known.contains(&fragment),
                "{page}: link {href} → no id {fragment:?} in {target}"
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} internal links checked");
    fs::remove_dir_all(out).expect("remove the site");
}

#[test]
fn the_well_formedness_check_catches_broken_markup() {
    let broken = "<!DOCTYPE html><html lang=\"en\"><head><title>t</title></head>\
                  <body><main><p>a</div><table><p>b</table></main></body></html>";
    assert!(!Html::parse_document(broken).errors.is_empty());
}

#[test]
fn generated_tables_are_in_the_built_pages() {
    let out = build_site("generated");
    let read = |page: &str| fs::read_to_string(out.join(page)).expect("read page");
    let index = read("index.html");
    assert!(!index.contains("generated:"), "a placeholder was left in");
    for row in [
        "<td><code>postgres</code></td>",
        "<td><code>POSTGRES_PORT</code></td><td>5432</td>",
        "<td><code>pgbouncer</code></td><td>1.22.1</td>",
    ] {
        assert!(index.contains(row), "index.html has no {row}");
    }
    let flags = read("flags.html");
    for setting in [
        "<code>-c shared_buffers=256MB</code>",
        "<code>--auth-host=scram-sha-256</code>",
        "<code>max_prepared_statements</code>",
        "<code>--maxmemory-policy allkeys-lru</code>",
        "<code>Referrer-Policy</code>",
        "<code>image/svg+xml</code>",
    ] {
        assert!(flags.contains(setting), "flags.html has no {setting}");
    }
    let keys = read("valkey-keys.html");
    assert!(
        keys.contains("amtp:rl:repo:{repo}:pr_lock"),
        "NAMESPACES.md is included"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&read("site.json")).expect("site.json is JSON");
    assert!(manifest["pages"].as_array().is_some_and(|p| p.len() >= 9));
    fs::remove_dir_all(out).expect("remove the site");
}

/// A GET that asks for gzip itself, so ureq hands the body back as it came.
fn get(url: &str, gzip: bool) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_vec().expect("read the body");
    (response.status().as_u16(), headers, body)
}

fn assert_security_headers(url: &str, headers: &BTreeMap<String, String>) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            headers.get(name).map(String::as_str),
            Some(value),
            "{url}: header {name}"
        );
    }
}

#[test]
fn nginx_serves_every_page_with_the_security_headers_and_gzip() {
    let base = amtp_testkit::stack_env("DOCS_URL");
    let base = base.trim_end_matches('/');

    let (status, headers, body) = get(&format!("{base}/healthz"), false);
    assert_eq!(
        (status, body.as_slice()),
        (200, b"ok".as_slice()),
        "/healthz"
    );
    assert_security_headers("/healthz", &headers);

    let (status, _, body) = get(&format!("{base}/site.json"), false);
    assert_eq!(status, 200, "/site.json");
    let manifest: serde_json::Value = serde_json::from_slice(&body).expect("site.json is JSON");
    let pages: Vec<String> = manifest["pages"]
        .as_array()
        .expect("site.json lists the pages")
        .iter()
        .filter_map(|p| p["path"].as_str().map(|p| format!("/{p}")))
        .collect();
    assert!(pages.len() >= 9, "site.json lists {pages:?}");

    let served = pages
        .iter()
        .map(|p| (p.as_str(), "text/html"))
        .chain(GZIP_FILES)
        .chain([("/", "text/html")]);
    for (path, content_type) in served {
        let url = format!("{base}{path}");
        let (status, headers, body) = get(&url, true);
        assert_eq!(status, 200, "{url}");
        assert_security_headers(&url, &headers);
        let served_type = headers.get("content-type").cloned().unwrap_or_default();
        assert!(
            served_type.starts_with(content_type),
            "{url}: content-type {served_type}, expected {content_type}"
        );
        assert_eq!(
            headers.get("content-encoding").map(String::as_str),
            Some("gzip"),
            "{url}: not gzip-compressed"
        );
        assert!(
            body.starts_with(&[0x1f, 0x8b]),
            "{url}: the body is not gzip data"
        );

        // Without Accept-Encoding the same file comes back as it is.
        let (_, headers, body) = get(&url, false);
        assert_eq!(headers.get("content-encoding"), None, "{url}");
        assert!(!body.starts_with(&[0x1f, 0x8b]), "{url}");
    }

    // `always`: error responses carry the headers too.
    let url = format!("{base}/no-such-page.html");
    let (status, headers, _) = get(&url, false);
    assert_eq!(status, 404, "{url}");
    assert_security_headers(&url, &headers);
}
