//! repo.tree and repo.read_file through a real MCP client, with a real Valkey and the stand-in.

use crate::common::{Harness, is_error, text, tree_paths};
use amtp_github_standin::fixture::SAMPLE_LARGE_FILE_BYTES;
use amtp_github_standin::{Fault, FaultKind};
use amtp_valkey::keys::{mcp_blob, mcp_null_gitignore, mcp_tree};
use serde_json::json;

const TREE_PATH: &str = "/repos/amtp/sample/git/trees";
const BLOB_PATH: &str = "/repos/amtp/sample/git/blobs";

#[tokio::test]
async fn tools_list_shows_both_tools_with_schemas_and_read_only_hints() {
    let harness = Harness::start().await;
    let client = harness.client().await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for (name, required) in [
        ("repo.tree", vec!["owner", "repo"]),
        ("repo.read_file", vec!["owner", "repo", "path"]),
    ] {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        assert!(
            tool.description.as_ref().is_some_and(|d| d.len() > 100),
            "{name} is described"
        );
        assert_eq!(
            tool.annotations.as_ref().and_then(|a| a.read_only_hint),
            Some(true),
            "{name}"
        );
        let schema = serde_json::to_value(tool.input_schema.as_ref()).expect("schema");
        assert_eq!(schema["type"], "object");
        assert!(
            schema["properties"]["ref"]["description"].is_string(),
            "{schema}"
        );
        let listed: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(listed, required, "{name}");
    }
    let _ = client.cancel().await;
}

#[tokio::test]
async fn tree_leaves_out_what_nested_gitignores_exclude() {
    let harness = Harness::start().await;
    let result = harness
        .call("repo.tree", json!({ "owner": "amtp", "repo": "sample" }))
        .await;
    assert!(!is_error(&result), "{}", text(&result));
    let paths = tree_paths(&result);
    for kept in [
        "README.md",
        "src/main.rs",
        "src/util/mod.rs",
        "src/vendor/patched.rs",
        "logs/keep.log",
        "docs/guide.md",
        "assets/logo.png",
        "scripts/run.sh",
    ] {
        assert!(
            paths.iter().any(|p| p == kept),
            "{kept} should be listed: {paths:?}"
        );
    }
    for ignored in [
        "target",
        "target/debug/app",
        "build.log",
        "logs/other.log",
        "docs/drafts",
        "docs/drafts/wip.md",
        "docs/notes.tmp",
        "vendor",
        "vendor/dep/lib.rs",
    ] {
        assert!(
            !paths.iter().any(|p| p == ignored),
            "{ignored} should be excluded: {paths:?}"
        );
    }
    assert!(
        text(&result)
            .lines()
            .next()
            .expect("summary")
            .contains("excluded by .gitignore")
    );

    let under_docs = harness
        .call(
            "repo.tree",
            json!({ "owner": "amtp", "repo": "sample", "path": "docs", "ref": "main" }),
        )
        .await;
    assert!(!is_error(&under_docs), "{}", text(&under_docs));
    let docs = tree_paths(&under_docs);
    assert!(docs.iter().all(|p| p.starts_with("docs")), "{docs:?}");
    assert!(docs.contains(&"docs/guide.md".to_owned()));
}

#[tokio::test]
async fn a_repeated_tree_call_makes_zero_github_calls_and_keys_follow_the_contract() {
    let harness = Harness::start().await;
    let args = json!({ "owner": "amtp", "repo": "sample", "ref": "main" });
    let first = harness.call("repo.tree", args.clone()).await;
    assert!(!is_error(&first), "{}", text(&first));
    // One tree request plus one per .gitignore (root, logs, docs); the token request aside.
    assert_eq!(harness.standin.calls_to(TREE_PATH), 1);
    assert_eq!(harness.standin.calls_to(BLOB_PATH), 3);

    harness.standin.reset_calls();
    let second = harness.call("repo.tree", args).await;
    assert_eq!(text(&second), text(&first));
    assert_eq!(
        harness.standin.calls(),
        0,
        "cached call reached GitHub: {:?}",
        harness.standin.call_log()
    );

    let tree_ttl = harness.ttl(&mcp_tree("amtp", "sample", "main"));
    assert!((590..=600).contains(&tree_ttl), "tree TTL {tree_ttl}");
    let root_gitignore = amtp_github_standin::fixture::git_object_id(
        "blob",
        b"# build output\ntarget/\n*.log\n/vendor/\n",
    );
    let blob_ttl = harness.ttl(&mcp_blob(&root_gitignore));
    assert!((3590..=3600).contains(&blob_ttl), "blob TTL {blob_ttl}");

    // A new ref reuses the cached .gitignore blobs: only the tree is fetched.
    harness.standin.reset_calls();
    let by_head = harness
        .call("repo.tree", json!({ "owner": "amtp", "repo": "sample" }))
        .await;
    assert!(!is_error(&by_head));
    assert_eq!(harness.standin.calls_to(TREE_PATH), 1);
    assert_eq!(harness.standin.calls_to(BLOB_PATH), 0);
}

