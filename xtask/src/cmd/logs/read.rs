//! Reading the log files: each line keyed by its timestamp, a service's lines since a time or
//! its last few (its rotated files too, found by bisection rather than a scan), the services'
//! lines merged in time order, and a current file followed through rotation.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::flags::Tail;
use crate::os::logfile::{self, TIMESTAMP_LEN};

/// Where a line sorts: its timestamp, or that of the last timestamped line before it (`None`
/// sorts first).
pub(crate) type Key = Option<[u8; TIMESTAMP_LEN]>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(super) key: Key,
    /// Index of the service among the chosen ones.
    pub(crate) service: usize,
    /// The line as written, timestamp included, without its newline.
    pub(crate) text: Vec<u8>,
}

/// The lines of `text` with their keys: `key` is carried in from the lines before and updated.
/// Borrowed: a log is read whole, but only the lines shown are copied.
pub(super) fn keys<'a>(text: &'a [u8], key: &mut Key) -> Vec<(Key, &'a [u8])> {
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    // What follows the last newline: empty for a whole file.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|line| {
            if let Some(stamp) = logfile::timestamp_of(line) {
                *key = Some(stamp);
            }
            (*key, line)
        })
        .collect()
}

/// The lines of `text` as [`Line`]s of `service`, keyed as [`keys`] does.
pub(super) fn keyed(text: &[u8], service: usize, key: &mut Key) -> Vec<Line> {
    keys(text, key)
        .into_iter()
        .map(|(key, text)| Line {
            key,
            service,
            text: text.to_vec(),
        })
        .collect()
}

/// The texts (oldest first) cut to their last `n` lines in all, and the key those lines carry
/// in from the lines cut off.
pub(super) fn last_lines<'a>(texts: &[&'a [u8]], n: usize) -> (Key, Vec<&'a [u8]>) {
    let mut kept = Vec::new();
    let mut wanted = n;
    for (index, text) in texts.iter().enumerate().rev() {
        let start = start_of_last_lines(text, wanted);
        let tail = &text[start..];
        wanted -= line_count(tail).min(wanted);
        kept.insert(0, tail);
        if wanted == 0 {
            // The last stamped line before the kept ones: usually the line just before.
            let key = std::iter::once(&text[..start])
                .chain(texts[..index].iter().rev().copied())
                .find_map(|text| {
                    let mut lines = text.split(|b| *b == b'\n').rev();
                    lines.find_map(logfile::timestamp_of)
                });
            return (key, kept);
        }
    }
    (None, kept)
}

/// Where the last `n` lines of `text` begin (0 when it has no more than `n`).
pub(super) fn start_of_last_lines(text: &[u8], n: usize) -> usize {
    if n == 0 {
        return text.len();
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut newlines = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i);
    newlines.nth(n - 1).map_or(0, |i| i + 1)
}

/// How many lines [`keys`] finds in `text`.
pub(super) fn line_count(text: &[u8]) -> usize {
    let newlines = text.iter().filter(|b| **b == b'\n').count();
    newlines + usize::from(!text.is_empty() && !text.ends_with(b"\n"))
}

