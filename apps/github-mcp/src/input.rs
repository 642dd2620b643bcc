//! Checks on tool arguments before anything reaches GitHub or the cache keys.
//!
//! Everything the model sends is untrusted: a path must stay inside the repository, and names
//! must be ones GitHub could have issued, so they are safe in URLs and cache keys.

/// Longest path accepted (git itself allows 4096 bytes on most systems).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest ref accepted.
pub const MAX_REF_BYTES: usize = 255;
/// Longest owner or repository name accepted (GitHub's repository limit).
pub const MAX_NAME_BYTES: usize = 100;

/// Why an argument was refused; the message names the argument and the rule.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} bytes long; the limit is {limit}")]
    TooLong {
        field: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("{field} contains a NUL or control character")]
    ControlCharacter { field: &'static str },
    #[error("{field} may contain only letters, digits, '.', '-' and '_'")]
    InvalidName { field: &'static str },
    #[error("path must be relative to the repository root, without a leading '/' or '\\'")]
    AbsolutePath,
    #[error("path must not contain '.' or '..' segments or empty segments ('//')")]
    Traversal,
    #[error(
        "ref is not a valid git ref name (no '..', '@{{', '~', '^', ':', '?', '*', '[', '\\' or spaces; no leading '-'; no part that is empty, begins with '.' or ends in '.lock'; not '@', no '.' at the end)"
    )]
    InvalidRef,
    #[error("start_line and end_line count from 1, and end_line must not be before start_line")]
    InvalidLineRange,
}

/// An owner or repository name.
pub fn name(field: &'static str, value: &str) -> Result<(), InputError> {
    common(field, value, MAX_NAME_BYTES)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if !value.chars().all(allowed) || value == "." || value == ".." {
        return Err(InputError::InvalidName { field });
    }
    Ok(())
}

/// A branch, tag or commit id, following `git check-ref-format`'s rules, and git's rule for
/// branch names that none begins with `-`.
pub fn git_ref(value: &str) -> Result<(), InputError> {
    common("ref", value, MAX_REF_BYTES)?;
    let forbidden =
        |c: char| c.is_whitespace() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\');
    let bad_component = |component: &str| {
        component.is_empty() || component.starts_with('.') || component.ends_with(".lock")
    };
    if value.contains("..")
        || value.contains("@{")
        || value == "@"
        || value.starts_with('-')
        || value.ends_with('.')
        || value.split('/').any(bad_component)
        || value.chars().any(forbidden)
    {
        return Err(InputError::InvalidRef);
    }
    Ok(())
}

/// A path inside the repository; returns it without surrounding slashes at the end.
pub fn repo_path(value: &str) -> Result<&str, InputError> {
    common("path", value, MAX_PATH_BYTES)?;
    if value.starts_with('/')
        || value.starts_with('\\')
        || value.contains('\\')
        || has_drive_prefix(value)
    {
        return Err(InputError::AbsolutePath);
    }
    let trimmed = value.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(InputError::Empty { field: "path" });
    }
    if trimmed
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(InputError::Traversal);
    }
    Ok(trimmed)
}

/// A 1-based, inclusive line range; either end may be open.
pub fn line_range(start: Option<u32>, end: Option<u32>) -> Result<(), InputError> {
    match (start, end) {
        (Some(0), _) | (_, Some(0)) => Err(InputError::InvalidLineRange),
        (Some(start), Some(end)) if end < start => Err(InputError::InvalidLineRange),
        _ => Ok(()),
    }
}

