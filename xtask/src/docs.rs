//! The documentation site nginx serves: every `docs/**/*.md` rendered to static HTML.
//!
//! # Theory of operation
//!
//! Pages are Markdown, rendered with pulldown-cmark into one plain HTML5 template (a `<nav>` of
//! every page, `<main>`, a little CSS, no JavaScript). Facts the xtask itself runs the stack
//! from are never written by hand: a line `<!-- generated:NAME -->` is replaced, before
//! rendering, by a Markdown table built from the same source (`stack::UNITS`,
//! `config::PORT_KEYS`, each service's `WANTED` pins, and `infra/` read through `contract`),
//! and `<!-- include:PATH -->` inserts a Markdown file another part of the repository owns
//! (its own title dropped). So the docs cannot drift from what `up` runs.
//!
//! Links between pages are written to the `.md` files (they work on GitHub too) and rewritten to
//! `.html`; a relative link that leaves the site (`../xtask/src/…`) keeps its text and loses
//! the link. Raw HTML in Markdown is shown as text: the template is the only markup.
//!
//! `up` rebuilds the site before every nginx start, so building is quick (a few ms), writes only
//! files whose content changed, removes pages whose source is gone, and leaves everything
//! readable by every user (the seed's `chmod -R a+rX`, so nginx workers of any user can serve it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};

use crate::config::{PORT_KEYS, StackConfig};
use crate::contract;
use crate::stack::{self, Kind, Unit, apps, nginx, pgbouncer, postgres, valkey};

const SITE_TITLE: &str = "AMTP native dev stack";

/// In every page's head: marks the pages a rebuild may delete once their source is gone.
const GENERATOR_META: &str = "<meta name=\"generator\" content=\"cargo xtask docs\">";

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

/// Said in place of a unit's program when this file does not know it; a test refuses it.
const UNDOCUMENTED: &str = "(undocumented: add it to `program_of` in xtask/src/docs.rs)";

const STYLE_CSS: &str = r#"/* The docs site: readable type, no JavaScript. */
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --bg: #fdfdfc;
        --line: #d8dce3; --code: #f1f3f6; --accent: #1f5fbf; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e4e7ec; --muted: #9aa3b2; --bg: #15181d; --line: #2f3540;
          --code: #1f242c; --accent: #7fb0ff; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       display: grid; grid-template-columns: 14rem minmax(0, 60rem);
       grid-template-areas: "header header" "nav main" "nav footer"; gap: 0 2.5rem; }
header { grid-area: header; padding: .8rem 1.5rem; border-bottom: 1px solid var(--line); }
header a { color: var(--fg); font-weight: 600; text-decoration: none; font-size: 1.1rem; }
header img { vertical-align: middle; margin-right: .4rem; }
nav { grid-area: nav; padding: 1rem 0 1rem 1.5rem; font-size: .95rem; }
nav ul { list-style: none; margin: 0; padding: 0; }
nav ul ul { padding-left: 1rem; font-size: .9rem; }
nav li { margin: .25rem 0; }
nav a { color: var(--muted); text-decoration: none; }
nav a:hover, nav a[aria-current="page"] { color: var(--accent); }
main { grid-area: main; padding: 1rem 0 2rem; min-width: 0; }
footer { grid-area: footer; padding: 1rem 0 2rem; color: var(--muted); font-size: .85rem;
         border-top: 1px solid var(--line); }
@media (max-width: 50rem) {
  body { display: block; }
  nav, main, footer { padding-left: 1rem; padding-right: 1rem; }
  nav li { display: inline-block; margin-right: .8rem; }
}
h1, h2, h3 { line-height: 1.25; margin: 1.6em 0 .5em; }
h1 { margin-top: .4em; font-size: 1.9rem; }
h2 { font-size: 1.4rem; padding-bottom: .2rem; border-bottom: 1px solid var(--line); }
a { color: var(--accent); }
code { font: .9em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: var(--code); padding: .1em .3em; border-radius: 3px; }
pre { background: var(--code); padding: .8rem 1rem; overflow-x: auto; border-radius: 4px; }
pre code { padding: 0; background: none; }
table { border-collapse: collapse; margin: 1rem 0; display: block; overflow-x: auto;
        font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: var(--code); }
