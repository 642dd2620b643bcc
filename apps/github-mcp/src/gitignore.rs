//! Which tree entries a repository's own `.gitignore` files exclude, with git's semantics.
//!
//! Each `.gitignore` applies to its directory and below; the deepest file with a matching
//! pattern decides (so a nested `!keep.log` re-includes what the root's `*.log` excluded); and
//! nothing inside an excluded directory can be re-included, because git never looks inside it.
//! Pattern matching itself is the `ignore` crate's.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The kind of a tree entry, as GitHub names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Blob,
    Tree,
    /// A submodule.
    Commit,
}

/// One entry of a recursive tree listing.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TreeEntry {
    pub path: String,
    pub mode: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub sha: String,
    pub size: Option<u64>,
}

impl TreeEntry {
    /// The directory whose `.gitignore` this entry is, if it is one ("" for the root).
    pub fn gitignore_dir(&self) -> Option<&str> {
        if self.kind != EntryKind::Blob {
            return None;
        }
        if self.path == ".gitignore" {
            return Some("");
        }
        self.path.strip_suffix("/.gitignore")
    }
}

/// A virtual absolute root so that matching never depends on the local filesystem.
const ROOT: &str = "/repo";

fn virtual_path(path: &str) -> PathBuf {
    if path.is_empty() {
        PathBuf::from(ROOT)
    } else {
        Path::new(ROOT).join(path)
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Compiled `.gitignore` files, by directory ("" for the root).
pub struct Rules {
    by_dir: HashMap<String, Gitignore>,
}

impl Rules {
    /// Compiles each directory's `.gitignore` content; lines git would reject are skipped.
    pub fn new(files: &HashMap<String, String>) -> Self {
        let by_dir = files
            .iter()
            .filter_map(|(dir, content)| {
                let mut builder = GitignoreBuilder::new(virtual_path(dir));
                for line in content.lines() {
                    if let Err(error) = builder.add_line(None, line) {
                        tracing::debug!(dir, %error, "skipping an invalid .gitignore line");
                    }
                }
                match builder.build() {
                    Ok(matcher) => Some((dir.clone(), matcher)),
                    Err(error) => {
                        tracing::warn!(dir, %error, "ignoring a .gitignore that does not compile");
                        None
                    }
                }
            })
            .collect();
        Rules { by_dir }
    }

    /// The entries git would not ignore, in their original order, and how many were excluded.
    /// `entries` must list every directory before its contents, as GitHub's trees do.
    pub fn filter<'a>(&self, entries: &'a [TreeEntry]) -> (Vec<&'a TreeEntry>, usize) {
        let mut excluded_dirs: HashSet<&str> = HashSet::new();
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            let is_dir = entry.kind == EntryKind::Tree;
            let excluded =
                excluded_dirs.contains(parent(&entry.path)) || self.is_ignored(&entry.path, is_dir);
            if excluded {
                if is_dir {
                    excluded_dirs.insert(&entry.path);
                }
            } else {
                kept.push(entry);
            }
        }
        let excluded = entries.len() - kept.len();
        (kept, excluded)
    }

    /// Asks the `.gitignore` files from the entry's own directory up to the root; the first
    /// one with a matching pattern decides.
    fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let full = virtual_path(path);
        let mut dir = parent(path);
        loop {
            if let Some(matcher) = self.by_dir.get(dir) {
                let decision = matcher.matched(&full, is_dir);
                if decision.is_ignore() {
                    return true;
                }
                if decision.is_whitelist() {
                    return false;
                }
            }
            if dir.is_empty() {
                return false;
            }
            dir = parent(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> TreeEntry {
        TreeEntry {
            path: path.to_owned(),
            mode: String::new(),
            kind,
            sha: String::new(),
            size: None,
        }
    }

    fn kept(files: &[(&str, &str)], entries: &[TreeEntry]) -> Vec<String> {
        let files = files
            .iter()
            .map(|(d, c)| (d.to_string(), c.to_string()))
            .collect();
        let (kept, _) = Rules::new(&files).filter(entries);
        kept.into_iter().map(|e| e.path.clone()).collect()
    }

    #[test]
    fn nested_files_negations_and_ignored_directories() {
        use EntryKind::{Blob, Tree};
        let entries = vec![
            entry(".gitignore", Blob),
            entry("build.log", Blob),
            entry("logs", Tree),
            entry("logs/.gitignore", Blob),
            entry("logs/keep.log", Blob),
            entry("logs/other.log", Blob),
            entry("target", Tree),
            entry("target/debug", Tree),
            entry("target/debug/app", Blob),
            entry("vendor", Tree),
            entry("vendor/x.rs", Blob),
            entry("src", Tree),
            entry("src/vendor", Tree),
            entry("src/vendor/y.rs", Blob),
            entry("src/main.rs", Blob),
        ];
        let files = [("", "target/\n*.log\n/vendor/\n"), ("logs", "!keep.log\n")];
        assert_eq!(
            kept(&files, &entries),
            [
                ".gitignore",
                "logs",
                "logs/.gitignore",
                "logs/keep.log",
                "src",
                "src/vendor",
                "src/vendor/y.rs",
                "src/main.rs"
            ]
        );
    }

    #[test]
    fn a_negation_cannot_reach_into_an_excluded_directory() {
        use EntryKind::{Blob, Tree};
        let entries = vec![entry("out", Tree), entry("out/keep.txt", Blob)];
        assert!(kept(&[("", "out/\n!out/keep.txt\n")], &entries).is_empty());
    }

    #[test]
    fn gitignore_dirs_are_recognised() {
        assert_eq!(
            entry(".gitignore", EntryKind::Blob).gitignore_dir(),
            Some("")
        );
        assert_eq!(
            entry("a/b/.gitignore", EntryKind::Blob).gitignore_dir(),
            Some("a/b")
        );
        assert_eq!(
            entry("a/x.gitignore", EntryKind::Blob).gitignore_dir(),
            None
        );
    }
}
