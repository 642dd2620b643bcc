//! The documentation site nginx serves: every `docs/**/*.md` rendered to static HTML.
//!
//! # Theory of operation
//!
//! Pages are Markdown, rendered with pulldown-cmark into one plain HTML5 template (a `<nav>` of
//! every page, `<main>`, a little CSS, no JavaScript). Facts the xtask itself runs the stack
//! from are never written by hand: a line `<!-- generated:NAME -->` is replaced, before
//! rendering, by a Markdown table built from the same source (`stack::UNITS`,
//! its ports, programs and pins, and `infra/` read through `contract`),
//! and `<!-- include:PATH -->` inserts a Markdown file another part of the repository owns
//! (its own title dropped). So the docs cannot drift from what `up` runs.
//!
//! Links between pages are written to the `.md` files (they work on GitHub too) and rewritten to
//! `.html`; a relative link that leaves the site (`../xtask/src/…`) keeps its text and loses
//! the link. Raw HTML in Markdown is shown as text: the template is the only markup.
//!
//! `up` rebuilds the site before the stack starts, so building is quick (a few ms), writes only
//! files whose content changed, removes pages whose source is gone, and leaves everything
//! readable by every user (the seed's `chmod -R a+rX`, so nginx workers of any user can serve it).
//!
//! Three parts, one job each: this file writes the site's files, [`tables`] builds the
//! generated sections (the only part that knows the stack), [`render`] turns Markdown into the
//! pages' HTML.

mod render;
mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::repo::Repo;
use render::{GENERATOR_META, first_heading, render_page};
use tables::{Facts, expand_placeholders};

const SITE_TITLE: &str = "AMTP native dev stack";

/// Pages in this order first in the navigation; any other page follows, by name.
const NAV_ORDER: [&str; 11] = [
    "index",
    "configuration",
    "runbook",
    "decisions",
    "flags",
    "valkey-keys",
    "healthcheck",
    "mcp",
    "migrations",
    "nix",
    "benchmarks",
];

const STYLE_CSS: &str = include_str!("style.css");
const LOGO_SVG: &str = include_str!("logo.svg");

/// One Markdown page of the site.
pub(super) struct Page {
    /// Path under `docs/`, `/`-separated (`benchmarks/healthcheck.md`).
    pub(super) source: String,
    /// Path of its HTML under the site root (`benchmarks/healthcheck.html`).
    pub(super) target: String,
    pub(super) title: String,
    /// The Markdown with every placeholder replaced.
    pub(super) markdown: String,
}