blockquote { margin: 1rem 0; padding: .2rem 1rem; border-left: 3px solid var(--line);
             color: var(--muted); }
"#;

const LOGO_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="32" height="32" role="img" aria-label="AMTP stack">
  <title>AMTP native dev stack</title>
  <rect x="1" y="1" width="30" height="30" rx="6" fill="#1f5fbf"/>
  <ellipse cx="16" cy="9" rx="9" ry="3.2" fill="#fff"/>
  <path d="M7 9v5c0 1.8 4 3.2 9 3.2s9-1.4 9-3.2V9c0 1.8-4 3.2-9 3.2S7 10.8 7 9z" fill="#d9e6fb"/>
  <path d="M7 16v5c0 1.8 4 3.2 9 3.2s9-1.4 9-3.2v-5c0 1.8-4 3.2-9 3.2S7 17.8 7 16z" fill="#b3cdf6"/>
</svg>
"##;

/// One Markdown page of the site.
struct Page {
    /// Path under `docs/`, `/`-separated (`benchmarks/healthcheck.md`).
    source: String,
    /// Path of its HTML under the site root (`benchmarks/healthcheck.html`).
    target: String,
    title: String,
    /// The Markdown with every placeholder replaced.
    markdown: String,
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

// ---------------------------------------------------------------------------------------------
// Generated sections

/// What the generated sections are built from: the xtask's own tables and `infra/`.
struct Facts {
    repo_root: PathBuf,
    postgres: Vec<contract::Setting>,
    initdb_args: Vec<String>,
    pgbouncer: Vec<contract::Setting>,
    valkey: Vec<contract::Setting>,
    nginx_headers: Vec<contract::Setting>,
    nginx_gzip_types: Vec<String>,
    services: Vec<ServiceRow>,
}

/// One row of the service map.
#[derive(serde::Serialize)]
struct ServiceRow {
    name: &'static str,
    program: String,
    pin: String,
    port_var: Option<&'static str>,
    default_port: Option<u16>,
    depends_on: &'static [&'static str],
    runs: String,
}

impl Facts {
    fn read(repo_root: &Path) -> anyhow::Result<Facts> {
        let server_block = contract::nginx_server_block(repo_root)?;
        Ok(Facts {
            repo_root: repo_root.to_owned(),
            postgres: contract::postgres(repo_root)?,
            initdb_args: contract::initdb_args(repo_root)?,
            pgbouncer: contract::pgbouncer(repo_root)?,
            valkey: contract::valkey(repo_root)?,
            nginx_headers: contract::nginx_headers(&server_block),
            nginx_gzip_types: contract::nginx_gzip_types(&server_block),
            services: service_rows(repo_root)?,
        })
    }
}

