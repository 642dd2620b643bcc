//! The Compose files `cargo xtask compose` writes: the committed ones match `infra/`
//! (`compose --check`), a hand edit is caught and named, and `docker-compose config` accepts
//! them and reads back every value the seed documents. The expected values below are the
//! seed's, written out, so a change of `infra/` that leaves the seed's contract fails here too.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value;

use crate::util::repo_root;

mod garage;

const FILES: [&str; 2] = ["docker-compose.yml", "docker-compose.override.yml"];
/// The observability project's file, read by Compose on its own.
const OBSERVABILITY: &str = "docker-compose.observability.yml";

/// Garage's configuration, rendered from `infra/garage/garage.toml` beside the Compose files.
const GARAGE_TOML: &str = "docker-compose.garage.toml";

/// Interpolated into the files by `docker-compose config`.
const VALKEY_PASSWORD: &str = "compose-test-secret";

/// A directory of its own for each call: the tests run in parallel, and one removing its
/// directory must not take another's (two `docker-compose config` runs shared `env`).
fn temp_dir(name: &str) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("amtp-compose-{name}-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn describe(command: &Command, output: &Output) -> String {
    format!("{command:?}\n{}", crate::util::describe(output))
}

fn xtask_compose(args: &[&str]) -> (Command, Output) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("compose").args(args);
    let output = command.output().expect("run xtask compose");
    (command, output)
}

#[test]
fn committed_compose_files_match_infra() {
    let (command, output) = xtask_compose(&["--check"]);
    assert!(
        output.status.success(),
        "the committed Compose files differ from infra/; run `cargo xtask compose`:\n{}",
        describe(&command, &output)
    );
}

#[test]
fn compose_check_names_a_hand_edit() {
    let dir = temp_dir("check");
    let out = dir.to_str().expect("temp dir is UTF-8");
    let (command, output) = xtask_compose(&["--out", out]);
    assert!(output.status.success(), "{}", describe(&command, &output));

    let main = dir.join(FILES[0]);
    let text = std::fs::read_to_string(&main).expect("read generated file");
    std::fs::write(
        &main,
        text.replace("max_connections=200", "max_connections=300"),
    )
    .expect("edit generated file");
    std::fs::remove_file(dir.join(FILES[1])).expect("remove override");
    let garage = dir.join(GARAGE_TOML);
    let text = std::fs::read_to_string(&garage).expect("read rendered garage.toml");
    std::fs::write(&garage, text.replace("0.0.0.0:3900", "0.0.0.0:3999"))
        .expect("edit rendered garage.toml");

    let (command, output) = xtask_compose(&["--check", "--out", out]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    assert!(
        !output.status.success(),
        "--check accepted an edit:\n{}",
        describe(&command, &output)
    );
    for expected in [
        "on disk \"      - \\\"max_connections=300\\\"\"",
        "expected \"      - \\\"max_connections=200\\\"\"",
        "docker-compose.override.yml: missing",
        "on disk \"api_bind_addr = \\\"0.0.0.0:3999\\\"\"",
    ] {
        assert!(
            stderr.contains(expected),
            "--check does not name `{expected}`:\n{}",
            describe(&command, &output)
        );
    }
}

/// `docker-compose config` on the committed files, with only the variables set here.
fn compose_config() -> Value {
    compose_config_in(&repo_root())
}

/// `docker-compose config` on the two files of the main project in `dir`, run there.
fn compose_config_in(dir: &Path) -> Value {
    compose_config_of(dir, &FILES)
}

/// `docker-compose config` on `files` in `dir`, run there.
fn compose_config_of(dir: &Path, files: &[&str]) -> Value {
    // A directory per call: the tests run in parallel, and each removes its own.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let env_file = temp_dir(&format!("env-{call}")).join("empty.env");
    std::fs::write(&env_file, "").expect("write empty env file");
    let mut command = Command::new("docker-compose");
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("VALKEY_PASSWORD", VALKEY_PASSWORD)
        .env("GITHUB_APP_ID", "1")
        .env("GITHUB_APP_INSTALLATION_ID", "2")
        .arg("--env-file")
        .arg(&env_file)
        // Compose v2 prints only the services of active profiles.
        .args(["--profile", "migrate"])
        .args(files.iter().flat_map(|file| ["-f", file]))
        .arg("config");
    let output = match command.output() {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "docker-compose not found; install it with `apt-get install docker-compose` \
             (Debian's Compose v1.29; no Docker daemon is needed for `config`)"
        ),
        Err(err) => panic!("cannot run docker-compose: {err}"),
    };
    let _ = std::fs::remove_dir_all(env_file.parent().expect("env file has a dir"));
    assert!(
        output.status.success(),
        "docker-compose rejects the Compose files:\n{}",
        describe(&command, &output)
    );
    serde_yaml::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "docker-compose config printed no YAML ({err}):\n{}",
            describe(&command, &output)
        )
    })
}

