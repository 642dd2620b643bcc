//! The repositories the stand-in serves, stored as real git objects.
//!
//! Every blob, tree and commit id is the SHA-1 git itself would compute, so clients can rely on
//! ids exactly as they would against GitHub (a `.gitignore` blob cached by id stays valid).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use sha1::{Digest, Sha1};

/// Regular file mode as the API spells it.
pub const MODE_FILE: &str = "100644";
/// Executable file mode.
pub const MODE_EXECUTABLE: &str = "100755";
/// Directory mode as the API spells it (git writes `40000` inside tree objects).
pub const MODE_TREE: &str = "040000";

/// One entry of a tree object.
#[derive(Debug, Clone)]
pub struct TreeItem {
    pub name: String,
    pub mode: &'static str,
    pub sha: String,
    /// Byte size for blobs, `None` for trees.
    pub size: Option<usize>,
}

impl TreeItem {
    pub fn is_tree(&self) -> bool {
        self.size.is_none()
    }
}

/// A repository: branches, commits, trees and blobs.
#[derive(Debug, Default)]
pub struct Repository {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    /// Branch name → commit id.
    pub branches: HashMap<String, String>,
    /// Commit id → root tree id.
    pub commits: HashMap<String, String>,
    pub trees: HashMap<String, Vec<TreeItem>>,
    pub blobs: HashMap<String, Arc<[u8]>>,
}

/// What a path inside a commit resolves to.
pub enum PathTarget<'a> {
    Blob { item: &'a TreeItem },
    Tree { sha: &'a str, items: &'a [TreeItem] },
}

impl Repository {
    /// An empty repository (no commits): GitHub answers 409 for its git data.
    pub fn empty(id: u64, owner: &str, name: &str) -> Self {
        Repository {
            id,
            owner: owner.to_owned(),
            name: name.to_owned(),
            default_branch: "main".to_owned(),
            ..Default::default()
        }
    }