fn service_rows(repo_root: &Path) -> anyhow::Result<Vec<ServiceRow>> {
    // Whether a unit runs can depend on the configuration (the GitHub stand-in runs only
    // without App credentials): ask each unit under both kinds of configuration.
    let config = |github_app: bool| {
        let mut vars: BTreeMap<String, String> = [
            ("AMTP_STATE_DIR", "/nonexistent/amtp-docs-state"),
            ("POSTGRES_PASSWORD", "unused"),
            ("VALKEY_PASSWORD", "unused"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if github_app {
            vars.insert("GITHUB_APP_ID".into(), "1".into());
            vars.insert("GITHUB_APP_INSTALLATION_ID".into(), "1".into());
        }
        StackConfig::from_vars(repo_root, vars, false)
    };
    let with_app = config(true)?;
    let stand_in = config(false)?;
    Ok(stack::UNITS
        .iter()
        .map(|unit| {
            let (program, pin) = program_of(unit);
            let (port_var, default_port) = match &unit.kind {
                Kind::Daemon(daemon) => (
                    Some(daemon.port_var),
                    PORT_KEYS
                        .iter()
                        .find(|(key, _)| *key == daemon.port_var)
                        .map(|(_, port)| *port),
                ),
                Kind::Task(_) => (None, None),
            };
            let when = match ((unit.enabled)(&with_app), (unit.enabled)(&stand_in)) {
                (true, true) => "always",
                (false, true) => "only without GitHub App credentials",
                (true, false) => "only with GitHub App credentials",
                (false, false) => "never",
            };
            let kind = match unit.kind {
                Kind::Daemon(_) => "daemon",
                Kind::Task(_) => "once per `up`",
            };
            ServiceRow {
                name: unit.name,
                program,
                pin,
                port_var,
                default_port,
                depends_on: unit.depends_on,
                runs: format!("{kind}, {when}"),
            }
        })
        .collect())
}

/// The program a unit runs and the version it is pinned to.
fn program_of(unit: &Unit) -> (String, String) {
    let wanted = match unit.name {
        "postgres" => Some(&postgres::WANTED),
        "pgbouncer" => Some(&pgbouncer::WANTED),
        "valkey" => Some(&valkey::WANTED),
        "nginx" => Some(&nginx::WANTED),
        _ => None,
    };
    if let Some(wanted) = wanted {
        let names: Vec<String> = wanted.names.iter().map(|n| format!("`{n}`")).collect();
        let program = match names.split_first() {
            Some((first, [])) => first.clone(),
            Some((first, rest)) => format!("{first} (else {})", rest.join(", ")),
            None => UNDOCUMENTED.to_owned(),
        };
        return (program, wanted.pin.to_owned());
    }
    if let Some(index) = apps::BINARIES.iter().position(|b| *b == unit.name) {
        return (
            format!(
                "`{}` (package `{}`)",
                apps::BINARIES[index],
                apps::PACKAGES[index]
            ),
            "this workspace".to_owned(),
        );
    }
    match unit.kind {
        Kind::Task(_) if unit.name == "migrations" => (
            "inside `cargo xtask` (crate `amtp-migrate`)".to_owned(),
            "this workspace".to_owned(),
        ),
        _ => (UNDOCUMENTED.to_owned(), "?".to_owned()),
    }
}

/// Replaces every placeholder line of `text`.
fn expand_placeholders(text: &str, facts: &Facts) -> anyhow::Result<String> {
    let mut expanded = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        let directive = trimmed
            .strip_prefix("<!--")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(str::trim);
        let replacement = match directive {
            Some(d) if d.starts_with("generated:") => {
                generated(&d["generated:".len()..], facts).map(Some)
            }
            Some(d) if d.starts_with("include:") => {
                include(&facts.repo_root, d["include:".len()..].trim()).map(Some)
            }
            _ => Ok(None),
        }
        .with_context(|| format!("line {}", index + 1))?;
        match replacement {
            // Blank lines around it, so a table never runs into a paragraph.
            Some(markdown) => {
                expanded.push('\n');
                expanded.push_str(markdown.trim_end());
                expanded.push_str("\n\n");
            }
            None => expanded.push_str(line),
        }
    }
    Ok(expanded)
}

/// Builds one generated section.
type Generator = fn(&Facts) -> String;

/// What `<!-- generated:NAME -->` can stand for, by name.
const GENERATED: [(&str, Generator); 7] = [
    ("service-map", service_map),
    ("ports", ports),
    ("flags:postgres", postgres_flags),
    ("flags:initdb", initdb_args),
    ("flags:pgbouncer", pgbouncer_flags),
    ("flags:valkey", valkey_flags),
    ("flags:nginx", nginx_flags),
];

fn generated(name: &str, facts: &Facts) -> anyhow::Result<String> {
    let name = name.trim();
    match GENERATED.iter().find(|(known, _)| *known == name) {
        Some((_, render)) => Ok(render(facts)),
        None => {
            let known: Vec<&str> = GENERATED.iter().map(|(known, _)| *known).collect();
            bail!(
                "unknown placeholder `generated:{name}`; known: {}",
                known.join(", ")
            )
        }
    }
}

fn code(text: &str) -> String {
    format!("`{text}`")
}

fn service_map(facts: &Facts) -> String {
    table(
        &[
            "Service",
            "Program",
            "Pinned version",
            "Port variable",
            "Default port",
            "Depends on",
            "Runs",
        ],
        facts.services.iter().map(|s| {
            let depends_on: Vec<String> = s.depends_on.iter().map(|d| code(d)).collect();
            vec![
                code(s.name),
                s.program.clone(),
                s.pin.clone(),
                s.port_var.map_or("—".to_owned(), code),
                s.default_port.map_or("—".to_owned(), |p| p.to_string()),
                if depends_on.is_empty() {
                    "—".to_owned()
                } else {
                    depends_on.join(", ")
                },
                s.runs.clone(),
            ]
        }),
    )
}

fn ports(facts: &Facts) -> String {
    table(
        &["Variable", "Default", "Service"],
        PORT_KEYS.iter().map(|(key, port)| {
            let service = facts
                .services
                .iter()
                .find(|s| s.port_var == Some(*key))
                .map_or("—".to_owned(), |s| code(s.name));
            vec![code(key), port.to_string(), service]
        }),
    )
}

fn postgres_flags(facts: &Facts) -> String {
    table(
        &["Setting", "Value", "Passed to `postgres` as"],
        facts.postgres.iter().map(|s| {
            vec![
                code(&s.key),
                code(&s.value),
                code(&format!("-c {}={}", s.key, s.value)),
            ]
        }),
    )
}

fn initdb_args(facts: &Facts) -> String {
    table(
        &["`initdb` argument"],
        facts.initdb_args.iter().map(|arg| vec![code(arg)]),
    )
}

fn pgbouncer_flags(facts: &Facts) -> String {
    table(
        &["Key", "Value", "Needs"],
        facts.pgbouncer.iter().map(|s| {
            let needs = pgbouncer::ADDED_IN
                .iter()
                .find(|(key, _)| *key == s.key)
                .map_or("any PgBouncer".to_owned(), |(_, (major, minor))| {
                    format!(
                        "PgBouncer ≥ {major}.{minor}; left out (and reported as drift) \
                         on older versions"
                    )
                });
            vec![code(&s.key), code(&s.value), needs]
        }),
    )
}

/// `--save ""`: how the flag reads on a Valkey command line.
fn valkey_flag(setting: &contract::Setting) -> String {
    let value = if setting.value.is_empty() {
        "\"\""
    } else {
        &setting.value
    };
    format!("--{} {value}", setting.key)
}

fn valkey_flags(facts: &Facts) -> String {
    table(
        &["Flag", "Value", "On the command line"],
        facts.valkey.iter().map(|s| {
            vec![
                code(&format!("--{}", s.key)),
                if s.value.is_empty() {
                    "(empty)".to_owned()
                } else {
                    code(&s.value)
                },
                code(&valkey_flag(s)),
            ]
        }),
    )
}

fn nginx_flags(facts: &Facts) -> String {
    let headers = table(
        &["Response header (on every response)", "Value"],
        facts
            .nginx_headers
            .iter()
            .map(|h| vec![code(&h.key), code(&h.value)]),
    );
    let gzip = table(
        &["Content type", "Compressed with gzip"],
        facts.nginx_gzip_types.iter().map(|t| {
            let how = if t == "text/html" {
                "yes (always, once `gzip on`)"
            } else {
                "yes (`gzip_types`)"
            };
            vec![code(t), how.to_owned()]
        }),
    );
    format!("{headers}\n{gzip}")
}

/// A Markdown table; `|` inside a cell is escaped.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let line = |cells: &[String]| {
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut text = line(&header);
    text.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        text.push_str(&line(&row));
    }
    text
}

