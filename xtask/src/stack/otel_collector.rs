//! The OpenTelemetry collector the apps send their traces and metrics to: Streamfold's Rotel
//! (`rotel-agent`, from PyPI's `rotel` wheel), with its OTLP/HTTP and OTLP/gRPC receivers on
//! loopback.
//!
//! Every span and metric it receives is written to its stdout in the collector's debug format
//! (`--debug-log traces --debug-log metrics --debug-log-verbosity detailed`, the layout of the
//! OpenTelemetry Collector's debug exporter), which the supervisor keeps, timestamped and
//! rotated, in `<state>/logs/otel-collector.log`: that file is what `cargo xtask traces` and
//! `cargo xtask metrics` read. Nothing goes anywhere else unless `AMTP_OTLP_FORWARD` names an
//! upstream OTLP/HTTP endpoint (your Tempo, a vendor), which then receives all of it through
//! Rotel's OTLP exporter.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;

use super::{ClientVar, Daemon, Kind, Program, Unit};
use crate::config::{PortVar, StackConfig};
use crate::os::process::Launch;
use crate::stack::check::Check;
use crate::stack::compose::{Image, Project, Service};
use crate::stack::contract::Contract;
use crate::stack::programs::{Installed, OffPin, Wanted};

/// OTLP over HTTP, what the apps use (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub(crate) const PORT: PortVar = PortVar {
    var: "OTEL_COLLECTOR_PORT",
    default: 4318,
};

/// OTLP over gRPC, for clients that speak only that; Rotel always binds it.
pub(crate) const GRPC_PORT: PortVar = PortVar {
    var: "OTEL_COLLECTOR_GRPC_PORT",
    default: 4317,
};

/// The variable naming an upstream OTLP/HTTP endpoint that receives everything as well.
pub(crate) const FORWARD_VAR: &str = "AMTP_OTLP_FORWARD";

pub(crate) const UNIT: Unit = Unit {
    name: "otel-collector",
    program: Program::External(Wanted {
        names: &["rotel-agent"],
        version_arg: "--version",
        // The `rotel==0.0.1a15` wheel's binary reports itself as 0.0.1-alpha10.
        pin: "0.0.1",
        install_hint: "the rotel wheel: `python3 -m pip install --target /opt/rotel \
                       rotel==0.0.1a15` and link /opt/rotel/rotel/rotel-agent onto PATH (README)",
        off_pin: OffPin::Drift,
    }),
    checks,
    client_vars,
    compose: Some(compose),
    kind: Kind::Daemon(Daemon {
        port: PORT,
        more_ports: &[GRPC_PORT],
        // Rotel's graceful shutdown: stop the receivers, flush the batches, exit.
        stop_signal: Signal::SIGTERM,
        launch,
        probe,
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// The OTLP/HTTP endpoint the apps of this stack send to.
pub(crate) fn endpoint(cfg: &StackConfig) -> String {
    format!("http://127.0.0.1:{}", cfg.port(PORT))
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    let launch = Launch::new(&installed.path)
        .arg("start")
        // Its own messages as JSON lines: no colour codes in the log file.
        .arg("--log-format")
        .arg("json")
        .arg("--otlp-http-endpoint")
        .arg(format!("127.0.0.1:{}", cfg.port(PORT)))
        .arg("--otlp-grpc-endpoint")
        .arg(format!("127.0.0.1:{}", cfg.port(GRPC_PORT)))
        .arg("--debug-log")
        .arg("traces")
        .arg("--debug-log")
        .arg("metrics")
        .arg("--debug-log-verbosity")
        .arg("detailed");
    match &cfg.otlp_forward {
        Some(upstream) => launch
            .arg("--exporter")
            .arg("otlp")
            .arg("--otlp-exporter-protocol")
            .arg("http")
            .arg("--otlp-exporter-endpoint")
            .arg(upstream),
        // The debug log above is the only output.
        None => launch.arg("--exporter").arg("blackhole"),
    }
}

/// An empty export request over OTLP/HTTP, accepted with 200.
fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    post_traces(cfg, r#"{"resourceSpans":[]}"#)
}

/// Sends an OTLP/JSON export request to the collector's HTTP receiver.
fn post_traces(cfg: &StackConfig, body: &str) -> anyhow::Result<()> {
    let mut response = super::http_agent(Duration::from_millis(800))
        .post(&format!("{}/v1/traces", endpoint(cfg)))
        .header("content-type", "application/json")
        .send(body)?;
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    anyhow::ensure!(status == 200, "POST /v1/traces answered {status}: {text}");
    Ok(())
}

fn client_vars(cfg: &StackConfig, _: Option<&Installed>) -> Vec<ClientVar> {
    vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint(cfg))]
}

/// Both receivers accept connections, and a span sent now shows up in the collector's log.
fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    let mut checks: Vec<Check> = [("OTLP/HTTP", PORT), ("OTLP/gRPC", GRPC_PORT)]
        .into_iter()
        .map(|(protocol, port)| {
            let address = SocketAddr::from(([127, 0, 0, 1], cfg.port(port)));
            let name = format!("otel-collector {protocol} receiver");
            match TcpStream::connect_timeout(&address, Duration::from_millis(800)) {
                Ok(_) => Check::new(name, address.to_string(), address.to_string(), true),
                Err(err) => Check::failed(name, address.to_string(), &err.into()),
            }
        })
        .collect();
    let name = "otel-collector receives a span";
    checks.push(match round_trip(cfg) {
        Ok(waited) => Check::new(name, "logged", format!("logged after {waited:?}"), true),
        Err(err) => Check::failed(name, "logged", &err),
    });
    checks
}