/// The value at `path` (a number indexes a list), or a panic naming the path.
fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |value, key| {
        match (value, key.parse::<usize>()) {
            (Value::Sequence(items), Ok(index)) => items.get(index),
            _ => value.get(*key),
        }
        .unwrap_or_else(|| panic!("{} is missing", path.join(".")))
    })
}

/// A scalar as text: Compose prints some strings unquoted, some numbers as numbers.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => panic!("{other:?} is not a scalar"),
    }
}

fn texts(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{value:?} is not a list"))
        .iter()
        .map(text)
        .collect()
}

fn assert_env(config: &Value, service: &str, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(
            text(at(config, &["services", service, "environment", key])),
            *value,
            "{service}: {key}"
        );
    }
}

// Compose v1 (`docker-compose` 1.29, as Debian and Ubuntu package it) prints ports and
// volumes in short syntax where it can; Compose v2 always prints the long syntax. The two
// readers below accept both.

/// Each host port of a service as `IP:HOST:CONTAINER`, `*` for every interface.
fn host_ports(config: &Value, service: &str) -> Vec<String> {
    at(config, &["services", service, "ports"])
        .as_sequence()
        .expect("ports is a list")
        .iter()
        .map(|port| match port {
            Value::String(short) => short.trim_end_matches("/tcp").to_owned(),
            long => format!(
                "{}:{}:{}",
                long.get("host_ip").map_or("*".to_owned(), text),
                text(at(long, &["published"])),
                text(at(long, &["target"]))
            ),
        })
        .collect()
}

/// Each volume of a service as `SOURCE:TARGET`, with `:ro` when read-only.
fn volumes(config: &Value, service: &str) -> Vec<String> {
    at(config, &["services", service, "volumes"])
        .as_sequence()
        .expect("volumes is a list")
        .iter()
        .map(|volume| match volume {
            Value::String(short) => short.trim_end_matches(":rw").to_owned(),
            long => format!(
                "{}:{}{}",
                text(at(long, &["source"])),
                text(at(long, &["target"])),
                if long.get("read_only") == Some(&Value::Bool(true)) {
                    ":ro"
                } else {
                    ""
                }
            ),
        })
        .collect()
}

