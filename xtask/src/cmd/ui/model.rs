//! What the view shows, as plain data: the services' rows (from the supervisor's state file
//! and `status`'s probes), the log pane, a pane of results, the key mode. Every change is a
//! method here; what needs the world (a request, a log to open) comes back as an [`Effect`]
//! for the terminal loop.

use std::collections::{HashMap, VecDeque};

use crate::cmd::status::{ServiceStatus, status_word};
use crate::os::usage::Usage;
use crate::supervisor::run_state::Status;

/// The log lines kept per view: enough to scroll back through, bounded in memory.
pub(crate) const LOG_LINES: usize = 5000;

/// One service as the supervisor's state file says, read ≥ 2×/s.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) pid: Option<i32>,
    /// Its port first, then its further ports.
    pub(crate) ports: Vec<u16>,
    pub(crate) uptime_s: Option<u64>,
    pub(crate) restarts: u32,
    /// The supervisor's message: a task's result, or the last error.
    pub(crate) message: Option<String>,
    /// Its dependencies that are not ready yet (while it waits).
    pub(crate) waiting_on: Vec<String>,
    /// A spawned daemon whose port already accepts connections.
    pub(crate) listening: bool,
    pub(crate) usage: Option<Usage>,
}

/// The stack as a whole.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stack {
    /// No supervisor (yet: `up --ui` builds first).
    NotRunning,
    Running {
        /// The supervisor's phase, in words (`starting`, `running`, `stopping`…).
        phase: String,
        supervisor: i32,
        /// The contract check's counts, once the supervisor made it.
        contract: Option<String>,
    },
}

/// What the help line takes keys for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Normal,
    /// `/` was pressed: the pattern typed so far.
    Search(String),
}

/// Whose log the log pane follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LogSource {
    Service(String),
    All,
}

/// One log line as shown: its service and its text without the timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub(crate) service: String,
    pub(crate) text: String,
}

/// The log pane: the lines read so far, how far back it is scrolled, wrapping, the search.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LogView {
    pub(crate) source: LogSource,
    pub(crate) lines: VecDeque<LogLine>,
    /// Lines up from the newest: 0 follows the log.
    pub(crate) scroll: usize,
    pub(crate) wrap: bool,
    pub(crate) search: Option<String>,
}

/// Results that replace the log pane until Esc: `verify`'s table, a request's progress, the
/// output of `up` (`up --ui`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pane {
    pub(crate) title: String,
    pub(crate) lines: Vec<String>,
    /// Shows its newest lines (progress), or from `scroll` on (a table).
    pub(crate) tail: bool,
    /// The first line shown, when not `tail`.
    pub(crate) scroll: usize,
}

impl Pane {
    /// A pane of progress lines, the newest shown.
    pub(crate) fn progress(title: impl Into<String>, lines: Vec<String>) -> Pane {
        Pane {
            title: title.into(),
            lines,
            tail: true,
            scroll: 0,
        }
    }

    /// A pane of results, read from the top.
    pub(crate) fn results(title: impl Into<String>, lines: Vec<String>) -> Pane {
        Pane {
            tail: false,
            ..Pane::progress(title, lines)
        }
    }
}

/// A request to the supervisor, by its command's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Restart,
    Stop,
    Start,
}

impl Verb {
    pub(crate) fn command(self) -> &'static str {
        match self {
            Verb::Restart => "restart",
            Verb::Stop => "stop",
            Verb::Start => "start",
        }
    }
}

/// What a key asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Quit,
    /// Move the selection by this many rows.
    Select(isize),
    Request(Verb),
    /// The log of every service, or back to the selected one's.
    ToggleAll,
    Verify,
    SearchBegin,
    SearchType(char),
    SearchErase,
    SearchSubmit,
    SearchCancel,
    /// The next match further back (`n`) or further on (`N`).
    NextMatch {
        older: bool,
    },
    ToggleWrap,
    /// Scroll back (positive) or on (negative) by this many lines.
    Scroll(isize),
    /// Back to the newest line, following.
    Follow,
    /// Close the results pane, or clear the search.
    Dismiss,
}

/// What the terminal loop must do after an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Quit,
    /// Open the log of the (new) source.
    ReloadLog,
    Request {
        verb: Verb,
        service: String,
    },
    Verify,
}

/// The whole view.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub(crate) stack: Stack,
    pub(crate) rows: Vec<Row>,
    /// `status`'s latest probe of each service, by name.
    pub(crate) health: HashMap<String, ServiceStatus>,
    pub(crate) selected: usize,
    pub(crate) log: LogView,
    pub(crate) pane: Option<Pane>,
    pub(crate) mode: Mode,
    /// The last request's outcome, or what is under way.
    pub(crate) notice: Option<String>,
}

