//! The view drawn on ratatui's `TestBackend` for given states: starting, healthy, one stopped,
//! one failing with a reason; an app's request rate; the log pane following, scrolled, wrapped
//! and searched; the results pane; a terminal too small; NO_COLOR; a wide terminal.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::*;
use crate::cmd::status::ServiceStatus;
use crate::cmd::ui::model::tests::row;
use crate::cmd::ui::model::{Action, LogLine, Pane, Row};
use crate::os::usage::Usage;
use crate::supervisor::rates::RequestRate;
use ratatui::style::Modifier;

use crate::supervisor::run_state::Status;

const COLOUR: Theme = Theme { colour: true };

/// The screen's text, a line per row, trailing spaces cut.
fn screen(model: &Model, theme: Theme, width: u16, height: u16) -> Vec<String> {
    let buffer = drawn(model, theme, width, height);
    (0..height)
        .map(|y| {
            let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
            line.trim_end().to_owned()
        })
        .collect()
}

fn drawn(model: &Model, theme: Theme, width: u16, height: u16) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| draw(frame, model, theme))
        .expect("draws");
    terminal.backend().buffer().clone()
}

fn probed(name: &str, pid: Option<i32>, health: &str, reason: Option<&str>) -> ServiceStatus {
    ServiceStatus {
        name: name.into(),
        pid,
        port: None,
        healthy: health == "healthy",
        health: health.into(),
        reason: reason.map(str::to_owned),
        uptime_s: None,
        version: None,
        restarts: 0,
        last_restart: None,
        requests: None,
        drift: vec![],
    }
}

/// Four services of a running stack, all healthy, with usage.
fn healthy() -> Model {
    let mut rows: Vec<Row> = [
        ("postgres", 4101, vec![5432]),
        ("valkey", 4102, vec![6379]),
        ("garage", 4103, vec![3900, 3901, 3903]),
        ("healthcheck", 4104, vec![8083]),
    ]
    .into_iter()
    .map(|(name, pid, ports)| Row {
        ports,
        usage: Some(Usage {
            cpu_percent: Some(1.5),
            rss_bytes: 24 * 1024 * 1024,
        }),
        ..row(name, Status::Ready, Some(pid))
    })
    .collect();
    rows[3].restarts = 2;
    let mut model = Model::new(rows);
    model.stack = Stack::Running {
        phase: "running".into(),
        supervisor: 4100,
        contract: Some("58 ok, 0 drift".into()),
    };
    for row in &model.rows.clone() {
        model.health.insert(
            row.name.clone(),
            probed(&row.name, row.pid, "healthy", None),
        );
    }
    model.push_log(
        [
            "listening on 127.0.0.1:5432",
            "database system is ready to accept connections",
        ]
        .map(|text| LogLine {
            service: "postgres".into(),
            text: text.into(),
        }),
    );
    model
}

/// Compares the screen with its snapshot; an empty snapshot prints the screen to paste.
#[track_caller]
fn assert_screen(lines: &[String], expected: &[&str]) {
    if expected.is_empty() {
        let text: Vec<String> = lines.iter().map(|l| format!("        {l:?},")).collect();
        panic!("no snapshot; the screen is:\n{}", text.join("\n"));
    }
    assert_eq!(lines, expected, "the screen differs from its snapshot");
}

/// A stack on its way up: ready, listening, spawned, preparing, waiting on its dependency.
fn starting() -> Model {
    let mut garage = row("garage", Status::Starting, Some(4103));
    garage.listening = true;
    let mut pgbouncer = row("pgbouncer", Status::Waiting, None);
    pgbouncer.waiting_on = vec!["postgres".into()];
    let mut model = Model::new(vec![
        pgbouncer,
        row("postgres", Status::Ready, Some(4101)),
        garage,
        row("valkey", Status::Starting, Some(4102)),
        row("nginx", Status::Starting, None),
    ]);
    model.stack = Stack::Running {
        phase: "starting".into(),
        supervisor: 4100,
        contract: None,
    };
    model
}

