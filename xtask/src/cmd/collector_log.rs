//! The collector's debug log, read back by `traces` and `metrics`.
//!
//! Rotel (`stack/otel_collector.rs`) prints every batch of spans and metrics it receives to its
//! stdout in the layout of the OpenTelemetry Collector's debug exporter, each batch a block
//! that begins with `ResourceSpans #N` or `ResourceMetrics #N`; the supervisor keeps that
//! output timestamped and rotated like every service's log. Rotel's own messages are JSON
//! lines among the blocks.

use std::io;
use std::path::Path;

use anyhow::{Context, bail};

use crate::config::StackConfig;
use crate::os::logfile;
use crate::stack::otel_collector;

/// What a block of the debug log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Spans,
    Metrics,
}

impl Signal {
    /// The line that begins one of its blocks.
    fn header(self) -> &'static str {
        match self {
            Signal::Spans => "ResourceSpans #",
            Signal::Metrics => "ResourceMetrics #",
        }
    }
}

/// The collector's log and its rotated files, oldest first, without the supervisor's
/// timestamps.
pub(crate) fn read(cfg: &StackConfig) -> anyhow::Result<String> {
    let log = cfg.log_file(otel_collector::UNIT.name);
    if !log.exists() {
        bail!(
            "no collector log at {}; start the stack with `cargo xtask up` (the otel-collector \
             service logs every span and metric it receives)",
            log.display()
        );
    }
    let mut text = String::new();
    for n in (1..=logfile::KEEP).rev() {
        text.push_str(&read_without_stamps(&logfile::rotated(&log, n))?);
    }
    text.push_str(&read_without_stamps(&log)?);
    Ok(text)
}

/// A log file's text without the supervisor's timestamps; nothing for a file not there.
fn read_without_stamps(path: &Path) -> anyhow::Result<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut text = String::with_capacity(bytes.len());
    for line in bytes.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
        text.push_str(&String::from_utf8_lossy(logfile::without_timestamp(line)));
        text.push('\n');
    }
    Ok(text)
}

/// The lines of the blocks of one signal, with Rotel's own messages (which each reader takes
/// as the end of the section they interrupt); the other signals' blocks are left out.
pub(crate) fn blocks(text: &str, signal: Signal) -> String {
    let mut kept = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("Resource") && line.contains(" #") {
            inside = line.starts_with(signal.header());
        }
        if inside || line.starts_with('{') {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

/// `     -> key: Str(value)`: the key and the value without its type.
pub(crate) fn attribute(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("     -> ")?;
    let (key, value) = rest.split_once(": ")?;
    Some((key.to_owned(), untyped(value)))
}

/// `Str(a)` → `a`, `Int(5)` → `5`; a value split over lines keeps its `Str(` until the line
/// with the closing parenthesis.
fn untyped(value: &str) -> String {
    match value.split_once('(') {
        Some((kind, inner))
            if !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            inner.strip_suffix(')').unwrap_or(inner).to_owned()
        }
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_keeps_its_own_blocks_and_rotels_messages() {
        let text = "\
ResourceSpans #0
Span #0
ResourceMetrics #0
Metric #0
{\"msg\":\"hello\"}
NumberDataPoints #0
ResourceSpans #0
Span #1
";
        assert_eq!(
            blocks(text, Signal::Spans),
            "ResourceSpans #0\nSpan #0\n{\"msg\":\"hello\"}\nResourceSpans #0\nSpan #1\n"
        );
        assert_eq!(
            blocks(text, Signal::Metrics),
            "ResourceMetrics #0\nMetric #0\n{\"msg\":\"hello\"}\nNumberDataPoints #0\n"
        );
    }

    #[test]
    fn attribute_values_lose_their_type() {
        assert_eq!(
            attribute("     -> service.name: Str(amtp-github-mcp)"),
            Some(("service.name".into(), "amtp-github-mcp".into()))
        );
        assert_eq!(
            attribute("     -> n: Int(5)"),
            Some(("n".into(), "5".into()))
        );
        assert_eq!(
            attribute("     -> DataType: Sum"),
            Some(("DataType".into(), "Sum".into()))
        );
        assert_eq!(attribute("Span #0"), None);
    }
}
