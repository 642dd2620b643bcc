//! Reads the documented settings from the files in `infra/`, the single source of each value.
//!
//! Each format gets the smallest reader that handles what those files contain: `key = value`
//! for postgresql.conf and pgbouncer.ini, `key value` for valkey.conf, comments dropped.

use std::fs;
use std::path::Path;

use anyhow::{Context, bail};

/// One documented setting: its name and the value the contract requires.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Setting {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// Every file of `infra/` the stack starts from, read once before anything starts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Contract {
    pub(crate) postgres: Vec<Setting>,
    pub(crate) initdb_args: Vec<String>,
    pub(crate) pgbouncer: Vec<Setting>,
    pub(crate) valkey: Vec<Setting>,
    /// `default.conf`'s server block, placeholders still in.
    pub(crate) nginx_server_block: String,
}

impl Contract {
    pub(crate) fn read(repo_root: &Path) -> anyhow::Result<Contract> {
        Ok(Contract {
            postgres: postgres(repo_root)?,
            initdb_args: initdb_args(repo_root)?,
            pgbouncer: pgbouncer(repo_root)?,
            valkey: valkey(repo_root)?,
            nginx_server_block: nginx_server_block(repo_root)?,
        })
    }
}

/// `infra/postgres/postgresql.conf`: the server's `-c` flags.
pub(crate) fn postgres(repo_root: &Path) -> anyhow::Result<Vec<Setting>> {
    let path = repo_root.join("infra/postgres/postgresql.conf");
    parse_key_equals_value(&read(&path)?, &['#']).with_context(|| format!("in {}", path.display()))
}

/// `infra/postgres/initdb.args`: one initdb argument per line.
pub(crate) fn initdb_args(repo_root: &Path) -> anyhow::Result<Vec<String>> {
    let path = repo_root.join("infra/postgres/initdb.args");
    Ok(content_lines(&read(&path)?, &['#'])
        .map(|(_, line)| line.to_owned())
        .collect())
}

/// `infra/pgbouncer/pgbouncer.ini`: the `[pgbouncer]` section.
pub(crate) fn pgbouncer(repo_root: &Path) -> anyhow::Result<Vec<Setting>> {
    let path = repo_root.join("infra/pgbouncer/pgbouncer.ini");
    let text = read(&path)?;
    let body: String = content_lines(&text, &[';', '#'])
        .filter(|(_, line)| *line != "[pgbouncer]")
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    parse_key_equals_value(&body, &[';', '#']).with_context(|| format!("in {}", path.display()))
}

/// `infra/valkey/valkey.conf`: `directive value` lines.
pub(crate) fn valkey(repo_root: &Path) -> anyhow::Result<Vec<Setting>> {
    let path = repo_root.join("infra/valkey/valkey.conf");
    content_lines(&read(&path)?, &['#'])
        .map(|(number, line)| {
            let Some((key, value)) = line.split_once(char::is_whitespace) else {
                bail!("{}:{number}: expected `directive value`", path.display());
            };
            Ok(Setting {
                key: key.to_owned(),
                value: unquote(value.trim()).to_owned(),
            })
        })
        .collect()
}

/// `infra/garage/garage.toml`, with its placeholders still in.
pub(crate) fn garage_toml(repo_root: &Path) -> anyhow::Result<String> {
    read(&repo_root.join("infra/garage/garage.toml"))
}

/// `infra/garage/bootstrap.conf`: the bucket, its key and lifecycle rule, the node's role.
pub(crate) fn garage_bootstrap(repo_root: &Path) -> anyhow::Result<Vec<Setting>> {
    let path = repo_root.join("infra/garage/bootstrap.conf");
    parse_key_equals_value(&read(&path)?, &['#']).with_context(|| format!("in {}", path.display()))
}

/// `infra/nginx/default.conf`, the server block, with its placeholders still in.
pub(crate) fn nginx_server_block(repo_root: &Path) -> anyhow::Result<String> {
    read(&repo_root.join("infra/nginx/default.conf"))
}

