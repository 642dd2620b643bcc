//! Keeps `infra/valkey/NAMESPACES.md` and `amtp_valkey::keys` in agreement, in both directions:
//! every documented key has a builder with the same pattern and TTL, and every builder and TTL
//! constant in `keys.rs` is documented.

use std::collections::BTreeMap;
use std::time::Duration;

use amtp_valkey::keys;

const DOC: &str = include_str!("../../../../infra/valkey/NAMESPACES.md");
const KEYS_SOURCE: &str = include_str!("../../src/keys.rs");

const NAMESPACE_HEADER: &str = "| Purpose | Key pattern | TTL |";
const BUILDER_HEADER: &str = "| Key pattern | Builder | TTL constant |";

/// SHA-256 of "abc", the FIPS 180-2 test vector, in lowercase hex.
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// A builder of `keys` with the pattern it produces and its TTL constant.
struct Builder {
    name: &'static str,
    pattern: String,
    ttl_name: &'static str,
    ttl: Duration,
}

/// Every builder, called with the table's placeholders as arguments, so that the key it builds
/// is the documented pattern itself.
fn builders() -> Vec<Builder> {
    let builder = |name, pattern, ttl_name, ttl| Builder {
        name,
        pattern,
        ttl_name,
        ttl,
    };
    vec![
        builder(
            "mcp_tree",
            keys::mcp_tree("{owner}", "{repo}", "{ref}"),
            "MCP_TREE_TTL",
            keys::MCP_TREE_TTL,
        ),
        builder(
            "mcp_blob",
            keys::mcp_blob("{sha}"),
            "MCP_BLOB_TTL",
            keys::MCP_BLOB_TTL,
        ),
        builder(
            "mcp_null_gitignore",
            keys::mcp_null_gitignore("{owner}", "{repo}", "{ref}", "{path}"),
            "MCP_NULL_GITIGNORE_TTL",
            keys::MCP_NULL_GITIGNORE_TTL,
        ),
        builder(
            "user_runs",
            keys::user_runs("{userId}"),
            "USER_RUNS_WINDOW",
            keys::USER_RUNS_WINDOW,
        ),
        builder(
            "repo_concurrency",
            keys::repo_concurrency("{repo}"),
            "REPO_CONCURRENCY_TTL",
            keys::REPO_CONCURRENCY_TTL,
        ),
        builder(
            "pr_lock",
            keys::pr_lock("{repo}"),
            "PR_LOCK_TTL",
            keys::PR_LOCK_TTL,
        ),
        builder("prompt", prompt_pattern(), "PROMPT_TTL", keys::PROMPT_TTL),
    ]
}

/// The prompt key hashes its argument, so the pattern is checked through a known digest.
fn prompt_pattern() -> String {
    let key = keys::prompt("{model}", "abc");
    assert_eq!(key, format!("amtp:prompt:{{model}}:{SHA256_ABC}"));
    key.replace(SHA256_ABC, "{sha256(prompt)}")
}

