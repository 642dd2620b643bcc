//! `cargo xtask logs`: the services' logs in `<state>/logs`, merged in time order as Compose's
//! `logs` prints them: `postgres  | …`, a colour per service on a terminal.
//!
//! Every line the supervisor writes starts with its UTC time in a fixed-width form
//! ([`logfile::timestamp`]), so ordering is a byte comparison of those prefixes. A line without
//! one (written before timestamps, or by hand) sorts with the timestamped line before it in
//! its file, and before every timestamped line when there is none. The rotated files
//! (`name.log.1` …) are read too, as far back as `--since` or `--tail` needs.

mod flags;
mod read;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};

use crate::config::StackConfig;
use crate::os::logfile::{self};
use crate::stack::{Kind, UNITS};

use flags::stamp_of;
pub(crate) use flags::{Tail, parse_duration, parse_since, parse_tail};
pub(crate) use read::Line;
use read::{Followed, Key, merge, read_service};

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
    let (lines, mut reader) = Reader::open(&paths, since, tail);
    let printed = print_all(&printer, &lines);
    if !options.follow || printed.is_err() {
        return crate::cmd::printed(printed, "logs");
    }
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        let printed = print_all(&printer, &reader.new_lines());
        if printed.is_err() {
            return crate::cmd::printed(printed, "logs");
        }
    }
}

/// Some services' logs read up to now, then followed: what `logs` and `logs -f` print, and
/// what `ui`'s log pane shows.
pub(crate) struct Reader {
    followed: Vec<Followed>,
}

impl Reader {
    /// The lines of the logs at `paths` since `since`, the last `tail` of each, merged in time
    /// order ([`Line::service`] is the index of its path), and a reader of those to come.
    pub(crate) fn open(paths: &[PathBuf], since: Key, tail: Tail) -> (Vec<Line>, Reader) {
        let (lines, followed): (Vec<Vec<Line>>, Vec<Option<Followed>>) = paths
            .iter()
            .enumerate()
            .map(|(service, path)| read_service(path, service, since, tail))
            .unzip();
        let followed = followed
            .into_iter()
            .enumerate()
            // A service that has not written yet is followed from its first line.
            .map(|(service, followed)| {
                followed.unwrap_or_else(|| Followed {
                    path: paths[service].clone(),
                    file: None,
                    service,
                    key: None,
                    pending: Vec::new(),
                })
            })
            .collect();
        (merge(lines), Reader { followed })
    }

    /// The whole lines written since the last call, merged in time order.
    pub(crate) fn new_lines(&mut self) -> Vec<Line> {
        merge(self.followed.iter_mut().map(Followed::new_lines).collect())
    }
}

fn print_all(printer: &Printer, lines: &[Line]) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    for line in lines {
        printer.print(&mut out, line)?;
    }
    out.flush()
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
    use super::*;

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
