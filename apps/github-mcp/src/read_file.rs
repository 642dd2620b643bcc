//! `repo.read_file`: a file's text, whole or a line range; binary files are described, not dumped.

use crate::github::{Contents, GitHubClient, GitHubError};

/// What the tool answers.
pub enum FileAnswer {
    Text { text: String, note: String },
    Binary { note: String },
}

/// Why a read is refused (besides GitHub's own errors).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error("{path} is a directory; list it with repo.tree and its path argument")]
    Directory { path: String },
    #[error("{path} is a {kind}, not a regular file")]
    NotAFile { path: String, kind: String },
    #[error(
        "{path} is {size} bytes, over the {limit}-byte limit (MCP_MAX_FILE_BYTES); read a smaller file"
    )]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("start_line {start} is past the end of {path} ({total} lines)")]
    PastEnd {
        path: String,
        start: usize,
        total: usize,
    },
}

pub async fn read_file(
    github: &GitHubClient,
    owner: &str,
    repo: &str,
    path: &str,
    git_ref: Option<&str>,
    lines: (Option<u32>, Option<u32>),
) -> Result<FileAnswer, ReadError> {
    let (sha, size, inline) = match github.contents(owner, repo, path, git_ref).await? {
        Contents::File { sha, size, inline } => (sha, size, inline),
        Contents::Directory => {
            return Err(ReadError::Directory {
                path: path.to_owned(),
            });
        }
        Contents::Other { kind } => {
            return Err(ReadError::NotAFile {
                path: path.to_owned(),
                kind,
            });
        }
    };
    let limit = github.max_file_bytes();
    if size > limit {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            size,
            limit,
        });
    }
    let bytes = match inline {
        Some(bytes) => bytes,
        // Over GitHub's 1 MB contents limit: the JSON carries no content; ask for the raw bytes.
        None => {
            github
                .raw_contents(owner, repo, path, git_ref, limit)
                .await?
        }
    };
    if is_binary(&bytes) {
        return Ok(FileAnswer::Binary {
            note: format!(
                "{path} is a binary file ({size} bytes, blob {sha}); its content is not shown"
            ),
        });
    }
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let (selected, first, last, total) =
        select_lines(&text, lines.0, lines.1).ok_or_else(|| ReadError::PastEnd {
            path: path.to_owned(),
            start: lines.0.unwrap_or(1) as usize,
            total: text.lines().count(),
        })?;
    let note = format!("{path}: lines {first}-{last} of {total}, {size} bytes, blob {sha}");
    Ok(FileAnswer::Text {
        text: selected.to_owned(),
        note,
    })
}

/// Git's heuristic: a NUL byte in the first 8000 bytes means binary; so does invalid UTF-8.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0) || std::str::from_utf8(bytes).is_err()
}

/// The 1-based inclusive line range (ends clamped), with its bounds and the total line count;
/// `None` if `start` is past the end.
fn select_lines(
    text: &str,
    start: Option<u32>,
    end: Option<u32>,
) -> Option<(&str, usize, usize, usize)> {
    let total = text.lines().count();
    let first = start.unwrap_or(1) as usize;
    if total == 0 {
        return (first == 1).then_some(("", 0, 0, 0));
    }
    if first > total {
        return None;
    }
    let last = end.map_or(total, |e| (e as usize).min(total));
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let begin = offsets[first - 1];
    let finish = offsets.get(last).copied().unwrap_or(text.len());
    Some((&text[begin..finish], first, last, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges_are_inclusive_and_clamped() {
        let text = "one\ntwo\nthree\nfour\n";
        assert_eq!(
            select_lines(text, Some(2), Some(3)),
            Some(("two\nthree\n", 2, 3, 4))
        );
        assert_eq!(select_lines(text, None, None), Some((text, 1, 4, 4)));
        assert_eq!(
            select_lines(text, Some(4), Some(99)),
            Some(("four\n", 4, 4, 4))
        );
        assert_eq!(select_lines(text, Some(5), None), None);
        assert_eq!(
            select_lines("no newline", Some(1), Some(1)),
            Some(("no newline", 1, 1, 1))
        );
    }

    #[test]
    fn binary_is_recognised() {
        assert!(is_binary(b"\x89PNG\r\n\x1a\n\0\0"));
        assert!(is_binary(&[0xff, 0xfe, 0x41]));
        assert!(!is_binary("plain text ü\n".as_bytes()));
    }
}
