//! `cargo xtask logs`: the services' logs in `<state>/logs`, merged in time order as Compose's
//! `logs` prints them: `postgres  | …`, a colour per service on a terminal.
//!
//! Every line the supervisor writes starts with its UTC time in a fixed-width form
//! ([`logfile::timestamp`]), so ordering is a byte comparison of those prefixes. A line without
//! one (written before timestamps, or by hand) sorts with the timestamped line before it in
//! its file, and before every timestamped line when there is none. The rotated files
//! (`name.log.1` …) are read too, as far back as `--since` or `--tail` needs.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};

use crate::config::StackConfig;
use crate::os::logfile::{self, TIMESTAMP_LEN};
use crate::stack::{Kind, UNITS};

/// How often `--follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// Lines of each service shown first when neither `--tail` nor `--since` says otherwise.
const DEFAULT_TAIL: usize = 50;

/// What `logs` prints, from the command line.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// The services chosen (none: all).
    pub(crate) services: Vec<String>,
    pub(crate) since: Option<DateTime<Utc>>,
    pub(crate) tail: Option<Tail>,
    pub(crate) follow: bool,
    pub(crate) timestamps: bool,
    pub(crate) prefix: bool,
}

/// How many of each service's last lines to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    All,
    Last(usize),
}

/// `--tail`: a number of lines, or `all`.
pub(crate) fn parse_tail(text: &str) -> Result<Tail, String> {
    match text {
        "all" => Ok(Tail::All),
        _ => text
            .parse()
            .map(Tail::Last)
            .map_err(|_| format!("{text:?} is not a number of lines; give one, or `all`")),
    }
}

/// `--since`: a duration back from now, or a time (local unless it carries `Z` or an offset).
pub(crate) fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    since_at(text, Utc::now(), &chrono::Local)
}

fn since_at<Tz: TimeZone>(
    text: &str,
    now: DateTime<Utc>,
    local: &Tz,
) -> Result<DateTime<Utc>, String> {
    if let Some(ago) = parse_duration(text) {
        return Ok(now - ago);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.to_utc());
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        date.and_hms_opt(0, 0, 0)
    });
    match naive {
        Some(naive) => local
            .from_local_datetime(&naive)
            .earliest()
            .map(|time| time.to_utc())
            .ok_or_else(|| format!("{text:?} does not exist in the local time zone")),
        None => Err(format!(
            "{text:?} is neither a duration (`10m`, `1h30m`, `45s`, `2d`) nor a time \
             (`2026-12-01T10:00:00`, local; `…Z` or `…+01:00` for UTC or an offset)"
        )),
    }
}

/// `10m`, `1h30m`, `90s`, `2d`, `500ms`: numbers each followed by a unit.
fn parse_duration(text: &str) -> Option<TimeDelta> {
    let mut rest = text;
    let mut total = TimeDelta::zero();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: i64 = rest[..digits].parse().ok()?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let step = match &rest[digits..digits + unit_len] {
            "ms" => TimeDelta::try_milliseconds(number)?,
            "s" => TimeDelta::try_seconds(number)?,
            "m" => TimeDelta::try_minutes(number)?,
            "h" => TimeDelta::try_hours(number)?,
            "d" => TimeDelta::try_days(number)?,
            _ => return None,
        };
        total = total.checked_add(&step)?;
        rest = &rest[digits + unit_len..];
    }
    (!text.is_empty()).then_some(total)
}

/// A time in the form our lines start with, for byte comparisons with them.
fn stamp_of(time: DateTime<Utc>) -> [u8; TIMESTAMP_LEN] {
    let text = time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    text.as_bytes().try_into().expect("fixed width")
}

/// Where a line sorts: its timestamp, or that of the last timestamped line before it (`None`
/// sorts first).
type Key = Option<[u8; TIMESTAMP_LEN]>;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    key: Key,
    /// Index of the service among the chosen ones.
    service: usize,
    /// The line as written, timestamp included, without its newline.
    text: Vec<u8>,
}