/// `cargo xtask docs`: the site into `out` (default `docs/site`).
pub(crate) fn run(repo: &Repo, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let out = out.unwrap_or_else(|| repo.root.join("docs/site"));
    build_site(&repo.root, &out)?;
    println!("docs site written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Renders `<repo_root>/docs/**/*.md` into `out` (see the module documentation).
pub(crate) fn build_site(repo_root: &Path, out: &Path) -> anyhow::Result<()> {
    let docs = repo_root.join("docs");
    create_dir(out)?;
    let facts = Facts::read(repo_root)?;
    let mut pages = Vec::new();
    for source in markdown_sources(&docs, out)? {
        let path = docs.join(&source);
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let markdown =
            expand_placeholders(&text, &facts).with_context(|| format!("in docs/{source}"))?;
        let target = format!("{}.html", source.trim_end_matches(".md"));
        let title = first_heading(&markdown).unwrap_or_else(|| stem(&target).to_owned());
        pages.push(Page {
            source,
            target,
            title,
            markdown,
        });
    }
    sort_for_navigation(&mut pages);

    let manifest = manifest(&pages, &facts);
    let mut files: BTreeMap<String, String> = BTreeMap::from([
        ("style.css".to_owned(), STYLE_CSS.to_owned()),
        ("logo.svg".to_owned(), LOGO_SVG.to_owned()),
        ("site.json".to_owned(), format!("{manifest:#}\n")),
        // Not loaded by any page (they need no script): it gives nginx's gzip of
        // application/javascript a real file to be checked against.
        (
            "site.js".to_owned(),
            format!(
                "// The site manifest (site.json) as an ES module, for tools. No page loads it.\n\
                 export default {manifest:#};\n"
            ),
        ),
    ]);
    let site: BTreeSet<String> = pages
        .iter()
        .map(|p| p.target.clone())
        .chain(files.keys().cloned())
        .collect();
    for page in &pages {
        files.insert(page.target.clone(), render_page(page, &pages, &site));
    }
    for (name, body) in &files {
        write_if_changed(&out.join(name), body)?;
    }
    remove_stale_pages(out, &files)?;
    make_world_readable(out)
}

/// Every `.md` under `docs` (relative, `/`-separated), leaving out the site itself.
fn markdown_sources(docs: &Path, out: &Path) -> anyhow::Result<Vec<String>> {
    // Compared with the walk's paths, so both canonical (out may be given as `docs/../docs/x`).
    let docs = &docs.canonicalize().with_context(|| {
        format!(
            "cannot find {}; run from a checkout of the repository",
            docs.display()
        )
    })?;
    let out = out.canonicalize().unwrap_or_else(|_| out.to_owned());
    let default_site = docs.join("site");
    let mut sources = Vec::new();
    for entry in ignore::WalkBuilder::new(docs)
        .filter_entry(move |e| e.path() != out && e.path() != default_site)
        .build()
    {
        let path = entry.context("cannot list docs/")?.into_path();
        if path.extension().is_some_and(|e| e == "md") && path.is_file() {
            let relative = path.strip_prefix(docs).expect("walk stays under docs/");
            sources.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    if sources.is_empty() {
        bail!(
            "no Markdown pages in {}; run from a checkout of the repository",
            docs.display()
        );
    }
    Ok(sources)
}

fn stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.split_once('.').map_or(name, |(stem, _)| stem)
}

/// Top-level pages in [`NAV_ORDER`], then the rest by path; pages in a folder follow the
/// page of the same name (`benchmarks/*.md` after `benchmarks.md`).
fn sort_for_navigation(pages: &mut [Page]) {
    let rank = |page: &Page| {
        let top = page.target.split('/').next().unwrap_or_default();
        let top = stem(top);
        let position = NAV_ORDER
            .iter()
            .position(|name| *name == top)
            .unwrap_or(NAV_ORDER.len());
        (
            position,
            top.to_owned(),
            page.target.contains('/'),
            page.target.clone(),
        )
    };
    pages.sort_by_key(rank);
}

/// The site's machine-readable summary: its pages and the service map.
fn manifest(pages: &[Page], facts: &Facts) -> serde_json::Value {
    serde_json::json!({
        "title": SITE_TITLE,
        "generator": "cargo xtask docs",
        "pages": pages.iter().map(|p| serde_json::json!({
            "path": p.target,
            "title": p.title,
            "source": format!("docs/{}", p.source),
        })).collect::<Vec<_>>(),
        "services": facts.services,
    })
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `body` unless the file already holds it (a rebuild at every `up` touches nothing).
fn write_if_changed(path: &Path, body: &str) -> anyhow::Result<()> {
    if fs::read(path).is_ok_and(|old| old == body.as_bytes()) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    // Write then rename: nginx never serves a half-written page.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot make {} readable", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Deletes the pages an earlier build wrote under `out` that no source produces any more;
/// any other file is left alone, whatever `--out` points at.
fn remove_stale_pages(out: &Path, files: &BTreeMap<String, String>) -> anyhow::Result<()> {
    for entry in ignore::WalkBuilder::new(out)
        .standard_filters(false)
        .build()
    {
        let path = entry.context("cannot list the docs site")?.into_path();
        let Ok(relative) = path.strip_prefix(out) else {
            continue;
        };
        let relative = relative.to_string_lossy().replace('\\', "/");
        let stale = path.extension().is_some_and(|e| e == "html")
            && !files.contains_key(&relative)
            && fs::read_to_string(&path).is_ok_and(|page| page.contains(GENERATOR_META));
        if stale {
            fs::remove_file(&path)
                .with_context(|| format!("cannot remove the stale page {}", path.display()))?;
        }
    }
    Ok(())
}

/// `chmod -R a+rX out`: everyone may read every file and enter every directory.
fn make_world_readable(out: &Path) -> anyhow::Result<()> {
    for entry in ignore::WalkBuilder::new(out)
        .standard_filters(false)
        .build()
    {
        let path = entry.context("cannot list the docs site")?.into_path();
        let metadata = fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode();
        let searchable = metadata.is_dir() || mode & 0o111 != 0;
        let wanted = mode | 0o444 | if searchable { 0o111 } else { 0 };
        if wanted != mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(wanted))
                .with_context(|| format!("cannot make {} readable", path.display()))?;
        }
    }
    Ok(())
}
/// Renders the docs site nginx serves. A broken page is said loudly but does not stop the
/// stack from starting: nginx serves the last good build (`cargo xtask docs` shows the error).
pub(crate) fn render_for_nginx(cfg: &crate::config::StackConfig) {
    let root = crate::stack::nginx::docs_root(cfg);
    if let Err(err) = build_site(&cfg.repo_root, &root) {
        eprintln!(
            "warning: the docs site was not rebuilt ({err:#}); nginx serves the last build; \
             fix the page and run `cargo xtask docs --out {}`",
            root.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::render::{escape, navigation};
    use super::tables::{program_of, valkey_flag};
    use super::*;
    use crate::stack;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    /// The whole site as one string, its HTML pages only.
    fn built_site(out: &Path) -> String {
        build_site(repo(), out).unwrap();
        let mut html = String::new();
        for entry in ignore::WalkBuilder::new(out)
            .standard_filters(false)
            .build()
        {
            let path = entry.unwrap().into_path();
            if path.extension().is_some_and(|e| e == "html") {
                html.push_str(&fs::read_to_string(path).unwrap());
            }
        }
        html
    }

    #[test]
    fn every_unit_and_every_infra_setting_is_in_the_rendered_site() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path();
        let html = built_site(out);
        let facts = Facts::read(repo()).unwrap();
        for unit in stack::UNITS {
            let (_, pin) = program_of(unit);
            assert!(
                html.contains(&format!("<code>{}</code>", unit.name)),
                "{}",
                unit.name
            );
            assert!(html.contains(&escape(&pin)), "{} pin {pin}", unit.name);
            for port in unit.ports() {
                let row = format!("<td><code>{}</code></td>", port.var);
                assert!(html.contains(&row), "{}", port.var);
                let default = port.default;
                assert!(
                    html.contains(&format!("<td>{default}</td>")),
                    "{} default {default}",
                    port.var
                );
            }
        }
        let settings = facts
            .postgres
            .iter()
            .map(|s| format!("-c {}={}", s.key, s.value))
            .chain(facts.pgbouncer.iter().map(|s| s.key.clone()))
            .chain(facts.pgbouncer.iter().map(|s| s.value.clone()))
            .chain(facts.valkey.iter().map(|s| format!("--{}", s.key)))
            .chain(facts.initdb_args.iter().cloned())
            .chain(facts.nginx_headers.iter().map(|h| h.key.clone()))
            .chain(facts.nginx_headers.iter().map(|h| h.value.clone()))
            .chain(facts.nginx_gzip_types.iter().cloned());
        for setting in settings {
            let cell = format!("<code>{}</code>", escape(&setting));
            assert!(
                html.contains(&cell),
                "{setting} is not in a generated table"
            );
        }
        for s in &facts.valkey {
            let flag = escape(&valkey_flag(s));
            assert!(html.contains(&flag), "{flag}");
        }
    }

    #[test]
    fn the_navigation_nests_a_folder_under_the_page_of_its_name() {
        let page = |target: &str, title: &str| Page {
            source: target.replace(".html", ".md"),
            target: target.to_owned(),
            title: title.to_owned(),
            markdown: String::new(),
        };
        let mut pages = vec![
            page("zeta.html", "Zeta"),
            page("benchmarks/up.html", "Up"),
            page("flags.html", "Flags"),
            page("benchmarks.html", "Benchmarks"),
            page("index.html", SITE_TITLE),
        ];
        sort_for_navigation(&mut pages);
        let targets: Vec<&str> = pages.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(
            targets,
            [
                "index.html",
                "flags.html",
                "benchmarks.html",
                "benchmarks/up.html",
                "zeta.html"
            ]
        );
        assert_eq!(
            navigation(&pages, "benchmarks/up.html", "../"),
            "<nav aria-label=\"Pages\">\n<ul>\n\
             <li><a href=\"../index.html\">Overview</a></li>\n\
             <li><a href=\"../flags.html\">Flags</a></li>\n\
             <li><a href=\"../benchmarks.html\">Benchmarks</a>\n<ul>\n\
             <li><a href=\"../benchmarks/up.html\" aria-current=\"page\">Up</a></li>\n\
             </ul>\n</li>\n\
             <li><a href=\"../zeta.html\">Zeta</a></li>\n\
             </ul>\n</nav>\n"
        );
    }

    #[test]
    fn a_rebuild_removes_stale_pages_and_leaves_everything_world_readable() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path();
        fs::create_dir_all(out.join("old")).unwrap();
        let earlier_page = format!("<html><head>{GENERATOR_META}</head></html>");
        fs::write(out.join("removed-page.html"), &earlier_page).unwrap();
        fs::write(out.join("old/page.html"), &earlier_page).unwrap();
        fs::write(out.join("foreign.html"), "<html>not ours</html>").unwrap();
        fs::write(out.join("notes.txt"), "not ours").unwrap();
        fs::set_permissions(out.join("notes.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(out, fs::Permissions::from_mode(0o700)).unwrap();
        build_site(repo(), out).unwrap();
        assert!(!out.join("removed-page.html").exists());
        assert!(!out.join("old/page.html").exists());
        assert!(
            out.join("foreign.html").exists(),
            "only our own pages are cleaned"
        );
        assert!(
            out.join("notes.txt").exists(),
            "only .html files are cleaned"
        );
        assert!(out.join("index.html").exists());
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(out), 0o755);
        assert_eq!(mode(&out.join("index.html")), 0o644);
        assert_eq!(mode(&out.join("notes.txt")), 0o644);
        assert_eq!(mode(&out.join("old")), 0o755);

        // A second build changes nothing.
        let modified = fs::metadata(out.join("index.html"))
            .unwrap()
            .modified()
            .unwrap();
        build_site(repo(), out).unwrap();
        assert_eq!(
            fs::metadata(out.join("index.html"))
                .unwrap()
                .modified()
                .unwrap(),
            modified
        );
    }
}