#[test]
fn a_starting_stack_shows_each_service_on_its_way_and_what_it_waits_on() {
    assert_screen(
        &screen(&starting(), COLOUR, 80, 16),
        &[
            "AMTP stack  starting  supervisor 4100",
            "SERVICE        STATE          PID PORTS      UPTIME RST  CPU%    RSS HEALTH",
            "pgbouncer      waiting          - -               -   0     -      - waiting",
            "postgres       ready         4101 -           1m15s   0     -      - ready",
            "garage         listening     4103 -           1m15s   0     -      - starting",
            "valkey         spawned       4102 -           1m15s   0     -      - starting",
            "nginx          preparing        - -               -   0     -      - starting",
            "pgbouncer: waiting on postgres",
            "┌ log: pgbouncer · following ──────────────────────────────────────────────────┐",
            "│(no lines yet)                                                                │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "└──────────────────────────────────────────────────────────────────────────────┘",
            "↑↓ select r restart x stop s start a all logs v verify / search w wrap",
            "PgUp/Dn scroll q quit",
        ],
    );
}

#[test]
fn a_healthy_stack_in_80_by_24() {
    assert_screen(
        &screen(&healthy(), COLOUR, 80, 24),
        &[
            "AMTP stack  running  supervisor 4100  contract: 58 ok, 0 drift",
            "SERVICE        STATE          PID PORTS      UPTIME RST  CPU%    RSS HEALTH",
            "postgres       ready         4101 5432        1m15s   0   1.5  24.0M healthy",
            "valkey         ready         4102 6379        1m15s   0   1.5  24.0M healthy",
            "garage         ready         4103 3900 +2     1m15s   0   1.5  24.0M healthy",
            "healthcheck    ready         4104 8083        1m15s   2   1.5  24.0M healthy",
            "postgres: healthy",
            "┌ log: postgres · following ───────────────────────────────────────────────────┐",
            "│listening on 127.0.0.1:5432                                                   │",
            "│database system is ready to accept connections                                │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "│                                                                              │",
            "└──────────────────────────────────────────────────────────────────────────────┘",
            "↑↓ select r restart x stop s start a all logs v verify / search w wrap",
            "PgUp/Dn scroll q quit",
        ],
    );
}

#[test]
fn the_selected_apps_request_rate_is_in_its_detail_line() {
    let mut model = healthy();
    model.selected = 3;
    let healthcheck = model.health.get_mut("healthcheck").expect("probed");
    healthcheck.requests = Some(RequestRate {
        per_second: 0.5,
        of: "probes".into(),
        window_s: 30.0,
        total: 61.0,
    });
    let lines = screen(&model, COLOUR, 80, 24);
    assert_eq!(
        lines[6],
        "healthcheck: healthy  0.5 probes/s over 30 s (61 since start)"
    );
    model.selected = 0;
    assert_eq!(screen(&model, COLOUR, 80, 24)[6], "postgres: healthy");
}

#[test]
fn a_stopped_service_has_no_pid_uptime_or_usage() {
    let mut model = healthy();
    let valkey = &mut model.rows[1];
    valkey.status = Status::Stopped;
    valkey.pid = None;
    valkey.uptime_s = None;
    valkey.usage = None;
    model.apply(Action::Select(1));
    let lines = screen(&model, COLOUR, 80, 16);
    assert_screen(
        &lines[1..7],
        &[
            "SERVICE        STATE          PID PORTS      UPTIME RST  CPU%    RSS HEALTH",
            "postgres       ready         4101 5432        1m15s   0   1.5  24.0M healthy",
            "valkey         stopped          - 6379            -   0     -      - stopped",
            "garage         ready         4103 3900 +2     1m15s   0   1.5  24.0M healthy",
            "healthcheck    ready         4104 8083        1m15s   2   1.5  24.0M healthy",
            "valkey: stopped",
        ],
    );
}

