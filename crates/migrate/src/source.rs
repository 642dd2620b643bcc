//! Migration files on disk: find them, parse their names, read their text and `.sql.conf`.
//!
//! Every `*.sql` file under the location (recursively, as Flyway scans) must be a versioned
//! migration named `V<version>__<description>.sql`; anything else is refused rather than
//! silently skipped, so a typo cannot leave a migration unapplied.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::checksum::checksum;
use crate::error::Error;

const NAME_HINT: &str = "name migrations V<version>__<description>.sql, e.g. V7__add_users.sql";

/// A migration version such as `1`, `1.1` or `2024.01.15`, compared numerically part by part.
///
/// Like Flyway's `MigrationVersion`, trailing zero parts do not count: `1.0` equals `1`.
#[derive(Debug, Clone)]
pub struct Version {
    parts: Vec<u64>,
    /// The version as written, with `_` turned into `.`; what the history table stores.
    text: String,
}

impl Version {
    /// Parses a version as written in a file name or the history table (`_` and `.` separate parts).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let text = raw.replace('_', ".");
        let parts = text
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "version {text:?} is not numbers separated by `.` or `_`"
                    ));
                }
                part.parse::<u64>()
                    .map_err(|_| format!("version part {part:?} of {text:?} is too large"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Version { parts, text })
    }

    fn significant_parts(&self) -> &[u64] {
        let len = self
            .parts
            .iter()
            .rposition(|&p| p != 0)
            .map_or(0, |i| i + 1);
        &self.parts[..len]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.significant_parts().cmp(other.significant_parts())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// One versioned migration read from disk.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: Version,
    /// The description from the file name, `_` turned into spaces.
    pub description: String,
    /// The path relative to the location, with `/` separators: Flyway's `script` column.
    pub script: String,
    pub path: PathBuf,
    /// The script's text without a leading byte-order mark.
    pub sql: String,
    pub checksum: i32,
    /// `executeInTransaction` from `<script>.conf`, when that file sets it.
    pub execute_in_transaction: Option<bool>,
}

/// Parses `V<version>__<description>.sql` into its version and description.
pub fn parse_file_name(name: &str) -> Result<(Version, String), String> {
    let stem = name
        .strip_suffix(".sql")
        .ok_or_else(|| "does not end in .sql".to_owned())?;
    if stem.starts_with("R__") {
        return Err("repeatable migrations (R__) are not supported".to_owned());
    }
    let rest = stem
        .strip_prefix('V')
        .ok_or_else(|| "does not start with V".to_owned())?;
    let (version, description) = rest
        .split_once("__")
        .ok_or_else(|| "has no `__` between version and description".to_owned())?;
    if version.is_empty() {
        return Err("has no version after V".to_owned());
    }
    let version = Version::parse(version)?;
    Ok((version, description.replace('_', " ")))
}

/// Reads every migration under `location`, sorted by version.
pub fn load(location: &Path) -> Result<Vec<Migration>, Error> {
    if !location.is_dir() {
        return Err(Error::LocationMissing {
            path: location.to_owned(),
        });
    }
    let mut files = Vec::new();
    collect_files(location, &mut files)?;
    files.sort();

    let mut migrations: Vec<Migration> = Vec::new();
    for path in &files {
        let name = file_name(path);
        if name.ends_with(".sql.conf") {
            let script = path.with_file_name(name.trim_end_matches(".conf"));
            if !files.contains(&script) {
                return Err(Error::ScriptConfig {
                    path: path.clone(),
                    reason: format!("there is no migration {} for it", file_name(&script)),
                });
            }
            continue;
        }
        if !name.ends_with(".sql") {
            continue;
        }
        migrations.push(read_migration(location, path)?);
    }

    migrations.sort_by(|a, b| a.version.cmp(&b.version));
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(Error::DuplicateVersion {
            version: pair[1].version.to_string(),
            first: pair[0].script.clone(),
            second: pair[1].script.clone(),
        });
    }
    Ok(migrations)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io_error = |cause| Error::Io {
        path: dir.to_owned(),
        cause,
    };
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if file_name(&path).starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_migration(location: &Path, path: &Path) -> Result<Migration, Error> {
    let (version, description) =
        parse_file_name(&file_name(path)).map_err(|reason| Error::BadFileName {
            path: path.to_owned(),
            reason: format!("{reason}; {NAME_HINT}"),
        })?;
    let sql = read_utf8(path)?;
    // Flyway's reader drops one byte-order mark; the checksum and the executed SQL see the rest.
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(&sql).to_owned();
    if let Some((line, placeholder)) = find_placeholder(&sql) {
        return Err(Error::Placeholder {
            path: path.to_owned(),
            line,
            placeholder,
        });
    }
    let script = path
        .strip_prefix(location)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let conf = path.with_file_name(format!("{}.conf", file_name(path)));
    let execute_in_transaction = if conf.is_file() {
        read_script_config(&conf)?
    } else {
        None
    };
    Ok(Migration {
        checksum: checksum(&sql),
        version,
        description,
        script,
        path: path.to_owned(),
        sql,
        execute_in_transaction,
    })
}

