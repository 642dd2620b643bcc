//! The apps' own Prometheus endpoints, read back: the requests an app has served (`status`'s
//! request rate) and the series its OTLP counters are also exported as (`cargo xtask
//! metrics` sets the two views side by side).

use std::collections::BTreeMap;

use anyhow::Context;

use crate::config::StackConfig;
use crate::stack::{Daemon, Kind, Unit};

/// What a row says about its app's Prometheus endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppMetrics {
    /// The path of its Prometheus text on the app's port.
    pub(crate) path: &'static str,
    /// The counter family whose samples, summed, are the requests it served.
    pub(crate) requests: &'static str,
    /// What one of those is, for people (`tool calls`).
    pub(crate) requests_are: &'static str,
    /// The `service.name` of the counters it also exports over OTLP, if it does.
    pub(crate) otlp_service: Option<&'static str>,
}

/// One sample of a Prometheus text: its labels sorted, its value.
pub(crate) type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// The daemons that have a Prometheus endpoint, with what their row says of it.
pub(crate) fn of_units<'a>(
    units: impl IntoIterator<Item = &'a Unit>,
) -> impl Iterator<Item = (&'a Unit, &'a Daemon, AppMetrics)> {
    units.into_iter().filter_map(|unit| match &unit.kind {
        Kind::Daemon(daemon) => daemon.metrics.map(|metrics| (unit, daemon, metrics)),
        Kind::Task(_) => None,
    })
}

/// Reads an app's Prometheus text: every counter and gauge sample by name and labels (the
/// histograms' buckets are left out).
pub(crate) fn scrape(
    cfg: &StackConfig,
    daemon: &Daemon,
    metrics: AppMetrics,
) -> anyhow::Result<Samples> {
    let port = cfg.port(daemon.port);
    let text = super::http_ok(port, metrics.path)
        .with_context(|| format!("cannot read the metrics on port {port}"))?;
    Ok(samples(&text))
}

/// The counter and gauge samples of a Prometheus (or OpenMetrics) text.
fn samples(text: &str) -> Samples {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else {
        unreachable!("reading lines from a string cannot fail")
    };
    scrape
        .samples
        .into_iter()
        .filter_map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(value)
                | prometheus_parse::Value::Gauge(value)
                | prometheus_parse::Value::Untyped(value) => value,
                prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => {
                    return None;
                }
            };
            let labels = sample.labels.iter().map(|(k, v)| (k.clone(), v.clone()));
            Some(((counter_name(&sample.metric), labels.collect()), value))
        })
        .collect()
}

/// A counter's samples are `NAME_total`; the family is `NAME` (OpenMetrics' rule).
fn counter_name(metric: &str) -> String {
    metric.strip_suffix("_total").unwrap_or(metric).to_owned()
}

/// The requests an app has served: its request family's samples, summed.
pub(crate) fn requests_total(samples: &Samples, metrics: AppMetrics) -> f64 {
    samples
        .iter()
        .filter(|((name, _), _)| name == metrics.requests)
        // From +0.0: an empty `sum` of floats is -0.0, which prints as such.
        .fold(0.0, |total, (_, value)| total + value)
}

/// The Prometheus family an OTLP metric is exported as: dots become underscores (the
/// OpenTelemetry specification's Prometheus compatibility rules; a monotonic sum's samples
/// then end in `_total`, which [`counter_name`] takes off).
pub(crate) fn prometheus_family(otlp_name: &str) -> String {
    otlp_name.replace(['.', '-'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What github-mcp's `/metrics` answers (prometheus-client's OpenMetrics text).
    const OPENMETRICS: &str = "\
# HELP mcp_tool_calls MCP tool calls by tool and result.
# TYPE mcp_tool_calls counter
mcp_tool_calls_total{tool=\"repo.tree\",result=\"ok\"} 3
mcp_tool_calls_total{tool=\"repo.read_file\",result=\"error\"} 1
# HELP healthcheck_probe_duration_seconds Time taken.
# TYPE healthcheck_probe_duration_seconds histogram
# UNIT healthcheck_probe_duration_seconds seconds
healthcheck_probe_duration_seconds_sum 0.5
healthcheck_probe_duration_seconds_count 2
healthcheck_probe_duration_seconds_bucket{le=\"0.001\"} 1
healthcheck_probe_duration_seconds_bucket{le=\"+Inf\"} 2
# HELP healthcheck_valkey_up 1 if up.
# TYPE healthcheck_valkey_up gauge
healthcheck_valkey_up 1
# EOF
";

    const MCP: AppMetrics = AppMetrics {
        path: "/metrics",
        requests: "mcp_tool_calls",
        requests_are: "tool calls",
        otlp_service: Some("amtp-github-mcp"),
    };

    #[test]
    fn counters_are_read_by_family_and_labels_and_summed_for_requests() {
        let samples = samples(OPENMETRICS);
        let labels = BTreeMap::from([
            ("result".to_owned(), "ok".to_owned()),
            ("tool".to_owned(), "repo.tree".to_owned()),
        ]);
        assert_eq!(samples[&("mcp_tool_calls".to_owned(), labels)], 3.0);
        assert_eq!(requests_total(&samples, MCP), 4.0);
        assert_eq!(
            samples[&("healthcheck_valkey_up".to_owned(), BTreeMap::new())],
            1.0
        );
        assert!(
            !samples
                .keys()
                .any(|(name, _)| name.contains("duration_seconds_bucket")),
            "{samples:?}"
        );
    }

    #[test]
    fn otlp_names_map_to_prometheus_families() {
        assert_eq!(prometheus_family("mcp.tool.calls"), "mcp_tool_calls");
        assert_eq!(prometheus_family("github.requests"), "github_requests");
    }
}
