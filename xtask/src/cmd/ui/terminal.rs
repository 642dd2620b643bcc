//! The terminal loop: raw mode and the alternate screen (restored on the way out, panics
//! included), keys to the model, the feed's updates into it, the log pane's reader, and a
//! redraw after each; ratatui redraws only the cells that changed, so nothing flickers.

use std::path::PathBuf;
use std::process::{Child, ExitCode};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event};

use super::feed::{self, Update};
use super::input;
use super::model::{Effect, LogLine, LogSource, Model, Pane};
use super::render::{self, Theme};
use crate::cmd::logs::{self, Reader, Tail};
use crate::config::StackConfig;
use crate::os::logfile;

/// How long the loop waits for a key before it looks at updates and the log again.
const TICK: Duration = Duration::from_millis(100);
/// How often the log pane reads what was written since (as `logs -f`).
const LOG_INTERVAL: Duration = Duration::from_millis(200);

/// The view until `q`; `up` is the `up --ui` child whose output it shows meanwhile.
pub(crate) fn show(cfg: &StackConfig, up: Option<Child>) -> anyhow::Result<ExitCode> {
    let (updates, received) = mpsc::channel();
    feed::watch(cfg, &updates);
    let mut model = Model::new(feed::rows(cfg, None, &Default::default()));
    let mut up = up;
    if let Some(child) = up.as_mut() {
        model.pane = Some(Pane::progress("cargo xtask up", Vec::new()));
        if let Some(out) = child.stdout.take() {
            feed::lines_of(out, &updates);
        }
        if let Some(err) = child.stderr.take() {
            feed::lines_of(err, &updates);
        }
    }
    let mut terminal = ratatui::try_init().context("cannot take over the terminal")?;
    let mut view = View {
        cfg,
        updates,
        theme: Theme::from_env(),
        log: None,
        requests: 0,
        shown_request: None,
    };
    let ended = view.run(&mut terminal, &mut model, &received, up.as_mut());
    ratatui::restore();
    ended?;
    let Some(mut child) = up else {
        return Ok(ExitCode::SUCCESS);
    };
    // `up` goes on where the view ended; its output from here on is the terminal's.
    if child.try_wait()?.is_none() {
        println!("the view is closed; `cargo xtask up` goes on:");
    }
    let status = loop {
        for update in received.try_iter() {
            if let Update::Started(line) = update {
                println!("{line}");
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(TICK);
    };
    for update in received.try_iter() {
        if let Update::Started(line) = update {
            println!("{line}");
        }
    }
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

struct View<'a> {
    cfg: &'a StackConfig,
    updates: Sender<Update>,
    theme: Theme,
    /// The log pane's source: the service names of its paths, and its reader.
    log: Option<(Vec<&'static str>, Reader)>,
    requests: u64,
    /// The request whose progress the pane shows.
    shown_request: Option<u64>,
}

impl View<'_> {
    fn run(
        &mut self,
        terminal: &mut DefaultTerminal,
        model: &mut Model,
        received: &Receiver<Update>,
        mut up: Option<&mut Child>,
    ) -> anyhow::Result<()> {
        self.open_log(model);
        let mut read_log = Instant::now();
        loop {
            terminal.draw(|frame| render::draw(frame, model, self.theme))?;
            if event::poll(TICK)? {
                // A resize needs no action: the next draw takes the new size.
                if let Event::Key(key) = event::read()?
                    && let Some(action) = input::action(&model.mode, key)
                {
                    match model.apply(action) {
                        Some(Effect::Quit) => return Ok(()),
                        Some(effect) => self.perform(effect, model),
                        None => {}
                    }
                }
            }
            for update in received.try_iter() {
                self.take(update, model);
            }
            if let Some(child) = up.as_deref_mut()
                && let Some(status) = child.try_wait()?
            {
                model.notice = Some(match status.success() {
                    true => "the stack is up".to_owned(),
                    false => format!("`cargo xtask up` failed ({status}); see its output"),
                });
                up = None;
            }
            if read_log.elapsed() >= LOG_INTERVAL {
                read_log = Instant::now();
                if let Some((names, reader)) = self.log.as_mut() {
                    model.push_log(
                        reader
                            .new_lines()
                            .into_iter()
                            .map(|line| shown(names, &line)),
                    );
                }
            }
        }
    }

    fn perform(&mut self, effect: Effect, model: &mut Model) {
        match effect {
            Effect::Quit => {}
            Effect::ReloadLog => self.open_log(model),
            Effect::Request { verb, service } => {
                self.requests += 1;
                self.shown_request = Some(self.requests);
                model.pane = Some(Pane::progress(
                    format!("cargo xtask {} {service}", verb.command()),
                    Vec::new(),
                ));
                feed::request(self.cfg, &self.updates, self.requests, verb, service);
            }
            Effect::Verify => feed::verify(self.cfg, &self.updates),
        }
    }

    fn take(&mut self, update: Update, model: &mut Model) {
        match update {
            Update::Stack { stack, rows } => {
                model.stack = stack;
                model.set_rows(rows);
            }
            Update::Health(services) => {
                model.health = services.into_iter().map(|s| (s.name.clone(), s)).collect();
            }
            Update::Progress { id, line } => {
                if self.shown_request == Some(id)
                    && let Some(pane) = model.pane.as_mut()
                {
                    pane.lines.push(line);
                }
            }
            Update::Finished { id, notice } => {
                if self.shown_request == Some(id)
                    && let Some(pane) = model.pane.as_mut()
                {
                    pane.lines.push(notice.clone());
                }
                model.notice = Some(notice);
            }
            Update::Verified(lines) => model.pane = Some(Pane::results("verify", lines)),
            Update::Started(line) => match model.pane.as_mut() {
                Some(pane) if pane.title == "cargo xtask up" => pane.lines.push(line),
                _ => model.notice = Some(line),
            },
        }
    }

    /// Opens the log of the model's source and shows its last lines.
    fn open_log(&mut self, model: &mut Model) {
        model.clear_log();
        let all = logs::names();
        let names: Vec<&'static str> = match &model.log.source {
            LogSource::All => all,
            LogSource::Service(name) => all.into_iter().filter(|n| n == name).collect(),
        };
        if names.is_empty() {
            // A task (the migrations) writes no log of its own: its result is its message.
            self.log = None;
            return;
        }
        let paths: Vec<PathBuf> = names.iter().map(|name| self.cfg.log_file(name)).collect();
        let (lines, reader) = Reader::open(&paths, None, Tail::Last(super::model::LOG_LINES));
        model.push_log(lines.iter().map(|line| shown(&names, line)));
        self.log = Some((names, reader));
    }
}

/// A log line as the pane shows it: without its timestamp, tabs as spaces and no control
/// characters (a program's colours would move the cursor of the view).
fn shown(names: &[&str], line: &logs::Line) -> LogLine {
    let raw = String::from_utf8_lossy(logfile::without_timestamp(&line.text)).replace('\t', "    ");
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            // An escape sequence (`ESC [ … letter`) is left out whole.
            '\u{1b}' => {
                let _ = chars.find(|c| c.is_ascii_alphabetic() || *c == '~');
            }
            c if c.is_control() => {}
            c => text.push(c),
        }
    }
    LogLine {
        service: names.get(line.service).copied().unwrap_or("?").to_owned(),
        text,
    }
}