/// A Markdown file of the repository, without its first-level title (the page has its own).
fn include(repo_root: &Path, relative: &str) -> anyhow::Result<String> {
    let inside = Path::new(relative)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !inside || !relative.ends_with(".md") {
        bail!("`include:{relative}` must name a .md file inside the repository");
    }
    let path = repo_root.join(relative);
    let text = fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} for `include:{relative}`", path.display()))?;
    let title = Parser::new(&text)
        .into_offset_iter()
        .find_map(|(event, range)| {
            matches!(
                event,
                Event::Start(Tag::Heading {
                    level: HeadingLevel::H1,
                    ..
                })
            )
            .then_some(range)
        });
    Ok(match title {
        Some(range) => format!("{}{}", &text[..range.start], &text[range.end..]),
        None => text,
    })
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

// ---------------------------------------------------------------------------------------------
// Rendering

fn markdown_options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// The text of the first `#` heading.
fn first_heading(markdown: &str) -> Option<String> {
    let mut events = Parser::new_ext(markdown, markdown_options()).skip_while(|e| {
        !matches!(
            e,
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            })
        )
    });
    events.next()?;
    let text: String = events
        .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
        .filter_map(|e| match e {
            Event::Text(t) | Event::Code(t) => Some(t),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat();
    (!text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn render_page(page: &Page, pages: &[Page], site: &BTreeSet<String>) -> String {
    let events: Vec<Event> = Parser::new_ext(&page.markdown, markdown_options()).collect();
    let events = with_heading_ids(events);
    let events = resolve_links(events, &page.target, site);
    let events = raw_html_as_text(events);
    let mut content = String::new();
    html::push_html(&mut content, events.into_iter());

    let root = "../".repeat(page.target.matches('/').count());
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         {GENERATOR_META}\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"{root}style.css\">\n\
         <link rel=\"icon\" href=\"{root}logo.svg\" type=\"image/svg+xml\">\n\
         </head>\n\
         <body>\n\
         <header><a href=\"{root}index.html\"><img src=\"{root}logo.svg\" alt=\"\" width=\"28\" height=\"28\">{site_title}</a></header>\n\
         {nav}\
         <main>\n{content}</main>\n\
         <footer>Rendered by <code>cargo xtask docs</code> from <code>docs/{source}</code>.</footer>\n\
         </body>\n\
         </html>\n",
        title = escape(&if page.title == SITE_TITLE {
            SITE_TITLE.to_owned()
        } else {
            format!("{} · {SITE_TITLE}", page.title)
        }),
        site_title = escape(SITE_TITLE),
        nav = navigation(pages, &page.target, &root),
        source = escape(&page.source),
    )
}

/// HTML-escapes text through pulldown-cmark's own writer.
fn escape(text: &str) -> String {
    let mut escaped = String::new();
    html::push_html(&mut escaped, std::iter::once(Event::Text(text.into())));
    escaped
}

/// Every page: top-level pages in order, a folder's pages nested under the page of its name.
fn navigation(pages: &[Page], current: &str, root: &str) -> String {
    let item = |page: &Page| {
        let current = if page.target == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        // The home page's title is the site's, already in the header.
        let label = if page.title == SITE_TITLE {
            "Overview"
        } else {
            &page.title
        };
        format!(
            "<a href=\"{root}{}\"{current}>{}</a>",
            page.target,
            escape(label)
        )
    };
    let mut nav = String::from("<nav aria-label=\"Pages\">\n<ul>\n");
    let mut index = 0;
    while index < pages.len() {
        let page = &pages[index];
        let folder = format!("{}/", page.target.trim_end_matches(".html"));
        let children: Vec<&Page> = pages[index + 1..]
            .iter()
            .take_while(|p| p.target.starts_with(&folder))
            .collect();
        if children.is_empty() {
            nav.push_str(&format!("<li>{}</li>\n", item(page)));
        } else {
            nav.push_str(&format!("<li>{}\n<ul>\n", item(page)));
            for child in &children {
                nav.push_str(&format!("<li>{}</li>\n", item(child)));
            }
            nav.push_str("</ul>\n</li>\n");
        }
        index += 1 + children.len();
    }
    nav.push_str("</ul>\n</nav>\n");
    nav
}

/// Gives every heading an id from its text (GitHub's style, `-2` etc. for repeats), so pages
/// can link to sections.
fn with_heading_ids(mut events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for start in 0..events.len() {
        if !matches!(events[start], Event::Start(Tag::Heading { id: None, .. })) {
            continue;
        }
        let text: String = events[start + 1..]
            .iter()
            .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
            .filter_map(|e| match e {
                Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect();
        let base = slug(&text);
        let count = seen.entry(base.clone()).or_insert(0);
        let id = if *count == 0 {
            base
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        if let Event::Start(Tag::Heading { id: slot, .. }) = &mut events[start] {
            *slot = Some(CowStr::from(id));
        }
    }
    events
}

/// `Valkey 8.0 (cache)` → `valkey-80-cache`.
fn slug(text: &str) -> String {
    let slug: String = text
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect();
    if slug.is_empty() {
        "section".to_owned()
    } else {
        slug
    }
}

/// Rewrites links to `.md` pages into links to their `.html`; a relative link whose target is
/// not part of the site loses its link and keeps its text.
fn resolve_links<'a>(
    events: Vec<Event<'a>>,
    page: &str,
    site: &BTreeSet<String>,
) -> Vec<Event<'a>> {
    let mut dropping = false;
    events
        .into_iter()
        .filter_map(|event| match event {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => match site_link(&dest_url, page, site) {
                Some(dest_url) => Some(Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                })),
                None => {
                    dropping = true;
                    None
                }
            },
            Event::End(TagEnd::Link) if dropping => {
                dropping = false;
                None
            }
            other => Some(other),
        })
        .collect()
}

/// The URL to write for a link from `page`, or `None` when it points at a file outside the site.
fn site_link<'a>(dest: &CowStr<'a>, page: &str, site: &BTreeSet<String>) -> Option<CowStr<'a>> {
    let external = dest.starts_with('#')
        || dest.starts_with('/')
        || dest
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.contains('/'));
    if external {
        return Some(dest.clone());
    }
    let (path, fragment) = match dest.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (dest.as_ref(), None),
    };
    let path = match path.strip_suffix(".md") {
        Some(stem) => format!("{stem}.html"),
        None => path.to_owned(),
    };
    let mut resolved: Vec<&str> = page.split('/').collect();
    resolved.pop();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                resolved.pop()?;
            }
            part => resolved.push(part),
        }
    }
    let mut target = resolved.join("/");
    if path.ends_with('/') || target.is_empty() {
        target = format!("{target}/index.html")
            .trim_start_matches('/')
            .to_owned();
    }
    if !site.contains(&target) {
        return None;
    }
    Some(CowStr::from(match fragment {
        Some(fragment) => format!("{path}#{fragment}"),
        None => path,
    }))
}