#[test]
fn docker_compose_reads_every_documented_value() {
    let config = compose_config();
    let root = repo_root();
    let root = root.to_str().expect("repository path is UTF-8");

    let services: Vec<&str> = at(&config, &["services"])
        .as_mapping()
        .expect("services is a map")
        .keys()
        .map(|key| key.as_str().expect("service names are strings"))
        .collect();
    let mut sorted = services.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "docs",
            "flyway",
            "garage",
            "github-mcp",
            "healthcheck",
            "pgbouncer",
            "postgres",
            "valkey"
        ]
    );
    for (service, image) in [
        ("postgres", "postgres:15-alpine"),
        ("pgbouncer", "edoburu/pgbouncer:1.22.1"),
        ("flyway", "flyway/flyway:10-alpine"),
        ("valkey", "valkey/valkey:8.0"),
        ("docs", "nginx:1.27-alpine"),
        ("garage", "dxflrs/garage:v2.5.0"),
    ] {
        assert_eq!(text(at(&config, &["services", service, "image"])), image);
    }
    for app in ["healthcheck", "github-mcp"] {
        assert_eq!(
            text(at(&config, &["services", app, "build", "context"])),
            root
        );
        assert_eq!(
            text(at(&config, &["services", app, "build", "dockerfile"])),
            format!("apps/{app}/Dockerfile")
        );
    }
    for service in &services {
        assert!(
            at(&config, &["services", service, "networks"])
                .get("amtp_net")
                .is_some(),
            "{service} is not on amtp_net"
        );
        if *service != "flyway" {
            assert_eq!(
                text(at(&config, &["services", service, "restart"])),
                "unless-stopped"
            );
        }
    }

    // PostgreSQL 15.
    assert_eq!(
        texts(at(&config, &["services", "postgres", "command"])),
        [
            "postgres",
            "-c",
            "password_encryption=scram-sha-256",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "work_mem=16MB",
            "-c",
            "log_min_duration_statement=500",
        ]
    );
    assert_env(
        &config,
        "postgres",
        &[
            ("POSTGRES_DB", "amtp"),
            ("POSTGRES_USER", "amtp"),
            ("POSTGRES_PASSWORD", "amtp"),
            (
                "POSTGRES_INITDB_ARGS",
                "--auth-host=scram-sha-256 --auth-local=scram-sha-256",
            ),
        ],
    );
    assert_eq!(
        volumes(&config, "postgres"),
        ["amtp_pgdata:/var/lib/postgresql/data"]
    );
    let healthcheck = at(&config, &["services", "postgres", "healthcheck"]);
    assert_eq!(
        texts(at(healthcheck, &["test"])),
        ["CMD-SHELL", "pg_isready -U amtp -d amtp"]
    );
    assert_eq!(text(at(healthcheck, &["interval"])), "5s");
    assert_eq!(text(at(healthcheck, &["timeout"])), "3s");
    assert_eq!(text(at(healthcheck, &["retries"])), "20");

    // PgBouncer 1.22: the seed's parameter table, the image's variable names.
    assert_env(
        &config,
        "pgbouncer",
        &[
            ("POOL_MODE", "transaction"),
            ("MAX_CLIENT_CONN", "500"),
            ("DEFAULT_POOL_SIZE", "25"),
            ("RESERVE_POOL_SIZE", "5"),
            ("RESERVE_POOL_TIMEOUT", "3"),
            ("AUTH_TYPE", "scram-sha-256"),
            ("MAX_PREPARED_STATEMENTS", "100"),
            ("SERVER_IDLE_TIMEOUT", "240"),
            ("DB_HOST", "postgres"),
        ],
    );
    assert_eq!(
        text(at(
            &config,
            &[
                "services",
                "pgbouncer",
                "depends_on",
                "postgres",
                "condition"
            ]
        )),
        "service_healthy"
    );

    // Flyway 10, opt-in.
    assert_eq!(
        texts(at(&config, &["services", "flyway", "profiles"])),
        ["migrate"]
    );
    assert_eq!(
        volumes(&config, "flyway"),
        [format!("{root}/migrations/sql:/flyway/sql:ro")]
    );
    assert_env(
        &config,
        "flyway",
        &[
            ("FLYWAY_URL", "jdbc:postgresql://postgres:5432/amtp"),
            ("FLYWAY_USER", "amtp"),
            ("FLYWAY_SCHEMAS", "public"),
            ("FLYWAY_LOCATIONS", "filesystem:/flyway/sql"),
            ("FLYWAY_BASELINE_ON_MIGRATE", "true"),
            ("FLYWAY_VALIDATE_ON_MIGRATE", "true"),
            ("FLYWAY_CLEAN_DISABLED", "true"),
        ],
    );

    // Valkey 8.0: the required flags, the password interpolated.
    assert_eq!(
        texts(at(&config, &["services", "valkey", "command"])),
        [
            "valkey-server",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            VALKEY_PASSWORD,
            "--maxmemory",
            "512mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ]
    );

    // The apps.
    let valkey_env = [
        ("VALKEY_HOST", "valkey"),
        ("VALKEY_PORT", "6379"),
        ("VALKEY_PASSWORD", VALKEY_PASSWORD),
    ];
    assert_env(&config, "healthcheck", &valkey_env);
    assert_env(&config, "healthcheck", &[("PORT", "8080")]);
    assert_env(&config, "github-mcp", &valkey_env);
    assert_env(
        &config,
        "github-mcp",
        &[
            ("GITHUB_APP_ID", "1"),
            ("GITHUB_APP_INSTALLATION_ID", "2"),
            ("MCP_HTTP_PORT", "8090"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318"),
            ("OTEL_SERVICE_NAME", "amtp-github-mcp"),
        ],
    );
    assert_eq!(
        text(at(
            &config,
            &["services", "github-mcp", "secrets", "0", "source"]
        )),
        "github_app_key"
    );
    assert_eq!(
        text(at(&config, &["secrets", "github_app_key", "file"])),
        format!("{root}/secrets/github_app_key.pem")
    );

    // The docs service: the contract's server block as the image's template.
    assert_eq!(
        volumes(&config, "docs"),
        [
            format!(
                "{root}/infra/nginx/default.conf:/etc/nginx/templates/default.conf.template:ro"
            ),
            format!("{root}/docs/site:/usr/share/nginx/html:ro"),
        ]
    );
    assert!(
        texts(at(&config, &["services", "docs", "healthcheck", "test"]))
            .contains(&"http://127.0.0.1/healthz".to_owned())
    );

    // Host ports: the seed's service map; loopback for those the override adds.
    for (service, expected) in [
        ("postgres", vec!["127.0.0.1:5432:5432"]),
        ("pgbouncer", vec!["*:6432:5432"]),
        ("valkey", vec!["127.0.0.1:6379:6379"]),
        ("healthcheck", vec!["*:8080:8080", "127.0.0.1:8083:8080"]),
        ("github-mcp", vec!["*:8090:8090"]),
        ("docs", vec!["*:80:80"]),
        ("garage", vec!["127.0.0.1:3900:3900", "127.0.0.1:3903:3903"]),
    ] {
        assert_eq!(host_ports(&config, service), expected, "{service} ports");
    }

    assert_eq!(
        text(at(&config, &["networks", "amtp_net", "name"])),
        "amtp_net"
    );
    assert_eq!(
        text(at(&config, &["networks", "amtp_net", "driver"])),
        "bridge"
    );
    assert_eq!(
        text(at(&config, &["volumes", "amtp_pgdata", "name"])),
        "amtp_pgdata"
    );
}

#[test]
fn the_override_binds_host_ports_to_loopback_only() {
    let path = repo_root().join(FILES[1]);
    let text = std::fs::read_to_string(&path).expect("read the override");
    let parsed: Value = serde_yaml::from_str(&text).expect("the override is YAML");
    let services = at(&parsed, &["services"])
        .as_mapping()
        .expect("services is a map");
    assert!(!services.is_empty());
    for (name, service) in services {
        for port in texts(at(service, &["ports"])) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name:?}: host port {port} is not loopback-only"
            );
        }
    }
}

