//! The stack's configuration: `.env` at the repo root (or `AMTP_ENV_FILE`), then the process environment (which
//! wins), then the defaults of the Compose stack. Passwords left unset are generated at the
//! first `up` and kept in `<state>/secrets.env` (mode 0600).

pub(crate) mod auto_ports;
mod secrets;
pub(crate) mod url;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub(crate) use secrets::write_private;
use secrets::{SECRETS_FILE, secrets_for};

#[derive(Clone, Debug)]
pub(crate) struct StackConfig {
    pub(crate) repo_root: PathBuf,
    pub(crate) state_dir: PathBuf,
    /// Short directory for Unix sockets: a state dir can be deeper than `sun_path` allows.
    pub(crate) runtime_dir: PathBuf,
    pub(crate) ports: Ports,
    pub(crate) postgres_user: String,
    pub(crate) postgres_db: String,
    pub(crate) postgres_password: String,
    pub(crate) valkey_password: String,
    pub(crate) github: GithubApp,
    /// The size at which a log file is rotated (`AMTP_LOG_MAX_BYTES`).
    pub(crate) log_max_bytes: u64,
    /// Where the apps send OTLP when the user names it (`OTEL_EXPORTER_OTLP_ENDPOINT`): their
    /// own collector or a vendor's, instead of the stack's.
    pub(crate) otlp_endpoint: Option<String>,
    /// An upstream OTLP/HTTP endpoint the stack's collector forwards everything to
    /// (`AMTP_OTLP_FORWARD`).
    pub(crate) otlp_forward: Option<String>,
}

/// The port a service listens on: the variable that sets it and its default (the Compose
/// host port). Each row of the unit table names its own; this file knows none of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PortVar {
    pub(crate) var: &'static str,
    pub(crate) default: u16,
}

/// The ports of this configuration, by variable, and where those of `AMTP_PORTS=auto` came
/// from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ports {
    by_var: BTreeMap<&'static str, u16>,
    auto: Option<(Vec<&'static str>, auto_ports::Origin)>,
}

/// Which GitHub the MCP server talks to.
#[derive(Clone, Debug)]
pub(crate) enum GithubApp {
    /// The user's GitHub App (`GITHUB_APP_ID` and `GITHUB_APP_INSTALLATION_ID` set).
    Real {
        app_id: String,
        installation_id: String,
        key_file: PathBuf,
        api_url: String,
    },
    /// No credentials: the workspace's GitHub stand-in with a generated App key.
    StandIn,
}

/// A file that marks a directory as a state dir of this tool, written by `up` before anything
/// starts: it tells a stack that was started from one never started (whatever the
/// configuration says now), and `down --volumes` deletes only directories that carry it.
pub(crate) const STATE_MARKER: &str = ".amtp-state";

/// Whether `up` ever ran with this state dir.
pub(crate) fn was_started(state_dir: &Path) -> bool {
    state_dir.join(STATE_MARKER).exists()
}

/// A secret that is neither set nor generated yet: `up` never ran with this state dir.
#[derive(Debug)]
pub(crate) struct NeverStarted {
    key: &'static str,
}

impl std::fmt::Display for NeverStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not set and the stack was never started; run `cargo xtask up` first",
            self.key
        )
    }
}

impl std::error::Error for NeverStarted {}

/// What to do about a generated secret that is missing from the state dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Secrets {
    /// Create it (only `up` creates state).
    Generate,
    /// Fail with [`NeverStarted`].
    MustExist,
}

/// Settings that win over `.env` and the environment: the isolated stack of `cargo xtask test`
/// passes its own state dir and ports this way, to its supervisor too, instead of changing our
/// own environment. An empty value unsets a key.
pub(crate) type Overrides = [(String, String)];

