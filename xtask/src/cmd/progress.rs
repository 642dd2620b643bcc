//! The start's progress as `up` shows it: one line per service, indicatif spinners on a
//! terminal, plain lines otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::supervisor::run_state::{RunState, Status, UnitState};

/// One line per service: indicatif spinners on a terminal, plain lines otherwise.
pub(crate) struct Display {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    printed: BTreeMap<String, Status>,
}

impl Display {
    pub(crate) fn new(terminal: bool) -> Display {
        Display {
            multi: terminal.then(MultiProgress::new),
            bars: BTreeMap::new(),
            printed: BTreeMap::new(),
        }
    }

    pub(crate) fn update(&mut self, state: &RunState) {
        for unit in &state.units {
            let line = describe(unit);
            let Some(multi) = &self.multi else {
                let done = matches!(unit.status, Status::Ready | Status::Failed);
                if done && self.printed.get(&unit.name) != Some(&unit.status) {
                    println!("{line}");
                    self.printed.insert(unit.name.clone(), unit.status);
                }
                continue;
            };
            let bar = self.bars.entry(unit.name.clone()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg}").expect("valid template"),
                );
                bar.enable_steady_tick(Duration::from_millis(80));
                bar
            });
            if unit.status == Status::Ready {
                bar.finish_with_message(line);
            } else {
                bar.set_message(line);
            }
        }
    }

    pub(crate) fn finish(&self) {
        for bar in self.bars.values().filter(|bar| !bar.is_finished()) {
            bar.abandon();
        }
    }
}

fn describe(unit: &UnitState) -> String {
    let version = unit
        .installed
        .as_ref()
        .map(|i| format!(" {}", i.version))
        .unwrap_or_default();
    match unit.status {
        Status::Ready => match (&unit.message, unit.daemon) {
            (Some(message), false) => format!(
                "{:<15} {message} ({} ms)",
                unit.name,
                unit.ready_ms.unwrap_or(0)
            ),
            _ => format!(
                "{:<15} ready in {} ms{version}, 127.0.0.1:{}",
                unit.name,
                unit.ready_ms.unwrap_or(0),
                unit.port.unwrap_or(0)
            ),
        },
        Status::Failed => format!("{:<15} failed", unit.name),
        Status::Stopped => format!("{:<15} not started", unit.name),
        Status::Starting => format!("{:<15} starting{version}", unit.name),
        _ => format!("{:<15} waiting", unit.name),
    }
}
