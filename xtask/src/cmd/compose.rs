//! `cargo xtask compose`: the production Compose stack, `docker-compose.yml` and
//! `docker-compose.override.yml`, written from the same contract the native stack runs.
//!
//! # Theory of operation
//!
//! The seed (the platform's infrastructure page) documents the Compose stack; `infra/` holds
//! the values the native stack runs with, read through [`contract`]. This module renders both
//! Compose files from `infra/` plus the parts of the seed that no `infra/` file holds (images
//! and tags, the healthcheck timings, the Flyway settings, the apps' environment), so a value
//! lives in one place: change `infra/`, run `cargo xtask compose`, commit both.
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

use crate::stack::contract::{self, Setting};

/// The generated files, in the order Compose reads them.
const FILES: [&str; 2] = ["docker-compose.yml", "docker-compose.override.yml"];

/// What `infra/` says, read once.
struct Contract {
    postgres: Vec<Setting>,
    initdb_args: Vec<String>,
    pgbouncer: Vec<Setting>,
    valkey: Vec<Setting>,
}

impl Contract {
    fn read(root: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            postgres: contract::postgres(root)?,
            initdb_args: contract::initdb_args(root)?,
            pgbouncer: contract::pgbouncer(root)?,
            valkey: contract::valkey(root)?,
        })
    }
}