    /// A repository whose `main` branch holds exactly `files` (path, mode, content).
    pub fn from_files(id: u64, owner: &str, name: &str, files: Vec<FileSpec>) -> Self {
        let mut repo = Repository::empty(id, owner, name);
        let mut root = DirNode::default();
        for file in files {
            root.insert(&file.path, file.mode, file.content);
        }
        let tree_sha = repo.store_dir(root);
        let commit_sha = repo.store_commit(&tree_sha);
        repo.branches.insert("main".to_owned(), commit_sha);
        repo
    }

    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }

    /// Resolves a ref as the trees endpoint does: `HEAD`, a branch, a commit id or a tree id.
    pub fn resolve_tree(&self, git_ref: &str) -> Option<&str> {
        let git_ref = if git_ref == "HEAD" {
            self.default_branch.as_str()
        } else {
            git_ref
        };
        if let Some(commit) = self.branches.get(git_ref) {
            return self.commits.get(commit).map(String::as_str);
        }
        if let Some(tree) = self.commits.get(git_ref) {
            return Some(tree.as_str());
        }
        self.trees
            .get_key_value(git_ref)
            .map(|(sha, _)| sha.as_str())
    }

    /// Resolves a ref as the contents endpoint does: a branch or a commit id (default branch if none).
    pub fn resolve_commit_tree(&self, git_ref: Option<&str>) -> Option<&str> {
        let git_ref = git_ref.unwrap_or(&self.default_branch);
        let commit = self
            .branches
            .get(git_ref)
            .map(String::as_str)
            .unwrap_or(git_ref);
        self.commits.get(commit).map(String::as_str)
    }

    /// Walks `path` (no leading slash; empty = root) inside the tree `tree_sha`.
    pub fn lookup<'a>(&'a self, tree_sha: &'a str, path: &str) -> Option<PathTarget<'a>> {
        let mut current_sha = tree_sha;
        let mut current = self.trees.get(tree_sha)?;
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for (index, segment) in segments.iter().enumerate() {
            let item = current.iter().find(|item| item.name == *segment)?;
            let last = index + 1 == segments.len();
            if item.is_tree() {
                current_sha = &item.sha;
                current = self.trees.get(&item.sha)?;
            } else if last {
                return Some(PathTarget::Blob { item });
            } else {
                return None;
            }
        }
        Some(PathTarget::Tree {
            sha: current_sha,
            items: current,
        })
    }

    /// The recursive listing of a tree in git's order (each directory followed by its contents).
    pub fn walk(&self, tree_sha: &str, recursive: bool) -> Vec<(String, &TreeItem)> {
        let mut out = Vec::new();
        self.walk_into(tree_sha, "", recursive, &mut out);
        out
    }

    fn walk_into<'a>(
        &'a self,
        tree_sha: &str,
        prefix: &str,
        recursive: bool,
        out: &mut Vec<(String, &'a TreeItem)>,
    ) {
        let Some(items) = self.trees.get(tree_sha) else {
            return;
        };
        for item in items {
            let path = format!("{prefix}{}", item.name);
            out.push((path.clone(), item));
            if recursive && item.is_tree() {
                self.walk_into(&item.sha, &format!("{path}/"), recursive, out);
            }
        }
    }

    fn store_dir(&mut self, dir: DirNode) -> String {
        let mut items = Vec::with_capacity(dir.entries.len());
        for (name, node) in dir.entries {
            let item = match node {
                Node::File { mode, content } => {
                    let sha = git_object_id("blob", &content);
                    let size = content.len();
                    self.blobs.insert(sha.clone(), content.into());
                    TreeItem {
                        name,
                        mode,
                        sha,
                        size: Some(size),
                    }
                }
                Node::Dir(child) => {
                    let sha = self.store_dir(child);
                    TreeItem {
                        name,
                        mode: MODE_TREE,
                        sha,
                        size: None,
                    }
                }
            };
            items.push(item);
        }
        // Git orders tree entries by name, comparing a directory as if it ended in '/'.
        items.sort_by_key(sort_key);
        let mut object = Vec::new();
        for item in &items {
            let mode = item.mode.trim_start_matches('0');
            object.extend_from_slice(format!("{mode} {}\0", item.name).as_bytes());
            object.extend_from_slice(&hex_to_bytes(&item.sha));
        }
        let sha = git_object_id("tree", &object);
        self.trees.insert(sha.clone(), items);
        sha
    }

    fn store_commit(&mut self, tree_sha: &str) -> String {
        let body = format!(
            "tree {tree_sha}\nauthor AMTP Fixture <fixture@amtp.invalid> 1700000000 +0000\n\
             committer AMTP Fixture <fixture@amtp.invalid> 1700000000 +0000\n\nfixture\n"
        );
        let sha = git_object_id("commit", body.as_bytes());
        self.commits.insert(sha.clone(), tree_sha.to_owned());
        sha
    }
}

fn sort_key(item: &TreeItem) -> Vec<u8> {
    let mut key = item.name.as_bytes().to_vec();
    if item.is_tree() {
        key.push(b'/');
    }
    key
}

/// `sha1("<kind> <len>\0<content>")`, the id git gives an object.
pub fn git_object_id(kind: &str, content: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("{kind} {}\0", content.len()).as_bytes());
    hasher.update(content);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// A file to put into a fixture repository.
pub struct FileSpec {
    pub path: String,
    pub mode: &'static str,
    pub content: Vec<u8>,
}

impl FileSpec {
    pub fn text(path: &str, content: &str) -> Self {
        FileSpec {
            path: path.to_owned(),
            mode: MODE_FILE,
            content: content.as_bytes().to_vec(),
        }
    }
}

#[derive(Default)]
struct DirNode {
    entries: BTreeMap<String, Node>,
}

enum Node {
    File {
        mode: &'static str,
        content: Vec<u8>,
    },
    Dir(DirNode),
}

