//! The files of `infra/`, the single source of each documented value: each row names the
//! files it starts from ([`InfraFile`]: a path and its format, a constant of the service's
//! module), and [`Contract`] reads every row's files once.
//!
//! Each format gets the smallest reader that handles what those files contain: `key = value`
//! for postgresql.conf and pgbouncer.ini, `key value` for valkey.conf, one argument a line for
//! initdb.args, comments dropped; a template (nginx's server block, garage.toml) is kept as
//! text for its row to fill in.

use std::fs;
use std::path::Path;

use anyhow::{Context, bail};

/// One documented setting: its name and the value the contract requires.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Setting {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// A file of `infra/` a row starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InfraFile {
    /// From the repository root.
    pub(crate) path: &'static str,
    pub(crate) format: Format,
}

/// How a file of `infra/` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `key = value` lines, `#` comments.
    KeyEqualsValue,
    /// The `key = value` lines of an INI file's one section, `;` and `#` comments.
    IniSection(&'static str),
    /// `directive value` lines, `#` comments.
    Directives,
    /// One item a line, `#` comments.
    Lines,
    /// The text as it is, placeholders still in.
    Template,
}

/// A file of `infra/`, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Document {
    Settings(Vec<Setting>),
    Lines(Vec<String>),
    Text(String),
}

impl InfraFile {
    pub(crate) fn read(&self, repo_root: &Path) -> anyhow::Result<Document> {
        let path = repo_root.join(self.path);
        let text = read(&path)?;
        let settings = match self.format {
            Format::Template => return Ok(Document::Text(text)),
            Format::Lines => {
                return Ok(Document::Lines(
                    content_lines(&text, &['#'])
                        .map(|(_, line)| line.to_owned())
                        .collect(),
                ));
            }
            Format::KeyEqualsValue => parse_key_equals_value(&text, &['#']),
            Format::IniSection(section) => {
                let header = format!("[{section}]");
                let body: String = content_lines(&text, &[';', '#'])
                    .filter(|(_, line)| *line != header)
                    .map(|(_, line)| format!("{line}\n"))
                    .collect();
                parse_key_equals_value(&body, &[';', '#'])
            }
            Format::Directives => parse_directives(&text),
        };
        Ok(Document::Settings(
            settings.with_context(|| format!("in {}", path.display()))?,
        ))
    }

    /// The settings of a file of settings, read now (the live checks read `infra/` again).
    pub(crate) fn settings(&self, repo_root: &Path) -> anyhow::Result<Vec<Setting>> {
        match self.read(repo_root)? {
            Document::Settings(settings) => Ok(settings),
            _ => bail!("{} is not a file of settings", self.path),
        }
    }

    /// The text of a template, read now.
    pub(crate) fn text(&self, repo_root: &Path) -> anyhow::Result<String> {
        match self.read(repo_root)? {
            Document::Text(text) => Ok(text),
            _ => bail!("{} is not a template", self.path),
        }
    }
}

/// Every file of `infra/` the rows start from, read once before anything starts; a row asks
/// for its own with its [`InfraFile`]. One it lacks (the tests' `Contract::default()`) reads
/// as empty.
#[derive(Clone, Debug, Default)]
pub(crate) struct Contract {
    documents: Vec<(InfraFile, Document)>,
}

impl Contract {
    pub(crate) fn read(repo_root: &Path) -> anyhow::Result<Contract> {
        let documents = crate::stack::UNITS
            .iter()
            .flat_map(|unit| unit.infra)
            .map(|file| Ok((*file, file.read(repo_root)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Contract { documents })
    }

    /// A contract of these documents only (the rows' tests).
    #[cfg(test)]
    pub(crate) fn of(documents: impl IntoIterator<Item = (InfraFile, Document)>) -> Contract {
        Contract {
            documents: documents.into_iter().collect(),
        }
    }

    fn document(&self, file: &InfraFile) -> Option<&Document> {
        self.documents
            .iter()
            .find(|(read, _)| read == file)
            .map(|(_, document)| document)
    }

    pub(crate) fn settings(&self, file: &InfraFile) -> &[Setting] {
        match self.document(file) {
            Some(Document::Settings(settings)) => settings,
            _ => &[],
        }
    }

    pub(crate) fn lines(&self, file: &InfraFile) -> &[String] {
        match self.document(file) {
            Some(Document::Lines(lines)) => lines,
            _ => &[],
        }
    }

    pub(crate) fn text(&self, file: &InfraFile) -> &str {
        match self.document(file) {
            Some(Document::Text(text)) => text,
            _ => "",
        }
    }
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

/// `directive value` lines.
fn parse_directives(text: &str) -> anyhow::Result<Vec<Setting>> {
    content_lines(text, &['#'])
        .map(|(number, line)| {
            let Some((key, value)) = line.split_once(char::is_whitespace) else {
                bail!("line {number}: expected `directive value`, found {line:?}");
            };
            Ok(Setting {
                key: key.to_owned(),
                value: unquote(value.trim()).to_owned(),
            })
        })
        .collect()
}

pub(crate) fn unquote(value: &str) -> &str {
    ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{UNITS, pgbouncer, postgres, valkey};

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
            pairs(&postgres::CONF.settings(repo()).unwrap()),
            [
                ("password_encryption", "scram-sha-256"),
                ("max_connections", "200"),
                ("shared_buffers", "256MB"),
                ("work_mem", "16MB"),
                ("log_min_duration_statement", "500"),
            ]
        );
        assert_eq!(
            postgres::INITDB_ARGS.read(repo()).unwrap(),
            Document::Lines(vec![
                "--auth-host=scram-sha-256".into(),
                "--auth-local=scram-sha-256".into()
            ])
        );
    }

    #[test]
    fn pgbouncer_keys_are_the_documented_ones() {
        assert_eq!(
            pairs(&pgbouncer::INI.settings(repo()).unwrap()),
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
            pairs(&valkey::CONF.settings(repo()).unwrap()),
            [
                ("save", ""),
                ("appendonly", "no"),
                ("maxmemory", "512mb"),
                ("maxmemory-policy", "allkeys-lru"),
            ]
        );
    }

    #[test]
    fn every_row_s_files_are_read_once_and_found_by_their_row() {
        let contract = Contract::read(repo()).unwrap();
        let files: Vec<&InfraFile> = UNITS.iter().flat_map(|unit| unit.infra).collect();
        assert_eq!(contract.documents.len(), files.len());
        for file in files {
            assert_eq!(
                contract.document(file),
                Some(&file.read(repo()).unwrap()),
                "{}",
                file.path
            );
        }
        assert_eq!(
            contract.settings(&pgbouncer::INI),
            pgbouncer::INI.settings(repo()).unwrap()
        );
        assert!(Contract::default().settings(&pgbouncer::INI).is_empty());
        let err = postgres::INITDB_ARGS.settings(repo()).unwrap_err();
        assert!(err.to_string().contains("not a file of settings"), "{err}");
    }

    #[test]
    fn a_line_without_equals_is_reported_with_its_number() {
        let err = parse_key_equals_value("a = 1\nbroken\n", &['#']).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: expected `key = value`, found \"broken\""
        );
        let err = parse_directives("save \"\"\nbroken\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: expected `directive value`, found \"broken\""
        );
    }
}