/// Where the first line stamped `since` or later begins in `text` (its length if there is
/// none), by bisection: the lines of a file are in time order, as the pumps write them, so
/// `--since 1m` does not read through a whole 10 MiB log. Lines without a stamp before that
/// line belong to an older one.
pub(super) fn start_of_since(text: &[u8], since: [u8; TIMESTAMP_LEN]) -> usize {
    // The first stamped line that starts at `pos` or later: its start and stamp.
    let stamped_from = |pos: usize| -> Option<(usize, [u8; TIMESTAMP_LEN])> {
        let mut start = match pos {
            0 => 0,
            _ => pos + text[pos - 1..].iter().position(|b| *b == b'\n')?,
        };
        while start < text.len() {
            let end = text[start..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(text.len(), |i| start + i + 1);
            if let Some(stamp) = logfile::timestamp_of(&text[start..end]) {
                return Some((start, stamp));
            }
            start = end;
        }
        None
    };
    let is_recent = |pos: usize| stamped_from(pos).is_none_or(|(_, stamp)| stamp >= since);
    let (mut low, mut high) = (0, text.len());
    while low < high {
        let middle = low + (high - low) / 2;
        if is_recent(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    stamped_from(low).map_or(text.len(), |(start, _)| start)
}

/// The first timestamp in a file's text.
pub(super) fn first_stamp(text: &[u8]) -> Key {
    text.split(|b| *b == b'\n').find_map(logfile::timestamp_of)
}

/// One service's lines since `since` (rotated files included), the last `tail` of them, and
/// its current file opened at the end of what was read, for `--follow`.
pub(super) fn read_service(
    path: &Path,
    service: usize,
    since: Key,
    tail: Tail,
) -> (Vec<Line>, Option<Followed>) {
    let mut current = File::open(path).ok();
    let mut newest_first: Vec<Vec<u8>> = Vec::new();
    // A line the supervisor is writing at this moment waits for `--follow`.
    let mut partial = Vec::new();
    if let Some(file) = current.as_mut() {
        let mut text = Vec::new();
        let _ = file.read_to_end(&mut text);
        let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        partial = text.split_off(whole);
        newest_first.push(text);
    }
    // Lines still wanted from older files for `--tail`.
    let mut wanted = match tail {
        Tail::Last(n) => n,
        Tail::All => usize::MAX,
    };
    for n in 1..=logfile::KEEP {
        let enough = newest_first.last().is_some_and(|text| match since {
            Some(since) => first_stamp(text).is_some_and(|first| first < since),
            // Counted from the end only: the file may be long, the tail is short.
            None if start_of_last_lines(text, wanted) > 0 => true,
            None => {
                wanted -= line_count(text).min(wanted);
                wanted == 0
            }
        });
        if enough {
            break;
        }
        match fs::read(logfile::rotated(path, n)) {
            Ok(text) => newest_first.push(text),
            Err(_) => break,
        }
    }
    let oldest_first: Vec<&[u8]> = newest_first.iter().rev().map(Vec::as_slice).collect();
    let (mut key, texts) = match (since, tail) {
        // Only the end of a long log is keyed: `logs` and `logs -f` stay quick on 10 MiB.
        (None, Tail::Last(n)) => last_lines(&oldest_first, n),
        (None, Tail::All) => (None, oldest_first),
        (Some(since), _) => {
            let recent = oldest_first
                .iter()
                .map(|text| &text[start_of_since(text, since)..]);
            (None, recent.collect())
        }
    };
    let mut lines: Vec<(Key, &[u8])> = texts
        .into_iter()
        .flat_map(|text| keys(text, &mut key))
        .filter(|(key, _)| since.is_none_or(|since| key.is_some_and(|key| key >= since)))
        .collect();
    if let Tail::Last(n) = tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    let lines = lines
        .into_iter()
        .map(|(key, text)| Line {
            key,
            service,
            text: text.to_vec(),
        })
        .collect();
    let followed = current.map(|file| Followed {
        path: path.to_owned(),
        file: Some(file),
        service,
        key,
        pending: partial,
    });
    (lines, followed)
}

/// The lines of all services in time order; lines of the same time keep their services' order
/// and their own.
pub(super) fn merge(services: Vec<Vec<Line>>) -> Vec<Line> {
    let mut all: Vec<Line> = services.into_iter().flatten().collect();
    all.sort_by_key(|line| line.key);
    all
}

/// One service's current log while `--follow` reads it.
pub(super) struct Followed {
    pub(super) path: PathBuf,
    pub(super) file: Option<File>,
    pub(super) service: usize,
    pub(super) key: Key,
    /// A line whose end is not written yet.
    pub(super) pending: Vec<u8>,
}

impl Followed {
    /// The whole lines written since the last call, across a rotation (the old file is read
    /// to its end before the new one) and from a file that appeared since.
    pub(super) fn new_lines(&mut self) -> Vec<Line> {
        let mut text = std::mem::take(&mut self.pending);
        if let Some(file) = self.file.as_mut() {
            let _ = file.read_to_end(&mut text);
        }
        let replaced = match (&self.file, fs::metadata(&self.path)) {
            (Some(file), Ok(now)) => file.metadata().is_ok_and(|was| was.ino() != now.ino()),
            (None, Ok(_)) => true,
            (_, Err(_)) => false,
        };
        if replaced {
            self.file = File::open(&self.path).ok();
            if let Some(file) = self.file.as_mut() {
                let _ = file.read_to_end(&mut text);
            }
        }
        let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.pending = text.split_off(whole);
        keyed(&text, self.service, &mut self.key)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use chrono::{DateTime, Utc};

    use super::super::flags::stamp_of;
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{} {}", l.service, String::from_utf8_lossy(&l.text)))
            .collect()
    }

    #[test]
    fn services_merge_in_time_order_and_untimestamped_lines_keep_their_place() {
        let mut key = None;
        let postgres = keyed(
            b"written before timestamps\n\
              2026-12-02T01:00:00.000Z pg one\n\
              \tcontinued\n\
              2026-12-02T01:00:02.000Z pg two\n",
            0,
            &mut key,
        );
        let mut key = None;
        let valkey = keyed(
            b"2026-12-02T01:00:01.000Z vk one\n\
              2026-12-02T01:00:02.000Z vk two\n\
              2026-12-02T01:00:03.000Z vk three\n",
            1,
            &mut key,
        );
        assert_eq!(
            texts(&merge(vec![postgres, valkey])),
            [
                "0 written before timestamps",
                "0 2026-12-02T01:00:00.000Z pg one",
                "0 \tcontinued",
                "1 2026-12-02T01:00:01.000Z vk one",
                "0 2026-12-02T01:00:02.000Z pg two",
                "1 2026-12-02T01:00:02.000Z vk two",
                "1 2026-12-02T01:00:03.000Z vk three",
            ]
        );
    }

    /// `svc.log` and two rotated files, a minute per file.
    fn rotated_log(dir: &Path) -> PathBuf {
        let path = dir.join("svc.log");
        fs::write(
            logfile::rotated(&path, 2),
            "2026-12-02T01:00:00.000Z a\n2026-12-02T01:00:30.000Z b\n",
        )
        .unwrap();
        fs::write(
            logfile::rotated(&path, 1),
            "2026-12-02T01:01:00.000Z c\nno stamp\n2026-12-02T01:01:30.000Z d\n",
        )
        .unwrap();
        fs::write(
            &path,
            "2026-12-02T01:02:00.000Z e\n2026-12-02T01:02:30.000Z f\n",
        )
        .unwrap();
        path
    }

    fn contents(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(logfile::without_timestamp(&l.text)).into_owned())
            .collect()
    }

    #[test]
    fn since_and_tail_reach_into_the_rotated_files() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let path = rotated_log(dir);
        let since = |text: &str| Some(stamp_of(utc(text)));
        let read = |since: Key, tail| contents(&read_service(&path, 0, since, tail).0);
        assert_eq!(
            read(None, Tail::All),
            ["a", "b", "c", "no stamp", "d", "e", "f"]
        );
        assert_eq!(
            read(since("2026-12-02T01:00:30Z"), Tail::All),
            ["b", "c", "no stamp", "d", "e", "f"]
        );
        assert_eq!(
            read(since("2026-12-02T01:01:15Z"), Tail::All),
            ["d", "e", "f"],
            "an untimestamped line goes with the line before it"
        );
        assert_eq!(read(since("2026-12-02T01:02:00Z"), Tail::All), ["e", "f"]);
        assert!(read(since("2026-12-02T02:00:00Z"), Tail::All).is_empty());
        assert_eq!(read(None, Tail::Last(3)), ["d", "e", "f"]);
        assert_eq!(read(None, Tail::Last(4)), ["no stamp", "d", "e", "f"]);
        let (tail, _) = read_service(&path, 0, None, Tail::Last(4));
        assert_eq!(
            tail[0].key,
            since("2026-12-02T01:01:00Z"),
            "keyed by the line cut off"
        );
        assert_eq!(
            read(None, Tail::Last(6)),
            ["b", "c", "no stamp", "d", "e", "f"]
        );
        assert_eq!(read(None, Tail::Last(99)).len(), 7);
        assert_eq!(
            read(since("2026-12-02T01:00:00Z"), Tail::Last(2)),
            ["e", "f"]
        );
        assert!(read(None, Tail::Last(0)).is_empty());
    }

    #[test]
    fn the_bisection_finds_the_first_recent_line_as_a_linear_scan_would() {
        let mut text = b"before stamps\n".to_vec();
        for second in 0..40 {
            text.extend(format!("2026-12-02T01:00:{second:02}.000Z line {second}\n").bytes());
            if second % 7 == 0 {
                text.extend(b"  unstamped continuation\n");
            }
        }
        for second in 0..=41 {
            let since = stamp_of(utc(&format!("2026-12-02T01:00:{second:02}Z")));
            let linear = text
                .split_inclusive(|b| *b == b'\n')
                .scan(0, |offset, line| {
                    let start = *offset;
                    *offset += line.len();
                    Some((start, logfile::timestamp_of(line)))
                })
                .find(|(_, stamp)| stamp.is_some_and(|stamp| stamp >= since))
                .map_or(text.len(), |(start, _)| start);
            assert_eq!(
                start_of_since(&text, since),
                linear,
                "since second {second}"
            );
        }
        assert_eq!(
            start_of_since(b"", stamp_of(utc("2026-12-02T01:00:00Z"))),
            0
        );
    }

    #[test]
    fn follow_reads_new_lines_across_a_rotation() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let path = rotated_log(dir);
        let append = |path: &Path, text: &str| {
            let mut file = File::options().append(true).open(path).unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        // A line caught half written is shown once it is whole.
        append(&path, "2026-12-02T01:02:45.000Z ha");
        let (shown, followed) = read_service(&path, 0, None, Tail::Last(1));
        assert_eq!(contents(&shown), ["f"]);
        let mut followed = followed.expect("the current file is open");
        assert!(followed.new_lines().is_empty());
        append(&path, "lf\n");
        assert_eq!(contents(&followed.new_lines()), ["half"]);
        append(
            &path,
            "2026-12-02T01:03:00.000Z g\n2026-12-02T01:03:01.000Z par",
        );
        assert_eq!(contents(&followed.new_lines()), ["g"]);
        append(&path, "tial\n");
        fs::rename(&path, logfile::rotated(&path, 1)).unwrap();
        append(&logfile::rotated(&path, 1), "2026-12-02T01:03:02.000Z h\n");
        fs::write(&path, "2026-12-02T01:03:03.000Z i\n").unwrap();
        assert_eq!(contents(&followed.new_lines()), ["partial", "h", "i"]);
    }
}
