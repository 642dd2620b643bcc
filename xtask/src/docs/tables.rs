//! The generated sections of the docs: `<!-- generated:NAME -->` becomes a Markdown table built
//! from the unit table and `infra/` (read through `contract`), `<!-- include:PATH -->` a
//! Markdown file of the repository. The only part of the docs that knows the stack.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use pulldown_cmark::{Event, HeadingLevel, Parser, Tag};

use crate::config::{Secrets, StackConfig};
use crate::stack::contract;
use crate::stack::{self, Kind, Program, Unit, nginx, pgbouncer, postgres, valkey};

/// What the generated sections are built from: the xtask's own tables and `infra/`.
pub(super) struct Facts {
    pub(super) repo_root: PathBuf,
    pub(super) postgres: Vec<contract::Setting>,
    pub(super) initdb_args: Vec<String>,
    pub(super) pgbouncer: Vec<contract::Setting>,
    pub(super) valkey: Vec<contract::Setting>,
    pub(super) nginx_headers: Vec<contract::Setting>,
    pub(super) nginx_gzip_types: Vec<String>,
    pub(super) services: Vec<ServiceRow>,
}

/// One row of the service map.
#[derive(serde::Serialize)]
pub(super) struct ServiceRow {
    name: &'static str,
    program: String,
    pin: String,
    port_var: Option<&'static str>,
    default_port: Option<u16>,
    /// The daemon's further ports (Garage's RPC and admin API), for the ports table.
    more_ports: Vec<(&'static str, u16)>,
    depends_on: &'static [&'static str],
    runs: String,
}

impl Facts {
    pub(super) fn read(repo_root: &Path) -> anyhow::Result<Facts> {
        let contract = contract::Contract::read(repo_root)?;
        let server_block = contract.text(&nginx::SERVER_BLOCK);
        Ok(Facts {
            repo_root: repo_root.to_owned(),
            postgres: contract.settings(&postgres::CONF).to_vec(),
            initdb_args: contract.lines(&postgres::INITDB_ARGS).to_vec(),
            pgbouncer: contract.settings(&pgbouncer::INI).to_vec(),
            valkey: contract.settings(&valkey::CONF).to_vec(),
            nginx_headers: nginx::headers(server_block),
            nginx_gzip_types: nginx::gzip_types(server_block),
            services: service_rows(repo_root)?,
        })
    }
}

pub(super) fn service_rows(repo_root: &Path) -> anyhow::Result<Vec<ServiceRow>> {
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
        StackConfig::from_vars(repo_root, vars, &stack::port_vars(), Secrets::MustExist)
    };
    let with_app = config(true)?;
    let stand_in = config(false)?;
    Ok(stack::UNITS
        .iter()
        .map(|unit| {
            let (program, pin) = program_of(unit);
            let port = unit.port();
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
                port_var: port.map(|p| p.var),
                default_port: port.map(|p| p.default),
                more_ports: unit
                    .ports()
                    .iter()
                    .skip(1)
                    .map(|p| (p.var, p.default))
                    .collect(),
                depends_on: unit.depends_on,
                runs: format!("{kind}, {when}"),
            }
        })
        .collect())
}

/// The program a unit runs and the version it is pinned to.
pub(super) fn program_of(unit: &Unit) -> (String, String) {
    match &unit.program {
        Program::External(wanted) => {
            let names: Vec<String> = wanted.names.iter().map(|n| code(n)).collect();
            let program = match names.split_first() {
                Some((first, [])) => first.clone(),
                Some((first, rest)) => format!("{first} (else {})", rest.join(", ")),
                None => "—".to_owned(),
            };
            (program, wanted.pin.to_owned())
        }
        Program::Workspace { package, binary } => (
            format!("`{binary}` (package `{package}`)"),
            "this workspace".to_owned(),
        ),
        Program::Xtask { crate_name } => (
            format!("inside `cargo xtask` (crate `{crate_name}`)"),
            "this workspace".to_owned(),
        ),
    }
}

/// Replaces every placeholder line of `text`.
pub(super) fn expand_placeholders(text: &str, facts: &Facts) -> anyhow::Result<String> {
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
pub(super) type Generator = fn(&Facts) -> String;

/// What `<!-- generated:NAME -->` can stand for, by name.
pub(super) const GENERATED: [(&str, Generator); 7] = [
    ("service-map", service_map),
    ("ports", ports),
    ("flags:postgres", postgres_flags),
    ("flags:initdb", initdb_args),
    ("flags:pgbouncer", pgbouncer_flags),
    ("flags:valkey", valkey_flags),
    ("flags:nginx", nginx_flags),
];

pub(super) fn generated(name: &str, facts: &Facts) -> anyhow::Result<String> {
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

pub(super) fn code(text: &str) -> String {
    format!("`{text}`")
}

pub(super) fn service_map(facts: &Facts) -> String {
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

pub(super) fn ports(facts: &Facts) -> String {
    table(
        &["Variable", "Default", "Service"],
        facts.services.iter().flat_map(|s| {
            let main = s.port_var.zip(s.default_port);
            main.into_iter()
                .chain(s.more_ports.iter().copied())
                .map(|(var, default)| vec![code(var), default.to_string(), code(s.name)])
        }),
    )
}

pub(super) fn postgres_flags(facts: &Facts) -> String {
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

pub(super) fn initdb_args(facts: &Facts) -> String {
    table(
        &["`initdb` argument"],
        facts.initdb_args.iter().map(|arg| vec![code(arg)]),
    )
}

pub(super) fn pgbouncer_flags(facts: &Facts) -> String {
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
pub(super) fn valkey_flag(setting: &contract::Setting) -> String {
    let value = if setting.value.is_empty() {
        "\"\""
    } else {
        &setting.value
    };
    format!("--{} {value}", setting.key)
}

pub(super) fn valkey_flags(facts: &Facts) -> String {
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

pub(super) fn nginx_flags(facts: &Facts) -> String {
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
pub(super) fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
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
pub(super) fn include(repo_root: &Path, relative: &str) -> anyhow::Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
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
}