/// The lines of `text` with their keys: `key` is carried in from the lines before and updated.
/// Borrowed: a log is read whole, but only the lines shown are copied.
fn keys<'a>(text: &'a [u8], key: &mut Key) -> Vec<(Key, &'a [u8])> {
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
fn keyed(text: &[u8], service: usize, key: &mut Key) -> Vec<Line> {
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
fn last_lines<'a>(texts: &[&'a [u8]], n: usize) -> (Key, Vec<&'a [u8]>) {
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
fn start_of_last_lines(text: &[u8], n: usize) -> usize {
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
fn line_count(text: &[u8]) -> usize {
    let newlines = text.iter().filter(|b| **b == b'\n').count();
    newlines + usize::from(!text.is_empty() && !text.ends_with(b"\n"))
}

/// Where the first line stamped `since` or later begins in `text` (its length if there is
/// none), by bisection: the lines of a file are in time order, as the pumps write them, so
/// `--since 1m` does not read through a whole 10 MiB log. Lines without a stamp before that
/// line belong to an older one.
fn start_of_since(text: &[u8], since: [u8; TIMESTAMP_LEN]) -> usize {
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
fn first_stamp(text: &[u8]) -> Key {
    text.split(|b| *b == b'\n').find_map(logfile::timestamp_of)
}

/// One service's lines since `since` (rotated files included), the last `tail` of them, and
/// its current file opened at the end of what was read, for `--follow`.
fn read_service(
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
fn merge(services: Vec<Vec<Line>>) -> Vec<Line> {
    let mut all: Vec<Line> = services.into_iter().flatten().collect();
    all.sort_by_key(|line| line.key);
    all
}

/// One service's current log while `--follow` reads it.
struct Followed {
    path: PathBuf,
    file: Option<File>,
    service: usize,
    key: Key,
    /// A line whose end is not written yet.
    pending: Vec<u8>,
}

impl Followed {
    /// The whole lines written since the last call, across a rotation (the old file is read
    /// to its end before the new one) and from a file that appeared since.
    fn new_lines(&mut self) -> Vec<Line> {
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

/// How lines are printed: Compose's `name  | text`, padded to the longest chosen name.
struct Printer {
    names: Vec<&'static str>,
    colours: Option<Vec<anstyle::Style>>,
    width: usize,
    timestamps: bool,
    prefix: bool,
}

/// One colour per service, by its place in the table, as Compose gives them.
const PALETTE: [anstyle::AnsiColor; 6] = [
    anstyle::AnsiColor::Cyan,
    anstyle::AnsiColor::Yellow,
    anstyle::AnsiColor::Green,
    anstyle::AnsiColor::Magenta,
    anstyle::AnsiColor::Blue,
    anstyle::AnsiColor::BrightRed,
];

impl Printer {
    fn print(&self, out: &mut impl Write, line: &Line) -> io::Result<()> {
        if self.prefix {
            let name = self.names[line.service];
            let style = self.colours.as_ref().map(|c| c[line.service]);
            let style = style.unwrap_or_default();
            write!(out, "{style}{name:<width$} |{style:#} ", width = self.width)?;
        }
        let text = if self.timestamps {
            &line.text[..]
        } else {
            logfile::without_timestamp(&line.text)
        };
        out.write_all(text)?;
        out.write_all(b"\n")
    }
}

pub(crate) fn run(cfg: &StackConfig, options: &Options) -> anyhow::Result<ExitCode> {
    let all = names();
    let chosen: Vec<&'static str> = if options.services.is_empty() {
        all.clone()
    } else {
        all.iter()
            .copied()
            .filter(|name| options.services.iter().any(|s| s == name))
            .collect()
    };
    let paths: Vec<PathBuf> = chosen.iter().map(|name| cfg.log_file(name)).collect();
    if !paths.iter().any(|path| path.exists()) {
        bail!(
            "no logs of {} in {}; start the stack with `cargo xtask up`",
            chosen.join(", "),
            cfg.log_dir().display()
        );
    }
    let colours = anstream::AutoStream::choice(&io::stdout()) != anstream::ColorChoice::Never;
    let printer = Printer {
        colours: colours.then(|| {
            chosen
                .iter()
                .map(|name| {
                    let index = all.iter().position(|n| n == name).unwrap_or(0);
                    anstyle::Style::new().fg_color(Some(PALETTE[index % PALETTE.len()].into()))
                })
                .collect()
        }),
        width: chosen.iter().map(|name| name.len()).max().unwrap_or(0),
        names: chosen,
        timestamps: options.timestamps,
        prefix: options.prefix,
    };
    let tail = options.tail.unwrap_or(match options.since {
        Some(_) => Tail::All,
        None => Tail::Last(DEFAULT_TAIL),
    });
    let since = options.since.map(stamp_of);
    let (lines, mut followed): (Vec<Vec<Line>>, Vec<Option<Followed>>) = paths
        .iter()
        .enumerate()
        .map(|(service, path)| read_service(path, service, since, tail))
        .unzip();
    let printed = print_all(&printer, &merge(lines));
    if !options.follow || printed.is_err() {
        return done(printed);
    }
    for (service, followed) in followed.iter_mut().enumerate() {
        // A service that has not written yet is followed from its first line.
        if followed.is_none() {
            *followed = Some(Followed {
                path: paths[service].clone(),
                file: None,
                service,
                key: None,
                pending: Vec::new(),
            });
        }
    }
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        let batch = followed
            .iter_mut()
            .flatten()
            .map(Followed::new_lines)
            .collect();
        let printed = print_all(&printer, &merge(batch));
        if printed.is_err() {
            return done(printed);
        }
    }
}

fn print_all(printer: &Printer, lines: &[Line]) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    for line in lines {
        printer.print(&mut out, line)?;
    }
    out.flush()
}

/// A reader that went away (`logs | head`) is no error.
fn done(printed: io::Result<()>) -> anyhow::Result<ExitCode> {
    match printed {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(err).context("cannot print the logs"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// What has a log: every daemon of the table, and the supervisor.
pub(crate) fn names() -> Vec<&'static str> {
    UNITS
        .iter()
        .filter(|unit| matches!(unit.kind, Kind::Daemon(_)))
        .map(|unit| unit.name)
        .chain(["supervisor"])
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// Each `--since` text read at noon UTC in a local zone `east` seconds ahead of UTC.
    fn assert_since(east: i32, cases: &[(&str, &str)]) {
        let now = utc("2026-12-02T12:00:00Z");
        let zone = FixedOffset::east_opt(east).unwrap();
        for (text, want) in cases {
            assert_eq!(since_at(text, now, &zone), Ok(utc(want)), "{text}");
        }
    }

    #[test]
    fn since_takes_durations_back_from_now() {
        assert_since(
            0,
            &[
                ("10m", "2026-12-02T11:50:00Z"),
                ("1h30m", "2026-12-02T10:30:00Z"),
                ("45s", "2026-12-02T11:59:15Z"),
                ("2d", "2026-11-30T12:00:00Z"),
                ("1500ms", "2026-12-02T11:59:58.500Z"),
            ],
        );
        let zone = FixedOffset::east_opt(0).unwrap();
        for bad in ["", "10", "m", "10x", "1h30", "-5m", "ten minutes"] {
            let err = since_at(bad, Utc::now(), &zone).unwrap_err();
            assert!(err.contains("neither a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn since_takes_times_local_unless_they_carry_a_zone() {
        // An hour ahead of UTC, as Berlin in winter.
        assert_since(
            3600,
            &[
                ("2026-12-01T10:00:00", "2026-12-01T09:00:00Z"),
                ("2026-12-01 10:00:00.250", "2026-12-01T09:00:00.250Z"),
                ("2026-12-01T10:00", "2026-12-01T09:00:00Z"),
                ("2026-12-01", "2026-11-30T23:00:00Z"),
                ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"),
                ("2026-12-01T10:00:00+02:00", "2026-12-01T08:00:00Z"),
                ("2026-12-01T10:00:00.5-01:00", "2026-12-01T11:00:00.500Z"),
            ],
        );
        let zone = FixedOffset::east_opt(3600).unwrap();
        assert!(since_at("2026-13-01T10:00:00", Utc::now(), &zone).is_err());
    }

    #[test]
    fn tail_is_a_number_or_all() {
        assert_eq!(parse_tail("20"), Ok(Tail::Last(20)));
        assert_eq!(parse_tail("all"), Ok(Tail::All));
        assert!(parse_tail("-1").unwrap_err().contains("`all`"));
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

    #[test]
    fn lines_are_printed_with_padded_names_and_colour_only_when_asked() {
        let line = Line {
            key: None,
            service: 1,
            text: b"2026-12-02T01:00:00.000Z ready".to_vec(),
        };
        let printed = |printer: &Printer| {
            let mut out = Vec::new();
            printer.print(&mut out, &line).unwrap();
            String::from_utf8(out).unwrap()
        };
        let mut printer = Printer {
            names: vec!["postgres", "valkey"],
            colours: None,
            width: 8,
            timestamps: false,
            prefix: true,
        };
        assert_eq!(printed(&printer), "valkey   | ready\n");
        printer.timestamps = true;
        assert_eq!(
            printed(&printer),
            "valkey   | 2026-12-02T01:00:00.000Z ready\n"
        );
        printer.prefix = false;
        assert_eq!(printed(&printer), "2026-12-02T01:00:00.000Z ready\n");
        printer.prefix = true;
        printer.timestamps = false;
        let yellow = anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Yellow.into()));
        printer.colours = Some(vec![anstyle::Style::new(), yellow]);
        assert_eq!(printed(&printer), "\x1b[33mvalkey   |\x1b[0m ready\n");
    }
}
