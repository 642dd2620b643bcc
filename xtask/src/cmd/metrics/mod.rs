//! `cargo xtask metrics`: the counters the stack's collector received, each series' latest
//! value and its rate, beside the same series read now from the app's own Prometheus endpoint,
//! so that the two views can be seen to agree.
//!
//! The collector logs every metric it receives ([`collector_log`], [`parse`]); an app of the
//! stack that exports over OTLP names its `service.name` in its row
//! ([`app_metrics::AppMetrics::otlp_service`]), and its `/metrics` carries the same counters under their
//! Prometheus names (`mcp.tool.calls` is `mcp_tool_calls_total`). The collector's value is
//! the app's last export (github-mcp exports every 5 s in this stack), so the app's own value
//! may be ahead by what it counted since; on an idle app the two are equal.

mod parse;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use crate::cli::Output;
use crate::cmd::collector_log;
use crate::config::StackConfig;
use crate::stack::app_metrics::{self, Samples};
use crate::stack::{self, otel_collector};
use crate::supervisor::run_state::RunState;

use parse::Point;

/// One series: a metric of one service with one set of attributes.
#[derive(Debug, serde::Serialize)]
struct Series {
    service: String,
    name: String,
    attributes: BTreeMap<String, String>,
    /// The collector's latest value, and when the app sent it.
    value: Option<f64>,
    time_unix_nano: u128,
    /// Per second between the collector's last two points of the same run of the app.
    rate_per_second: Option<f64>,
    /// The same series on the app's Prometheus endpoint now, when the app is of this stack.
    app: Option<AppView>,
}

#[derive(Debug, serde::Serialize)]
struct AppView {
    /// The Prometheus family (its samples end in `_total` for a counter).
    family: String,
    /// `None` when the endpoint has no such series.
    value: Option<f64>,
    /// Set when the endpoint could not be read.
    error: Option<String>,
}

pub(crate) fn run(
    cfg: &StackConfig,
    service: Option<&str>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let text = collector_log::read(cfg)?;
    let mut series = latest(parse::points(&text));
    series.retain(|s| service.is_none_or(|wanted| s.service == wanted));
    let cfg = &RunState::read_live(&cfg.state_dir)
        .map_or_else(|| cfg.clone(), |state| state.live_config(cfg));
    for (_, daemon, metrics) in app_metrics::of_units(stack::enabled_units(cfg)) {
        let Some(otlp_service) = metrics.otlp_service else {
            continue;
        };
        if !series.iter().any(|s| s.service == otlp_service) {
            continue;
        }
        let scraped = app_metrics::scrape(cfg, daemon, metrics);
        for s in series.iter_mut().filter(|s| s.service == otlp_service) {
            s.app = Some(app_view(s, &scraped));
        }
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let printed = match output {
        Output::Json => serde_json::to_writer_pretty(&mut out, &series)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out)),
        Output::Table if series.is_empty() => writeln!(
            out,
            "no metrics{}; the apps send theirs to {} (github-mcp every {} s; see `cargo xtask \
             logs otel-collector`)",
            if service.is_some() { " match" } else { " yet" },
            otel_collector::endpoint(cfg),
            stack::github_mcp::METRIC_EXPORT_INTERVAL_MS / 1000,
        ),
        Output::Table => print(&mut out, &series),
    };
    crate::cmd::printed(printed.and_then(|()| out.flush()), "metrics")
}

/// Each series' last point, with its rate since the point before it.
fn latest(points: Vec<Point>) -> Vec<Series> {
    let mut by_series: BTreeMap<(String, String, BTreeMap<String, String>), Vec<Point>> =
        BTreeMap::new();
    for point in points {
        let key = (
            point.service.clone(),
            point.name.clone(),
            point.attributes.clone(),
        );
        by_series.entry(key).or_default().push(point);
    }
    by_series
        .into_iter()
        .filter_map(|((service, name, attributes), mut points)| {
            points.sort_by_key(|p| p.time_unix_nano);
            let last = points.pop()?;
            let rate = points.last().and_then(|before| rate(before, &last));
            Some(Series {
                service,
                name,
                attributes,
                value: last.value,
                time_unix_nano: last.time_unix_nano,
                rate_per_second: rate,
                app: None,
            })
        })
        .collect()
}