impl Model {
    pub(crate) fn new(rows: Vec<Row>) -> Model {
        let first = rows.first().map(|row| row.name.clone()).unwrap_or_default();
        Model {
            stack: Stack::NotRunning,
            rows,
            health: HashMap::new(),
            selected: 0,
            log: LogView {
                source: LogSource::Service(first),
                lines: VecDeque::new(),
                scroll: 0,
                wrap: false,
                search: None,
            },
            pane: None,
            mode: Mode::Normal,
            notice: None,
        }
    }

    pub(crate) fn selected_name(&self) -> Option<&str> {
        self.rows.get(self.selected).map(|row| row.name.as_str())
    }

    /// A row's health in words and why it is not healthy: `status`'s probe while it is of
    /// the same process, else what the state file says (a restart shows at once).
    pub(crate) fn health_of<'a>(&'a self, row: &'a Row) -> (String, Option<&'a str>) {
        match self.health.get(&row.name) {
            Some(probed) if probed.pid == row.pid && row.status == Status::Ready => {
                (probed.health.clone(), probed.reason.as_deref())
            }
            _ => (status_word(row.status), row.message.as_deref()),
        }
    }

    /// New rows from the state file; the selection stays on its service.
    pub(crate) fn set_rows(&mut self, rows: Vec<Row>) {
        let selected = self.selected_name().map(str::to_owned);
        self.rows = rows;
        self.selected = selected
            .and_then(|name| self.rows.iter().position(|row| row.name == name))
            .unwrap_or(0)
            .min(self.rows.len().saturating_sub(1));
    }

    /// Lines read from the log since the last call.
    pub(crate) fn push_log(&mut self, lines: impl IntoIterator<Item = LogLine>) {
        for line in lines {
            if self.log.lines.len() == LOG_LINES {
                self.log.lines.pop_front();
            } else if self.log.scroll > 0 {
                // Scrolled back: the lines shown stay where they are.
                self.log.scroll += 1;
            }
            self.log.lines.push_back(line);
        }
    }

    /// The log pane starts again on another source.
    pub(crate) fn clear_log(&mut self) {
        self.log.lines.clear();
        self.log.scroll = 0;
    }

    pub(crate) fn apply(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Select(by) => {
                let last = self.rows.len().saturating_sub(1);
                let to = self.selected.saturating_add_signed(by).min(last);
                if to != self.selected {
                    self.selected = to;
                    if let LogSource::Service(_) = self.log.source {
                        return self.follow_selected();
                    }
                }
            }
            Action::Request(verb) => {
                let service = self.selected_name()?.to_owned();
                self.notice = Some(format!("{} {service}…", verb.command()));
                return Some(Effect::Request { verb, service });
            }
            Action::ToggleAll => {
                return match self.log.source {
                    LogSource::All => self.follow_selected(),
                    LogSource::Service(_) => {
                        self.log.source = LogSource::All;
                        Some(Effect::ReloadLog)
                    }
                };
            }
            Action::Verify => {
                self.pane = Some(Pane::progress(
                    "verify",
                    vec!["reading every documented setting back…".into()],
                ));
                return Some(Effect::Verify);
            }
            Action::SearchBegin => self.mode = Mode::Search(String::new()),
            Action::SearchType(c) => {
                if let Mode::Search(pattern) = &mut self.mode {
                    pattern.push(c);
                }
            }
            Action::SearchErase => {
                if let Mode::Search(pattern) = &mut self.mode {
                    pattern.pop();
                }
            }
            Action::SearchSubmit => {
                let Mode::Search(pattern) = std::mem::replace(&mut self.mode, Mode::Normal) else {
                    return None;
                };
                self.log.search = (!pattern.is_empty()).then_some(pattern);
                self.log.scroll = 0;
                self.find(true, 0);
            }
            Action::SearchCancel => self.mode = Mode::Normal,
            Action::NextMatch { older } => self.find(older, 1),
            Action::ToggleWrap => self.log.wrap = !self.log.wrap,
            Action::Scroll(by) => match &mut self.pane {
                // A pane reads from the top: back is up.
                Some(pane) => {
                    let most = pane.lines.len().saturating_sub(1);
                    pane.tail = false;
                    pane.scroll = pane
                        .scroll
                        .saturating_add_signed(by.saturating_neg())
                        .min(most);
                }
                None => {
                    let most = self.log.lines.len().saturating_sub(1);
                    self.log.scroll = self.log.scroll.saturating_add_signed(by).min(most);
                }
            },
            Action::Follow => match &mut self.pane {
                Some(pane) => pane.tail = true,
                None => self.log.scroll = 0,
            },
            Action::Dismiss => {
                if self.pane.take().is_none() {
                    self.log.search = None;
                }
            }
        }
        None
    }

    fn follow_selected(&mut self) -> Option<Effect> {
        self.log.source = LogSource::Service(self.selected_name()?.to_owned());
        Some(Effect::ReloadLog)
    }

    /// Scrolls so that the nearest matching line, `skip` lines past the newest one shown,
    /// is the newest shown; the search says so when none matches.
    fn find(&mut self, older: bool, skip: usize) {
        let Some(pattern) = self.log.search.clone() else {
            return;
        };
        let newest = self.log.lines.len().saturating_sub(1 + self.log.scroll);
        let matches = |index: &usize| self.log.lines[*index].text.contains(&pattern);
        let found = if older {
            let from = newest.checked_sub(skip);
            from.and_then(|from| (0..=from).rev().find(matches))
        } else {
            (newest + skip..self.log.lines.len()).find(matches)
        };
        match found {
            Some(index) => self.log.scroll = self.log.lines.len() - 1 - index,
            None => self.notice = Some(format!("no line matches {pattern:?}")),
        }
    }
}

