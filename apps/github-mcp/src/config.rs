//! Settings from the environment; every variable is documented in the README.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub github: GitHubConfig,
    pub bind_addr: IpAddr,
    pub port: u16,
    /// `Origin` values accepted on `/mcp` (rmcp syntax: `http://localhost:*`).
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted on `/mcp` (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    pub valkey: ValkeyConfig,
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub api_url: String,
    pub app_id: String,
    pub installation_id: String,
    pub key_file: PathBuf,
    /// Per-request timeout towards GitHub.
    pub timeout: Duration,
    /// Largest file `repo.read_file` returns.
    pub max_file_bytes: u64,
}

#[derive(Clone)]
pub struct ValkeyConfig {
    pub host: String,
    pub port: u16,
    pub password: String,
    /// Bound on every cache operation; past it the request goes on uncached.
    pub op_timeout: Duration,
}

impl std::fmt::Debug for ValkeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ValkeyConfig {
    /// `redis://` URL with the password; never log it.
    pub fn url(&self) -> String {
        format!("redis://:{}@{}:{}/", self.password, self.host, self.port)
    }
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub enabled: bool,
    pub endpoint: String,
    pub service_name: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{name} is not set; {fix}")]
    Missing {
        name: &'static str,
        fix: &'static str,
    },
    #[error("{name}={value:?} is not valid; {fix}")]
    Invalid {
        name: &'static str,
        value: String,
        fix: &'static str,
    },
}

pub const DEFAULT_KEY_FILE: &str = "/run/secrets/github_app_key";
const DEFAULT_ORIGINS: &str =
    "http://localhost:*,https://localhost:*,http://127.0.0.1:*,https://127.0.0.1:*,http://[::1]:*";
const DEFAULT_HOSTS: &str = "localhost,127.0.0.1,::1";

impl Config {
    /// Reads the configuration through `var` (the process environment in `main`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str, fix: &'static str| {
            get(name).ok_or(ConfigError::Missing { name, fix })
        };
        let parsed = |name: &'static str, default: &str, fix: &'static str| {
            let value = get(name).unwrap_or_else(|| default.to_owned());
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid { name, value, fix })
        };
        let list = |name: &str, default: &str| -> Vec<String> {
            get(name)
                .unwrap_or_else(|| default.to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };

        let app_id = required("GITHUB_APP_ID", "set it to the GitHub App's numeric id")?;
        let installation_id = required(
            "GITHUB_APP_INSTALLATION_ID",
            "set it to the App installation's numeric id",
        )?;
        for (name, value) in [
            ("GITHUB_APP_ID", &app_id),
            ("GITHUB_APP_INSTALLATION_ID", &installation_id),
        ] {
            if value.parse::<u64>().is_err() {
                return Err(ConfigError::Invalid {
                    name,
                    value: value.clone(),
                    fix: "it must be a number",
                });
            }
        }
        let api_url = get("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "GITHUB_API_URL",
                value: api_url,
                fix: "use https://api.github.com or https://HOST/api/v3 for GitHub Enterprise",
            });
        }
        let port = parsed("MCP_HTTP_PORT", "8090", "use a port number such as 8090")?;
        let port = u16::try_from(port).map_err(|_| ConfigError::Invalid {
            name: "MCP_HTTP_PORT",
            value: port.to_string(),
            fix: "use a port number below 65536",
        })?;
        let bind_text = get("BIND_ADDR").unwrap_or_else(|| "127.0.0.1".to_owned());
        let bind_addr = bind_text.parse().map_err(|_| ConfigError::Invalid {
            name: "BIND_ADDR",
            value: bind_text,
            fix: "use an IP address such as 127.0.0.1",
        })?;
        let valkey_port = parsed("VALKEY_PORT", "6379", "use a port number such as 6379")?;
        let valkey_port = u16::try_from(valkey_port).map_err(|_| ConfigError::Invalid {
            name: "VALKEY_PORT",
            value: valkey_port.to_string(),
            fix: "use a port number below 65536",
        })?;
        Ok(Config {
            github: GitHubConfig {
                api_url: api_url.trim_end_matches('/').to_owned(),
                app_id,
                installation_id,
                key_file: get("GITHUB_APP_KEY_FILE")
                    .unwrap_or_else(|| DEFAULT_KEY_FILE.to_owned())
                    .into(),
                timeout: Duration::from_millis(parsed(
                    "MCP_GITHUB_TIMEOUT_MS",
                    "10000",
                    "use milliseconds, e.g. 10000",
                )?),
                max_file_bytes: parsed(
                    "MCP_MAX_FILE_BYTES",
                    "10485760",
                    "use a byte count, e.g. 10485760",
                )?,
            },
            bind_addr,
            port,
            allowed_origins: list("MCP_ALLOWED_ORIGINS", DEFAULT_ORIGINS),
            allowed_hosts: list("MCP_ALLOWED_HOSTS", DEFAULT_HOSTS),
            valkey: ValkeyConfig {
                host: get("VALKEY_HOST").unwrap_or_else(|| "valkey".to_owned()),
                port: valkey_port,
                password: required("VALKEY_PASSWORD", "set it to the Valkey requirepass value")?,
                op_timeout: Duration::from_millis(parsed(
                    "MCP_VALKEY_TIMEOUT_MS",
                    "200",
                    "use milliseconds, e.g. 200",
                )?),
            },
            telemetry: TelemetryConfig {
                enabled: !get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")),
                endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .unwrap_or_else(|| "http://otel-collector:4318".to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
                service_name: get("OTEL_SERVICE_NAME")
                    .unwrap_or_else(|| "amtp-github-mcp".to_owned()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(|name| vars.get(name).cloned())
    }

    const MINIMAL: [(&str, &str); 3] = [
        ("GITHUB_APP_ID", "1"),
        ("GITHUB_APP_INSTALLATION_ID", "2"),
        ("VALKEY_PASSWORD", "pw"),
    ];

    #[test]
    fn defaults_follow_the_spec() {
        let config = from(&MINIMAL).expect("config");
        assert_eq!(config.port, 8090);
        assert_eq!(config.bind_addr.to_string(), "127.0.0.1");
        assert_eq!(config.github.api_url, "https://api.github.com");
        assert_eq!(config.github.key_file, PathBuf::from(DEFAULT_KEY_FILE));
        assert_eq!(config.valkey.host, "valkey");
        assert_eq!(config.valkey.port, 6379);
        assert_eq!(config.telemetry.endpoint, "http://otel-collector:4318");
        assert_eq!(config.telemetry.service_name, "amtp-github-mcp");
        assert!(!format!("{config:?}").contains("pw\""));
    }

    #[test]
    fn required_variables_are_named_with_the_fix() {
        let error = from(&MINIMAL[1..]).expect_err("app id missing");
        assert_eq!(
            error.to_string(),
            "GITHUB_APP_ID is not set; set it to the GitHub App's numeric id"
        );
        let error = from(&MINIMAL[..2]).expect_err("password missing");
        assert!(error.to_string().starts_with("VALKEY_PASSWORD is not set"));
        let mut vars = MINIMAL.to_vec();
        vars.push(("MCP_HTTP_PORT", "http"));
        assert!(matches!(
            from(&vars),
            Err(ConfigError::Invalid {
                name: "MCP_HTTP_PORT",
                ..
            })
        ));
    }
}
