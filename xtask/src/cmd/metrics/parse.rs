//! The metrics of the collector's debug log, read back.
//!
//! Rotel's `--debug-log metrics --debug-log-verbosity detailed` prints each batch it receives
//! in the layout of the OpenTelemetry Collector's debug exporter:
//!
//! ```text
//! ResourceMetrics #0
//! Resource attributes:
//!      -> service.name: Str(amtp-github-mcp)
//! ScopeMetrics #0
//! Metric #0
//! Descriptor:
//!      -> Name: mcp.tool.calls
//!      -> DataType: Sum
//!      -> IsMonotonic: true
//! NumberDataPoints #0
//! Data point attributes:
//!      -> tool: Str(repo.tree)
//! StartTimestamp: 1700000000000000000
//! Timestamp: 1700000005000000000
//! Value: 3
//! ```
//!
//! Rotel 0.0.1-alpha10 prints `Value:` only for a double; an integer point has none (the
//! apps of this stack count in doubles for that reason). Histograms print no points.

use std::collections::BTreeMap;

use crate::cmd::collector_log::{self, Signal, attribute};

/// One data point of a sum or a gauge, as the collector logged it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub(crate) struct Point {
    /// The `service.name` of the resource that sent it.
    pub(crate) service: String,
    pub(crate) name: String,
    /// `Sum` or `Gauge`.
    pub(crate) data_type: String,
    pub(crate) monotonic: bool,
    pub(crate) attributes: BTreeMap<String, String>,
    /// When the counter started counting: a new value means the app restarted.
    pub(crate) start_unix_nano: u128,
    pub(crate) time_unix_nano: u128,
    /// `None` when the collector printed no value (an integer point).
    pub(crate) value: Option<f64>,
}

/// Where in a block the reader is: what an indented `-> key: value` line belongs to.
#[derive(PartialEq, Eq)]
enum Section {
    Other,
    ResourceAttributes,
    Descriptor,
    PointAttributes,
}

/// Every data point of `text` (the log without its timestamps), in the order logged.
pub(crate) fn points(text: &str) -> Vec<Point> {
    let mut points = Vec::new();
    let mut service = String::new();
    // The descriptor of the metric whose points follow.
    let mut metric = Point::default();
    let mut section = Section::Other;
    for line in collector_log::blocks(text, Signal::Metrics).lines() {
        if line.starts_with("ResourceMetrics #") {
            service.clear();
            section = Section::Other;
        } else if line == "Resource attributes:" {
            section = Section::ResourceAttributes;
        } else if line.starts_with("Metric #") || line == "Descriptor:" {
            if line.starts_with("Metric #") {
                metric = Point::default();
            }
            section = Section::Descriptor;
        } else if line.starts_with("NumberDataPoints #") {
            points.push(Point {
                service: service.clone(),
                ..metric.clone()
            });
            section = Section::Other;
        } else if line == "Data point attributes:" {
            section = Section::PointAttributes;
        } else if line.starts_with('{') || line.starts_with("ScopeMetrics #") {
            section = Section::Other;
        } else if let Some((field, value)) = line.split_once(": ")
            && !line.starts_with(' ')
        {
            let Some(point) = points.last_mut() else {
                continue;
            };
            match field {
                "StartTimestamp" => point.start_unix_nano = value.parse().unwrap_or(0),
                "Timestamp" => point.time_unix_nano = value.parse().unwrap_or(0),
                "Value" => point.value = value.trim().parse().ok(),
                _ => {}
            }
        } else if let Some((key, value)) = attribute(line) {
            match section {
                Section::ResourceAttributes if key == "service.name" => service = value,
                Section::Descriptor => match key.as_str() {
                    "Name" => metric.name = value,
                    "DataType" => metric.data_type = value,
                    "IsMonotonic" => metric.monotonic = value == "true",
                    _ => {}
                },
                Section::PointAttributes => {
                    if let Some(point) = points.last_mut() {
                        point.attributes.insert(key, value);
                    }
                }
                _ => {}
            }
        }
    }
    points.retain(|point| !point.name.is_empty());
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Rotel 0.0.1-alpha10 printed for github-mcp's export (two points of one counter,
    /// a gauge of another service whose integer value it did not print), with a span block and
    /// one of its own messages among them.
    const LOGGED: &str = "\
ResourceMetrics #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(amtp-github-mcp)
ScopeMetrics #0
ScopeMetrics SchemaURL: 
InstrumentationScope amtp-github-mcp 
Metric #0
Descriptor:
     -> Name: mcp.tool.calls
     -> Description: 
     -> Unit: 
     -> DataType: Sum
     -> IsMonotonic: true
     -> AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE
NumberDataPoints #0
Data point attributes:
     -> tool: Str(repo.tree)
     -> result: Str(ok)
StartTimestamp: 1700000000000000000
Timestamp: 1700000005000000000
Value: 3
NumberDataPoints #1
Data point attributes:
     -> tool: Str(repo.read_file)
     -> result: Str(error)
StartTimestamp: 1700000000000000000
Timestamp: 1700000005000000000
Value: 1
ResourceSpans #0
Resource attributes:
     -> service.name: Str(amtp-github-mcp)
ScopeSpans #0
Span #0
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Name           : repo.tree
Attributes:
     -> mcp.tool: Str(repo.tree)
{\"v\":0,\"msg\":\"Shutdown signal received.\"}
ResourceMetrics #0
Resource attributes:
     -> service.name: Str(other)
ScopeMetrics #0
Metric #0
Descriptor:
     -> Name: queue.depth
     -> DataType: Gauge
NumberDataPoints #0
StartTimestamp: 0
Timestamp: 1700000006000000000
";

    #[test]
    fn every_point_with_its_service_descriptor_attributes_times_and_value() {
        let points = points(LOGGED);
        assert_eq!(points.len(), 3, "{points:#?}");
        let calls = &points[0];
        assert_eq!(calls.service, "amtp-github-mcp");
        assert_eq!(calls.name, "mcp.tool.calls");
        assert_eq!(calls.data_type, "Sum");
        assert!(calls.monotonic);
        assert_eq!(calls.attributes["tool"], "repo.tree");
        assert_eq!(calls.attributes["result"], "ok");
        assert_eq!(calls.start_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(calls.time_unix_nano, 1_700_000_005_000_000_000);
        assert_eq!(calls.value, Some(3.0));
        assert_eq!(points[1].attributes["tool"], "repo.read_file");
        assert_eq!(points[1].value, Some(1.0));
        let gauge = &points[2];
        assert_eq!(
            (gauge.service.as_str(), gauge.name.as_str()),
            ("other", "queue.depth")
        );
        assert!(!gauge.monotonic && gauge.attributes.is_empty());
        assert_eq!(gauge.value, None, "no value printed");
    }
}