/// The content types `default.conf` compresses (`text/html` always is, once gzip is on).
pub(crate) fn nginx_gzip_types(server_block: &str) -> Vec<String> {
    let listed = server_block
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("gzip_types"))
        .unwrap_or("");
    std::iter::once("text/html")
        .chain(listed.trim_end_matches(';').split_whitespace())
        .map(str::to_owned)
        .collect()
}

/// The `add_header NAME "value" always;` lines of `default.conf`.
pub(crate) fn nginx_headers(server_block: &str) -> Vec<Setting> {
    server_block
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("add_header "))
        .filter_map(|rest| {
            let (name, value) = rest.split_once(char::is_whitespace)?;
            let value = value
                .trim_end_matches(';')
                .trim()
                .trim_end_matches("always")
                .trim();
            Some(Setting {
                key: name.to_owned(),
                value: unquote(value).to_owned(),
            })
        })
        .collect()
}

fn read(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}; run from a checkout of the repository",
            path.display()
        )
    })
}

/// Non-empty lines without comments, with their 1-based line numbers.
fn content_lines<'a>(
    text: &'a str,
    comment_chars: &'a [char],
) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    text.lines().enumerate().filter_map(move |(index, line)| {
        let line = line.trim();
        (!line.is_empty() && !line.starts_with(comment_chars)).then_some((index + 1, line))
    })
}

fn parse_key_equals_value(text: &str, comment_chars: &[char]) -> anyhow::Result<Vec<Setting>> {
    content_lines(text, comment_chars)
        .map(|(number, line)| {
            let Some((key, value)) = line.split_once('=') else {
                bail!("line {number}: expected `key = value`, found {line:?}");
            };
            Ok(Setting {
                key: key.trim().to_owned(),
                value: unquote(value.trim()).to_owned(),
            })
        })
        .collect()
}

fn unquote(value: &str) -> &str {
    ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    fn pairs(settings: &[Setting]) -> Vec<(&str, &str)> {
        settings
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect()
    }

    #[test]
    fn postgres_flags_are_the_documented_ones() {
        assert_eq!(
            pairs(&postgres(repo()).unwrap()),
            [
                ("password_encryption", "scram-sha-256"),
                ("max_connections", "200"),
                ("shared_buffers", "256MB"),
                ("work_mem", "16MB"),
                ("log_min_duration_statement", "500"),
            ]
        );
        assert_eq!(
            initdb_args(repo()).unwrap(),
            ["--auth-host=scram-sha-256", "--auth-local=scram-sha-256"]
        );
    }

    #[test]
    fn pgbouncer_keys_are_the_documented_ones() {
        assert_eq!(
            pairs(&pgbouncer(repo()).unwrap()),
            [
                ("pool_mode", "transaction"),
                ("max_client_conn", "500"),
                ("default_pool_size", "25"),
                ("reserve_pool_size", "5"),
                ("reserve_pool_timeout", "3"),
                ("auth_type", "scram-sha-256"),
                ("max_prepared_statements", "100"),
                ("server_idle_timeout", "240"),
            ]
        );
    }

    #[test]
    fn valkey_flags_are_the_documented_ones() {
        assert_eq!(
            pairs(&valkey(repo()).unwrap()),
            [
                ("save", ""),
                ("appendonly", "no"),
                ("maxmemory", "512mb"),
                ("maxmemory-policy", "allkeys-lru"),
            ]
        );
    }

    #[test]
    fn nginx_headers_and_gzip_types_are_the_documented_ones() {
        let block = nginx_server_block(repo()).unwrap();
        assert_eq!(
            pairs(&nginx_headers(&block)),
            [
                ("X-Frame-Options", "SAMEORIGIN"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "strict-origin-when-cross-origin"),
            ]
        );
        assert_eq!(
            nginx_gzip_types(&block),
            [
                "text/html",
                "text/css",
                "application/javascript",
                "application/json",
                "image/svg+xml"
            ]
        );
    }

    #[test]
    fn a_line_without_equals_is_reported_with_its_number() {
        let err = parse_key_equals_value("a = 1\nbroken\n", &['#']).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: expected `key = value`, found \"broken\""
        );
    }
}
