//! The apps' request rates: a thread of the supervisor reads each app's request counter from
//! its Prometheus endpoint every [`PERIOD`] and writes the rate over the last [`WINDOW`] to
//! `<state>/run/rates.json`, which `status` and `ui` read. It only reads (no spawning, no
//! signals), so it stays beside the supervisor's loop rather than in it; an app that does not
//! answer is left out until it does, and a counter that falls (the app restarted) starts its
//! window again.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::StackConfig;
use crate::stack::Unit;
use crate::stack::app_metrics::{self, AppMetrics};
use crate::supervisor::run_state;

/// How often each counter is read.
pub(crate) const PERIOD: Duration = Duration::from_secs(2);
/// The rate is over the samples of this long ago and newer.
const WINDOW: Duration = Duration::from_secs(30);

/// One app's request rate.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RequestRate {
    pub(crate) per_second: f64,
    /// What is counted (`tool calls`, `probes`).
    pub(crate) of: String,
    /// The seconds the rate is over: [`WINDOW`], less while the app has run for less.
    pub(crate) window_s: f64,
    /// The counter now: requests since the app started.
    pub(crate) total: f64,
}

/// `<state>/run/rates.json`.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct RatesFile {
    /// Milliseconds since the epoch: a file not written for a while is left unread.
    written_unix_ms: u64,
    rates: BTreeMap<String, RequestRate>,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("run/rates.json")
}

/// The rates a live supervisor wrote in the last few periods; none from a stale file.
pub(crate) fn read(state_dir: &Path) -> BTreeMap<String, RequestRate> {
    let Some(file) = std::fs::read(path(state_dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<RatesFile>(&bytes).ok())
    else {
        return BTreeMap::new();
    };
    let age_ms = unix_ms().saturating_sub(file.written_unix_ms);
    if u128::from(age_ms) > 3 * PERIOD.as_millis() {
        return BTreeMap::new();
    }
    file.rates
}

/// The thread that reads the counters; [`Sampler::stop`] ends and joins it.
pub(crate) struct Sampler {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Sampler {
    /// Starts reading the counters of those `units` that have a Prometheus endpoint; `None`
    /// when none has.
    pub(crate) fn start(cfg: &StackConfig, units: &[&'static Unit]) -> Option<Sampler> {
        let apps: Vec<(&'static str, &'static crate::stack::Daemon, AppMetrics)> =
            app_metrics::of_units(units.iter().copied())
                .map(|(unit, daemon, metrics)| (unit.name, daemon, metrics))
                .collect();
        if apps.is_empty() {
            return None;
        }
        let cfg = cfg.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut windows: BTreeMap<&str, Window> = BTreeMap::new();
            loop {
                let now = Instant::now();
                let mut rates = BTreeMap::new();
                for &(name, daemon, metrics) in &apps {
                    let Ok(samples) = app_metrics::scrape(&cfg, daemon, metrics) else {
                        windows.remove(name);
                        continue;
                    };
                    let total = app_metrics::requests_total(&samples, metrics);
                    let window = windows.entry(name).or_default();
                    if let Some(rate) = window.push(now, total, metrics.requests_are) {
                        rates.insert(name.to_owned(), rate);
                    }
                }
                if let Err(err) = write(&cfg.state_dir, rates) {
                    eprintln!("supervisor: {err:#}");
                }
                match stopped.recv_timeout(PERIOD) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            let _ = std::fs::remove_file(path(&cfg.state_dir));
        });
        Some(Sampler { stop, thread })
    }

    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn write(state_dir: &Path, rates: BTreeMap<String, RequestRate>) -> anyhow::Result<()> {
    let file = RatesFile {
        written_unix_ms: unix_ms(),
        rates,
    };
    run_state::replace_file(&path(state_dir), &serde_json::to_vec(&file)?)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One counter's samples of the last [`WINDOW`], oldest first.
#[derive(Default)]
struct Window {
    samples: VecDeque<(Instant, f64)>,
}

impl Window {
    /// Adds a sample; the rate from the oldest sample kept to this one, once there are two.
    fn push(&mut self, now: Instant, total: f64, of: &str) -> Option<RequestRate> {
        if self.samples.back().is_some_and(|&(_, last)| total < last) {
            self.samples.clear();
        }
        self.samples.push_back((now, total));
        while self
            .samples
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > WINDOW)
        {
            self.samples.pop_front();
        }
        let &(first_at, first) = self.samples.front()?;
        let seconds = now.duration_since(first_at).as_secs_f64();
        (seconds > 0.0).then(|| RequestRate {
            per_second: (total - first) / seconds,
            of: of.to_owned(),
            window_s: seconds,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_over_the_last_thirty_seconds_and_starts_again_after_a_restart() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut window = Window::default();
        assert_eq!(window.push(at(0), 10.0, "probes"), None, "one sample");
        let rate = window.push(at(2), 20.0, "probes").unwrap();
        assert_eq!(
            (rate.per_second, rate.window_s, rate.total),
            (5.0, 2.0, 20.0)
        );
        for s in (4..=40).step_by(2) {
            window.push(at(s), 20.0 + s as f64, "probes");
        }
        // 30 s back from 42 s: from the sample at 12 s (32) to this one.
        let rate = window.push(at(42), 62.0, "probes").unwrap();
        assert_eq!((rate.per_second, rate.window_s), (1.0, 30.0));
        assert_eq!(window.push(at(44), 3.0, "probes"), None, "a restarted app");
        let rate = window.push(at(46), 7.0, "probes").unwrap();
        assert_eq!(rate.per_second, 2.0);
    }

    #[test]
    fn a_stale_or_missing_file_gives_no_rates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        assert!(read(dir.path()).is_empty());
        let rate = RequestRate {
            per_second: 1.5,
            of: "probes".into(),
            window_s: 30.0,
            total: 45.0,
        };
        write(
            dir.path(),
            BTreeMap::from([("healthcheck".into(), rate.clone())]),
        )
        .unwrap();
        assert_eq!(read(dir.path())["healthcheck"], rate);
        let stale = RatesFile {
            written_unix_ms: unix_ms() - 60_000,
            rates: BTreeMap::from([("healthcheck".into(), rate)]),
        };
        std::fs::write(path(dir.path()), serde_json::to_vec(&stale).unwrap()).unwrap();
        assert!(read(dir.path()).is_empty());
    }
}
