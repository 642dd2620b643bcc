//! The spans of the collector's debug log, read back.
//!
//! Rotel's `--debug-log traces --debug-log-verbosity detailed` prints each batch it receives
//! in the layout of the OpenTelemetry Collector's debug exporter:
//!
//! ```text
//! ResourceSpans #0
//! Resource attributes:
//!      -> service.name: Str(amtp-github-mcp)
//! ScopeSpans #0
//! Span #0
//!     Trace ID       : 5b8efff798038103d269b633813fc60c
//!     Parent ID      :
//!     ID             : eee19b7ec3c1b174
//!     Name           : repo.tree
//!     Kind           : SPAN_KIND_SERVER
//! Start time: 1700000000000000000
//! End time: 1700000000050000000
//!     Status code    : STATUS_CODE_ERROR
//!     Status message : …
//! Attributes:
//!      -> mcp.tool: Str(repo.tree)
//! Events:
//! SpanEvent #0
//! ```
//!
//! A string attribute holding a line break goes on over the next lines, so a line that is
//! none of the above continues the attribute before it. Rotel's own messages (JSON lines) end
//! whatever block they interrupt; the metrics' blocks between are not read.

use std::collections::BTreeMap;

use crate::cmd::collector_log::{self, Signal, attribute};

/// One span as the collector logged it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Span {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    /// Empty for the root of a trace.
    pub(crate) parent_id: String,
    pub(crate) name: String,
    /// `server`, `client`, `internal`, …
    pub(crate) kind: String,
    /// The `service.name` of the resource that sent it.
    pub(crate) service: String,
    pub(crate) start_unix_nano: u128,
    pub(crate) end_unix_nano: u128,
    /// `error` when the span says it failed, else empty.
    pub(crate) status: String,
    pub(crate) status_message: String,
    /// Each attribute's value as text (`Int(5)` is `5`).
    pub(crate) attributes: BTreeMap<String, String>,
}

impl Span {
    pub(crate) fn duration_nanos(&self) -> u128 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }
}

/// Where in a block the reader is: what an indented `-> key: value` line belongs to.
#[derive(PartialEq, Eq)]
enum Section {
    Other,
    ResourceAttributes,
    SpanAttributes,
}

/// Every span of `text` (the log without its timestamps), in the order logged.
pub(crate) fn spans(text: &str) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut service = String::new();
    let mut section = Section::Other;
    // The attribute a continuation line extends.
    let mut last_key: Option<String> = None;
    for line in collector_log::blocks(text, Signal::Spans).lines() {
        if line.starts_with("ResourceSpans #") {
            service.clear();
            section = Section::Other;
        } else if line == "Resource attributes:" {
            section = Section::ResourceAttributes;
        } else if line.starts_with("ScopeSpans #") || line.starts_with("Events:") {
            section = Section::Other;
        } else if line.starts_with("Span #") {
            spans.push(Span {
                service: service.clone(),
                ..Span::default()
            });
            section = Section::Other;
        } else if line == "Attributes:" {
            section = Section::SpanAttributes;
        } else if line.starts_with('{') {
            // One of Rotel's own messages.
            section = Section::Other;
        } else if let Some(span) = spans.last_mut()
            && let Some((field, value)) = span_field(line)
        {
            match field {
                "Trace ID" => span.trace_id = value.to_owned(),
                "Parent ID" => span.parent_id = value.to_owned(),
                "ID" => span.span_id = value.to_owned(),
                "Name" => span.name = value.to_owned(),
                "Kind" => span.kind = kind(value),
                "Start time" => span.start_unix_nano = value.parse().unwrap_or(0),
                "End time" => span.end_unix_nano = value.parse().unwrap_or(0),
                "Status code" => span.status = status(value),
                "Status message" => span.status_message = value.to_owned(),
                _ => {}
            }
            continue;
        }
        match (&section, attribute(line)) {
            (Section::ResourceAttributes, Some((key, value))) if key == "service.name" => {
                service = value;
            }
            (Section::SpanAttributes, Some((key, value))) => {
                if let Some(span) = spans.last_mut() {
                    span.attributes.insert(key.clone(), value);
                    last_key = Some(key);
                }
            }
            (Section::SpanAttributes, None) => {
                if let (Some(span), Some(key)) = (spans.last_mut(), &last_key)
                    && let Some(value) = span.attributes.get_mut(key)
                {
                    continue_value(value, line);
                }
            }
            _ => {}
        }
    }
    spans.retain(|span| !span.trace_id.is_empty() && !span.span_id.is_empty());
    spans
}

