//! `cargo xtask traces`: the recent traces the stack's collector received, as indented span
//! trees with durations and the attributes that say what a call did (tool, repository, ref,
//! cache hit or miss, GitHub's status), or as JSON for scripts.
//!
//! The collector (`stack/otel_collector.rs`) logs every span it receives; the supervisor keeps
//! that log timestamped and rotated like every service's. This command reads the log and its
//! rotated files back ([`collector_log`], [`parse`]), groups the spans by trace and keeps the
//! traces the flags ask for, oldest first.

mod parse;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};

use crate::cli::Output;
use crate::cmd::collector_log;
use crate::config::StackConfig;
use crate::stack::otel_collector;

use parse::Span;

/// The attributes shown beside a span's name, in this order, under these short names.
const KEY_ATTRIBUTES: [(&str, &str); 10] = [
    ("mcp.tool", "tool"),
    ("repo.owner", "owner"),
    ("repo.name", "repo"),
    ("git.ref", "ref"),
    ("repo.path", "path"),
    ("cache.name", "cache"),
    ("cache.result", "result"),
    ("url.path", "path"),
    ("http.response.status_code", "status"),
    ("error.type", "error"),
];

/// Which traces to show, from the command line.
pub(crate) struct Options {
    /// Only traces with a span of this service (`OTEL_SERVICE_NAME`).
    pub(crate) service: Option<String>,
    /// Only traces that began since then.
    pub(crate) since: Option<DateTime<Utc>>,
    /// Only traces whose root span took at least this long.
    pub(crate) slow: Option<TimeDelta>,
    /// Only the trace with this id (or id prefix).
    pub(crate) trace: Option<String>,
}

/// One trace: its spans in tree order, each with its depth.
#[derive(serde::Serialize)]
struct Trace {
    trace_id: String,
    /// The root span's service, name, start and duration (of the earliest span when the root
    /// was not received).
    service: String,
    name: String,
    start: DateTime<Utc>,
    duration_ms: f64,
    spans: Vec<TreeSpan>,
}

#[derive(serde::Serialize)]
struct TreeSpan {
    depth: usize,
    duration_ms: f64,
    #[serde(flatten)]
    span: Span,
}

/// `--slow`: a duration (`50ms`, `2s`).
pub(crate) fn parse_slow(text: &str) -> Result<TimeDelta, String> {
    crate::cmd::logs::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration; give one such as `50ms` or `2s`"))
}

pub(crate) fn run(
    cfg: &StackConfig,
    options: &Options,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let text = collector_log::read(cfg)?;
    let traces = chosen(traces(parse::spans(&text)), options);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let printed = match output {
        Output::Json => serde_json::to_writer_pretty(&mut out, &traces)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out)),
        Output::Table if traces.is_empty() => writeln!(
            out,
            "no traces{}; the apps send theirs to {} (see `cargo xtask logs otel-collector`)",
            if has_filter(options) {
                " match"
            } else {
                " yet"
            },
            otel_collector::endpoint(cfg)
        ),
        Output::Table => traces.iter().try_for_each(|trace| print(&mut out, trace)),
    };
    crate::cmd::printed(printed.and_then(|()| out.flush()), "traces")
}

fn has_filter(options: &Options) -> bool {
    options.service.is_some()
        || options.since.is_some()
        || options.slow.is_some()
        || options.trace.is_some()
}

/// The spans grouped by trace, each trace in tree order, the traces by start time.
fn traces(spans: Vec<Span>) -> Vec<Trace> {
    let mut by_trace: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for span in spans {
        by_trace
            .entry(span.trace_id.clone())
            .or_default()
            .push(span);
    }
    let mut traces: Vec<Trace> = by_trace
        .into_iter()
        .map(|(trace_id, spans)| tree(trace_id, spans))
        .collect();
    traces.sort_by_key(|trace| trace.start);
    traces
}