#[tokio::test]
async fn a_truncated_tree_is_flagged_and_directories_without_gitignore_get_a_sentinel() {
    let harness = Harness::start().await;
    // Keep the first 6 entries: .gitignore, Cargo.toml, README.md, assets/, assets/logo.png, build.log.
    harness.standin.inject(Fault::new(
        TREE_PATH,
        2,
        FaultKind::TruncatedTree { keep: 6 },
    ));
    let result = harness
        .call(
            "repo.tree",
            json!({ "owner": "amtp", "repo": "sample", "ref": "main" }),
        )
        .await;
    assert!(!is_error(&result), "{}", text(&result));
    assert!(
        text(&result).contains("WARNING: GitHub truncated"),
        "{}",
        text(&result)
    );
    assert!(!tree_paths(&result).contains(&"build.log".to_owned()));
    let sentinel = mcp_null_gitignore("amtp", "sample", "main", "assets");
    let ttl = harness.ttl(&sentinel);
    assert!((590..=600).contains(&ttl), "sentinel TTL {ttl}");

    // With the result evicted, a rebuild asks GitHub for the tree only: blobs and sentinels hold.
    harness
        .valkey
        .command(&["DEL", &mcp_tree("amtp", "sample", "main")]);
    harness.standin.reset_calls();
    let again = harness
        .call(
            "repo.tree",
            json!({ "owner": "amtp", "repo": "sample", "ref": "main" }),
        )
        .await;
    assert_eq!(text(&again), text(&result));
    assert_eq!(
        harness.standin.calls(),
        1,
        "{:?}",
        harness.standin.call_log()
    );
}

#[tokio::test]
async fn read_file_returns_text_and_line_ranges() {
    let harness = Harness::start().await;
    let whole = harness
        .call(
            "repo.read_file",
            json!({ "owner": "amtp", "repo": "sample", "path": "docs/guide.md" }),
        )
        .await;
    assert!(!is_error(&whole), "{}", text(&whole));
    assert!(
        text(&whole).starts_with("# Guide\n\nline 3\nline 4\nline 5\n"),
        "{}",
        text(&whole)
    );
    assert!(text(&whole).contains("lines 1-5 of 5"));

    let range = harness
        .call("repo.read_file", json!({ "owner": "amtp", "repo": "sample", "path": "docs/guide.md", "ref": "main", "start_line": 3, "end_line": 4 }))
        .await;
    assert!(
        text(&range).starts_with("line 3\nline 4\n"),
        "{}",
        text(&range)
    );
    assert!(text(&range).contains("lines 3-4 of 5"));

    let past_end = harness
        .call(
            "repo.read_file",
            json!({ "owner": "amtp", "repo": "sample", "path": "docs/guide.md", "start_line": 9 }),
        )
        .await;
    assert!(
        is_error(&past_end) && text(&past_end).contains("past the end"),
        "{}",
        text(&past_end)
    );

    let directory = harness
        .call(
            "repo.read_file",
            json!({ "owner": "amtp", "repo": "sample", "path": "src" }),
        )
        .await;
    assert!(
        is_error(&directory) && text(&directory).contains("directory"),
        "{}",
        text(&directory)
    );
}

#[tokio::test]
async fn read_file_reads_large_files_raw_and_describes_binary_ones() {
    let harness = Harness::start().await;
    harness.standin.reset_calls();
    let large = harness
        .call("repo.read_file", json!({ "owner": "amtp", "repo": "sample", "path": "data/large.txt", "start_line": 2, "end_line": 2 }))
        .await;
    assert!(!is_error(&large), "{}", text(&large));
    assert!(
        text(&large).starts_with("line 0000002 of the large fixture file\n"),
        "{}",
        text(&large)
    );
    // The JSON contents answer carries no content over 1 MB; the raw media type is asked next.
    assert_eq!(
        harness
            .standin
            .calls_to("/repos/amtp/sample/contents/data/large.txt"),
        2
    );

    let binary = harness
        .call(
            "repo.read_file",
            json!({ "owner": "amtp", "repo": "sample", "path": "assets/logo.png" }),
        )
        .await;
    assert!(!is_error(&binary), "{}", text(&binary));
    assert!(text(&binary).contains("binary file"), "{}", text(&binary));
    assert!(!text(&binary).contains("PNG"));
}

#[tokio::test]
async fn read_file_refuses_files_over_the_configured_maximum_with_their_size() {
    let harness = Harness::start_with(&[("MCP_MAX_FILE_BYTES", "1000000")]).await;
    let result = harness
        .call(
            "repo.read_file",
            json!({ "owner": "amtp", "repo": "sample", "path": "data/large.txt" }),
        )
        .await;
    assert!(is_error(&result));
    assert!(
        text(&result).contains(&format!("is {} bytes", large_size())),
        "{}",
        text(&result)
    );
}

fn large_size() -> usize {
    // The fixture stops at the first whole line past the target size.
    let line = "line 0000001 of the large fixture file\n".len();
    SAMPLE_LARGE_FILE_BYTES.div_ceil(line) * line
}