/// `    Trace ID       : abc` or `Start time: 17…`: the field and its value.
fn span_field(line: &str) -> Option<(&str, &str)> {
    if line.starts_with("     ->") {
        return None;
    }
    let (field, value) = line.split_once(':')?;
    let field = field.trim();
    matches!(
        field,
        "Trace ID"
            | "Parent ID"
            | "ID"
            | "Name"
            | "Kind"
            | "Start time"
            | "End time"
            | "Status code"
            | "Status message"
    )
    .then(|| (field, value.trim()))
}

/// Appends a continuation line of a multi-line string value (its closing `)` dropped).
fn continue_value(value: &mut String, line: &str) {
    value.push('\n');
    value.push_str(line.strip_suffix(')').unwrap_or(line));
}

/// `SPAN_KIND_SERVER` → `server`.
fn kind(value: &str) -> String {
    value
        .strip_prefix("SPAN_KIND_")
        .unwrap_or(value)
        .to_ascii_lowercase()
}

/// `STATUS_CODE_ERROR` → `error`; unset → empty.
fn status(value: &str) -> String {
    match value.strip_prefix("STATUS_CODE_").unwrap_or(value) {
        "UNSET" => String::new(),
        other => other.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Rotel 0.0.1-alpha10 printed for one export request (two resources: the second
    /// batch of another service), with one of its own messages after the first.
    const LOGGED: &str = "\
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(amtp-github-mcp)
ScopeSpans #0
ScopeSpans SchemaURL: 
InstrumentationScope amtp-github-mcp 
Span #0
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Parent ID      : 
    ID             : eee19b7ec3c1b174
    Name           : repo.tree
    Kind           : SPAN_KIND_SERVER
Start time: 1700000000000000000
End time: 1700000000050000000
    Status code    : STATUS_CODE_ERROR
    Status message : boom: bad
Attributes:
     -> mcp.tool: Str(repo.tree)
     -> n: Int(5)
     -> note: Str(a, b) c
d)
Events:
SpanEvent #0
     -> Name: ev
     -> Attributes::
          -> level: Str(WARN)
Span #1
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Parent ID      : eee19b7ec3c1b174
    ID             : eee19b7ec3c1b175
    Name           : valkey GET
    Kind           : SPAN_KIND_CLIENT
Start time: 1700000000001000000
End time: 1700000000002000000
Attributes:
     -> cache.result: Str(miss)
{\"v\":0,\"msg\":\"Shutdown signal received.\"}
ResourceSpans #1
Resource attributes:
     -> service.name: Str(other)
ScopeSpans #0
Span #0
    Trace ID       : 00000000000000000000000000000001
    Parent ID      : 
    ID             : 0000000000000001
    Name           : job
    Kind           : SPAN_KIND_INTERNAL
Start time: 5
End time: 7
";

    #[test]
    fn every_span_with_its_service_parent_times_status_and_attributes() {
        let spans = spans(LOGGED);
        assert_eq!(spans.len(), 3);
        let root = &spans[0];
        assert_eq!(root.service, "amtp-github-mcp");
        assert_eq!(root.parent_id, "");
        assert_eq!(root.kind, "server");
        assert_eq!(root.duration_nanos(), 50_000_000);
        assert_eq!(root.status, "error");
        assert_eq!(root.status_message, "boom: bad");
        assert_eq!(root.attributes["mcp.tool"], "repo.tree");
        assert_eq!(root.attributes["n"], "5");
        assert_eq!(root.attributes["note"], "a, b) c\nd");
        assert!(
            !root.attributes.contains_key("level"),
            "an event's attribute"
        );
        let child = &spans[1];
        assert_eq!(child.parent_id, root.span_id);
        assert_eq!(child.name, "valkey GET");
        assert_eq!(child.status, "");
        assert_eq!(child.attributes["cache.result"], "miss");
        assert_eq!(spans[2].service, "other");
        assert_eq!(spans[2].duration_nanos(), 2);
    }

    #[test]
    fn a_metrics_block_between_spans_is_not_read_as_theirs() {
        let (first, rest) = LOGGED.split_at(LOGGED.find("{\"v\"").unwrap());
        let metrics = "\
ResourceMetrics #0
Resource attributes:
     -> service.name: Str(amtp-github-mcp)
ScopeMetrics #0
Metric #0
Descriptor:
     -> Name: mcp.tool.calls
NumberDataPoints #0
Data point attributes:
     -> tool: Str(repo.tree)
Timestamp: 1700000000000000000
Value: 3
";
        let spans = spans(&format!("{first}{metrics}{rest}"));
        assert_eq!(spans, super::spans(LOGGED));
        assert!(!spans[1].attributes.contains_key("tool"), "{spans:?}");
    }
}