/// The STATE column: where a unit is on its way to ready, as `up --ui` follows it.
pub(crate) fn progress_word(row: &Row) -> String {
    match row.status {
        Status::Starting if row.listening => "listening".into(),
        Status::Starting if row.pid.is_some() => "spawned".into(),
        Status::Starting => "preparing".into(),
        status => status_word(status),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(name: &str, status: Status, pid: Option<i32>) -> Row {
        Row {
            name: name.into(),
            status,
            pid,
            ports: vec![],
            uptime_s: pid.map(|_| 75),
            restarts: 0,
            message: None,
            waiting_on: vec![],
            listening: false,
            usage: None,
        }
    }

    fn line(text: &str) -> LogLine {
        LogLine {
            service: "valkey".into(),
            text: text.into(),
        }
    }

    #[test]
    fn moving_the_selection_follows_that_services_log_and_keeps_it_across_updates() {
        let rows = vec![
            row("postgres", Status::Ready, Some(10)),
            row("valkey", Status::Ready, Some(11)),
        ];
        let mut model = Model::new(rows.clone());
        assert_eq!(model.apply(Action::Select(-1)), None);
        assert_eq!(model.apply(Action::Select(1)), Some(Effect::ReloadLog));
        assert_eq!(model.log.source, LogSource::Service("valkey".into()));
        assert_eq!(model.apply(Action::Select(5)), None);
        let mut reordered = rows;
        reordered.reverse();
        model.set_rows(reordered);
        assert_eq!(model.selected_name(), Some("valkey"));
        assert_eq!(model.apply(Action::ToggleAll), Some(Effect::ReloadLog));
        assert_eq!(model.log.source, LogSource::All);
        assert_eq!(
            model.apply(Action::Request(Verb::Restart)),
            Some(Effect::Request {
                verb: Verb::Restart,
                service: "valkey".into()
            })
        );
    }

    #[test]
    fn a_probe_of_an_older_process_gives_way_to_the_state_file() {
        let mut restarting = row("valkey", Status::Restarting, None);
        restarting.message = Some("valkey exited (signal: 9 (SIGKILL))".into());
        let mut model = Model::new(vec![restarting.clone()]);
        model.health.insert(
            "valkey".into(),
            ServiceStatus {
                name: "valkey".into(),
                pid: Some(11),
                port: None,
                healthy: true,
                health: "healthy".into(),
                reason: None,
                uptime_s: None,
                version: None,
                restarts: 0,
                last_restart: None,
                requests: None,
                drift: vec![],
            },
        );
        assert_eq!(
            model.health_of(&restarting),
            (
                "restarting".into(),
                Some("valkey exited (signal: 9 (SIGKILL))")
            )
        );
        let ready = row("valkey", Status::Ready, Some(11));
        assert_eq!(model.health_of(&ready), ("healthy".into(), None));
    }

    #[test]
    fn search_scrolls_to_the_newest_match_and_n_goes_further_back() {
        let mut model = Model::new(vec![row("valkey", Status::Ready, Some(1))]);
        model.push_log(["a ready", "b", "c ready", "d"].map(line));
        model.apply(Action::SearchBegin);
        for c in "ready".chars() {
            model.apply(Action::SearchType(c));
        }
        model.apply(Action::SearchSubmit);
        assert_eq!(model.mode, Mode::Normal);
        assert_eq!(model.log.scroll, 1, "c ready is the newest line shown");
        model.apply(Action::NextMatch { older: true });
        assert_eq!(model.log.scroll, 3);
        model.apply(Action::NextMatch { older: true });
        assert_eq!(model.log.scroll, 3);
        assert_eq!(model.notice.as_deref(), Some("no line matches \"ready\""));
        model.apply(Action::NextMatch { older: false });
        assert_eq!(model.log.scroll, 1);
        // New lines keep a scrolled-back view where it is.
        model.push_log([line("e")]);
        assert_eq!(model.log.scroll, 2);
        model.apply(Action::Follow);
        assert_eq!(model.log.scroll, 0);
        model.apply(Action::Dismiss);
        assert_eq!(model.log.search, None);
    }
}
