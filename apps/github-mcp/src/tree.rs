//! `repo.tree`: the recursive tree of a ref without what its `.gitignore` files exclude.
//!
//! Caching follows the key contract (crates/valkey-keys):
//! - the filtered result at `mcp_tree(owner, repo, ref)` for 600 s, so a repeated call makes
//!   no GitHub request at all;
//! - each `.gitignore` blob at `mcp_blob(sha)` for 3600 s (content-addressed, shared by refs);
//! - `mcp_null_gitignore(owner, repo, ref, dir)` for 600 s where a directory has no
//!   `.gitignore`. A complete listing already shows which directories have one, so GitHub is
//!   only asked about a directory (and the sentinel written) when GitHub truncated the tree.
//!
//! A cold call costs one trees request plus one blob request per `.gitignore` not yet cached.

use std::collections::HashMap;
use std::sync::Arc;

use amtp_valkey::keys::{
    MCP_BLOB_TTL, MCP_NULL_GITIGNORE_TTL, MCP_TREE_TTL, mcp_blob, mcp_null_gitignore, mcp_tree,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, Lookup};
use crate::github::{Contents, GitHubClient, GitHubError};
use crate::gitignore::{EntryKind, Rules, TreeEntry};

/// `.gitignore` blobs fetched at once.
const BLOB_FETCH_CONCURRENCY: usize = 8;
/// Directories probed for a `.gitignore` per call when the tree is truncated.
const MAX_GITIGNORE_PROBES: usize = 32;
/// Placeholder value of the null sentinel.
const SENTINEL: &[u8] = b"1";

/// The filtered tree. Cached as a one-line JSON [`TreeSummary`], a newline, then the listing
/// as is: a cache hit costs a tiny parse and a UTF-8 check, not the unescaping of a large string.
#[derive(Debug)]
pub struct FilteredTree {
    pub summary: TreeSummary,
    /// One line per entry: `dir/`, `file (N bytes)`, `link (symlink)`, `sub (submodule)`.
    pub listing: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TreeSummary {
    pub sha: String,
    pub truncated: bool,
    /// Entries listed.
    pub entries: usize,
    /// Entries the `.gitignore` files exclude.
    pub excluded: usize,
    /// Directories whose `.gitignore` could not be checked (truncated trees only).
    pub unchecked_dirs: usize,
}

impl FilteredTree {
    fn to_cache_value(&self) -> Vec<u8> {
        let mut value = serde_json::to_vec(&self.summary).unwrap_or_default();
        value.push(b'\n');
        value.extend_from_slice(self.listing.as_bytes());
        value
    }

    fn from_cache_value(value: Vec<u8>) -> Option<Self> {
        let split = value.iter().position(|b| *b == b'\n')?;
        let summary = serde_json::from_slice(&value[..split]).ok()?;
        let mut listing = value;
        listing.drain(..=split);
        Some(FilteredTree {
            summary,
            listing: String::from_utf8(listing).ok()?,
        })
    }
}

pub struct TreeService {
    pub github: Arc<GitHubClient>,
    pub cache: Arc<Cache>,
}

impl TreeService {
    /// The filtered tree, from the cache or built from GitHub (and then cached).
    pub async fn filtered_tree(
        &self,
        owner: &str,
        repo: &str,
        git_ref: &str,
    ) -> Result<FilteredTree, GitHubError> {
        let key = mcp_tree(owner, repo, git_ref);
        if let Lookup::Hit(bytes) = self.cache.get("tree", &key).await {
            match FilteredTree::from_cache_value(bytes) {
                Some(tree) => return Ok(tree),
                None => tracing::warn!(key, "unreadable cached tree; rebuilding"),
            }
        }
        let tree = self.github.tree(owner, repo, git_ref).await?;
        let mut gitignores = self.gitignore_blobs(owner, repo, &tree.tree).await?;
        let mut unchecked_dirs = 0;
        if tree.truncated {
            unchecked_dirs = self
                .probe_unlisted_gitignores(owner, repo, git_ref, &tree.tree, &mut gitignores)
                .await?;
        }
        let (kept, excluded) = Rules::new(&gitignores).filter(&tree.tree);
        let filtered = FilteredTree {
            summary: TreeSummary {
                sha: tree.sha,
                truncated: tree.truncated,
                entries: kept.len(),
                excluded,
                unchecked_dirs,
            },
            listing: render_listing(&kept),
        };
        self.cache
            .set_many(&[(key, filtered.to_cache_value())], MCP_TREE_TTL)
            .await;
        Ok(filtered)
    }

