//! `cargo xtask compose`: the production Compose stack, `docker-compose.yml` and
//! `docker-compose.override.yml`, written from the same contract the native stack runs.
//!
//! # Theory of operation
//!
//! The seed (the platform's infrastructure page) documents the Compose stack; `infra/` holds
//! the values the native stack runs with. Each row of the unit table describes its own Compose
//! service ([`stack::compose::Service`]) from `infra/` plus the parts of the seed that no
//! `infra/` file holds (images and tags, the apps' environment); this module renders the files
//! from the rows in table order, adding what every service shares (`restart`, the `amtp_net`
//! network, the healthcheck timings), the named volumes and secrets the services use, and the
//! files they mount that are rendered from `infra/` (Garage's `garage.toml`), beside the Compose
//! files. So a value lives in one place: change `infra/`, run `cargo xtask compose`, commit
//! the files.
//!
//! `--check` renders the files again and compares them with the ones on disk, like
//! `cargo fmt --check`: a hand edit of a generated file, or a change in `infra/` without
//! regenerating, fails it with every differing line named.
//!
//! Rendering is pure ([`render`]); the YAML is written by a small emitter for the shapes these
//! files have (maps, lists of scalars, double-quoted strings), so the output is stable and
//! commented, and needs no YAML library.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::stack::compose::{Image, Service, Volume};
use crate::stack::contract::Contract;
use crate::stack::{self, Kind, Unit};

/// The Compose files, in the order Compose reads them.
const FILES: [&str; 2] = ["docker-compose.yml", "docker-compose.override.yml"];

