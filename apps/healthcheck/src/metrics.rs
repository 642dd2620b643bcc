//! Prometheus metrics: probes by result and failing step, probe latency, Valkey up.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::probe::ProbeStep;

/// The `Content-Type` of [`ProbeMetrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency buckets: fine below a millisecond, where a healthy
/// loopback probe lands, up to the 500 ms window and just past it.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

type ProbeLabels = [(&'static str, &'static str); 2];

/// The service's metrics, with a handle per label set so recording a probe never hashes labels.
pub struct ProbeMetrics {
    registry: Registry,
    succeeded: Counter,
    /// Indexed like [`ProbeStep::ALL`].
    failed: [Counter; 3],
    latency: Histogram,
    valkey_up: Gauge,
}

impl ProbeMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let probes = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "healthcheck_probes",
            "Valkey write probes by result and failing step (none when ok)",
            probes.clone(),
        );
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register_with_unit(
            "healthcheck_probe_duration",
            "Time taken by the Valkey write probe, failed probes included",
            Unit::Seconds,
            latency.clone(),
        );
        let valkey_up = Gauge::default();
        registry.register(
            "healthcheck_valkey_up",
            "1 if the last probe succeeded, 0 if it failed or none ran yet",
            valkey_up.clone(),
        );
        // Creating every series up front makes them all visible at 0 from the first scrape.
        let succeeded = probes
            .get_or_create(&[("result", "ok"), ("failed_step", "none")])
            .clone();
        let failed = ProbeStep::ALL.map(|step| {
            probes
                .get_or_create(&[("result", "degraded"), ("failed_step", step.as_str())])
                .clone()
        });
        ProbeMetrics {
            registry,
            succeeded,
            failed,
            latency,
            valkey_up,
        }
    }

    /// Records one probe: `Err(step)` names the step that failed.
    pub fn record(&self, outcome: Result<(), ProbeStep>, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
        match outcome {
            Ok(()) => {
                self.succeeded.inc();
                self.valkey_up.set(1);
            }
            Err(step) => {
                self.failed[step as usize].inc();
                self.valkey_up.set(0);
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(2048);
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for ProbeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_results_by_failing_step() {
        let metrics = ProbeMetrics::new();
        metrics.record(Ok(()), Duration::from_micros(300));
        metrics.record(Err(ProbeStep::Set), Duration::from_millis(2));
        let text = metrics.encode().expect("encode metrics");
        assert!(text.contains(r#"healthcheck_probes_total{result="ok",failed_step="none"} 1"#));
        assert!(
            text.contains(r#"healthcheck_probes_total{result="degraded",failed_step="set"} 1"#)
        );
        assert!(
            text.contains(r#"healthcheck_probes_total{result="degraded",failed_step="ping"} 0"#)
        );
        assert!(text.contains("healthcheck_probe_duration_seconds_count 2"));
        assert!(text.contains("healthcheck_valkey_up 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