/// The rate of a monotonic sum between two of its points, when both are of one run of the
/// app (the same start time) and apart in time.
fn rate(before: &Point, after: &Point) -> Option<f64> {
    let same_run = before.start_unix_nano == after.start_unix_nano;
    let seconds = after.time_unix_nano.checked_sub(before.time_unix_nano)? as f64 / 1e9;
    (after.monotonic && same_run && seconds > 0.0)
        .then(|| Some((after.value? - before.value?) / seconds))
        .flatten()
}

fn app_view(series: &Series, scraped: &anyhow::Result<Samples>) -> AppView {
    let family = app_metrics::prometheus_family(&series.name);
    match scraped {
        Ok(samples) => AppView {
            value: samples
                .get(&(family.clone(), series.attributes.clone()))
                .copied(),
            family,
            error: None,
        },
        Err(err) => AppView {
            family,
            value: None,
            error: Some(format!("{err:#}")),
        },
    }
}

/// A table, then what its columns mean.
fn print(out: &mut impl Write, series: &[Series]) -> io::Result<()> {
    let names: Vec<String> = series.iter().map(series_name).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0).max(6);
    writeln!(
        out,
        "{:<16} {:<width$} {:>10} {:>8} {:>10}",
        "SERVICE", "SERIES", "COLLECTOR", "RATE/S", "APP"
    )?;
    for (s, name) in series.iter().zip(&names) {
        writeln!(
            out,
            "{:<16} {:<width$} {:>10} {:>8} {:>10}",
            s.service,
            name,
            s.value.map_or_else(|| "-".into(), number),
            s.rate_per_second
                .map_or_else(|| "-".into(), |r| format!("{r:.2}")),
            s.app
                .as_ref()
                .and_then(|app| app.value)
                .map_or_else(|| "-".into(), number),
        )?;
    }
    let errors: BTreeMap<&str, &str> = series
        .iter()
        .filter_map(|s| Some((s.service.as_str(), s.app.as_ref()?.error.as_deref()?)))
        .collect();
    for (service, error) in errors {
        writeln!(out, "{service}: {error}")?;
    }
    writeln!(
        out,
        "COLLECTOR: the app's last export; RATE/S: between its last two exports; APP: the \
         app's own /metrics now (ahead by what it counted since its last export)"
    )
}

/// `mcp.tool.calls{result=ok,tool=repo.tree}`.
fn series_name(series: &Series) -> String {
    if series.attributes.is_empty() {
        return series.name.clone();
    }
    let attributes: Vec<String> = series
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{}{{{}}}", series.name, attributes.join(","))
}

/// A counter's value: whole numbers without a fraction.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(time_s: u128, value: f64) -> Point {
        Point {
            service: "amtp-github-mcp".into(),
            name: "mcp.tool.calls".into(),
            data_type: "Sum".into(),
            monotonic: true,
            attributes: BTreeMap::from([("tool".into(), "repo.tree".into())]),
            start_unix_nano: 1,
            time_unix_nano: time_s * 1_000_000_000,
            value: Some(value),
        }
    }

    #[test]
    fn the_last_point_of_each_series_with_its_rate() {
        let mut restarted = point(20, 1.0);
        restarted.start_unix_nano = 2;
        let series = latest(vec![point(5, 3.0), point(10, 13.0)]);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].value, Some(13.0));
        assert_eq!(series[0].rate_per_second, Some(2.0));
        let series = latest(vec![point(5, 3.0), point(10, 13.0), restarted]);
        assert_eq!(series[0].value, Some(1.0));
        assert_eq!(series[0].rate_per_second, None, "another run of the app");
    }

    #[test]
    fn the_table_sets_the_apps_value_beside_the_collectors() {
        let mut series = latest(vec![point(5, 3.0), point(10, 13.0)]);
        let samples: Samples = BTreeMap::from([(
            (
                "mcp_tool_calls".to_owned(),
                BTreeMap::from([("tool".into(), "repo.tree".into())]),
            ),
            15.0,
        )]);
        series[0].app = Some(app_view(&series[0], &Ok(samples)));
        let mut text = Vec::new();
        print(&mut text, &series).unwrap();
        let text = String::from_utf8(text).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "amtp-github-mcp",
                "mcp.tool.calls{tool=repo.tree}",
                "13",
                "2.00",
                "15"
            ],
            "{text}"
        );
    }
}