/// `cargo xtask compose [--check] [--out DIR]`.
pub(crate) fn run(root: &Path, out: &Path, check: bool) -> anyhow::Result<ExitCode> {
    if !check {
        fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    }
    let files = render(&Contract::read(root)?, &root_seen_from(out, root)?);
    if check {
        let differences = differences(out, &files)?;
        if differences.is_empty() {
            println!("compose: {} match infra/", FILES.join(" and "));
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
/// contexts: `.` at the root (the committed files), a relative path such as `../..` from a
/// directory inside the repository (it survives moving the checkout), else the absolute path.
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

/// Both files, rendered from the contract; `root` is the repository as the files reach it.
fn render(contract: &Contract, root: &str) -> [(&'static str, String); 2] {
    [
        (
            FILES[0],
            emit(
                "The AMTP stack for Docker Compose.",
                &Node::map([
                    ("services", services(contract, root)),
                    (
                        "networks",
                        // The observability stack attaches to this exact name as an external
                        // network, so it is fixed here rather than derived from the project name.
                        Node::map([(
                            "amtp_net",
                            Node::map([("name", s("amtp_net")), ("driver", s("bridge"))]),
                        )]),
                    ),
                    (
                        "volumes",
                        Node::map([("amtp_pgdata", Node::map([("name", s("amtp_pgdata"))]))]),
                    ),
                    (
                        "secrets",
                        Node::map([(
                            "github_app_key",
                            Node::map([("file", s("./secrets/github_app_key.pem"))]),
                        )]),
                    ),
                ]),
            ),
        ),
        (
            FILES[1],
            emit(
                "Local development: the host ports Compose adds to docker-compose.yml, on \
                 127.0.0.1 only.",
                &Node::map([("services", override_ports())]),
            ),
        ),
    ]
}

/// The flags and environment of every service, in the seed's order.
fn services(contract: &Contract, root: &str) -> Node {
    let postgres_user = "${POSTGRES_USER:-amtp}";
    let postgres_password = "${POSTGRES_PASSWORD:-amtp}";
    let postgres_db = "${POSTGRES_DB:-amtp}";
    let valkey_env = [
        ("VALKEY_HOST", s("valkey")),
        ("VALKEY_PORT", s("6379")),
        ("VALKEY_PASSWORD", s("${VALKEY_PASSWORD}")),
    ];
    let on_net = || ("networks", Node::list(["amtp_net"]));
    let after = |service: &str, condition: &str| {
        (
            "depends_on",
            Node::map([(service, Node::map([("condition", s(condition))]))]),
        )
    };
    // The apps use the workspace's crates, so their images build from the repository root
    // (its .dockerignore keeps the context small) with the app's own Dockerfile.
    let build = |app: &str| {
        (
            "build",
            Node::map([
                ("context", s(root)),
                ("dockerfile", s(&format!("apps/{app}/Dockerfile"))),
            ]),
        )
    };

    Node::map([
        (
            "postgres",
            Node::map([
                ("image", s("postgres:15-alpine")),
                ("restart", s("unless-stopped")),
                (
                    "environment",
                    Node::map([
                        ("POSTGRES_DB", s(postgres_db)),
                        ("POSTGRES_USER", s(postgres_user)),
                        ("POSTGRES_PASSWORD", s(postgres_password)),
                        ("POSTGRES_INITDB_ARGS", s(&contract.initdb_args.join(" "))),
                    ]),
                ),
                ("command", Node::List(postgres_command(&contract.postgres))),
                (
                    "volumes",
                    Node::list(["amtp_pgdata:/var/lib/postgresql/data"]),
                ),
                (
                    "healthcheck",
                    healthcheck(Node::list([
                        "CMD-SHELL",
                        &format!("pg_isready -U {postgres_user} -d {postgres_db}"),
                    ])),
                ),
                on_net(),
            ]),
        ),
        (
            "pgbouncer",
            Node::map([
                ("image", s("edoburu/pgbouncer:1.22.1")),
                ("restart", s("unless-stopped")),
                ("environment", pgbouncer_environment(&contract.pgbouncer)),
                ("ports", Node::list(["${PGBOUNCER_PORT:-6432}:5432"])),
                after("postgres", "service_healthy"),
                on_net(),
            ]),
        ),
        (
            "flyway",
            Node::map([
                ("image", s("flyway/flyway:10-alpine")),
                // Opt-in: `docker compose --profile migrate run --rm flyway`.
                ("profiles", Node::list(["migrate"])),
                ("command", Node::list(["migrate"])),
                (
                    "environment",
                    Node::map(FLYWAY.iter().map(|(key, value)| (*key, s(value))).chain([
                        (
                            "FLYWAY_URL",
                            s(&format!("jdbc:postgresql://postgres:5432/{postgres_db}")),
                        ),
                        ("FLYWAY_USER", s(postgres_user)),
                        ("FLYWAY_PASSWORD", s(postgres_password)),
                    ])),
                ),
                ("volumes", Node::list(["./migrations/sql:/flyway/sql:ro"])),
                after("postgres", "service_healthy"),
                on_net(),
            ]),
        ),
        (
            "valkey",
            Node::map([
                ("image", s("valkey/valkey:8.0")),
                ("restart", s("unless-stopped")),
                ("command", Node::List(valkey_command(&contract.valkey))),
                on_net(),
            ]),
        ),
        (
            "healthcheck",
            Node::map([
                build("healthcheck"),
                ("restart", s("unless-stopped")),
                (
                    "environment",
                    Node::map(valkey_env.clone().into_iter().chain([("PORT", s("8080"))])),
                ),
                ("ports", Node::list(["8080:8080"])),
                after("valkey", "service_started"),
                on_net(),
            ]),
        ),
        (
            "github-mcp",
            Node::map([
                build("github-mcp"),
                ("restart", s("unless-stopped")),
                (
                    "environment",
                    Node::map(
                        [
                            ("GITHUB_APP_ID", s("${GITHUB_APP_ID}")),
                            (
                                "GITHUB_APP_INSTALLATION_ID",
                                s("${GITHUB_APP_INSTALLATION_ID}"),
                            ),
                            ("MCP_HTTP_PORT", s("8090")),
                        ]
                        .into_iter()
                        .chain(valkey_env)
                        .chain([
                            (
                                "OTEL_EXPORTER_OTLP_ENDPOINT",
                                s("http://otel-collector:4318"),
                            ),
                            ("OTEL_SERVICE_NAME", s("amtp-github-mcp")),
                        ]),
                    ),
                ),
                // Mounted at /run/secrets/github_app_key.
                ("secrets", Node::list(["github_app_key"])),
                ("ports", Node::list(["${MCP_HTTP_PORT:-8090}:8090"])),
                after("valkey", "service_started"),
                on_net(),
            ]),
        ),
        (
            "docs",
            Node::map([
                ("image", s("nginx:1.27-alpine")),
                ("restart", s("unless-stopped")),
                // The image's entrypoint fills the template's two placeholders from these
                // (envsubst replaces only variables that are set, so nginx's own `$uri` stays).
                (
                    "environment",
                    Node::map([
                        ("AMTP_DOCS_LISTEN", s("80")),
                        ("AMTP_DOCS_ROOT", s("/usr/share/nginx/html")),
                    ]),
                ),
                (
                    "volumes",
                    Node::list([
                        "./infra/nginx/default.conf:/etc/nginx/templates/default.conf.template:ro",
                        // Written by `cargo xtask docs`.
                        "./docs/site:/usr/share/nginx/html:ro",
                    ]),
                ),
                ("ports", Node::list(["${DOCS_HOST_PORT:-80}:80"])),
                (
                    "healthcheck",
                    healthcheck(Node::list([
                        "CMD",
                        "wget",
                        "-q",
                        "-O",
                        "-",
                        "http://127.0.0.1/healthz",
                    ])),
                ),
                on_net(),
            ]),
        ),
    ])
}

/// The seed's Flyway configuration (`flyway.*`), as the image's environment variables; no
/// `infra/` file holds it. The URL, user and password follow from the Postgres service.
const FLYWAY: [(&str, &str); 5] = [
    ("FLYWAY_SCHEMAS", "public"),
    ("FLYWAY_LOCATIONS", "filesystem:/flyway/sql"),
    ("FLYWAY_BASELINE_ON_MIGRATE", "true"),
    ("FLYWAY_VALIDATE_ON_MIGRATE", "true"),
    ("FLYWAY_CLEAN_DISABLED", "true"),
];

/// `postgres -c key=value ...`, one `-c` per setting of `postgresql.conf`.
fn postgres_command(settings: &[Setting]) -> Vec<Scalar> {
    std::iter::once(Scalar::from("postgres"))
        .chain(settings.iter().flat_map(|setting| {
            [
                Scalar::from("-c"),
                Scalar::from(format!("{}={}", setting.key, setting.value)),
            ]
        }))
        .collect()
}

/// `valkey-server --key value ...` for every directive of `valkey.conf`, with the password
/// where the seed puts it: after the persistence flags, before the memory flags.
fn valkey_command(settings: &[Setting]) -> Vec<Scalar> {
    let password = ["--requirepass", "${VALKEY_PASSWORD}"];
    let split = settings
        .iter()
        .position(|setting| setting.key.starts_with("maxmemory"))
        .unwrap_or(settings.len());
    let flags = |settings: &[Setting]| -> Vec<Scalar> {
        settings
            .iter()
            .flat_map(|setting| {
                [
                    Scalar::from(format!("--{}", setting.key)),
                    Scalar::from(setting.value.as_str()),
                ]
            })
            .collect()
    };
    std::iter::once(Scalar::from("valkey-server"))
        .chain(flags(&settings[..split]))
        .chain(password.map(Scalar::from))
        .chain(flags(&settings[split..]))
        .collect()
}

/// The edoburu/pgbouncer image's variables: each key of `pgbouncer.ini` in capitals (the
/// seed's table), and the server it pools.
fn pgbouncer_environment(settings: &[Setting]) -> Node {
    Node::map(
        [
            ("DB_HOST", s("postgres")),
            ("DB_PORT", s("5432")),
            ("DB_USER", s("${POSTGRES_USER:-amtp}")),
            ("DB_PASSWORD", s("${POSTGRES_PASSWORD:-amtp}")),
            ("LISTEN_PORT", s("5432")),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .chain(
            settings
                .iter()
                .map(|setting| (setting.key.to_uppercase(), s(&setting.value))),
        ),
    )
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

/// docker-compose.override.yml: the ports the seed marks "override", loopback only.
fn override_ports() -> Node {
    let ports = |binding: &str| Node::map([("ports", Node::list([binding]))]);
    Node::map([
        ("postgres", ports("127.0.0.1:${POSTGRES_PORT:-5432}:5432")),
        ("valkey", ports("127.0.0.1:${VALKEY_PORT:-6379}:6379")),
        (
            "healthcheck",
            ports("127.0.0.1:${HEALTHCHECK_PORT:-8083}:8080"),
        ),
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

    fn setting(key: &str, value: &str) -> Setting {
        Setting {
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    fn texts(scalars: &[Scalar]) -> Vec<&str> {
        scalars
            .iter()
            .map(|scalar| match scalar {
                Scalar::Str(text) => text.as_str(),
                Scalar::Int(_) => panic!("a flag is a string"),
            })
            .collect()
    }

    #[test]
    fn postgres_gets_one_dash_c_per_setting() {
        let command = postgres_command(&[
            setting("max_connections", "200"),
            setting("work_mem", "16MB"),
        ]);
        assert_eq!(
            texts(&command),
            [
                "postgres",
                "-c",
                "max_connections=200",
                "-c",
                "work_mem=16MB"
            ]
        );
    }

    #[test]
    fn valkey_password_sits_between_persistence_and_memory_flags() {
        let command = valkey_command(&[
            setting("save", ""),
            setting("appendonly", "no"),
            setting("maxmemory", "512mb"),
            setting("maxmemory-policy", "allkeys-lru"),
        ]);
        assert_eq!(
            texts(&command),
            [
                "valkey-server",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                "${VALKEY_PASSWORD}",
                "--maxmemory",
                "512mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ]
        );
    }

    #[test]
    fn pgbouncer_keys_become_the_images_capitalised_variables() {
        let Node::Map(env) = pgbouncer_environment(&[setting("pool_mode", "transaction")]) else {
            panic!("environment is a map")
        };
        assert_eq!(
            env.last(),
            Some(&("POOL_MODE".to_owned(), s("transaction")))
        );
        assert!(
            env.iter()
                .any(|(key, value)| key == "DB_HOST" && *value == s("postgres"))
        );
    }

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
    fn build_contexts_name_the_root_as_seen_from_the_output_directory() {
        let scratch =
            std::env::temp_dir().join(format!("amtp-compose-paths-{}", std::process::id()));
        let root = scratch.join("repo");
        let deep = root.join("out/deeper");
        let outside = scratch.join("elsewhere");
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
        fs::remove_dir_all(&scratch).unwrap();
    }

    #[test]
    fn both_files_render_from_the_repository_contract() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let [(main, main_text), (over, over_text)] = render(&Contract::read(root).unwrap(), ".");
        assert_eq!([main, over], FILES);
        assert!(main_text.contains("\"-c\"\n      - \"max_connections=200\""));
        assert!(over_text.contains("\"127.0.0.1:${POSTGRES_PORT:-5432}:5432\""));
    }
}
