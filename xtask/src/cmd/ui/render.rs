//! The view drawn from a [`Model`]: a title line, the services' table, the selected service's
//! detail, its log (or a pane of results) and the help line; the log beside the table in a
//! wide terminal, under it otherwise. Colours are the terminal's own named ones on its own
//! background, so light and dark themes both read; NO_COLOR leaves only bold and reverse.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row as TableRow, Table, Wrap};

use super::input::HELP;
use super::model::{LogSource, Mode, Model, Stack, progress_word};
use crate::cmd::status::format_uptime;

/// The narrowest terminal the table fits in.
pub(crate) const MIN_WIDTH: u16 = 80;
/// From this width on, the log sits beside the table.
const WIDE: u16 = 160;
/// Lines besides the table's rows: title, header, detail, help (two lines in a narrow
/// terminal), and a log pane of 3 lines.
const LINES_BESIDE_ROWS: u16 = 10;

/// Colour or none (NO_COLOR).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Theme {
    pub(crate) colour: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to something (<https://no-color.org>).
    pub(crate) fn from_env() -> Theme {
        Theme {
            colour: std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
        }
    }

    fn fg(self, colour: Color) -> Style {
        if self.colour {
            Style::new().fg(colour)
        } else {
            Style::new()
        }
    }

    /// A health or state word: green when well, yellow on the way, red (and bold, which
    /// NO_COLOR keeps) when failing.
    fn health(self, word: &str) -> Style {
        match word {
            "healthy" | "ready" | "done" | "listening" => self.fg(Color::Green),
            "unhealthy" | "failed" => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            "stopped" => Style::new().add_modifier(Modifier::DIM),
            _ => self.fg(Color::Yellow),
        }
    }
}

