//! Logs (one JSON object per line on stderr) and OTLP/HTTP traces and metrics.
//!
//! Export runs on the SDK's own background threads with short timeouts, so an unreachable
//! collector costs requests nothing: batches are dropped and the SDK logs why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetryConfig;

const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the counters are exported when `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, read
/// by the SDK itself) does not say: the SDK's own default is 60 s.
const METRICS_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps the exporters alive; [`Telemetry::shutdown`] flushes what is pending.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

/// Installs the log subscriber and, unless disabled, the OTLP exporters. Call it before the
/// async runtime starts: the exporters' blocking HTTP client must not be built inside it.
pub fn init(config: &TelemetryConfig) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr);
    let (tracer_provider, meter_provider, setup_error) = if config.enabled {
        match exporters(config) {
            Ok((tracer, meter)) => (Some(tracer), Some(meter), None),
            Err(error) => (None, None, Some(error)),
        }
    } else {
        (None, None, None)
    };
    // Only this crate's spans: rmcp's own (`serve_inner`, one per session) would each be a
    // trace of its own beside the tool call's.
    let otel_layer = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("amtp-github-mcp"))
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                metadata.target().starts_with(env!("CARGO_CRATE_NAME"))
            }))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel_layer)
        .init();
    if let Some(meter_provider) = &meter_provider {
        opentelemetry::global::set_meter_provider(meter_provider.clone());
    }
    match (&setup_error, config.enabled) {
        (Some(error), _) => {
            tracing::warn!(%error, "OpenTelemetry export disabled: cannot set up the exporters")
        }
        (None, true) => {
            tracing::info!(endpoint = %config.endpoint, service = %config.service_name, "exporting OTLP traces and metrics")
        }
        (None, false) => tracing::info!("OpenTelemetry export disabled (OTEL_SDK_DISABLED=true)"),
    }
    Telemetry {
        tracer_provider,
        meter_provider,
    }
}

fn exporters(config: &TelemetryConfig) -> Result<(SdkTracerProvider, SdkMeterProvider), String> {
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let spans = SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", config.endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let metrics = MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/metrics", config.endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let spans = SaysWhenDown {
        inner: spans,
        endpoint: config.endpoint.clone(),
        down: AtomicBool::new(false),
    };
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let mut reader = PeriodicReader::builder(metrics);
    if std::env::var_os("OTEL_METRIC_EXPORT_INTERVAL").is_none() {
        reader = reader.with_interval(METRICS_INTERVAL);
    }
    let reader = reader.build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    Ok((tracer_provider, meter_provider))
}

/// The span exporter, logging once when the collector stops taking spans and once when it takes
/// them again: an export fails for every batch while it is down, and a log line per batch
/// would bury the app's own messages (the SDK drops those batches either way).
#[derive(Debug)]
struct SaysWhenDown<E> {
    inner: E,
    endpoint: String,
    down: AtomicBool,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for SaysWhenDown<E>
{
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        let was_down = self.down.swap(result.is_err(), Ordering::Relaxed);
        match (&result, was_down) {
            (Err(error), false) => tracing::warn!(
                endpoint = %self.endpoint,
                %error,
                "the OpenTelemetry collector does not take spans; dropping them until it does \
                 (said once)"
            ),
            (Ok(()), true) => {
                tracing::info!(endpoint = %self.endpoint, "the OpenTelemetry collector takes spans again")
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl Telemetry {
    /// Flushes and stops the exporters (bounded by their timeouts). Call outside the runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing traces failed");
        }
        if let Some(provider) = self.meter_provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing metrics failed");
        }
    }
}