    /// Contents of every listed `.gitignore`, by directory: cached blobs first, the rest from
    /// GitHub (and cached by blob id).
    async fn gitignore_blobs(
        &self,
        owner: &str,
        repo: &str,
        entries: &[TreeEntry],
    ) -> Result<HashMap<String, String>, GitHubError> {
        let listed: Vec<(&str, &str)> = entries
            .iter()
            .filter_map(|e| e.gitignore_dir().map(|dir| (dir, e.sha.as_str())))
            .collect();
        let keys: Vec<String> = listed.iter().map(|(_, sha)| mcp_blob(sha)).collect();
        let cached = self
            .cache
            .get_many("blob", &keys)
            .await
            .unwrap_or_else(|| vec![None; keys.len()]);
        let mut files = HashMap::new();
        let mut missing = Vec::new();
        for ((dir, sha), cached) in listed.into_iter().zip(cached) {
            match cached {
                Some(bytes) => {
                    files.insert(dir.to_owned(), String::from_utf8_lossy(&bytes).into_owned());
                }
                None => missing.push((dir.to_owned(), sha.to_owned())),
            }
        }
        let fetched: Vec<(String, String, Vec<u8>)> = stream::iter(missing)
            .map(|(dir, sha)| async move {
                self.github
                    .blob(owner, repo, &sha)
                    .await
                    .map(|bytes| (dir, sha, bytes))
            })
            .buffer_unordered(BLOB_FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        let mut to_cache = Vec::new();
        for (dir, sha, bytes) in fetched {
            files.insert(dir, String::from_utf8_lossy(&bytes).into_owned());
            to_cache.push((mcp_blob(&sha), bytes));
        }
        self.cache.set_many(&to_cache, MCP_BLOB_TTL).await;
        Ok(files)
    }

    /// For a truncated tree, a directory without a listed `.gitignore` may still have one past
    /// the cut: ask GitHub (at most [`MAX_GITIGNORE_PROBES`] per call), remembering the ones
    /// that have none. Returns how many directories stay unchecked.
    async fn probe_unlisted_gitignores(
        &self,
        owner: &str,
        repo: &str,
        git_ref: &str,
        entries: &[TreeEntry],
        gitignores: &mut HashMap<String, String>,
    ) -> Result<usize, GitHubError> {
        let dirs: Vec<&str> = std::iter::once("")
            .chain(
                entries
                    .iter()
                    .filter(|e| e.kind == EntryKind::Tree)
                    .map(|e| e.path.as_str()),
            )
            .filter(|dir| !gitignores.contains_key(*dir))
            .collect();
        let keys: Vec<String> = dirs
            .iter()
            .map(|dir| mcp_null_gitignore(owner, repo, git_ref, dir))
            .collect();
        let sentinels = self
            .cache
            .get_many("null_gitignore", &keys)
            .await
            .unwrap_or_else(|| vec![None; keys.len()]);
        let unknown: Vec<&str> = dirs
            .into_iter()
            .zip(sentinels)
            .filter(|(_, sentinel)| sentinel.is_none())
            .map(|(dir, _)| dir)
            .collect();
        let unchecked = unknown.len().saturating_sub(MAX_GITIGNORE_PROBES);
        // The contents API resolves an absent ref to the default branch, which is what HEAD means.
        let contents_ref = (git_ref != "HEAD").then_some(git_ref);
        let mut sentinels_to_write = Vec::new();
        let mut blobs_to_write = Vec::new();
        for dir in unknown.into_iter().take(MAX_GITIGNORE_PROBES) {
            let path = if dir.is_empty() {
                ".gitignore".to_owned()
            } else {
                format!("{dir}/.gitignore")
            };
            match self.github.contents(owner, repo, &path, contents_ref).await {
                Ok(Contents::File {
                    sha,
                    inline: Some(bytes),
                    ..
                }) => {
                    gitignores.insert(dir.to_owned(), String::from_utf8_lossy(&bytes).into_owned());
                    blobs_to_write.push((mcp_blob(&sha), bytes));
                }
                Ok(_) | Err(GitHubError::NotFound(_)) => {
                    sentinels_to_write.push((
                        mcp_null_gitignore(owner, repo, git_ref, dir),
                        SENTINEL.to_vec(),
                    ));
                }
                Err(error) => return Err(error),
            }
        }
        self.cache
            .set_many(&sentinels_to_write, MCP_NULL_GITIGNORE_TTL)
            .await;
        self.cache.set_many(&blobs_to_write, MCP_BLOB_TTL).await;
        Ok(unchecked)
    }
}

fn render_listing(entries: &[&TreeEntry]) -> String {
    let mut listing = String::with_capacity(entries.len() * 48);
    for entry in entries {
        listing.push_str(&entry.path);
        match entry.kind {
            EntryKind::Tree => listing.push('/'),
            EntryKind::Commit => listing.push_str(" (submodule)"),
            EntryKind::Blob if entry.mode == "120000" => listing.push_str(" (symlink)"),
            EntryKind::Blob => listing.push_str(&format!(" ({} bytes)", entry.size.unwrap_or(0))),
        }
        listing.push('\n');
    }
    listing
}

impl FilteredTree {
    /// The tool's text: a summary line, warnings, then the entries (under `prefix` if given).
    /// `None` when `prefix` matches nothing.
    pub fn render(
        &self,
        owner: &str,
        repo: &str,
        git_ref: &str,
        prefix: Option<&str>,
    ) -> Option<String> {
        let selected: Vec<&str> = match prefix {
            None => Vec::new(),
            Some(prefix) => {
                let dir = format!("{prefix}/");
                let file = format!("{prefix} (");
                self.listing
                    .lines()
                    .filter(|l| l.starts_with(&dir) || l.starts_with(&file))
                    .collect()
            }
        };
        if prefix.is_some() && selected.is_empty() {
            return None;
        }
        let summary = &self.summary;
        let count = if prefix.is_some() {
            selected.len()
        } else {
            summary.entries
        };
        let scope = prefix.map(|p| format!(" under {p}/")).unwrap_or_default();
        let mut out = String::with_capacity(self.listing.len() + 512);
        out.push_str(&format!(
            "{owner}/{repo} at {git_ref} (tree {}): {count} entries{scope}; {} excluded by .gitignore\n",
            summary.sha, summary.excluded
        ));
        if summary.truncated {
            out.push_str("WARNING: GitHub truncated this tree (too many entries); entries past its limit are missing.\n");
        }
        if summary.unchecked_dirs > 0 {
            out.push_str(&format!(
                "NOTE: the .gitignore of {} directories could not be checked; some ignored files may be listed.\n",
                summary.unchecked_dirs
            ));
        }
        if prefix.is_some() {
            for line in selected {
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push_str(&self.listing);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> FilteredTree {
        FilteredTree {
            summary: TreeSummary {
                sha: "abc".to_owned(),
                truncated: false,
                entries: 4,
                excluded: 2,
                unchecked_dirs: 0,
            },
            listing: "src/\nsrc/lib.rs (10 bytes)\nsrcfile (3 bytes)\nREADME.md (5 bytes)\n"
                .to_owned(),
        }
    }

    #[test]
    fn prefix_selects_a_directory_or_a_file_but_not_a_sibling_with_the_same_start() {
        let text = tree()
            .render("o", "r", "main", Some("src"))
            .expect("entries");
        assert!(text.contains("src/lib.rs (10 bytes)"));
        assert!(!text.contains("srcfile"));
        assert!(text.contains("2 entries under src/"));
        assert!(tree().render("o", "r", "main", Some("missing")).is_none());
        let whole = tree().render("o", "r", "main", None).expect("entries");
        assert!(whole.contains("4 entries; 2 excluded by .gitignore"));
    }

    #[test]
    fn cache_values_round_trip() {
        let value = tree().to_cache_value();
        let again = FilteredTree::from_cache_value(value).expect("parses");
        assert_eq!(again.listing, tree().listing);
        assert_eq!(again.summary.entries, 4);
        assert!(FilteredTree::from_cache_value(b"not a tree".to_vec()).is_none());
    }
}