fn common(field: &'static str, value: &str, limit: usize) -> Result<(), InputError> {
    if value.is_empty() {
        return Err(InputError::Empty { field });
    }
    if value.len() > limit {
        return Err(InputError::TooLong {
            field,
            len: value.len(),
            limit,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(InputError::ControlCharacter { field });
    }
    Ok(())
}

fn has_drive_prefix(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_repository() {
        assert_eq!(repo_path("src/lib.rs"), Ok("src/lib.rs"));
        assert_eq!(repo_path("src/"), Ok("src"));
        assert_eq!(repo_path("../etc/passwd"), Err(InputError::Traversal));
        assert_eq!(repo_path("src/../../x"), Err(InputError::Traversal));
        assert_eq!(repo_path("./src"), Err(InputError::Traversal));
        assert_eq!(repo_path("a//b"), Err(InputError::Traversal));
        assert_eq!(repo_path("/etc/passwd"), Err(InputError::AbsolutePath));
        assert_eq!(repo_path("C:\\x"), Err(InputError::AbsolutePath));
        assert_eq!(
            repo_path("a\0b"),
            Err(InputError::ControlCharacter { field: "path" })
        );
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        assert!(matches!(repo_path(&long), Err(InputError::TooLong { .. })));
    }

    #[test]
    fn names_and_refs_follow_github_and_git_rules() {
        assert!(name("owner", "amtp-org").is_ok());
        assert!(name("repo", "my_repo.rs").is_ok());
        assert!(name("repo", "..").is_err());
        assert!(name("repo", "a/b").is_err());
        assert!(name("owner", "a:b").is_err());
        assert!(git_ref("main").is_ok());
        assert!(git_ref("feature/x").is_ok());
        assert!(git_ref("HEAD").is_ok());
        assert!(git_ref("a..b").is_err());
        assert!(git_ref("/main").is_err());
        assert!(git_ref("ma in").is_err());
        assert!(git_ref("main\0").is_err());
        for refused_by_git in ["-", "-x", ".a", "a/.b", "a.", "a.lock/b", "@", "a//b", "a/"] {
            assert_eq!(
                git_ref(refused_by_git),
                Err(InputError::InvalidRef),
                "{refused_by_git}"
            );
        }
    }

    #[test]
    fn line_ranges_are_one_based_and_ordered() {
        assert!(line_range(None, None).is_ok());
        assert!(line_range(Some(3), Some(3)).is_ok());
        assert!(line_range(Some(0), None).is_err());
        assert!(line_range(Some(5), Some(4)).is_err());
    }

    mod generated {
        //! Tool arguments generated at scale (seeded, a fixed number of cases), from the
        //! characters each rule is about; refs are checked against git itself.

        use crate::generated::seeded;
        use proptest::prelude::*;

        use super::super::*;

        /// Text built from the pieces the rules look at.
        fn hostile(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(pieces), 0..max)
                .prop_map(|parts| parts.concat())
        }

        const PATH_PIECES: &[&str] = &[
            "a", "src", "/", "//", ".", "..", "\\", "C:", ":", "%2e", "%2F", "#", "?", "&", " ",
            "\0", "\n", "\u{7f}", "\u{202e}", "é", "~",
        ];

        const REF_PIECES: &[&str] = &[
            "main", "v1", "/", ".", "..", ".lock", "@", "@{", "{", "~", "^", ":", "?", "*", "[",
            "\\", " ", "\t", "\u{7f}", "#", "%", "&", "=", "-", "é", "\u{a0}",
        ];

        /// What `git check-ref-format --allow-onelevel` says of `name` (any branch, tag or
        /// single-level name git could have made); git takes a leading `-` for an option, and
        /// refuses it in a branch name (`--branch`).
        fn git_accepts(name: &str) -> bool {
            if name.starts_with('-') {
                return false;
            }
            std::process::Command::new("git")
                .args(["check-ref-format", "--allow-onelevel", name])
                .status()
                .unwrap_or_else(|e| panic!("cannot run git (apt-get install git): {e}"))
                .success()
        }

        proptest! {
            #![proptest_config(seeded(256))]

            #[test]
            fn an_accepted_path_stays_inside_the_repository(value in hostile(PATH_PIECES, 8)) {
                if let Ok(path) = repo_path(&value) {
                    prop_assert_eq!(path, value.trim_end_matches('/'));
                    prop_assert!(!path.is_empty() && path.len() <= MAX_PATH_BYTES);
                    prop_assert!(!path.starts_with('/') && !path.contains('\\'));
                    prop_assert!(!path.chars().any(char::is_control));
                    for segment in path.split('/') {
                        prop_assert!(!matches!(segment, "" | "." | ".."), "{:?}", path);
                    }
                }
            }

            #[test]
            fn an_accepted_ref_is_one_git_accepts(value in hostile(REF_PIECES, 6)) {
                if git_ref(&value).is_ok() {
                    prop_assert!(git_accepts(&value), "{:?} is refused by git", value);
                }
            }

            #[test]
            fn an_accepted_name_is_safe_in_a_url_and_a_cache_key(value in hostile(PATH_PIECES, 6)) {
                if name("repo", &value).is_ok() {
                    prop_assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
                    prop_assert!(value != "." && value != "..");
                }
            }
        }
    }
}
