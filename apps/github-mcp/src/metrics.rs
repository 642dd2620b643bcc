//! Counters, exposed as Prometheus text on `/metrics` and exported over OTLP.
//!
//! Each event is recorded once here and lands in both: the Prometheus registry for scraping and
//! the global OpenTelemetry meter (a no-op when telemetry is disabled).
//!
//! The OpenTelemetry counters count in `f64` (whole numbers, exact up to 2^53): the stack's
//! collector, Rotel 0.0.1-alpha10, prints a data point's value in its debug log only for
//! doubles, and that log is where `cargo xtask metrics` reads the collector's view.

use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
    result: String,
}

pub struct Metrics {
    registry: Registry,
    tool_calls: Family<ToolLabels, Counter>,
    github_requests: Family<StatusLabels, Counter>,
    cache_lookups: Family<CacheLabels, Counter>,
    otel_tool_calls: opentelemetry::metrics::Counter<f64>,
    otel_github_requests: opentelemetry::metrics::Counter<f64>,
    otel_cache_lookups: opentelemetry::metrics::Counter<f64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let tool_calls = Family::<ToolLabels, Counter>::default();
        let github_requests = Family::<StatusLabels, Counter>::default();
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "mcp_tool_calls",
            "MCP tool calls by tool and result",
            tool_calls.clone(),
        );
        registry.register(
            "github_requests",
            "GitHub API requests by HTTP status",
            github_requests.clone(),
        );
        registry.register(
            "mcp_cache_lookups",
            "Valkey cache lookups by cache and result",
            cache_lookups.clone(),
        );
        let meter = opentelemetry::global::meter("amtp-github-mcp");
        Metrics {
            registry,
            tool_calls,
            github_requests,
            cache_lookups,
            otel_tool_calls: meter.f64_counter("mcp.tool.calls").build(),
            otel_github_requests: meter.f64_counter("github.requests").build(),
            otel_cache_lookups: meter.f64_counter("mcp.cache.lookups").build(),
        }
    }

    /// `result` is `ok` or `error`.
    pub fn tool_call(&self, tool: &str, result: &str) {
        self.tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.otel_tool_calls.add(
            1.0,
            &[
                KeyValue::new("tool", tool.to_owned()),
                KeyValue::new("result", result.to_owned()),
            ],
        );
    }

    /// `status` is the HTTP status, or `timeout` / `error` when there was none.
    pub fn github_request(&self, status: &str) {
        self.github_requests
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .inc();
        self.otel_github_requests
            .add(1.0, &[KeyValue::new("status", status.to_owned())]);
    }

    /// `result` is `hit`, `miss` or `unavailable`.
    pub fn cache_lookup(&self, cache: &str, result: &str) {
        self.cache_lookups
            .get_or_create(&CacheLabels {
                cache: cache.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.otel_cache_lookups.add(
            1.0,
            &[
                KeyValue::new("cache", cache.to_owned()),
                KeyValue::new("result", result.to_owned()),
            ],
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let metrics = Metrics::new();
        metrics.tool_call("repo.tree", "ok");
        metrics.github_request("200");
        metrics.cache_lookup("tree", "hit");
        let text = metrics.render();
        assert!(
            text.contains(r#"mcp_tool_calls_total{tool="repo.tree",result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"github_requests_total{status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mcp_cache_lookups_total{cache="tree",result="hit"} 1"#),
            "{text}"
        );
    }
}