/// The first `${…}` in the text, with its line. Flyway replaces placeholders everywhere in a
/// script (`placeholderReplacement` is on by default) and fails on unknown ones; this runner
/// replaces none, so it refuses them rather than run a script Flyway would run differently.
fn find_placeholder(sql: &str) -> Option<(usize, String)> {
    let start = sql.find("${")?;
    let end = sql[start..].find('}').map(|i| start + i + 1)?;
    let line = sql[..start].matches('\n').count() + 1;
    Some((line, sql[start..end].to_owned()))
}

fn read_utf8(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|cause| Error::Io {
        path: path.to_owned(),
        cause,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        Error::NotUtf8 {
            path: path.to_owned(),
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })
}

/// Reads a Flyway script configuration file; only `executeInTransaction` is supported.
fn read_script_config(path: &Path) -> Result<Option<bool>, Error> {
    let bad = |reason: String| Error::ScriptConfig {
        path: path.to_owned(),
        reason,
    };
    let mut execute_in_transaction = None;
    for (index, line) in read_utf8(path)?.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_no = index + 1;
        let (key, value) = line.split_once('=').ok_or_else(|| {
            bad(format!(
                "line {line_no} is not `key=value`; write executeInTransaction=false"
            ))
        })?;
        match (key.trim(), value.trim()) {
            ("executeInTransaction", "true") => execute_in_transaction = Some(true),
            ("executeInTransaction", "false") => execute_in_transaction = Some(false),
            ("executeInTransaction", other) => {
                return Err(bad(format!(
                    "line {line_no}: executeInTransaction must be true or false, not {other:?}"
                )));
            }
            (other, _) => {
                return Err(bad(format!(
                    "line {line_no}: setting {other:?} is not supported; only executeInTransaction is"
                )));
            }
        }
    }
    Ok(execute_in_transaction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(raw: &str) -> Version {
        Version::parse(raw).expect("valid version")
    }

    #[test]
    fn underscore_in_version_means_dot_and_description_gets_spaces() {
        let (v, description) = parse_file_name("V1_1__add_user_table.sql").expect("valid name");
        assert_eq!(v.to_string(), "1.1");
        assert_eq!(description, "add user table");
    }

    #[test]
    fn versions_compare_numerically_part_by_part() {
        assert!(version("1.10") > version("1.9"));
        assert!(version("2") > version("1.9.9"));
        assert!(version("10") > version("9"));
        assert_eq!(version("1.0"), version("1"));
        assert_eq!(version("001"), version("1"));
        assert_eq!(version("001").to_string(), "001");
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        for (name, reason) in [
            ("V1_projects.sql", "no `__`"),
            ("V__projects.sql", "no version"),
            ("V1a__projects.sql", "not numbers"),
            ("V1..2__projects.sql", "not numbers"),
            ("v1__projects.sql", "does not start with V"),
            ("R__views.sql", "repeatable"),
        ] {
            let error = parse_file_name(name).expect_err(name);
            assert!(error.contains(reason), "{name}: {error}");
        }
    }

    #[test]
    fn placeholders_are_found_with_their_line() {
        assert_eq!(
            find_placeholder("SELECT 1;\nSELECT '${schema}';"),
            Some((2, "${schema}".to_owned()))
        );
        assert_eq!(find_placeholder("SELECT $$ {x} $$; SELECT '$1'"), None);
    }

    #[test]
    fn one_byte_order_mark_is_dropped_as_flyway_does_and_a_second_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in [
            ("V1__none.sql", "SELECT 1;\n"),
            ("V2__one.sql", "\u{feff}SELECT 1;\n"),
            ("V3__two.sql", "\u{feff}\u{feff}SELECT 1;\n"),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let checksums: Vec<i32> = load(dir.path())
            .expect("load")
            .iter()
            .map(|m| m.checksum)
            .collect();
        // 78787420 is Flyway's checksum of `SELECT 1;`.
        assert_eq!(checksums[..2], [78787420, 78787420]);
        assert_eq!(checksums[2], checksum("\u{feff}SELECT 1;\n"));
        assert_ne!(checksums[2], 78787420);
    }

    #[test]
    fn versions_one_and_one_point_zero_collide() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("V1__a.sql"), "SELECT 1;").expect("write");
        std::fs::write(dir.path().join("V1.0__b.sql"), "SELECT 1;").expect("write");
        let error = load(dir.path())
            .expect_err("duplicate versions")
            .to_string();
        assert!(
            error.contains("more than one migration with version"),
            "{error}"
        );
    }

    mod generated {
        //! File names and versions generated at scale (seeded, a fixed number of cases).

        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngSeed};

        use super::super::*;
        use super::version;

        fn config() -> Config {
            Config {
                cases: 512,
                rng_seed: RngSeed::Fixed(17),
                failure_persistence: None,
                ..Config::default()
            }
        }

        /// A version as numbers, and as written: each with leading zeros or not, joined by
        /// `.` or `_`.
        fn written_version() -> impl Strategy<Value = (Vec<u64>, String)> {
            let part = (
                prop_oneof![3 => 0..3u64, 1 => any::<u64>()],
                0..3usize,
                any::<bool>(),
            );
            prop::collection::vec(part, 1..5).prop_map(|parts| {
                let mut text = String::new();
                for (index, (number, zeros, underscore)) in parts.iter().enumerate() {
                    if index > 0 {
                        text.push(if *underscore { '_' } else { '.' });
                    }
                    text.push_str(&format!("{}{number}", "0".repeat(*zeros)));
                }
                (
                    parts.into_iter().map(|(number, _, _)| number).collect(),
                    text,
                )
            })
        }

        /// Numbers without their trailing zero parts: what versions are compared by.
        fn significant(parts: &[u64]) -> &[u64] {
            let len = parts.iter().rposition(|&p| p != 0).map_or(0, |i| i + 1);
            &parts[..len]
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn a_well_formed_name_gives_its_version_and_description(
                (parts, written) in written_version(),
                description in "[a-zA-Z0-9_ é.-]{0,20}",
            ) {
                let name = format!("V{written}__{description}.sql");
                let (version, read) = parse_file_name(&name).map_err(TestCaseError::fail)?;
                prop_assert_eq!(&version.parts, &parts, "{}", name);
                prop_assert_eq!(version.to_string(), written.replace('_', "."));
                prop_assert_eq!(read, description.replace('_', " "));
                prop_assert_eq!(Version::parse(&version.to_string()), Ok(version));
            }

            #[test]
            fn versions_order_as_their_numbers_without_trailing_zeros(
                (a, a_text) in written_version(),
                (b, b_text) in written_version(),
            ) {
                let (va, vb) = (version(&a_text), version(&b_text));
                prop_assert_eq!(va.cmp(&vb), significant(&a).cmp(significant(&b)));
                prop_assert_eq!(va == vb, significant(&a) == significant(&b));
            }

            #[test]
            fn any_name_is_read_or_refused_with_a_reason_never_a_panic(
                name in "(V|R|v)?[0-9._]{0,6}(__|_)?[a-z_é]{0,4}(\\.sql|\\.SQL|\\.sq)?",
            ) {
                match parse_file_name(&name) {
                    Ok((version, _)) => {
                        prop_assert!(name.starts_with('V') && name.ends_with(".sql"), "{}", name);
                        let text = version.to_string();
                        prop_assert!(!text.is_empty() && !text.starts_with('.') && !text.ends_with('.'));
                        prop_assert!(!text.contains("..") && text.bytes().all(|b| b == b'.' || b.is_ascii_digit()));
                    }
                    Err(reason) => prop_assert!(!reason.is_empty()),
                }
            }
        }
    }
}
