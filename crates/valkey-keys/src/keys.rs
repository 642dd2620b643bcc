//! Typed builders for every key in the namespace table, and their TTLs.
//!
//! The health probe key is deliberately outside the `amtp:` root so that it can never collide
//! with an application key.

use std::time::Duration;

use sha2::{Digest, Sha256};

/// Root namespace of every application key.
pub const ROOT: &str = "amtp";

/// The healthcheck's probe key (outside the `amtp:` namespace on purpose).
pub const HEALTH_PROBE_KEY: &str = "_amtp_health_ping";
/// TTL of the probe key: it expires by itself, no delete step.
pub const HEALTH_PROBE_TTL: Duration = Duration::from_secs(1);

/// `repo.tree` result cache.
pub const MCP_TREE_TTL: Duration = Duration::from_secs(600);
/// `.gitignore` blob cache.
pub const MCP_BLOB_TTL: Duration = Duration::from_secs(3600);
/// Sentinel for a directory without a `.gitignore`.
pub const MCP_NULL_GITIGNORE_TTL: Duration = Duration::from_secs(600);
/// Sliding window of the per-user run limit (also the key's safety TTL).
pub const USER_RUNS_WINDOW: Duration = Duration::from_secs(3600);
/// Safety TTL of the per-repo concurrency counter.
pub const REPO_CONCURRENCY_TTL: Duration = Duration::from_secs(3600);
/// PR serialization lock, per acquisition.
pub const PR_LOCK_TTL: Duration = Duration::from_secs(120);
/// Prompt cache.
pub const PROMPT_TTL: Duration = Duration::from_secs(3600);

/// `amtp:mcp:tree:{owner}:{repo}:{ref}`
pub fn mcp_tree(owner: &str, repo: &str, git_ref: &str) -> String {
    format!("{ROOT}:mcp:tree:{owner}:{repo}:{git_ref}")
}

/// `amtp:mcp:blob:{sha}`
pub fn mcp_blob(sha: &str) -> String {
    format!("{ROOT}:mcp:blob:{sha}")
}

/// `amtp:mcp:null_gitignore:{owner}:{repo}:{ref}:{path}`
pub fn mcp_null_gitignore(owner: &str, repo: &str, git_ref: &str, path: &str) -> String {
    format!("{ROOT}:mcp:null_gitignore:{owner}:{repo}:{git_ref}:{path}")
}

/// `amtp:rl:user:{userId}:runs`
pub fn user_runs(user_id: &str) -> String {
    format!("{ROOT}:rl:user:{user_id}:runs")
}

/// `amtp:rl:repo:{repo}:concurrency`
pub fn repo_concurrency(repo: &str) -> String {
    format!("{ROOT}:rl:repo:{repo}:concurrency")
}

/// `amtp:rl:repo:{repo}:pr_lock`
pub fn pr_lock(repo: &str) -> String {
    format!("{ROOT}:rl:repo:{repo}:pr_lock")
}

/// `amtp:prompt:{model}:{sha256(prompt)}` with the digest in lowercase hex.
pub fn prompt(model: &str, prompt: &str) -> String {
    let digest = Sha256::digest(prompt.as_bytes());
    format!("{ROOT}:prompt:{model}:{}", lower_hex(&digest))
}

/// Lowercase hex of `bytes`, the spelling of every digest or token that goes into a key or value.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_namespace_table() {
        assert_eq!(mcp_tree("o", "r", "main"), "amtp:mcp:tree:o:r:main");
        assert_eq!(mcp_blob("abc"), "amtp:mcp:blob:abc");
        assert_eq!(
            mcp_null_gitignore("o", "r", "main", "src/a"),
            "amtp:mcp:null_gitignore:o:r:main:src/a"
        );
        assert_eq!(user_runs("42"), "amtp:rl:user:42:runs");
        assert_eq!(repo_concurrency("o/r"), "amtp:rl:repo:o/r:concurrency");
        assert_eq!(pr_lock("o/r"), "amtp:rl:repo:o/r:pr_lock");
        assert_eq!(
            prompt("m", ""),
            "amtp:prompt:m:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(!HEALTH_PROBE_KEY.starts_with("amtp:"));
    }
}