/// Raw HTML in Markdown is shown as text (comments are dropped): the template is the only
/// markup, so every page stays well-formed.
fn raw_html_as_text(events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut in_comment = false;
    events
        .into_iter()
        .filter_map(|event| match event {
            Event::Html(text) | Event::InlineHtml(text) => {
                let starts = text.trim_start().starts_with("<!--");
                if starts || in_comment {
                    in_comment = !text.contains("-->");
                    None
                } else {
                    Some(Event::Text(text))
                }
            }
            Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => None,
            other => Some(other),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Files

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
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
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
        let metadata = fs::symlink_metadata(&path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amtp-docs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
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
        let out = temp_dir("facts");
        let html = built_site(&out);
        let facts = Facts::read(repo()).unwrap();
        for unit in stack::UNITS {
            let (program, pin) = program_of(unit);
            assert_ne!(program, UNDOCUMENTED, "{}", unit.name);
            assert!(
                html.contains(&format!("<code>{}</code>", unit.name)),
                "{}",
                unit.name
            );
            assert!(html.contains(&escape(&pin)), "{} pin {pin}", unit.name);
            if let Kind::Daemon(daemon) = &unit.kind {
                let row = format!("<td><code>{}</code></td>", daemon.port_var);
                assert!(html.contains(&row), "{}", daemon.port_var);
            }
        }
        for (key, port) in PORT_KEYS {
            assert!(
                html.contains(&format!("<td>{port}</td>")),
                "{key} default {port}"
            );
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
        fs::remove_dir_all(out).unwrap();
    }

    #[test]
    fn placeholders_become_tables_and_unknown_ones_are_refused() {
        let facts = Facts::read(repo()).unwrap();
        let text = "# Map\n<!-- generated:service-map -->\nafter\n";
        let expanded = expand_placeholders(text, &facts).unwrap();
        assert!(!expanded.contains("<!--"), "{expanded}");
        assert!(expanded.contains("| Service | Program |"), "{expanded}");
        assert!(
            expanded.contains("| `postgres` | `postgres` | 15 |"),
            "{expanded}"
        );
        assert!(expanded.ends_with("\nafter\n"), "{expanded}");
        // An ordinary comment stays as it is (and is dropped at rendering).
        let comment = "<!-- a note -->\n";
        assert_eq!(expand_placeholders(comment, &facts).unwrap(), comment);

        let err = expand_placeholders("a\n<!-- generated:nope -->\n", &facts).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.starts_with("line 2: unknown placeholder `generated:nope`"),
            "{err}"
        );
        for (name, _) in GENERATED {
            generated(name, &facts).unwrap();
        }
    }

    #[test]
    fn an_include_drops_the_title_and_stays_inside_the_repository() {
        let namespaces = include(repo(), "infra/valkey/NAMESPACES.md").unwrap();
        assert!(!namespaces.starts_with("# "), "{namespaces}");
        assert!(namespaces.contains("## Namespace table"));
        assert!(include(repo(), "../etc/passwd.md").is_err());
        assert!(include(repo(), "/etc/passwd.md").is_err());
    }

    #[test]
    fn links_to_pages_become_html_and_links_out_of_the_site_lose_their_link() {
        let site: BTreeSet<String> = ["index.html", "flags.html", "benchmarks/healthcheck.html"]
            .map(String::from)
            .into();
        let markdown = "[f](flags.md#valkey) [b](benchmarks/healthcheck.md) [x](../xtask/src/docs.rs) \
                        [a](#top) [w](https://example.com/a.md)";
        let events: Vec<Event> = Parser::new(markdown).collect();
        let mut html = String::new();
        html::push_html(
            &mut html,
            resolve_links(events, "index.html", &site).into_iter(),
        );
        assert_eq!(
            html,
            "<p><a href=\"flags.html#valkey\">f</a> <a href=\"benchmarks/healthcheck.html\">b</a> x \
             <a href=\"#top\">a</a> <a href=\"https://example.com/a.md\">w</a></p>\n"
        );
        let back = site_link(&"../index.md".into(), "benchmarks/healthcheck.html", &site);
        assert_eq!(back.as_deref(), Some("../index.html"));
    }

    #[test]
    fn headings_get_unique_ids_and_raw_html_is_text() {
        let markdown = "# Quick start\n## Valkey 8.0 (cache)\n## Quick start\n\n<!-- note\nmore -->\n\n<b>bold</b>\n";
        let events: Vec<Event> = Parser::new(markdown).collect();
        let mut html = String::new();
        html::push_html(
            &mut html,
            raw_html_as_text(with_heading_ids(events)).into_iter(),
        );
        assert_eq!(
            html,
            "<h1 id=\"quick-start\">Quick start</h1>\n<h2 id=\"valkey-80-cache\">Valkey 8.0 (cache)</h2>\n\
             <h2 id=\"quick-start-1\">Quick start</h2>\n<p>&lt;b&gt;bold&lt;/b&gt;</p>\n"
        );
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
        let out = temp_dir("stale");
        fs::create_dir_all(out.join("old")).unwrap();
        let earlier_page = format!("<html><head>{GENERATOR_META}</head></html>");
        fs::write(out.join("removed-page.html"), &earlier_page).unwrap();
        fs::write(out.join("old/page.html"), &earlier_page).unwrap();
        fs::write(out.join("foreign.html"), "<html>not ours</html>").unwrap();
        fs::write(out.join("notes.txt"), "not ours").unwrap();
        fs::set_permissions(out.join("notes.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&out, fs::Permissions::from_mode(0o700)).unwrap();
        build_site(repo(), &out).unwrap();
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
        assert_eq!(mode(&out), 0o755);
        assert_eq!(mode(&out.join("index.html")), 0o644);
        assert_eq!(mode(&out.join("notes.txt")), 0o644);
        assert_eq!(mode(&out.join("old")), 0o755);

        // A second build changes nothing.
        let modified = fs::metadata(out.join("index.html"))
            .unwrap()
            .modified()
            .unwrap();
        build_site(repo(), &out).unwrap();
        assert_eq!(
            fs::metadata(out.join("index.html"))
                .unwrap()
                .modified()
                .unwrap(),
            modified
        );
        fs::remove_dir_all(out).unwrap();
    }
}