/// `cargo xtask compose [--check] [--out DIR]`.
pub(crate) fn run(root: &Path, out: &Path, check: bool) -> anyhow::Result<ExitCode> {
    let files = render(&Contract::read(root)?)?;
    if check {
        let differences = differences(out, &files)?;
        if differences.is_empty() {
            let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
            println!("compose: {} match infra/", names.join(", "));
            return Ok(ExitCode::SUCCESS);
        }
        for difference in &differences {
            eprintln!("{difference}");
        }
        bail!(
            "the Compose files in {} differ from what infra/ gives; change infra/ (not the \
             generated files) and run `cargo xtask compose`",
            out.display()
        );
    }
    fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    for (name, text) in &files {
        let path = out.join(name);
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        println!("compose: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Both Compose files, then the files their services mount, rendered from the rows' services.
fn render(contract: &Contract) -> anyhow::Result<Vec<(&'static str, String)>> {
    let services = stack::UNITS
        .iter()
        .filter_map(|unit| Some((*unit, unit.compose?)))
        .map(|(unit, compose)| {
            let service = compose(contract)
                .with_context(|| format!("the Compose service of {}", unit.name))?;
            Ok((unit, service))
        })
        .collect::<anyhow::Result<Vec<(&Unit, Service)>>>()?;
    let main = Node::map([
        (
            "services",
            Node::map(
                services
                    .iter()
                    .map(|(unit, service)| (service.name, service_node(unit, service))),
            ),
        ),
        (
            "networks",
            // The observability stack attaches to this exact name as an external network, so
            // it is fixed here rather than derived from the project name.
            Node::map([(
                "amtp_net",
                Node::map([("name", s("amtp_net")), ("driver", s("bridge"))]),
            )]),
        ),
        ("volumes", named_volumes(&services)),
        ("secrets", secrets(&services)),
    ]);
    let local_ports = services
        .iter()
        .filter(|(_, service)| !service.local_ports.is_empty())
        .map(|(_, service)| {
            let ports = service.local_ports.iter().map(|(var, port)| {
                Scalar::from(format!(
                    "127.0.0.1:${{{}:-{}}}:{port}",
                    var.var, var.default
                ))
            });
            (
                service.name,
                Node::map([("ports", Node::List(ports.collect()))]),
            )
        });
    let mut files = vec![
        (FILES[0], emit("The AMTP stack for Docker Compose.", &main)),
        (
            FILES[1],
            emit(
                "Local development: the host ports Compose adds to docker-compose.yml, on \
                 127.0.0.1 only.",
                &Node::map([("services", Node::map(local_ports))]),
            ),
        ),
    ];
    for (_, service) in &services {
        for volume in &service.volumes {
            if let Volume::Rendered { file, content, .. } = volume {
                files.push((*file, content.clone()));
            }
        }
    }
    Ok(files)
}

/// A path of the repository as the Compose files name it: from the directory they are in,
/// the repository's root.
fn repo_path(path: &str) -> String {
    format!("./{path}")
}

/// One service: its image, what every long-running service of the stack has (restarted by
/// Compose as the native supervisor restarts it), then the row's own parts, then the network.
fn service_node(unit: &Unit, service: &Service) -> Node {
    let mut entries = vec![match service.image {
        Image::Pull(image) => ("image", s(image)),
        Image::Build(dir) => ("build", s(&repo_path(dir))),
    }];
    if matches!(unit.kind, Kind::Daemon(_)) {
        entries.push(("restart", s("unless-stopped")));
    }
    let list =
        |items: &[String]| Node::List(items.iter().map(|i| Scalar::from(i.as_str())).collect());
    let parts = [
        ("profiles", Node::list(service.profiles.iter().copied())),
        ("command", list(&service.command)),
        (
            "environment",
            Node::map(service.environment.iter().map(|(k, v)| (k.as_str(), s(v)))),
        ),
        (
            "secrets",
            Node::list(service.secrets.iter().map(|s| s.name)),
        ),
        (
            "volumes",
            list(&service.volumes.iter().map(volume_text).collect::<Vec<_>>()),
        ),
        ("ports", Node::list(service.ports.iter().copied())),
        (
            "depends_on",
            Node::map(service.depends_on.iter().map(|(name, condition)| {
                (*name, Node::map([("condition", s(condition.as_compose()))]))
            })),
        ),
    ];
    entries.extend(parts.into_iter().filter(|(_, node)| !node.is_empty()));
    if !service.healthcheck.is_empty() {
        entries.push(("healthcheck", healthcheck(list(&service.healthcheck))));
    }
    entries.push(("networks", Node::list(["amtp_net"])));
    Node::map(entries)
}

/// `SOURCE:TARGET`, read-only (`:ro`) for what comes from the repository or the export.
fn volume_text(volume: &Volume) -> String {
    match volume {
        Volume::Named { name, target } => format!("{name}:{target}"),
        Volume::Repo { path, target } => format!("{}:{target}:ro", repo_path(path)),
        Volume::Rendered { file, target, .. } => format!("./{file}:{target}:ro"),
    }
}

/// Each named volume the services use, once, under its own name.
fn named_volumes(services: &[(&Unit, Service)]) -> Node {
    let mut names: Vec<&str> = Vec::new();
    for volume in services.iter().flat_map(|(_, service)| &service.volumes) {
        if let Volume::Named { name, .. } = volume
            && !names.contains(name)
        {
            names.push(name);
        }
    }
    Node::map(
        names
            .into_iter()
            .map(|name| (name, Node::map([("name", s(name))]))),
    )
}

/// Each secret the services use, once, from its file of the repository.
fn secrets(services: &[(&Unit, Service)]) -> Node {
    let mut seen = Vec::new();
    for secret in services.iter().flat_map(|(_, service)| &service.secrets) {
        if !seen.iter().any(|(name, _)| *name == secret.name) {
            seen.push((
                secret.name,
                Node::map([("file", s(&repo_path(secret.file)))]),
            ));
        }
    }
    Node::map(seen)
}

/// The seed's Postgres healthcheck timings; the seed gives none for the docs service's
/// `/healthz` probe, so it gets the same.
fn healthcheck(test: Node) -> Node {
    Node::map([
        ("test", test),
        ("interval", s("5s")),
        ("timeout", s("3s")),
        ("retries", Node::Scalar(Scalar::Int(20))),
    ])
}

/// Every line where a file on disk differs from its rendering, or that it is missing.
fn differences(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for (name, expected) in files {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(actual) => found.extend(
                line_differences(&actual, expected)
                    .into_iter()
                    .map(|line| format!("{}:{line}", path.display())),
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                found.push(format!("{}: missing", path.display()));
            }
            Err(err) => return Err(err).with_context(|| format!("read {}", path.display())),
        }
    }
    Ok(found)
}

/// A line diff (longest common subsequence): `N: on disk "…"` for a line that is not
/// expected, `N: expected "…"` for an expected line that is not there, N counted in that file.
fn line_differences(actual: &str, expected: &str) -> Vec<String> {
    let a: Vec<&str> = actual.lines().collect();
    let b: Vec<&str> = expected.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j == b.len() || (i < a.len() && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("{}: on disk {:?}", i + 1, a[i]));
            i += 1;
        } else {
            out.push(format!("{}: expected {:?}", j + 1, b[j]));
            j += 1;
        }
    }
    out
}

/// A YAML scalar: strings are always double-quoted.
#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    Str(String),
    Int(u32),
}

impl From<&str> for Scalar {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}

impl From<String> for Scalar {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}

/// The shapes a Compose file needs: maps (in order), lists of scalars, scalars.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Scalar(Scalar),
    List(Vec<Scalar>),
    Map(Vec<(String, Node)>),
}

fn s(value: &str) -> Node {
    Node::Scalar(Scalar::from(value))
}

impl Node {
    /// A list or map without entries: a service part the row does not have.
    fn is_empty(&self) -> bool {
        match self {
            Node::Scalar(_) => false,
            Node::List(items) => items.is_empty(),
            Node::Map(entries) => entries.is_empty(),
        }
    }

    fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Node)>) -> Self {
        Self::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> Self {
        Self::List(items.into_iter().map(Scalar::from).collect())
    }
}

/// The file: a comment header, then the root map, top-level entries apart by a blank line.
fn emit(title: &str, root: &Node) -> String {
    let mut out = format!(
        "# {title}\n# Generated by `cargo xtask compose` from infra/; do not edit: change infra/ \
         and run it again\n# (`cargo xtask compose --check` fails while this file and infra/ \
         disagree).\n"
    );
    let Node::Map(entries) = root else {
        unreachable!("a Compose file is a map")
    };
    for (key, value) in entries {
        out.push('\n');
        emit_entry(&mut out, key, value, 0);
    }
    out
}

fn emit_entry(out: &mut String, key: &str, value: &Node, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Node::Scalar(scalar) => {
            let _ = writeln!(out, "{pad}{key}: {}", scalar_text(scalar));
        }
        Node::List(items) => {
            let _ = writeln!(out, "{pad}{key}:");
            for item in items {
                let _ = writeln!(out, "{pad}  - {}", scalar_text(item));
            }
        }
        Node::Map(entries) if entries.is_empty() => {
            let _ = writeln!(out, "{pad}{key}: {{}}");
        }
        Node::Map(entries) => {
            let _ = writeln!(out, "{pad}{key}:");
            for (inner_key, inner) in entries {
                emit_entry(out, inner_key, inner, indent + 2);
            }
        }
    }
}

/// A JSON string is a valid YAML double-quoted scalar: `"`, `\` and control characters are
/// escaped the way YAML reads them.
fn scalar_text(scalar: &Scalar) -> String {
    match scalar {
        Scalar::Str(text) => serde_json::to_string(text).expect("a string serializes"),
        Scalar::Int(number) => number.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emitter_quotes_strings_and_nests_by_two_spaces() {
        let text = emit(
            "t",
            &Node::map([
                (
                    "a",
                    Node::map([
                        ("list", Node::list(["", "say \"hi\"\\"])),
                        ("n", Node::Scalar(Scalar::Int(20))),
                        ("empty", Node::map::<&str>([])),
                    ]),
                ),
                ("b", s("${X:-1}")),
            ]),
        );
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "",
                "a:",
                "  list:",
                "    - \"\"",
                "    - \"say \\\"hi\\\"\\\\\"",
                "  n: 20",
                "  empty: {}",
                "",
                "b: \"${X:-1}\"",
            ]
        );
    }

    #[test]
    fn line_differences_name_changed_added_and_removed_lines() {
        assert!(line_differences("a\nb\n", "a\nb\n").is_empty());
        assert_eq!(
            line_differences("a\nB\nc\n", "a\nb\nc\n"),
            ["2: on disk \"B\"", "2: expected \"b\""]
        );
        assert_eq!(line_differences("a\n", "a\nb\n"), ["2: expected \"b\""]);
        assert_eq!(line_differences("a\nx\n", "a\n"), ["2: on disk \"x\""]);
    }

    #[test]
    fn every_row_s_service_renders_from_the_repository_contract() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let files = render(&Contract::read(root).unwrap()).unwrap();
        let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, [FILES[0], FILES[1], "docker-compose.garage.toml"]);
        let (main, over) = (&files[0].1, &files[1].1);
        assert!(main.contains("\"-c\"\n      - \"max_connections=200\""));
        assert!(over.contains("\"127.0.0.1:${POSTGRES_PORT:-5432}:5432\""));
        for line in [
            "  garage:\n    image: \"dxflrs/garage:v2.5.0\"\n    restart: \"unless-stopped\"\n",
            "      - \"./docker-compose.garage.toml:/etc/garage.toml:ro\"\n",
            "      - \"amtp_garage_meta:/var/lib/garage/meta\"\n",
            "  amtp_garage_data:\n    name: \"amtp_garage_data\"\n",
            "  garage_rpc_secret:\n    file: \"./secrets/garage_rpc_secret\"\n",
        ] {
            assert!(main.contains(line), "{line} not in\n{main}");
        }
        assert!(over.contains("\"127.0.0.1:${GARAGE_S3_PORT:-3900}:3900\""));
        assert!(over.contains("\"127.0.0.1:${GARAGE_ADMIN_PORT:-3903}:3903\""));
        // Every row with a Compose service is in the file, under its service's name, and
        // only those.
        let contract = Contract::read(root).unwrap();
        for unit in stack::UNITS {
            match unit.compose {
                Some(compose) => {
                    let name = compose(&contract).unwrap().name;
                    assert!(main.contains(&format!("\n  {name}:\n")), "{name} missing");
                }
                None => assert!(!main.contains(unit.name), "{} is exported", unit.name),
            }
        }
    }
}