#[test]
fn a_failing_service_says_why_in_its_row_and_in_full_below() {
    let mut model = healthy();
    let reason =
        "valkey answered NOAUTH: authentication required (is VALKEY_PASSWORD the stack's?)";
    model.health.insert(
        "healthcheck".into(),
        probed("healthcheck", Some(4104), "unhealthy", Some(reason)),
    );
    model.rows[1].status = Status::Failed;
    model.rows[1].pid = None;
    model.rows[1].message = Some("valkey exited (exit status: 1)".into());
    model.apply(Action::Select(3));
    let lines = screen(&model, COLOUR, 80, 16);
    assert_screen(
        &lines[1..7],
        &[
            "SERVICE        STATE          PID PORTS      UPTIME RST  CPU%    RSS HEALTH",
            "postgres       ready         4101 5432        1m15s   0   1.5  24.0M healthy",
            "valkey         failed           - 6379        1m15s   0   1.5  24.0M failed: val",
            "garage         ready         4103 3900 +2     1m15s   0   1.5  24.0M healthy",
            "healthcheck    ready         4104 8083        1m15s   2   1.5  24.0M unhealthy:",
            "healthcheck: unhealthy: valkey answered NOAUTH: authentication required (is",
        ],
    );
    let buffer = drawn(&model, COLOUR, 80, 16);
    let health_column = lines[1].find("HEALTH").unwrap() as u16;
    assert_eq!(
        buffer[(health_column, 5)].fg,
        Color::Red,
        "unhealthy is red"
    );
    assert_eq!(
        buffer[(health_column, 2)].fg,
        Color::Green,
        "healthy is green"
    );
}