/// Sends a span with a fresh trace id and waits until the collector's log shows it.
fn round_trip(cfg: &StackConfig) -> anyhow::Result<Duration> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|err| anyhow::anyhow!("no system randomness: {err}"))?;
    let trace_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let body = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "xtask-verify"}}
        ]},
        "scopeSpans": [{"scope": {"name": "xtask"}, "spans": [{
            "traceId": trace_id,
            "spanId": &trace_id[..16],
            "name": "verify",
            "kind": 1,
            "startTimeUnixNano": now.to_string(),
            "endTimeUnixNano": now.to_string(),
        }]}]
    }]});
    let started = Instant::now();
    post_traces(cfg, &body.to_string())?;
    let log = cfg.log_file(UNIT.name);
    // Rotel batches for 200 ms before it writes.
    while started.elapsed() < Duration::from_secs(5) {
        let text = std::fs::read(&log).with_context(|| format!("cannot read {}", log.display()))?;
        if text
            .windows(trace_id.len())
            .any(|w| w == trace_id.as_bytes())
        {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!(
        "trace {trace_id} was accepted but not in {} after 5 s",
        log.display()
    )
}

/// The observability project's collector, as the apps' `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (`http://otel-collector:4318`) names it: Rotel's image of the same release, whose entrypoint
/// is `rotel start` with both receivers on the container's interfaces; the rest as natively.
fn compose(_: &Contract) -> anyhow::Result<Service> {
    let command = [
        "--debug-log",
        "traces",
        "--debug-log",
        "metrics",
        "--debug-log-verbosity",
        "detailed",
        "--exporter",
        "blackhole",
    ];
    Ok(Service {
        command: command.map(str::to_owned).to_vec(),
        local_ports: vec![(PORT, 4318), (GRPC_PORT, 4317)],
        project: Project::Observability,
        ..Service::new(
            "otel-collector",
            Image::Pull("streamfold/rotel:v0.0.1-alpha10"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn both_receivers_are_on_loopback_and_spans_go_to_the_debug_log_only() {
        let launch = crate::stack::tests::launched(launch, "/s", "/bin/rotel-agent");
        let cfg = crate::config::tests::config_in(Path::new("/s"));
        let args = crate::stack::tests::args(&launch).join(" ");
        assert!(
            args.contains(&format!(
                "--otlp-http-endpoint 127.0.0.1:{}",
                cfg.port(PORT)
            )),
            "{args}"
        );
        assert!(
            args.contains(&format!(
                "--otlp-grpc-endpoint 127.0.0.1:{}",
                cfg.port(GRPC_PORT)
            )),
            "{args}"
        );
        assert!(
            args.ends_with(
                "--debug-log traces --debug-log metrics --debug-log-verbosity detailed \
                 --exporter blackhole"
            ),
            "{args}"
        );
    }

    #[test]
    fn a_forward_endpoint_gets_everything_over_otlp_http() {
        let mut cfg = crate::config::tests::config_in(Path::new("/s"));
        cfg.otlp_forward = Some("http://tempo:4318".into());
        let launch = launch(
            &cfg,
            &crate::stack::tests::installed("/bin/rotel-agent"),
            &Contract::default(),
        );
        let args = crate::stack::tests::args(&launch).join(" ");
        assert!(
            args.ends_with(
                "--exporter otlp --otlp-exporter-protocol http --otlp-exporter-endpoint \
                 http://tempo:4318"
            ),
            "{args}"
        );
    }
}