/// One trace's spans depth first, children by start time; a span whose parent was not
/// received (dropped, or still in an app's batch) is shown as a root.
fn tree(trace_id: String, mut spans: Vec<Span>) -> Trace {
    spans.sort_by_key(|span| span.start_unix_nano);
    let ids: Vec<String> = spans.iter().map(|span| span.span_id.clone()).collect();
    let is_root = |span: &Span| span.parent_id.is_empty() || !ids.contains(&span.parent_id);
    let mut ordered = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, usize)> = spans
        .iter()
        .enumerate()
        .filter(|(_, span)| is_root(span))
        .map(|(index, _)| (index, 0))
        .rev()
        .collect();
    while let Some((index, depth)) = stack.pop() {
        ordered.push((index, depth));
        let id = &spans[index].span_id;
        stack.extend(
            spans
                .iter()
                .enumerate()
                .filter(|(_, span)| &span.parent_id == id)
                .map(|(child, _)| (child, depth + 1))
                .rev(),
        );
    }
    let first = ordered.first().map(|(index, _)| &spans[*index]);
    let (service, name, start_nanos, duration) = first.map_or_else(
        || (String::new(), String::new(), 0, 0),
        |span| {
            (
                span.service.clone(),
                span.name.clone(),
                span.start_unix_nano,
                span.duration_nanos(),
            )
        },
    );
    let mut slots: Vec<Option<Span>> = spans.into_iter().map(Some).collect();
    let spans = ordered
        .into_iter()
        .filter_map(|(index, depth)| {
            let span = slots[index].take()?;
            Some(TreeSpan {
                depth,
                duration_ms: millis(span.duration_nanos()),
                span,
            })
        })
        .collect();
    Trace {
        trace_id,
        service,
        name,
        start: DateTime::from_timestamp_nanos(i64::try_from(start_nanos).unwrap_or(i64::MAX)),
        duration_ms: millis(duration),
        spans,
    }
}

fn millis(nanos: u128) -> f64 {
    nanos as f64 / 1e6
}

/// The traces the options ask for.
fn chosen(traces: Vec<Trace>, options: &Options) -> Vec<Trace> {
    traces
        .into_iter()
        .filter(|trace| {
            let service = options
                .service
                .as_ref()
                .is_none_or(|wanted| trace.spans.iter().any(|span| &span.span.service == wanted));
            let since = options.since.is_none_or(|since| trace.start >= since);
            let slow = options.slow.is_none_or(|slow| {
                trace.duration_ms >= slow.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3
            });
            let id = options
                .trace
                .as_ref()
                .is_none_or(|id| trace.trace_id.starts_with(&id.to_ascii_lowercase()));
            service && since && slow && id
        })
        .collect()
}

/// `trace 5b8e…  2026-12-04 20:55:26.136Z  amtp-github-mcp  repo.tree  12.3 ms`, then the
/// spans indented by depth.
fn print(out: &mut impl Write, trace: &Trace) -> io::Result<()> {
    writeln!(
        out,
        "trace {}  {}  {}  {}  {:.1} ms",
        trace.trace_id,
        trace.start.format("%Y-%m-%d %H:%M:%S%.3fZ"),
        trace.service,
        trace.name,
        trace.duration_ms
    )?;
    for tree_span in &trace.spans {
        let span = &tree_span.span;
        let mut line = format!(
            "{:indent$}{}  {:.1} ms",
            "",
            span.name,
            tree_span.duration_ms,
            indent = 2 + 2 * tree_span.depth
        );
        if !span.kind.is_empty() && span.kind != "internal" {
            line.push_str(&format!("  [{}]", span.kind));
        }
        for (key, short) in KEY_ATTRIBUTES {
            if let Some(value) = span.attributes.get(key).filter(|v| !v.is_empty()) {
                line.push_str(&format!("  {short}={value}"));
            }
        }
        if span.status == "error" {
            line.push_str(&format!("  ERROR {}", span.status_message));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, start: u128, end: u128) -> Span {
        Span {
            trace_id: "t1".into(),
            span_id: id.into(),
            parent_id: parent.into(),
            name: format!("span {id}"),
            service: "amtp-github-mcp".into(),
            start_unix_nano: start,
            end_unix_nano: end,
            ..Span::default()
        }
    }

    #[test]
    fn spans_are_shown_depth_first_under_their_parents() {
        let spans = vec![
            span("c2", "root", 30, 40),
            span("root", "", 10, 60_000_010),
            span("c1", "root", 20, 25),
            span("g1", "c1", 21, 22),
        ];
        let trace = tree("t1".into(), spans);
        let order: Vec<(&str, usize)> = trace
            .spans
            .iter()
            .map(|s| (s.span.span_id.as_str(), s.depth))
            .collect();
        assert_eq!(order, [("root", 0), ("c1", 1), ("g1", 2), ("c2", 1)]);
        assert_eq!(trace.duration_ms, 60.0);
        assert_eq!(trace.name, "span root");
        let mut text = Vec::new();
        print(&mut text, &trace).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("\n  span root  60.0 ms\n    span c1"),
            "{text}"
        );
        assert!(text.contains("\n      span g1  0.0 ms\n"), "{text}");
    }

    #[test]
    fn slow_and_service_filters_keep_only_matching_traces() {
        let fast = tree("fast".into(), vec![span("a", "", 0, 1_000_000)]);
        let slow = tree("slow".into(), vec![span("b", "", 0, 80_000_000)]);
        let options = Options {
            service: Some("amtp-github-mcp".into()),
            since: None,
            slow: Some(TimeDelta::milliseconds(50)),
            trace: None,
        };
        let kept = chosen(vec![fast, slow], &options);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].trace_id, "slow");
        assert!(parse_slow("fast").is_err());
    }
}
