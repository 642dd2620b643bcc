//! Settings read from the environment, with the seed's defaults.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where to find Valkey and where to listen.
#[derive(Clone)]
pub struct Config {
    /// `VALKEY_HOST`, default `valkey` (the Compose service name).
    pub valkey_host: String,
    /// `VALKEY_PORT`, default 6379.
    pub valkey_port: u16,
    /// `VALKEY_PASSWORD`, required: the Valkey `requirepass` value. Never printed.
    pub valkey_password: String,
    /// `BIND_ADDR`, default 127.0.0.1: this project binds loopback only.
    pub bind_addr: IpAddr,
    /// `PORT`, default 8080.
    pub port: u16,
}

/// A setting that keeps the service from starting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("VALKEY_PASSWORD is not set; set it to the Valkey requirepass value")]
    MissingPassword,
    #[error("{name}={value:?} is not a port number; set it to a number from 1 to 65535")]
    InvalidPort { name: &'static str, value: String },
    #[error("BIND_ADDR={value:?} is not an IP address; set it to an address such as 127.0.0.1")]
    InvalidBindAddr { value: String },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let valkey_password = lookup("VALKEY_PASSWORD")
            .filter(|password| !password.is_empty())
            .ok_or(ConfigError::MissingPassword)?;
        let bind_addr = match lookup("BIND_ADDR") {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(value) => value
                .parse()
                .map_err(|_| ConfigError::InvalidBindAddr { value })?,
        };
        Ok(Config {
            valkey_host: lookup("VALKEY_HOST").unwrap_or_else(|| "valkey".to_owned()),
            valkey_port: port(&lookup, "VALKEY_PORT", 6379)?,
            valkey_password,
            bind_addr,
            port: port(&lookup, "PORT", 8080)?,
        })
    }

    /// The address the HTTP server listens on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_addr, self.port)
    }
}

fn port(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u16,
) -> Result<u16, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(value) => match value.parse::<u16>() {
            Ok(port) if port != 0 => Ok(port),
            _ => Err(ConfigError::InvalidPort { name, value }),
        },
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("valkey_host", &self.valkey_host)
            .field("valkey_port", &self.valkey_port)
            .field("valkey_password", &"<redacted>")
            .field("bind_addr", &self.bind_addr)
            .field("port", &self.port)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn defaults_follow_the_seed_and_bind_loopback() {
        let config = config(&[("VALKEY_PASSWORD", "pw")]).expect("valid config");
        assert_eq!(config.valkey_host, "valkey");
        assert_eq!(config.valkey_port, 6379);
        assert_eq!(
            config.listen_addr(),
            "127.0.0.1:8080".parse().expect("addr")
        );
    }

    #[test]
    fn password_is_required_and_never_debug_printed() {
        assert_eq!(config(&[]).err(), Some(ConfigError::MissingPassword));
        assert_eq!(
            config(&[("VALKEY_PASSWORD", "")]).err(),
            Some(ConfigError::MissingPassword)
        );
        let config = config(&[("VALKEY_PASSWORD", "hunter2")]).expect("valid config");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn bad_ports_and_addresses_name_the_variable() {
        let err = config(&[("VALKEY_PASSWORD", "pw"), ("PORT", "http")]).expect_err("bad port");
        assert!(err.to_string().starts_with("PORT=\"http\""));
        let err = config(&[("VALKEY_PASSWORD", "pw"), ("VALKEY_PORT", "0")]).expect_err("port 0");
        assert!(err.to_string().starts_with("VALKEY_PORT=\"0\""));
        let err =
            config(&[("VALKEY_PASSWORD", "pw"), ("BIND_ADDR", "localhost")]).expect_err("bad addr");
        assert!(err.to_string().starts_with("BIND_ADDR="));
    }
}
