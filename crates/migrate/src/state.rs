//! The files and the history table side by side: each migration's state, as Flyway's
//! `MigrationInfoService` sees it, and the validation rules that state implies.

use serde::Serialize;

use crate::history::{self, AppliedRow};
use crate::source::{Migration, Version};

/// A migration's state, named as `flyway info` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// A file not yet applied, above every applied version.
    Pending,
    Success,
    /// Applied, failed (only a non-transactional migration can leave this behind).
    Failed,
    /// Flyway's baseline row.
    Baseline,
    /// A file at or below the baseline version: the baselined schema already holds it.
    #[serde(rename = "Below Baseline")]
    BelowBaseline,
    /// Applied, but its file is gone (and a higher version's file exists).
    Missing,
    #[serde(rename = "Failed (Missing)")]
    MissingFailed,
    /// Applied by a newer checkout: above every file this one has.
    Future,
    #[serde(rename = "Failed (Future)")]
    FutureFailed,
    /// A file below the highest applied version that was never applied (outOfOrder is false).
    Ignored,
    /// Applied, then marked deleted by `repair` after its file was removed.
    Deleted,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Success => "Success",
            State::Failed => "Failed",
            State::Baseline => "Baseline",
            State::BelowBaseline => "Below Baseline",
            State::Missing => "Missing",
            State::MissingFailed => "Failed (Missing)",
            State::Future => "Future",
            State::FutureFailed => "Failed (Future)",
            State::Ignored => "Ignored",
            State::Deleted => "Deleted",
        }
    }
}

/// One migration seen from both sides: its file, its history row, or both.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub file: Option<&'a Migration>,
    pub applied: Option<&'a AppliedRow>,
    pub state: State,
}

impl Entry<'_> {
    pub fn version(&self) -> String {
        match (self.file, self.applied) {
            (Some(file), _) => file.version.to_string(),
            (None, Some(row)) => row.version.clone().unwrap_or_default(),
            (None, None) => String::new(),
        }
    }

    fn label(&self) -> String {
        let description = self
            .file
            .map(|f| f.description.as_str())
            .or(self.applied.map(|r| r.description.as_str()))
            .unwrap_or_default();
        format!("{} ({description})", self.version())
    }
}

/// Pairs files with history rows by version and gives each its state, in version order.
pub fn resolve<'a>(files: &'a [Migration], rows: &'a [AppliedRow]) -> Vec<Entry<'a>> {
    let row_version =
        |row: &AppliedRow| row.version.as_deref().and_then(|v| Version::parse(v).ok());
    let deleted: Vec<Version> = rows
        .iter()
        .filter(|r| r.kind == history::kind::DELETE)
        .filter_map(row_version)
        .collect();
    let baseline = rows
        .iter()
        .filter(|r| r.kind == history::kind::BASELINE)
        .filter_map(row_version)
        .max();
    let highest_file = files.last().map(|f| &f.version);
    let highest_applied = rows
        .iter()
        .filter(|r| r.kind != history::kind::DELETE)
        .filter_map(row_version)
        .filter(|v| !deleted.contains(v))
        .max();

    let mut entries = Vec::new();
    let mut matched: Vec<&Version> = Vec::new();
    for row in rows.iter().filter(|r| r.kind != history::kind::DELETE) {
        let version = row_version(row);
        let file = version
            .as_ref()
            .and_then(|v| files.iter().find(|f| &f.version == v));
        let state = match (&version, file) {
            _ if row.kind == history::kind::BASELINE => State::Baseline,
            (Some(v), _) if deleted.contains(v) => State::Deleted,
            (_, Some(_)) if row.success => State::Success,
            (_, Some(_)) => State::Failed,
            (Some(v), None) if highest_file.is_none_or(|h| v > h) => {
                if row.success {
                    State::Future
                } else {
                    State::FutureFailed
                }
            }
            _ => {
                if row.success {
                    State::Missing
                } else {
                    State::MissingFailed
                }
            }
        };
        if let (Some(file), false) = (file, state == State::Deleted) {
            matched.push(&file.version);
        }
        entries.push(Entry {
            file: if state == State::Baseline { None } else { file },
            applied: Some(row),
            state,
        });
    }
    for file in files.iter().filter(|f| !matched.contains(&&f.version)) {
        let state = if baseline.as_ref().is_some_and(|b| &file.version <= b) {
            State::BelowBaseline
        } else if highest_applied.as_ref().is_some_and(|h| &file.version < h) {
            State::Ignored
        } else {
            State::Pending
        };
        entries.push(Entry {
            file: Some(file),
            applied: None,
            state,
        });
    }
    entries.sort_by(|a, b| {
        let key = |e: &Entry| (e.version().is_empty(), Version::parse(&e.version()).ok());
        key(a).cmp(&key(b)).then_with(|| {
            let rank = |e: &Entry| e.applied.map_or(i32::MAX, |r| r.installed_rank);
            rank(a).cmp(&rank(b))
        })
    });
    entries
}