#[test]
fn the_observability_project_s_collector_joins_amtp_net_on_loopback_ports() {
    let config = compose_config_of(&repo_root(), &[OBSERVABILITY]);
    assert_eq!(
        text(at(&config, &["services", "otel-collector", "image"])),
        "streamfold/rotel:v0.0.1-alpha10"
    );
    assert_eq!(
        host_ports(&config, "otel-collector"),
        ["127.0.0.1:4318:4318", "127.0.0.1:4317:4317"]
    );
    assert_eq!(
        at(&config, &["networks", "amtp_net", "external"]),
        &Value::Bool(true)
    );
    assert_eq!(
        text(at(&config, &["networks", "amtp_net", "name"])),
        "amtp_net"
    );
    // The main project's github-mcp names it by its service name.
    assert_env(
        &compose_config(),
        "github-mcp",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318")],
    );
}

/// The files written elsewhere (`compose --out`) still build the apps from this repository:
/// from a directory outside it by its absolute path, from one inside it by a relative one.
#[test]
fn files_written_elsewhere_build_from_the_repository() {
    let root = repo_root().canonicalize().expect("resolve the repository");
    let outside = temp_dir("out");
    let inside = root
        .join("target")
        .join(format!("amtp-compose-out-{}", std::process::id()));
    let deeper = inside.join("deeper");
    for (dir, context) in [
        (&outside, root.to_str().expect("repository path is UTF-8")),
        (&deeper, "../../.."),
    ] {
        let out = dir.to_str().expect("temp dir is UTF-8");
        let (command, output) = xtask_compose(&["--out", out]);
        assert!(output.status.success(), "{}", describe(&command, &output));
        let (command, output) = xtask_compose(&["--check", "--out", out]);
        assert!(output.status.success(), "{}", describe(&command, &output));
        let written: Value = serde_yaml::from_str(
            &std::fs::read_to_string(dir.join(FILES[0])).expect("read the written file"),
        )
        .expect("the written file is YAML");
        let config = compose_config_in(dir);
        for app in ["healthcheck", "github-mcp"] {
            assert_eq!(
                text(at(&written, &["services", app, "build", "context"])),
                context,
                "{app} from {out}"
            );
            // Compose resolves the context from the files' directory: this repository.
            let resolved = PathBuf::from(text(at(&config, &["services", app, "build", "context"])));
            assert_eq!(
                resolved.canonicalize().expect("the build context exists"),
                root,
                "{app} from {out}"
            );
            let dockerfile = text(at(&config, &["services", app, "build", "dockerfile"]));
            assert!(
                resolved.join(&dockerfile).is_file(),
                "{app} from {out}: no {dockerfile} in {}",
                resolved.display()
            );
        }
    }
    std::fs::remove_dir_all(&outside).expect("remove temp dir");
    std::fs::remove_dir_all(&inside).expect("remove the dir inside the repository");
}
