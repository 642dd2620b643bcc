//! The paths of the GitHub REST calls, built from the tools' checked arguments.
//!
//! [`input`](crate::input) keeps a path inside the repository and a ref to what git allows, but
//! both may still hold `%`, `#`, `?`, `&`, spaces or non-ASCII: each is percent-encoded here, so
//! that GitHub reads back exactly the owner, repository, ref and path the tool was given.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What stays as it is in a path segment or a query value: RFC 3986's unreserved characters.
/// Everything else, `%` and a `.` that makes `%2e` included, is encoded.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as path segments: each encoded, the `/` between them kept (a ref such as
/// `feature/x` is several segments in GitHub's own URLs).
fn segments(text: &str) -> String {
    text.split('/')
        .map(|segment| utf8_percent_encode(segment, ENCODED).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn segment(text: &str) -> String {
    utf8_percent_encode(text, ENCODED).to_string()
}

/// `GET /repos/{owner}/{repo}/git/trees/{ref}?recursive=1`.
pub(crate) fn tree(owner: &str, repo: &str, git_ref: &str) -> String {
    let (owner, repo, git_ref) = (segment(owner), segment(repo), segments(git_ref));
    format!("/repos/{owner}/{repo}/git/trees/{git_ref}?recursive=1")
}

/// `GET /repos/{owner}/{repo}/git/blobs/{sha}`.
pub(crate) fn blob(owner: &str, repo: &str, sha: &str) -> String {
    let (owner, repo, sha) = (segment(owner), segment(repo), segment(sha));
    format!("/repos/{owner}/{repo}/git/blobs/{sha}")
}

/// `GET /repos/{owner}/{repo}/contents/{path}[?ref=]`.
pub(crate) fn contents(owner: &str, repo: &str, path: &str, git_ref: Option<&str>) -> String {
    let (owner, repo, path) = (segment(owner), segment(repo), segments(path));
    match git_ref {
        Some(git_ref) => {
            let git_ref = segment(git_ref);
            format!("/repos/{owner}/{repo}/contents/{path}?ref={git_ref}")
        }
        None => format!("/repos/{owner}/{repo}/contents/{path}"),
    }
}

#[cfg(test)]
mod tests {
    use crate::generated::seeded;
    use proptest::prelude::*;
    use reqwest::Url;

    use super::*;
    use crate::input;

    /// A call as GitHub reads it: the decoded path segments and query pairs, and whether a
    /// fragment was cut off.
    fn as_read(path: &str) -> (Vec<String>, Vec<(String, String)>, bool) {
        let url = Url::parse(&format!("https://api.github.example{path}")).expect("a URL");
        let segments = url
            .path_segments()
            .expect("a path")
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .expect("UTF-8")
                    .into_owned()
            })
            .collect();
        let query = url.query_pairs().into_owned().collect();
        (segments, query, url.fragment().is_some())
    }

    fn text(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(pieces), 1..max).prop_map(|p| p.concat())
    }

    const PIECES: &[&str] = &[
        "a", "src", "/", ".", "%", "%2e", "%2F", "#", "?", "&", "=", "+", " ", ";", "é", "~", "@",
        "lib.rs",
    ];

    proptest! {
        #![proptest_config(seeded(512))]

        #[test]
        fn github_reads_back_the_ref_and_path_a_tool_was_given(
            owner in "[a-z0-9][a-z0-9._-]{0,5}",
            repo in "[a-z0-9][a-z0-9._-]{0,5}",
            path in text(PIECES, 6),
            git_ref in prop::option::of(text(PIECES, 4)),
        ) {
            prop_assume!(input::name("owner", &owner).is_ok() && input::name("repo", &repo).is_ok());
            let Ok(path) = input::repo_path(&path) else { return Ok(()) };
            if let Some(git_ref) = &git_ref {
                prop_assume!(input::git_ref(git_ref).is_ok());
                let (segments, query, fragment) = as_read(&tree(&owner, &repo, git_ref));
                prop_assert_eq!(&segments[..5], ["repos", &owner, &repo, "git", "trees"]);
                prop_assert_eq!(segments[5..].join("/"), git_ref.as_str());
                prop_assert_eq!(query, [("recursive".to_owned(), "1".to_owned())]);
                prop_assert!(!fragment);
            }
            let (segments, query, fragment) =
                as_read(&contents(&owner, &repo, path, git_ref.as_deref()));
            prop_assert_eq!(&segments[..4], ["repos", &owner, &repo, "contents"]);
            prop_assert_eq!(segments[4..].join("/"), path);
            let want: Vec<(String, String)> =
                git_ref.iter().map(|r| ("ref".to_owned(), r.clone())).collect();
            prop_assert_eq!(query, want);
            prop_assert!(!fragment);
        }
    }
}