impl DirNode {
    fn insert(&mut self, path: &str, mode: &'static str, content: Vec<u8>) {
        match path.split_once('/') {
            None => {
                self.entries
                    .insert(path.to_owned(), Node::File { mode, content });
            }
            Some((dir, rest)) => {
                let node = self
                    .entries
                    .entry(dir.to_owned())
                    .or_insert_with(|| Node::Dir(DirNode::default()));
                if let Node::Dir(child) = node {
                    child.insert(rest, mode, content);
                }
            }
        }
    }
}

/// Size of the large text file in the sample repository: over GitHub's 1 MB contents limit.
pub const SAMPLE_LARGE_FILE_BYTES: usize = 1_500_000;

/// `amtp/sample`: nested `.gitignore` files, a negation, ignored directories, a binary file,
/// a file over 1 MB and plain text files.
pub fn sample_repository() -> Repository {
    let mut large = String::with_capacity(SAMPLE_LARGE_FILE_BYTES);
    let mut line = 1;
    while large.len() < SAMPLE_LARGE_FILE_BYTES {
        large.push_str(&format!("line {line:07} of the large fixture file\n"));
        line += 1;
    }
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    png.extend_from_slice(&[0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0, b'I', b'E', b'N', b'D']);
    let files = vec![
        FileSpec::text(".gitignore", "# build output\ntarget/\n*.log\n/vendor/\n"),
        FileSpec::text(
            "README.md",
            "# sample\n\nA fixture repository for the GitHub stand-in.\n",
        ),
        FileSpec::text(
            "Cargo.toml",
            "[package]\nname = \"sample\"\nversion = \"0.1.0\"\n",
        ),
        FileSpec::text("src/main.rs", "fn main() {\n    println!(\"hello\");\n}\n"),
        FileSpec::text("src/lib.rs", "pub mod util;\n"),
        FileSpec::text("src/util/mod.rs", "pub fn answer() -> u32 {\n    42\n}\n"),
        FileSpec::text(
            "src/vendor/patched.rs",
            "// not ignored: /vendor/ is anchored at the root\n",
        ),
        FileSpec::text("vendor/dep/lib.rs", "// ignored vendored code\n"),
        FileSpec::text("target/debug/app", "ELF pretend\n"),
        FileSpec::text("target/debug/deps/app.d", "deps\n"),
        FileSpec::text("build.log", "ignored log\n"),
        FileSpec::text("logs/.gitignore", "# keep one log on purpose\n!keep.log\n"),
        FileSpec::text("logs/keep.log", "kept by a negation\n"),
        FileSpec::text("logs/other.log", "ignored by the root *.log\n"),
        FileSpec::text("docs/.gitignore", "drafts/\n*.tmp\n"),
        FileSpec::text("docs/guide.md", "# Guide\n\nline 3\nline 4\nline 5\n"),
        FileSpec::text("docs/drafts/wip.md", "ignored draft\n"),
        FileSpec::text("docs/notes.tmp", "ignored temp\n"),
        FileSpec {
            path: "assets/logo.png".to_owned(),
            mode: MODE_FILE,
            content: png,
        },
        FileSpec::text("data/large.txt", &large),
        FileSpec {
            path: "scripts/run.sh".to_owned(),
            mode: MODE_EXECUTABLE,
            content: b"#!/bin/sh\necho run\n".to_vec(),
        },
    ];
    Repository::from_files(1001, "amtp", "sample", files)
}

/// Number of entries (blobs and trees) in `amtp/large`'s recursive tree.
pub const LARGE_TREE_ENTRIES: usize = 20_000;

/// `amtp/large`: exactly `entries` tree entries in 3 levels, with a root `.gitignore` and one in
/// every tenth module, so filtering and blob caching are exercised at scale.
pub fn large_repository(entries: usize) -> Repository {
    const DIRS_PER_MODULE: usize = 10;
    const FILES_PER_DIR: usize = 20;
    let mut files = vec![FileSpec::text(".gitignore", "*.log\nbuild/\n")];
    let mut count = 1;
    'modules: for module in 0.. {
        count += 1; // the module directory
        if module % 10 == 0 {
            files.push(FileSpec::text(
                &format!("mod_{module:04}/.gitignore"),
                "*.tmp\n",
            ));
            count += 1;
        }
        for dir in 0..DIRS_PER_MODULE {
            if count >= entries {
                break 'modules;
            }
            count += 1; // the sub-directory
            for file in 0..FILES_PER_DIR {
                if count >= entries {
                    break 'modules;
                }
                let extension = match file % 10 {
                    0 => "log",
                    5 => "tmp",
                    _ => "rs",
                };
                let path = format!("mod_{module:04}/dir_{dir:02}/file_{file:02}.{extension}");
                files.push(FileSpec::text(&path, &format!("// {path}\n")));
                count += 1;
            }
        }
    }
    Repository::from_files(1002, "amtp", "large", files)
}