pub(crate) fn draw(frame: &mut Frame, model: &Model, theme: Theme) {
    let area = frame.area();
    let rows = u16::try_from(model.rows.len()).unwrap_or(u16::MAX);
    let min_height = rows.saturating_add(LINES_BESIDE_ROWS);
    if area.width < MIN_WIDTH || area.height < min_height {
        let text = format!(
            "this terminal is {}×{}, too small for the dashboard: make it at least \
             {MIN_WIDTH}×{min_height} (`cargo xtask status` prints in any size)",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let help = help_lines(model, area.width as usize);
    let help_height = u16::try_from(help.len()).unwrap_or(1);
    let [title, body, help_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(help_height),
    ])
    .areas(area);
    frame.render_widget(title_line(model, theme), title);
    frame.render_widget(Paragraph::new(help), help_area);
    let table_height = rows + 1;
    let (table, detail, bottom) = if area.width >= WIDE {
        let [left, right] =
            Layout::horizontal([Constraint::Length(MIN_WIDTH), Constraint::Min(0)]).areas(body);
        let [table, detail] =
            Layout::vertical([Constraint::Length(table_height), Constraint::Min(0)]).areas(left);
        (table, detail, right)
    } else {
        Layout::vertical([
            Constraint::Length(table_height),
            Constraint::Length(1),
            Constraint::Min(0),
        ])
        .areas(body)
        .into()
    };
    frame.render_widget(services(model, theme), table);
    frame.render_widget(
        Paragraph::new(detail_line(model, theme)).wrap(Wrap { trim: false }),
        detail,
    );
    match &model.pane {
        Some(pane) => {
            let inner = bottom.height.saturating_sub(2) as usize;
            let first = if pane.tail {
                pane.lines.len().saturating_sub(inner)
            } else {
                pane.scroll.min(pane.lines.len().saturating_sub(inner))
            };
            let lines: Vec<Line> = pane.lines[first..]
                .iter()
                .map(|l| Line::raw(l.as_str()))
                .collect();
            let block = Block::bordered().title(format!(" {} (Esc closes) ", pane.title));
            frame.render_widget(Paragraph::new(lines).block(block), bottom);
        }
        None => render_log(frame, model, theme, bottom),
    }
}

fn title_line(model: &Model, theme: Theme) -> Line<'static> {
    let mut spans = vec![Span::styled(
        "AMTP stack",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    match &model.stack {
        Stack::NotRunning => spans.push(Span::raw("  not running yet")),
        Stack::Running {
            phase,
            supervisor,
            contract,
        } => {
            spans.push(Span::raw("  "));
            spans.push(Span::styled(
                phase.clone(),
                theme.health(if phase == "running" { "ready" } else { phase }),
            ));
            spans.push(Span::raw(format!("  supervisor {supervisor}")));
            if let Some(contract) = contract {
                spans.push(Span::raw(format!("  contract: {contract}")));
            }
        }
    }
    if let Some(notice) = &model.notice {
        spans.push(Span::raw("  · "));
        spans.push(Span::styled(
            notice.clone(),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

/// The help line, or the search being typed; in a narrow terminal the keys take two lines,
/// each key whole on one of them.
fn help_lines(model: &Model, width: usize) -> Vec<Line<'static>> {
    if let Mode::Search(pattern) = &model.mode {
        return vec![Line::from(vec![
            Span::styled(
                format!("/{pattern}▏"),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw("  Enter finds, n/N the next older/newer match, Esc cancels"),
        ])];
    }
    let mut lines = vec![Line::default()];
    for (key, what) in HELP {
        let label = format!(" {what} ");
        let line = lines.last_mut().expect("one line at least");
        if line.width() + key.chars().count() + label.len() > width && line.width() > 0 {
            lines.push(Line::default());
        }
        let line = lines.last_mut().expect("one line at least");
        line.push_span(Span::styled(
            *key,
            Style::new().add_modifier(Modifier::REVERSED),
        ));
        line.push_span(Span::raw(label));
    }
    lines
}

fn services(model: &Model, theme: Theme) -> Table<'static> {
    let right = |text: String| Cell::from(Line::from(text).alignment(Alignment::Right));
    let rows = model.rows.iter().enumerate().map(|(index, row)| {
        let (health, reason) = model.health_of(row);
        let health_cell = match reason {
            Some(reason) => format!("{health}: {reason}"),
            None => health.clone(),
        };
        let state = progress_word(row);
        let usage = row.usage;
        let cells = vec![
            Cell::from(row.name.clone()),
            Cell::from(Span::styled(state.clone(), theme.health(&state))),
            right(dash(row.pid)),
            Cell::from(ports(&row.ports)),
            right(
                row.uptime_s
                    .map(format_uptime)
                    .unwrap_or_else(|| "-".into()),
            ),
            right(row.restarts.to_string()),
            right(dash(
                usage.and_then(|u| u.cpu_percent).map(|c| format!("{c:.1}")),
            )),
            right(dash(usage.map(|u| bytes(u.rss_bytes)))),
            Cell::from(Span::styled(health_cell, theme.health(&health))),
        ];
        let style = if index == model.selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        TableRow::new(cells).style(style)
    });
    let header = [
        "SERVICE", "STATE", "PID", "PORTS", "UPTIME", "RST", "CPU%", "RSS", "HEALTH",
    ]
    .map(|title| {
        let cell = Line::from(title);
        match title {
            "PID" | "UPTIME" | "RST" | "CPU%" | "RSS" => Cell::from(cell.right_aligned()),
            _ => Cell::from(cell),
        }
    });
    let widths = [
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(3),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Min(9),
    ];
    Table::new(rows, widths).header(
        TableRow::new(header)
            .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
    )
}

fn detail_line(model: &Model, theme: Theme) -> Line<'static> {
    let Some(row) = model.rows.get(model.selected) else {
        return Line::raw("no services");
    };
    let (health, reason) = model.health_of(row);
    let mut spans = vec![
        Span::styled(row.name.clone(), Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(": "),
        Span::styled(health.clone(), theme.health(&health)),
    ];
    if !row.waiting_on.is_empty() {
        spans.push(Span::raw(format!(" on {}", row.waiting_on.join(", "))));
    }
    if let Some(reason) = reason {
        spans.push(Span::raw(format!(": {reason}")));
    }
    if let Some(probed) = model.health.get(&row.name) {
        if let Some(version) = &probed.version {
            spans.push(Span::raw(format!("  version {version}")));
        }
        // Here rather than in a column: the table fills 80 columns already.
        if let Some(rate) = &probed.requests {
            spans.push(Span::raw(format!(
                "  {:.1} {}/s over {:.0} s ({:.0} since start)",
                rate.per_second, rate.of, rate.window_s, rate.total
            )));
        }
        if !probed.drift.is_empty() {
            spans.push(Span::raw(format!("  drift: {}", probed.drift.join("; "))));
        }
    }
    Line::from(spans)
}

fn render_log(frame: &mut Frame, model: &Model, theme: Theme, area: Rect) {
    let log = &model.log;
    let name = match &log.source {
        LogSource::Service(name) => name.as_str(),
        LogSource::All => "all services",
    };
    let mut title = format!(" log: {name} ");
    title.push_str(&match log.scroll {
        0 => "· following ".to_owned(),
        1 => "· 1 line back (End follows) ".to_owned(),
        back => format!("· {back} lines back (End follows) "),
    });
    if log.wrap {
        title.push_str("· wrap ");
    }
    if let Some(pattern) = &log.search {
        title.push_str(&format!("· search {pattern:?} "));
    }
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    let shown = visible(model, inner.width as usize, inner.height as usize);
    let lines: Vec<Line> = shown
        .into_iter()
        .map(|(prefix, text)| highlighted(prefix, text, log.search.as_deref(), theme))
        .collect();
    if lines.is_empty() {
        let empty = Paragraph::new("(no lines yet)").block(block);
        frame.render_widget(empty, area);
        return;
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The rows of the log pane, oldest first: the newest line shown is `scroll` lines back, and
/// wrapped lines take a row per `width` characters.
fn visible(model: &Model, width: usize, height: usize) -> Vec<(Option<String>, String)> {
    let log = &model.log;
    let Some(newest) = log.lines.len().checked_sub(1 + log.scroll) else {
        return Vec::new();
    };
    let prefix_width = model.rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut rows = Vec::new();
    for line in log.lines.range(..=newest).rev() {
        let prefix =
            (log.source == LogSource::All).then(|| format!("{:<prefix_width$} | ", line.service));
        let mut chunks: Vec<String> = if log.wrap {
            let room = width
                .saturating_sub(prefix.as_ref().map_or(0, |p| p.chars().count()))
                .max(1);
            let chars: Vec<char> = line.text.chars().collect();
            let mut chunks: Vec<String> = chars.chunks(room).map(String::from_iter).collect();
            if chunks.is_empty() {
                chunks.push(String::new());
            }
            chunks
        } else {
            vec![line.text.clone()]
        };
        while let Some(chunk) = chunks.pop() {
            // A wrapped line's further rows are indented past the service's name.
            let indent = match (&prefix, chunks.is_empty()) {
                (Some(prefix), true) => Some(prefix.clone()),
                (Some(prefix), false) => Some(" ".repeat(prefix.chars().count())),
                (None, _) => None,
            };
            rows.push((indent, chunk));
            if rows.len() == height {
                rows.reverse();
                return rows;
            }
        }
    }
    rows.reverse();
    rows
}

/// A log row with the search's matches in reverse video.
fn highlighted(
    prefix: Option<String>,
    text: String,
    search: Option<&str>,
    theme: Theme,
) -> Line<'static> {
    let mut spans: Vec<Span> = prefix
        .map(|p| Span::styled(p, theme.fg(Color::Cyan)))
        .into_iter()
        .collect();
    match search.filter(|s| !s.is_empty()) {
        Some(pattern) => {
            let mut rest = text.as_str();
            while let Some(at) = rest.find(pattern) {
                spans.push(Span::raw(rest[..at].to_owned()));
                spans.push(Span::styled(
                    pattern.to_owned(),
                    Style::new().add_modifier(Modifier::REVERSED),
                ));
                rest = &rest[at + pattern.len()..];
            }
            spans.push(Span::raw(rest.to_owned()));
        }
        None => spans.push(Span::raw(text)),
    }
    Line::from(spans)
}

fn dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// A service's ports: its own, and how many more it has.
fn ports(ports: &[u16]) -> String {
    match ports {
        [] => "-".into(),
        [port] => port.to_string(),
        [port, more @ ..] => format!("{port} +{}", more.len()),
    }
}

/// Memory in the units `ps` and `top` use.
fn bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1}G", b / KIB / KIB / KIB)
    } else if b >= KIB * KIB {
        format!("{:.1}M", b / KIB / KIB)
    } else {
        format!("{:.0}K", b / KIB)
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
