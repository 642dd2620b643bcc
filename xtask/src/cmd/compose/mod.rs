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

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

mod yaml;

use yaml::{Node, Scalar, emit, s};

use crate::stack::compose::{Image, Project, Service, Volume};
use crate::stack::contract::Contract;
use crate::stack::{self, Kind, Unit};

/// The Compose files: the main project's, in the order Compose reads them, then the
/// observability project's (`docker compose -f docker-compose.observability.yml up`).
const FILES: [&str; 3] = [
    "docker-compose.yml",
    "docker-compose.override.yml",
    "docker-compose.observability.yml",
];

/// `cargo xtask compose [--check] [--out DIR]`.
pub(crate) fn run(root: &Path, out: &Path, check: bool) -> anyhow::Result<ExitCode> {
    if !check {
        fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    }
    let files = render(&Contract::read(root)?, &root_seen_from(out, root)?)?;
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
    for (name, text) in &files {
        let path = out.join(name);
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        println!("compose: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The repository root as Compose files written to `out` reach it, for the apps' build
/// contexts and the files the services mount: `.` at the root (the committed files), a
/// relative path such as `../..` from a directory inside the repository (it survives moving
/// the checkout), else the absolute path.
fn root_seen_from(out: &Path, root: &Path) -> anyhow::Result<String> {
    let root = root
        .canonicalize()
        .with_context(|| format!("resolve {}", root.display()))?;
    // `--check` of a directory that does not exist: its files are missing, said later.
    let out = out
        .canonicalize()
        .or_else(|_| std::path::absolute(out))
        .with_context(|| format!("resolve {}", out.display()))?;
    let text = match out.strip_prefix(&root) {
        Ok(inside) if inside.as_os_str().is_empty() => ".".to_owned(),
        Ok(inside) => vec![".."; inside.components().count()].join("/"),
        Err(_) => root
            .to_str()
            .with_context(|| {
                format!(
                    "the repository path {} is not UTF-8, so no Compose file can name it; \
                     write the files inside the repository (--out)",
                    root.display()
                )
            })?
            .to_owned(),
    };
    Ok(text)
}

/// Both Compose files, then the files their services mount, rendered from the rows' services;
/// `root` is the repository as the files reach it.
fn render(contract: &Contract, root: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let services = stack::UNITS
        .iter()
        .filter_map(|unit| Some((*unit, unit.compose?)))
        .map(|(unit, compose)| {
            let service = compose(contract)
                .with_context(|| format!("the Compose service of {}", unit.name))?;
            Ok((unit, service))
        })
        .collect::<anyhow::Result<Vec<(&Unit, Service)>>>()?;
    let (services, observability): (Vec<_>, Vec<_>) = services
        .into_iter()
        .partition(|(_, service)| service.project == Project::Main);
    let main = Node::map([
        (
            "services",
            Node::map(
                services
                    .iter()
                    .map(|(unit, service)| (service.name, service_node(unit, service, root))),
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
        ("secrets", secrets(&services, root)),
    ]);
    let local_ports = services
        .iter()
        .filter(|(_, service)| !service.local_ports.is_empty())
        .map(|(_, service)| {
            (
                service.name,
                Node::map([("ports", local_ports_of(service))]),
            )
        });
    // Its services with their loopback ports: a second project has no override file.
    let observability = Node::map([
        (
            "services",
            Node::map(observability.iter().map(|(unit, service)| {
                let Node::Map(mut entries) = service_node(unit, service, root) else {
                    unreachable!("a service is a map")
                };
                entries.insert(
                    entries.len() - 1,
                    ("ports".to_owned(), local_ports_of(service)),
                );
                (service.name, Node::Map(entries))
            })),
        ),
        (
            "networks",
            Node::map([(
                "amtp_net",
                Node::map([
                    ("name", s("amtp_net")),
                    ("external", Node::Scalar(Scalar::Bool(true))),
                ]),
            )]),
        ),
    ]);
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
        (
            FILES[2],
            emit(
                "The observability project: the OpenTelemetry collector the apps send to, on \
                 amtp_net (bring the main stack up first).",
                &observability,
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

/// A service's host ports for local development, on 127.0.0.1 only, each under the native
/// stack's variable and default: `127.0.0.1:${VAR:-default}:port`.
fn local_ports_of(service: &Service) -> Node {
    Node::List(
        service
            .local_ports
            .iter()
            .map(|(var, port)| {
                Scalar::from(format!(
                    "127.0.0.1:${{{}:-{}}}:{port}",
                    var.var, var.default
                ))
            })
            .collect(),
    )
}

/// A path of the repository as the Compose files name it: from the directory they are in,
/// the repository's root as [`root_seen_from`] gives it.
fn repo_path(root: &str, path: &str) -> String {
    format!("{root}/{path}")
}

/// One service: its image, what every long-running service of the stack has (restarted by
/// Compose as the native supervisor restarts it), then the row's own parts, then the network.
fn service_node(unit: &Unit, service: &Service, root: &str) -> Node {
    let mut entries = vec![match service.image {
        Image::Pull(image) => ("image", s(image)),
        // The apps use the workspace's crates, so their images build from the repository
        // root (its .dockerignore keeps the context small) with the app's own Dockerfile.
        Image::Build(dir) => (
            "build",
            Node::map([
                ("context", s(root)),
                ("dockerfile", s(&format!("{dir}/Dockerfile"))),
            ]),
        ),
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
            list(
                &service
                    .volumes
                    .iter()
                    .map(|volume| volume_text(volume, root))
                    .collect::<Vec<_>>(),
            ),
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
fn volume_text(volume: &Volume, root: &str) -> String {
    match volume {
        Volume::Named { name, target } => format!("{name}:{target}"),
        Volume::Repo { path, target } => format!("{}:{target}:ro", repo_path(root, path)),
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
fn secrets(services: &[(&Unit, Service)], root: &str) -> Node {
    let mut seen = Vec::new();
    for secret in services.iter().flat_map(|(_, service)| &service.secrets) {
        if !seen.iter().any(|(name, _)| *name == secret.name) {
            seen.push((
                secret.name,
                Node::map([("file", s(&repo_path(root, secret.file)))]),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let files = render(&Contract::read(root).unwrap(), ".").unwrap();
        let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [FILES[0], FILES[1], FILES[2], "docker-compose.garage.toml"]
        );
        let (main, over, observability) = (&files[0].1, &files[1].1, &files[2].1);
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
        // The collector is the observability project's, on the main project's network, its
        // host ports on loopback in its own file.
        for line in [
            "  otel-collector:\n    image: \"streamfold/rotel:v0.0.1-alpha10\"\n",
            "      - \"127.0.0.1:${OTEL_COLLECTOR_PORT:-4318}:4318\"\n",
            "  amtp_net:\n    name: \"amtp_net\"\n    external: true\n",
        ] {
            assert!(
                observability.contains(line),
                "{line} not in\n{observability}"
            );
        }
        // Every row with a Compose service is in its project's file, under its service's
        // name, and only those.
        let contract = Contract::read(root).unwrap();
        for unit in stack::UNITS {
            let defined = |file: &str, name: &str| file.contains(&format!("\n  {name}:\n"));
            match unit.compose {
                Some(compose) => {
                    let service = compose(&contract).unwrap();
                    let file = match service.project {
                        Project::Main => main,
                        Project::Observability => observability,
                    };
                    assert!(defined(file, service.name), "{} missing", service.name);
                }
                None => {
                    assert!(!defined(main, unit.name), "{} is exported", unit.name);
                    assert!(
                        !defined(observability, unit.name),
                        "{} is exported",
                        unit.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_repository_is_named_as_seen_from_the_output_directory() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().join("repo");
        let deep = root.join("out/deeper");
        let outside = scratch.path().join("elsewhere");
        for dir in [&deep, &outside] {
            fs::create_dir_all(dir).unwrap();
        }
        let seen = |out: &Path| root_seen_from(out, &root).unwrap();
        assert_eq!(seen(&root), ".");
        assert_eq!(seen(&deep), "../..");
        assert_eq!(seen(&root.join("out/./deeper/")), "../..");
        let absolute = root.canonicalize().unwrap();
        assert_eq!(seen(&outside), absolute.to_str().unwrap());
        // `--check` of a directory that is not there yet.
        assert_eq!(seen(&outside.join("missing")), absolute.to_str().unwrap());
    }
}