impl StackConfig {
    /// Reads `.env`, the environment, then `overrides`, and the state dir's secrets; `ports`
    /// are the variables of the services' ports.
    pub(crate) fn load_with(
        repo_root: &Path,
        ports: &[PortVar],
        overrides: &Overrides,
        secrets: Secrets,
    ) -> anyhow::Result<StackConfig> {
        let env = std::env::vars().chain(overrides.iter().cloned());
        Self::load_from(repo_root, ports, env, secrets)
    }

    /// Reads `.env` (or the `AMTP_ENV_FILE` that `env` names) and then `env`, which wins: the
    /// supervisor reads a second `up`'s configuration from that `up`'s environment.
    pub(crate) fn load_from(
        repo_root: &Path,
        ports: &[PortVar],
        env: impl Iterator<Item = (String, String)>,
        secrets: Secrets,
    ) -> anyhow::Result<StackConfig> {
        Self::from_vars(repo_root, read_vars(repo_root, env)?, ports, secrets)
    }

    /// The state dir that `.env` and the environment name, and nothing else of them: where a
    /// stack runs is found even when the rest of its configuration cannot be read now.
    pub(crate) fn state_dir_from(
        repo_root: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<PathBuf> {
        Ok(state_dir_in(repo_root, &read_vars(repo_root, env)?))
    }

    /// Where a started stack lives, for a command that only reaches its supervisor (`down`,
    /// `stop`, `start`, `restart`) or reads its files (`logs`) when the configuration cannot be
    /// read now: the supervisor keeps the configuration it was started with. No setting is read: the ports are the
    /// defaults and the passwords and names empty, so it logs in to nothing.
    pub(crate) fn located(repo_root: &Path, state_dir: PathBuf) -> StackConfig {
        StackConfig {
            repo_root: repo_root.to_owned(),
            runtime_dir: runtime_dir_for(&state_dir),
            state_dir,
            ports: Ports::default(),
            postgres_user: String::new(),
            postgres_db: String::new(),
            postgres_password: String::new(),
            valkey_password: String::new(),
            github: GithubApp::StandIn,
            log_max_bytes: crate::os::logfile::DEFAULT_MAX_BYTES,
            otlp_endpoint: None,
            otlp_forward: None,
        }
    }

    /// For the commands that use a stack's settings without starting it (`status`, `wait`,
    /// `psql`, …): `None` when the stack was never started, which is simply a stack that is
    /// not running. `down` and the supervisor's commands use [`crate::repo::Repo::started_stack`].
    pub(crate) fn load_existing(
        repo_root: &Path,
        ports: &[PortVar],
    ) -> anyhow::Result<Option<StackConfig>> {
        match Self::load_with(repo_root, ports, &[], Secrets::MustExist) {
            Ok(cfg) => Ok(Some(cfg)),
            Err(err) if err.is::<NeverStarted>() => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub(crate) fn from_vars(
        repo_root: &Path,
        mut vars: BTreeMap<String, String>,
        port_vars: &[PortVar],
        secrets: Secrets,
    ) -> anyhow::Result<StackConfig> {
        let state_dir = state_dir_in(repo_root, &vars);
        // Read before the secrets: `up` writes its generated secrets before the marker, so a
        // marker seen first means the secrets file was complete when read (a command racing
        // a first `up` would otherwise find the marker but not yet the secrets).
        let started = was_started(&state_dir);
        let stored = secrets_for(&state_dir, &vars, secrets)?;
        for (key, value) in stored.values {
            let set = vars.get(&key).is_some_and(|v| !v.is_empty());
            if !set {
                vars.insert(key, value);
            }
        }
        let get = |key: &str, default: &str| -> String {
            vars.get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        let port = |port: &PortVar| -> anyhow::Result<Option<(&'static str, u16)>> {
            let key = port.var;
            match vars.get(key).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(value) => match value.parse::<u16>() {
                    Ok(p) if p > 0 => Ok(Some((key, p))),
                    _ => bail!("{key}={value:?} is not a port number; set it to 1-65535"),
                },
            }
        };
        let mut by_var = BTreeMap::new();
        let mut unset = Vec::new();
        for var in port_vars {
            match port(var)? {
                Some((key, number)) => {
                    by_var.insert(key, number);
                }
                None => unset.push(*var),
            }
        }
        let auto = match vars.get(auto_ports::VAR).map(String::as_str) {
            None | Some("") => false,
            Some("auto") => true,
            Some(other) => bail!(
                "{}={other:?} is not a known setting; set it to `auto` (each port from this \
                 checkout's own free block) or leave it unset (the defaults)",
                auto_ports::VAR
            ),
        };
        let mut ports = Ports { by_var, auto: None };
        if auto && !unset.is_empty() {
            let (found, origin) = auto_ports::resolve(&state_dir, port_vars, &unset)?;
            ports.auto = Some((found.iter().map(|(var, _)| *var).collect(), origin));
            ports.by_var.extend(found);
        } else {
            ports
                .by_var
                .extend(unset.iter().map(|port| (port.var, port.default)));
        }
        let password = |key: &'static str| -> anyhow::Result<String> {
            let value = vars.get(key).filter(|v| !v.is_empty()).cloned();
            // A damaged secrets file: the stack ran, so `down` and `reset` still find it (no
            // login works without the password; `up` says what is wrong with the file).
            let value = value.or_else(|| stored.damaged.then(String::new));
            match value {
                Some(value) => Ok(value),
                // Set at the start (in a `.env` since deleted, or the environment), so never
                // generated: the stack was started, and only the user knows the password.
                None if started => bail!(
                    "{key} is not set, and the stack in {} was started with it set (in `.env` \
                     or the environment; it was not generated); set it again to the password \
                     the stack was started with, or restore that `.env` (`cargo xtask down` \
                     stops the stack without it)",
                    state_dir.display()
                ),
                None => Err(NeverStarted { key }.into()),
            }
        };
        let github = match (
            vars.get("GITHUB_APP_ID"),
            vars.get("GITHUB_APP_INSTALLATION_ID"),
        ) {
            (Some(app_id), Some(installation_id)) if !app_id.is_empty() => GithubApp::Real {
                app_id: app_id.clone(),
                installation_id: installation_id.clone(),
                key_file: absolute(
                    repo_root,
                    Path::new(&get("GITHUB_APP_KEY_FILE", "secrets/github_app_key.pem")),
                ),
                api_url: get("GITHUB_API_URL", "https://api.github.com"),
            },
            _ => GithubApp::StandIn,
        };
        let log_max_bytes = match vars.get(crate::os::logfile::MAX_BYTES_VAR) {
            Some(value) if !value.is_empty() => match value.parse::<u64>() {
                Ok(bytes) if bytes > 0 => bytes,
                _ => bail!(
                    "{}={value:?} is not a size in bytes; set it to a whole number such as \
                     10485760 (10 MiB, the default)",
                    crate::os::logfile::MAX_BYTES_VAR
                ),
            },
            _ => crate::os::logfile::DEFAULT_MAX_BYTES,
        };
        let postgres_password = password("POSTGRES_PASSWORD")?;
        let valkey_password = password("VALKEY_PASSWORD")?;
        Ok(StackConfig {
            repo_root: repo_root.to_owned(),
            runtime_dir: runtime_dir_for(&state_dir),
            state_dir,
            ports,
            postgres_user: get("POSTGRES_USER", "amtp"),
            postgres_db: get("POSTGRES_DB", "amtp"),
            postgres_password,
            valkey_password,
            github,
            log_max_bytes,
            otlp_endpoint: vars
                .get("OTEL_EXPORTER_OTLP_ENDPOINT")
                .filter(|v| !v.is_empty())
                .cloned(),
            otlp_forward: vars
                .get(crate::stack::otel_collector::FORWARD_VAR)
                .filter(|v| !v.is_empty())
                .cloned(),
        })
    }

    /// A hash of every setting but the ports (users, passwords, paths, GitHub), any of which a
    /// service's configuration may carry; nothing of it is ever shown.
    pub(crate) fn settings_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let without_ports = StackConfig {
            ports: Ports::default(),
            ..self.clone()
        };
        let mut hasher = std::hash::DefaultHasher::new();
        format!("{without_ports:?}").hash(&mut hasher);
        hasher.finish()
    }

    /// The port `port` is set to; its default when the unit table did not name it at load.
    pub(crate) fn port(&self, port: PortVar) -> u16 {
        self.ports
            .by_var
            .get(port.var)
            .copied()
            .unwrap_or(port.default)
    }

    /// Every port variable of this configuration with its port.
    pub(crate) fn ports(&self) -> impl Iterator<Item = (&'static str, u16)> + '_ {
        self.ports.by_var.iter().map(|(var, port)| (*var, *port))
    }

    /// With `AMTP_PORTS=auto`: the variables whose ports it chose, and from where.
    pub(crate) fn auto_ports(&self) -> Option<(&[&'static str], &auto_ports::Origin)> {
        self.ports
            .auto
            .as_ref()
            .map(|(vars, origin)| (vars.as_slice(), origin))
    }

    /// This configuration with `port` set to `number` (what a running stack actually uses).
    pub(crate) fn with_port(mut self, port: PortVar, number: u16) -> StackConfig {
        self.ports.by_var.insert(port.var, number);
        self
    }

    /// The passwords generated at the first `up` (mode 0600).
    pub(crate) fn secrets_file(&self) -> PathBuf {
        self.state_dir.join(SECRETS_FILE)
    }

    pub(crate) fn log_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    pub(crate) fn log_file(&self, service: &str) -> PathBuf {
        self.log_dir().join(format!("{service}.log"))
    }

    /// A service's own directory inside the state dir.
    pub(crate) fn service_dir(&self, service: &str) -> PathBuf {
        self.state_dir.join(service)
    }
}

/// `.env` (or the `AMTP_ENV_FILE` that `env` names), then `env`, which wins.
fn read_vars(
    repo_root: &Path,
    env: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let env: BTreeMap<String, String> = env.collect();
    // Like Compose's `--env-file`: another file instead of the repository's `.env`.
    let env_file = env
        .get("AMTP_ENV_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root.join(".env"));
    let mut vars = read_dotenv(&env_file)?;
    vars.extend(env);
    Ok(vars)
}

/// `AMTP_STATE_DIR`, relative to the repository, or `.amtp/` there.
fn state_dir_in(repo_root: &Path, vars: &BTreeMap<String, String>) -> PathBuf {
    match vars.get("AMTP_STATE_DIR") {
        Some(dir) if !dir.is_empty() => absolute(repo_root, Path::new(dir)),
        _ => repo_root.join(".amtp"),
    }
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// Reads a Compose-style `.env`; a missing file is fine, a malformed one is an error that
/// names the file and the line (not its text, which may hold a password).
fn read_dotenv(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let iter =
        dotenvy::from_path_iter(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut vars = BTreeMap::new();
    for item in iter {
        let (key, value) = item.map_err(|err| match err {
            dotenvy::Error::LineParse(..) => {
                let text = fs::read_to_string(path).unwrap_or_default();
                let at = first_malformed_line(&text)
                    .map(|n| format!(" at line {n}"))
                    .unwrap_or_default();
                anyhow::anyhow!(
                    "{} is malformed{at}; fix that line (KEY=value, one per line)",
                    path.display()
                )
            }
            err => anyhow::anyhow!("cannot read {}: {err}", path.display()),
        })?;
        vars.insert(key, value);
    }
    Ok(vars)
}

/// The 1-based number of the line where the first malformed entry of `text` begins: the one
/// after the most lines that read without an error. dotenvy's error carries only text (of
/// the line, or of its value alone), which may hold a password and may match another line;
/// and a quoted value may span lines, so a line on its own can look malformed.
fn first_malformed_line(text: &str) -> Option<usize> {
    let mut ends: Vec<usize> = text.match_indices('\n').map(|(at, _)| at + 1).collect();
    if !text.ends_with('\n') && !text.is_empty() {
        ends.push(text.len());
    }
    let reads =
        |end: usize| dotenvy::from_read_iter(&text.as_bytes()[..end]).all(|item| item.is_ok());
    let good = (1..=ends.len())
        .rev()
        .find(|&lines| reads(ends[lines - 1]))
        .unwrap_or(0);
    (good < ends.len()).then_some(good + 1)
}

/// `/tmp/amtp-<hash of the state dir>`: short enough for any socket name, distinct per stack.
fn runtime_dir_for(state_dir: &Path) -> PathBuf {
    PathBuf::from(format!("/tmp/amtp-{:08x}", path_hash(state_dir) as u32))
}

/// FNV-1a of a path's bytes: stable across runs and Rust versions, unlike `DefaultHasher`.
fn path_hash(path: &Path) -> u64 {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A configuration of this checkout with its state in `state_dir` (passwords `p`, `v`).
    pub(crate) fn config_in(state_dir: &Path) -> StackConfig {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the repository");
        StackConfig::from_vars(
            repo,
            vars(&[
                ("AMTP_STATE_DIR", state_dir.to_str().expect("a UTF-8 path")),
                ("POSTGRES_PASSWORD", "p"),
                ("VALKEY_PASSWORD", "v"),
            ]),
            &crate::stack::port_vars(),
            Secrets::MustExist,
        )
        .expect("a valid configuration")
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_compose_stack() {
        let cfg = StackConfig::from_vars(
            Path::new("/repo"),
            vars(&[("POSTGRES_PASSWORD", "p"), ("VALKEY_PASSWORD", "v")]),
            &crate::stack::port_vars(),
            Secrets::MustExist,
        )
        .unwrap();
        assert_eq!(cfg.state_dir, Path::new("/repo/.amtp"));
        assert_eq!(cfg.postgres_user, "amtp");
        assert_eq!(cfg.postgres_db, "amtp");
        let port = |name| {
            let unit = crate::stack::unit(name).expect("a unit of the table");
            cfg.port(unit.port().expect("a daemon"))
        };
        assert_eq!(port("postgres"), 5432);
        assert_eq!(port("pgbouncer"), 6432);
        assert_eq!(port("valkey"), 6379);
        assert_eq!(port("healthcheck"), 8083);
        assert_eq!(port("github-mcp"), 8090);
        assert_eq!(port("nginx"), 8088);
        assert_eq!(port("github-standin"), 8091);
        assert!(matches!(cfg.github, GithubApp::StandIn));
        assert!(cfg.runtime_dir.as_os_str().len() < 20);
    }

    #[test]
    fn a_bad_port_names_the_variable() {
        let err = StackConfig::from_vars(
            Path::new("/repo"),
            vars(&[
                ("POSTGRES_PASSWORD", "p"),
                ("VALKEY_PASSWORD", "v"),
                ("VALKEY_PORT", "x"),
            ]),
            &crate::stack::port_vars(),
            Secrets::MustExist,
        )
        .unwrap_err();
        assert!(err.to_string().contains("VALKEY_PORT=\"x\""), "{err}");
    }

    #[test]
    fn auto_ports_come_from_the_state_dir_s_block_and_a_set_variable_wins() {
        let scratch = tempfile::tempdir().unwrap();
        let state = scratch.path().join("state");
        let with = |extra: &[(&str, &str)]| {
            let mut env = vars(&[
                ("AMTP_STATE_DIR", state.to_str().unwrap()),
                ("POSTGRES_PASSWORD", "p"),
                ("VALKEY_PASSWORD", "v"),
            ]);
            env.extend(vars(extra));
            StackConfig::from_vars(
                scratch.path(),
                env,
                &crate::stack::port_vars(),
                Secrets::MustExist,
            )
        };
        let auto = with(&[("AMTP_PORTS", "auto"), ("VALKEY_PORT", "16379")]).unwrap();
        let (chosen, origin) = auto.auto_ports().expect("auto ports");
        let auto_ports::Origin::Block { start, .. } = origin.clone() else {
            panic!("not from a block: {origin:?}");
        };
        assert!(!chosen.contains(&"VALKEY_PORT"), "{chosen:?}");
        for (var, port) in auto.ports() {
            if var == "VALKEY_PORT" {
                assert_eq!(port, 16379);
            } else {
                assert!(
                    (start..start + auto_ports::BLOCK_SIZE).contains(&port),
                    "{var}={port} is outside {start}"
                );
            }
        }
        assert_eq!(
            auto.settings_hash(),
            with(&[("VALKEY_PORT", "16379")]).unwrap().settings_hash(),
            "AMTP_PORTS=auto is no setting of a service"
        );
        let plain = with(&[]).unwrap();
        assert!(plain.auto_ports().is_none());
        assert_eq!(plain.port(crate::stack::postgres::PORT), 5432);
        let err = with(&[("AMTP_PORTS", "yes")]).unwrap_err().to_string();
        assert!(
            err.contains("AMTP_PORTS=\"yes\"") && err.contains("`auto`"),
            "{err}"
        );
    }

    #[test]
    fn the_log_size_limit_defaults_to_10_mib_and_a_bad_one_names_the_variable() {
        let with = |size: &str| {
            StackConfig::from_vars(
                Path::new("/repo"),
                vars(&[
                    ("POSTGRES_PASSWORD", "p"),
                    ("VALKEY_PASSWORD", "v"),
                    ("AMTP_LOG_MAX_BYTES", size),
                ]),
                &[],
                Secrets::MustExist,
            )
        };
        assert_eq!(with("").unwrap().log_max_bytes, 10 * 1024 * 1024);
        assert_eq!(with("4096").unwrap().log_max_bytes, 4096);
        for bad in ["0", "10MB", "-1"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("AMTP_LOG_MAX_BYTES="), "{err}");
        }
    }

    #[test]
    fn a_stack_never_started_is_told_apart_from_a_broken_config() {
        let never = StackConfig::from_vars(
            Path::new("/repo"),
            vars(&[("AMTP_STATE_DIR", "/nonexistent/state")]),
            &crate::stack::port_vars(),
            Secrets::MustExist,
        )
        .unwrap_err();
        assert!(never.is::<NeverStarted>(), "{never}");
        assert!(never.to_string().contains("cargo xtask up"), "{never}");
    }

    #[test]
    fn a_password_set_only_at_the_start_is_missed_by_name_not_taken_for_a_stack_never_started() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let state = dir.join("state");
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join(STATE_MARKER), "").unwrap();
        let env = vars(&[
            ("AMTP_STATE_DIR", state.to_str().unwrap()),
            ("VALKEY_PASSWORD", "v"),
        ]);
        let err = StackConfig::from_vars(dir, env, &[], Secrets::MustExist).unwrap_err();
        assert!(!err.is::<NeverStarted>(), "{err}");
        let said = err.to_string();
        assert!(
            said.starts_with("POSTGRES_PASSWORD is not set, and the stack in ")
                && said.contains("set it again"),
            "{said}"
        );
    }

    #[test]
    fn missing_secrets_are_generated_once_with_mode_0600() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let state = dir.join("state");
        let env = vars(&[("AMTP_STATE_DIR", state.to_str().unwrap())]);
        let first = StackConfig::from_vars(dir, env.clone(), &[], Secrets::Generate).unwrap();
        let second = StackConfig::from_vars(dir, env, &[], Secrets::MustExist).unwrap();
        assert_eq!(first.postgres_password, second.postgres_password);
        assert_eq!(first.postgres_password.len(), 24);
        let mode = fs::metadata(state.join(SECRETS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_malformed_line_is_found_after_values_over_several_lines() {
        assert_eq!(
            first_malformed_line("A=1\nB=\"two\nlines\"\nC=3 4\n"),
            Some(4)
        );
        assert_eq!(first_malformed_line("A=1\nB=\"two\nlines\nC=3\n"), Some(2));
        assert_eq!(first_malformed_line("KEY_LONGER=1\nKEY\n"), Some(2));
        assert_eq!(first_malformed_line("A=1\nB=2"), None);
    }

    #[test]
    fn a_damaged_secrets_file_is_refused_by_up_and_still_finds_the_stack_for_down() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let state = dir.join("state");
        let env = vars(&[("AMTP_STATE_DIR", state.to_str().unwrap())]);
        StackConfig::from_vars(dir, env.clone(), &[], Secrets::Generate).unwrap();
        let whole = fs::read(state.join(SECRETS_FILE)).unwrap();
        for (damage, says) in [
            (&whole[..whole.len() - 3], "is truncated"),
            (&whole[..0], "is truncated"),
            (
                &whole[..whole.iter().position(|b| *b == b'\n').unwrap() + 1],
                "has no ",
            ),
        ] {
            fs::write(state.join(SECRETS_FILE), damage).unwrap();
            let err = StackConfig::from_vars(dir, env.clone(), &[], Secrets::Generate)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(says) && err.contains("cargo xtask reset"),
                "{err}"
            );
            assert_eq!(
                fs::read(state.join(SECRETS_FILE)).unwrap(),
                damage,
                "rewritten"
            );
            let found = StackConfig::from_vars(dir, env.clone(), &[], Secrets::MustExist);
            assert!(
                found.is_ok(),
                "down and reset cannot find the stack: {found:?}"
            );
        }
    }

    #[test]
    fn a_malformed_dotenv_names_the_file_and_line() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        fs::write(dir.join(".env"), "GOOD=1\nBAD LINE\nLATER=2\n").unwrap();
        let err = read_dotenv(&dir.join(".env")).unwrap_err();
        let expected = format!("{} is malformed at line 2;", dir.join(".env").display());
        assert!(err.to_string().contains(&expected), "{err}");
    }

    mod generated {
        //! `.env` files generated at scale (seeded, a fixed number of cases): every value reads
        //! back as written, and a malformed line is named by its number, never by its text.

        use crate::generated::seeded;
        use proptest::prelude::*;

        use super::super::*;

        /// Every value holds this, so a message can be searched for any of them.
        const SECRET: &str = "s3cr3t";

        /// A value, and how a line writes it: bare, in single quotes, or in double quotes
        /// with its backslashes, quotes and `$` escaped and its newlines kept (a value over
        /// several lines).
        fn written_value() -> impl Strategy<Value = (String, String)> {
            let bare = "[A-Za-z0-9_./:@-]{0,10}".prop_map(|v| {
                let v = format!("{SECRET}{v}");
                (v.clone(), v)
            });
            let single = "[A-Za-z0-9 #\"$=é-]{0,10}".prop_map(|v| {
                let v = format!("{SECRET}{v}");
                (format!("'{v}'"), v)
            });
            let double = "[a-z '\"\\\\$#=\n\té]{0,10}".prop_map(|v| {
                let v = format!("{SECRET}{v}");
                let written = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('$', "\\$");
                (format!("\"{written}\""), v)
            });
            prop_oneof![bare, single, double]
        }

        /// A line that sets `key`: maybe `export`, blanks around `=`, a comment after.
        fn good_line(key: String) -> impl Strategy<Value = (String, String, String)> {
            (
                written_value(),
                any::<bool>(),
                "[ \t]{0,2}",
                prop::option::of("[a-z ;=]{0,6}"),
            )
                .prop_map(move |((written, value), export, blank, comment)| {
                    let export = if export { "export " } else { "" };
                    let comment = comment.map(|c| format!(" #{c}")).unwrap_or_default();
                    (
                        format!("{export}{key}{blank}={blank}{written}{comment}"),
                        key.clone(),
                        value,
                    )
                })
        }

        /// Lines that set nothing.
        fn quiet_line() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                "[ \t]{1,3}",
                "[ \t]{0,2}#[a-zA-Z =;'\"]{0,10}"
            ]
        }

        /// A line dotenv refuses; `earlier` is a key set before it, which it may start with.
        fn bad_line(earlier: String) -> impl Strategy<Value = String> {
            prop_oneof![
                Just(earlier.clone()),
                Just(format!("{earlier} {SECRET}")),
                Just(format!("{earlier}X {SECRET}=1")),
                Just(format!("={SECRET}")),
                Just(format!("1{earlier}={SECRET}")),
                Just(format!("{earlier}={SECRET} oops")),
                Just(format!("{earlier}={SECRET}\\x")),
                Just(format!("{earlier}=\"{SECRET}\" junk")),
            ]
        }

        /// Lines of a file: `Some(key, value)` for those that set one.
        fn lines() -> impl Strategy<Value = Vec<(String, Option<(String, String)>)>> {
            prop::collection::vec((any::<bool>(), "[A-Z][A-Z0-9_]{0,6}"), 0..8).prop_flat_map(
                |rows| {
                    let lines: Vec<_> = rows
                        .into_iter()
                        .enumerate()
                        .map(|(index, (sets, key))| {
                            let key = format!("{key}_{index}");
                            if sets {
                                good_line(key)
                                    .prop_map(|(line, key, value)| (line, Some((key, value))))
                                    .boxed()
                            } else {
                                quiet_line().prop_map(|line| (line, None)).boxed()
                            }
                        })
                        .collect();
                    lines
                },
            )
        }

        fn file(lines: &[String], crlf: bool) -> String {
            let end = if crlf { "\r\n" } else { "\n" };
            lines.iter().map(|line| format!("{line}{end}")).collect()
        }

        proptest! {
            #![proptest_config(seeded(256))]

            #[test]
            fn every_value_reads_back_as_written(rows in lines(), crlf in any::<bool>()) {
                let scratch = tempfile::tempdir().unwrap();
                let path = scratch.path().join(".env");
                let text: Vec<String> = rows.iter().map(|(line, _)| line.clone()).collect();
                fs::write(&path, file(&text, crlf)).unwrap();
                let want: BTreeMap<String, String> = rows.into_iter().filter_map(|(_, kv)| kv).collect();
                let read = read_dotenv(&path).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
                prop_assert_eq!(read, want);
            }

            #[test]
            fn a_malformed_line_is_named_by_its_number_and_never_shown(
                (rows, at, bad) in lines().prop_flat_map(|rows| {
                    let earlier = rows.iter().find_map(|(_, kv)| kv.as_ref().map(|(k, _)| k.clone()));
                    let at = 0..=rows.len();
                    (Just(rows), at, bad_line(earlier.unwrap_or_else(|| "KEY".to_owned())))
                }),
                crlf in any::<bool>(),
            ) {
                let scratch = tempfile::tempdir().unwrap();
                let path = scratch.path().join(".env");
                let mut text: Vec<String> = rows.into_iter().map(|(line, _)| line).collect();
                text.insert(at, bad.clone());
                let line = 1 + text[..at].iter().map(|l| l.matches('\n').count() + 1).sum::<usize>();
                fs::write(&path, file(&text, crlf)).unwrap();
                let message = format!("{:#}", read_dotenv(&path).expect_err("a malformed line"));
                prop_assert!(
                    message.contains(&format!("is malformed at line {line};")),
                    "{message}\nfile: {:?}", file(&text, crlf)
                );
                prop_assert!(!message.contains(SECRET), "{message}");
            }
        }
    }
}