/// The body rows of the markdown table whose header line is `header`, cells trimmed and
/// unquoted from their backticks.
fn table(header: &str) -> Vec<Vec<String>> {
    let mut lines = DOC.lines().skip_while(|line| line.trim() != header);
    assert!(
        lines.next().is_some(),
        "NAMESPACES.md has no table with the header `{header}`"
    );
    lines
        .skip(1) // the |---| separator
        .take_while(|line| line.trim_start().starts_with('|'))
        .map(|line| {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

/// "3600 s sliding" -> 3600 s.
fn documented_ttl(cell: &str) -> Duration {
    let seconds = cell
        .strip_suffix(" s")
        .or_else(|| cell.split_once(" s ").map(|(seconds, _note)| seconds))
        .unwrap_or_else(|| panic!("TTL cell `{cell}` does not start with `<seconds> s`"));
    Duration::from_secs(seconds.parse().expect("TTL seconds are an integer"))
}

/// `pub fn` names and `pub const NAME: Duration = Duration::from_secs(N)` values of keys.rs.
fn source_items() -> (Vec<String>, BTreeMap<String, Duration>) {
    let mut functions = Vec::new();
    let mut durations = BTreeMap::new();
    for line in KEYS_SOURCE.lines() {
        if let Some(rest) = line.strip_prefix("pub fn ") {
            let name = rest.split('(').next().expect("fn name");
            functions.push(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("pub const ")
            && let Some((name, value)) = rest.split_once(": Duration = Duration::from_secs(")
        {
            let seconds = value
                .trim_end_matches(");")
                .parse()
                .expect("literal seconds");
            durations.insert(name.to_owned(), Duration::from_secs(seconds));
        }
    }
    (functions, durations)
}

#[test]
fn every_documented_key_has_a_builder_with_the_same_pattern_and_ttl() {
    let builders = builders();
    let rows = table(NAMESPACE_HEADER);
    assert_eq!(rows.len(), builders.len(), "one row per builder");
    for row in rows {
        let [purpose, pattern, ttl] = row.as_slice() else {
            panic!("namespace row {row:?} does not have 3 cells");
        };
        let builder = builders
            .iter()
            .find(|b| &b.pattern == pattern)
            .unwrap_or_else(|| panic!("`{pattern}` ({purpose}) has no builder in keys.rs"));
        assert_eq!(
            documented_ttl(ttl),
            builder.ttl,
            "TTL of `{pattern}`: NAMESPACES.md says {ttl}, keys::{} says otherwise",
            builder.ttl_name
        );
    }
}

#[test]
fn every_builder_is_documented_with_its_ttl_constant() {
    let namespace_patterns: Vec<String> = table(NAMESPACE_HEADER)
        .into_iter()
        .map(|row| row[1].clone())
        .collect();
    let builder_rows = table(BUILDER_HEADER);
    for builder in builders() {
        assert!(
            namespace_patterns.contains(&builder.pattern),
            "keys::{} builds `{}`, which the namespace table lacks",
            builder.name,
            builder.pattern
        );
        let row = builder_rows
            .iter()
            .find(|row| row[0] == builder.pattern)
            .unwrap_or_else(|| panic!("`{}` is missing from the builder table", builder.pattern));
        assert!(
            row[1].starts_with(&format!("{}(", builder.name)),
            "builder table names `{}` for `{}`, the code uses keys::{}",
            row[1],
            builder.pattern,
            builder.name
        );
        assert_eq!(
            row[2], builder.ttl_name,
            "TTL constant of `{}`",
            builder.pattern
        );
    }
    assert_eq!(
        builder_rows.len(),
        builders().len(),
        "one builder row per builder"
    );
}

#[test]
fn keys_rs_has_no_builder_or_ttl_this_test_does_not_know() {
    let (functions, durations) = source_items();
    let builders = builders();
    for name in &functions {
        assert!(
            builders.iter().any(|b| b.name == name),
            "keys::{name} is not in this test's builder list: document it in NAMESPACES.md and \
             add it to builders() here"
        );
    }
    assert_eq!(
        functions.len(),
        builders.len(),
        "every builder is a `pub fn` in keys.rs"
    );
    for builder in &builders {
        assert_eq!(
            durations.get(builder.ttl_name),
            Some(&builder.ttl),
            "keys::{} in keys.rs",
            builder.ttl_name
        );
    }
    let probe_ttl = "HEALTH_PROBE_TTL";
    assert_eq!(durations.get(probe_ttl), Some(&keys::HEALTH_PROBE_TTL));
    assert_eq!(
        durations.len(),
        builders.len() + 1,
        "every Duration constant is a row's TTL or the probe's: {durations:?}"
    );
}

#[test]
fn naming_conventions_cover_the_root_and_the_probe_key() {
    let section = DOC
        .split_once("## Key Naming Conventions")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .expect("NAMESPACES.md has a `## Key Naming Conventions` section");
    let root = format!("{}:", keys::ROOT);
    assert!(
        section.contains(&format!("`{root}`")),
        "the section names the `{root}` root"
    );
    for builder in builders() {
        assert!(
            builder.pattern.starts_with(&root),
            "`{}` is under `{root}`",
            builder.pattern
        );
    }
    assert!(!keys::HEALTH_PROBE_KEY.starts_with(&root));
    assert!(section.contains(&format!("`{}`", keys::HEALTH_PROBE_KEY)));
    assert_eq!(keys::HEALTH_PROBE_TTL, Duration::from_secs(1));
    assert!(
        section.contains("1 s TTL"),
        "the section gives the probe key's 1 s TTL"
    );
}