#[test]
fn the_log_pane_scrolls_back_wraps_and_marks_the_search() {
    let mut model = healthy();
    model.clear_log();
    model.push_log((1..=30).map(|n| LogLine {
        service: if n % 2 == 0 { "valkey" } else { "postgres" }.into(),
        text: format!("line {n} {}", "x".repeat(n * 3)),
    }));
    model.apply(Action::Scroll(5));
    let scrolled = screen(&model, COLOUR, 80, 16);
    assert_screen(
        &scrolled[6..15],
        &[
            "postgres: healthy",
            "┌ log: postgres · 5 lines back (End follows) ──────────────────────────────────┐",
            "│line 21 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx       │",
            "│line 22 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx    │",
            "│line 23 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx │",
            "│line 24 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx│",
            "│line 25 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx│",
            "└──────────────────────────────────────────────────────────────────────────────┘",
            "↑↓ select r restart x stop s start a all logs v verify / search w wrap",
        ],
    );
    model.apply(Action::ToggleWrap);
    model.apply(Action::ToggleAll);
    model.apply(Action::SearchBegin);
    for c in "line 2".chars() {
        model.apply(Action::SearchType(c));
    }
    let typing = screen(&model, COLOUR, 80, 16);
    assert_screen(
        &typing[14..],
        &[
            "└──────────────────────────────────────────────────────────────────────────────┘",
            "/line 2▏  Enter finds, n/N the next older/newer match, Esc cancels",
        ],
    );
    model.apply(Action::SearchSubmit);
    let found = screen(&model, COLOUR, 80, 16);
    assert_screen(
        &found[6..15],
        &[
            "postgres: healthy",
            "┌ log: all services · 1 line back (End follows) · wrap · search \"line 2\" ──────┐",
            "│              xxxxxxxxxxxxxxxxxxxxxxxxx                                       │",
            "│valkey      | line 28 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx│",
            "│              xxxxxxxxxxxxxxxxxxxxxxxxxxxx                                    │",
            "│postgres    | line 29 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx│",
            "│              xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx                                 │",
            "└──────────────────────────────────────────────────────────────────────────────┘",
            "↑↓ select r restart x stop s start a all logs v verify / search w wrap",
        ],
    );
    let buffer = drawn(&model, COLOUR, 80, 16);
    let row = found.iter().position(|l| l.contains("line 29")).unwrap() as u16;
    let text = &found[row as usize];
    let at = text[..text.find("line 2").unwrap()].chars().count() as u16;
    assert!(buffer[(at, row)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn verify_results_replace_the_log_until_esc() {
    let mut model = healthy();
    model.pane = Some(Pane::results(
        "verify",
        vec![
            "58 ok, 1 unpinned, 0 drift".into(),
            "VERDICT      CHECK                     EXPECTED  LIVE".into(),
            "ok           postgres max_connections  100       100".into(),
        ],
    ));
    let lines = screen(&model, COLOUR, 80, 16);
    assert_screen(
        &lines[6..11],
        &[
            "postgres: healthy",
            "┌ verify (Esc closes) ─────────────────────────────────────────────────────────┐",
            "│58 ok, 1 unpinned, 0 drift                                                    │",
            "│VERDICT      CHECK                     EXPECTED  LIVE                         │",
            "│ok           postgres max_connections  100       100                          │",
        ],
    );
    model.apply(Action::Dismiss);
    assert!(screen(&model, COLOUR, 80, 16)[7].contains("log: postgres"));
}

#[test]
fn a_terminal_too_small_says_so_instead_of_drawing() {
    assert_screen(
        &screen(&healthy(), COLOUR, 60, 10),
        &[
            "this terminal is 60×10, too small for the dashboard: make it",
            "at least 80×14 (`cargo xtask status` prints in any size)",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
    );
    assert!(screen(&healthy(), COLOUR, 80, 13)[0].contains("too small"));
}

#[test]
fn no_color_leaves_only_bold_and_reverse() {
    let mut model = healthy();
    model.health.insert(
        "valkey".into(),
        probed("valkey", Some(4102), "unhealthy", Some("timed out")),
    );
    model.apply(Action::ToggleAll);
    let buffer = drawn(&model, Theme { colour: false }, 80, 24);
    assert!(
        buffer.content().iter().all(|cell| cell.fg == Color::Reset),
        "a cell has a colour"
    );
    let coloured = drawn(&model, COLOUR, 80, 24);
    assert!(coloured.content().iter().any(|cell| cell.fg == Color::Red));
}

#[test]
fn a_wide_terminal_puts_the_log_beside_the_table() {
    assert_screen(
        &screen(&healthy(), COLOUR, 170, 16),
        &[
            "AMTP stack  running  supervisor 4100  contract: 58 ok, 0 drift",
            "SERVICE        STATE          PID PORTS      UPTIME RST  CPU%    RSS HEALTH     ┌ log: postgres · following ─────────────────────────────────────────────────────────────┐",
            "postgres       ready         4101 5432        1m15s   0   1.5  24.0M healthy    │listening on 127.0.0.1:5432                                                             │",
            "valkey         ready         4102 6379        1m15s   0   1.5  24.0M healthy    │database system is ready to accept connections                                          │",
            "garage         ready         4103 3900 +2     1m15s   0   1.5  24.0M healthy    │                                                                                        │",
            "healthcheck    ready         4104 8083        1m15s   2   1.5  24.0M healthy    │                                                                                        │",
            "postgres: healthy                                                               │                                                                                        │",
            "                                                                                │                                                                                        │",
            "                                                                                │                                                                                        │",
            "                                                                                │                                                                                        │",
            "                                                                                │                                                                                        │",
            "                                                                                │                                                                                        │",
            "                                                                                │                                                                                        │",
            "                                                                                │                                                                                        │",
            "                                                                                └────────────────────────────────────────────────────────────────────────────────────────┘",
            "↑↓ select r restart x stop s start a all logs v verify / search w wrap PgUp/Dn scroll q quit",
        ],
    );
}