/// Whether pending files count as a validation problem (`validate`) or not (`migrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Allowed,
    Refused,
}

/// Flyway's validation messages for every entry that does not check out.
pub fn problems(entries: &[Entry<'_>], pending: Pending) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in entries {
        match entry.state {
            State::Failed | State::MissingFailed => problems.push(format!(
                "Detected failed migration to version {}.\nPlease remove any half-completed changes then run repair to fix the schema history.",
                entry.label()
            )),
            State::Missing => problems.push(format!(
                "Detected applied migration not resolved locally: {}.\nIf you removed this migration intentionally, run repair to mark the migration as deleted.",
                entry.version()
            )),
            State::Ignored => problems.push(format!(
                "Detected resolved migration not applied to database: {}.\noutOfOrder is false: give the file a version above the highest applied one.",
                entry.version()
            )),
            State::Pending if pending == Pending::Refused => problems.push(format!(
                "Detected resolved migration not applied to database: {}.\nRun migrate to apply it.",
                entry.version()
            )),
            State::Success => {
                if let (Some(file), Some(row)) = (entry.file, entry.applied) {
                    problems.extend(mismatches(file, row));
                }
            }
            _ => {}
        }
    }
    problems
}

/// Whether an applied row's type, checksum or description no longer matches its file
/// (what `repair` realigns).
pub fn differs(file: &Migration, row: &AppliedRow) -> bool {
    !mismatches(file, row).is_empty()
}

fn mismatches(file: &Migration, row: &AppliedRow) -> Vec<String> {
    let mismatch = |what: &str, applied: String, local: String| {
        format!(
            "Migration {what} mismatch for migration version {}\n-> Applied to database : {applied}\n-> Resolved locally    : {local}\nEither revert the changes to the migration, or run repair to update the schema history.",
            row.version.as_deref().unwrap_or_default()
        )
    };
    let mut found = Vec::new();
    if row.kind != history::kind::SQL {
        found.push(mismatch(
            "type",
            row.kind.clone(),
            history::kind::SQL.to_owned(),
        ));
    }
    if row.checksum != Some(file.checksum) {
        let applied = row
            .checksum
            .map_or_else(|| "null".to_owned(), |c| c.to_string());
        found.push(mismatch("checksum", applied, file.checksum.to_string()));
    }
    if row.description != file.description {
        found.push(mismatch(
            "description",
            row.description.clone(),
            file.description.clone(),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: &str) -> Migration {
        Migration {
            version: Version::parse(version).expect("version"),
            description: format!("v{version}"),
            script: format!("V{version}__v{version}.sql"),
            path: format!("V{version}__v{version}.sql").into(),
            sql: String::new(),
            checksum: 0,
            execute_in_transaction: None,
        }
    }

    fn row(rank: i32, version: &str, kind: &str, success: bool) -> AppliedRow {
        AppliedRow {
            installed_rank: rank,
            version: Some(version.to_owned()),
            description: format!("v{version}"),
            kind: kind.to_owned(),
            script: format!("V{version}__v{version}.sql"),
            checksum: Some(0),
            installed_by: "amtp".to_owned(),
            installed_on: String::new(),
            execution_time: 0,
            success,
        }
    }

    fn states(files: &[Migration], rows: &[AppliedRow]) -> Vec<(String, State)> {
        resolve(files, rows)
            .iter()
            .map(|e| (e.version(), e.state))
            .collect()
    }

    #[test]
    fn a_removed_file_below_the_newest_one_is_missing_and_fails_validation() {
        let files = [file("1"), file("3")];
        let rows = [
            row(1, "1", "SQL", true),
            row(2, "2", "SQL", true),
            row(3, "3", "SQL", true),
        ];
        assert_eq!(
            states(&files, &rows),
            [
                ("1".into(), State::Success),
                ("2".into(), State::Missing),
                ("3".into(), State::Success)
            ]
        );
        assert_eq!(problems(&resolve(&files, &rows), Pending::Allowed).len(), 1);
    }

    #[test]
    fn versions_applied_by_a_newer_checkout_are_future_and_accepted() {
        let files = [file("1")];
        let rows = [row(1, "1", "SQL", true), row(2, "2", "SQL", true)];
        assert_eq!(
            states(&files, &rows),
            [("1".into(), State::Success), ("2".into(), State::Future)]
        );
        assert!(problems(&resolve(&files, &rows), Pending::Refused).is_empty());
    }

    #[test]
    fn a_deleted_row_hides_its_migration_and_files_sort_by_version() {
        let files = [file("1.10"), file("1.9"), file("1")];
        let mut sorted = files.to_vec();
        sorted.sort_by(|a, b| a.version.cmp(&b.version));
        let rows = [row(1, "1", "SQL", true), row(2, "1", "DELETE", true)];
        assert_eq!(
            states(&sorted, &rows),
            [
                ("1".into(), State::Deleted),
                ("1".into(), State::Pending),
                ("1.9".into(), State::Pending),
                ("1.10".into(), State::Pending)
            ]
        );
    }
}