/// A repository the stand-in serves: its `owner/name` and the function that builds it.
type Fixture = (&'static str, fn() -> Repository);

/// Every repository the stand-in serves.
const FIXTURES: [Fixture; 3] = [
    ("amtp/sample", sample_repository),
    ("amtp/large", || large_repository(LARGE_TREE_ENTRIES)),
    ("amtp/empty", || Repository::empty(1003, "amtp", "empty")),
];

/// Each fixture once built, in [`FIXTURES`]' order.
static BUILT: [OnceLock<Repository>; FIXTURES.len()] = [const { OnceLock::new() }; FIXTURES.len()];

/// The repository the stand-in serves as `owner/name`, built once per process on first use:
/// building `amtp/large` hashes 20,000 git objects, which must not delay the stand-in's start
/// (nor every in-process stand-in of a test that never asks for it).
pub fn repository(full_name: &str) -> Option<&'static Repository> {
    let index = FIXTURES.iter().position(|(name, _)| *name == full_name)?;
    Some(BUILT[index].get_or_init(FIXTURES[index].1))
}

/// Builds every fixture now (the binary does this beside serving, so the first call is fast).
pub fn build_all() {
    for (name, _) in FIXTURES {
        repository(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_object_id("blob", b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // The empty tree every git knows.
        assert_eq!(
            git_object_id("tree", b""),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
    }

    #[test]
    fn every_listed_repository_resolves_to_itself() {
        for (name, _) in FIXTURES {
            let repo = repository(name).expect(name);
            assert_eq!(format!("{}/{}", repo.owner, repo.name), name);
        }
        assert!(repository("amtp/missing").is_none());
    }

    #[test]
    fn large_repository_has_exactly_the_requested_entries() {
        let repo = large_repository(LARGE_TREE_ENTRIES);
        let tree = repo.resolve_tree("main").expect("main resolves");
        assert_eq!(repo.walk(tree, true).len(), LARGE_TREE_ENTRIES);
    }

    #[test]
    fn refs_resolve_like_github() {
        let repo = sample_repository();
        let commit = repo.branches["main"].clone();
        let tree = repo.resolve_tree("main").expect("branch").to_owned();
        assert_eq!(repo.resolve_tree("HEAD"), Some(tree.as_str()));
        assert_eq!(repo.resolve_tree(&commit), Some(tree.as_str()));
        assert_eq!(repo.resolve_tree(&tree), Some(tree.as_str()));
        assert_eq!(repo.resolve_tree("nope"), None);
        assert!(matches!(
            repo.lookup(&tree, "src/util/mod.rs"),
            Some(PathTarget::Blob { .. })
        ));
        assert!(matches!(
            repo.lookup(&tree, "src/util"),
            Some(PathTarget::Tree { .. })
        ));
        assert!(repo.lookup(&tree, "src/main.rs/x").is_none());
    }

    #[test]
    fn recursive_walk_lists_directories_before_their_contents() {
        let repo = sample_repository();
        let tree = repo.resolve_tree("main").expect("main resolves");
        let paths: Vec<String> = repo.walk(tree, true).into_iter().map(|(p, _)| p).collect();
        let docs = paths.iter().position(|p| p == "docs").expect("docs listed");
        let guide = paths
            .iter()
            .position(|p| p == "docs/guide.md")
            .expect("guide listed");
        assert!(docs < guide);
    }
}
