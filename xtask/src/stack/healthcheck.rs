//! The healthcheck service (`apps/healthcheck`): a Valkey write-probe over HTTP.

use std::collections::BTreeSet;

use super::app_metrics::AppMetrics;
use super::{Daemon, Kind, Program, Unit, valkey};
use crate::config::{PortVar, StackConfig};
use crate::os::process::Launch;
use crate::stack::check::Check;
use crate::stack::compose::{self, Condition, Image, Service};
use crate::stack::contract::Contract;
use crate::stack::programs::Installed;

pub(crate) const PORT: PortVar = PortVar {
    var: "HEALTHCHECK_PORT",
    default: 8083,
};

pub(crate) const UNIT: Unit = Unit {
    name: "healthcheck",
    program: Program::Workspace {
        package: "amtp-healthcheck",
        binary: "healthcheck",
    },
    depends_on: &["valkey", "migrations"],
    checks,
    client_vars: |cfg, _| {
        let url = format!("http://127.0.0.1:{}", cfg.port(PORT));
        vec![("HEALTHCHECK_URL", url)]
    },
    compose: Some(compose),
    kind: Kind::Daemon(Daemon {
        port: PORT,
        launch,
        probe,
        // Each `GET /health` is one probe (the supervisor's liveness probe among them).
        metrics: Some(AppMetrics {
            path: "/metrics",
            requests: "healthcheck_probes",
            requests_are: "probes",
            otlp_service: None,
        }),
        ..Daemon::DEFAULT
    }),
    ..Unit::DEFAULT
};

/// Built from its Dockerfile, on the seed's port 8080, with Valkey's service.
fn compose(_: &Contract) -> anyhow::Result<Service> {
    let mut environment = valkey::compose_client_env();
    environment.extend(compose::env([("PORT", "8080")]));
    Ok(Service {
        environment,
        ports: vec!["8080:8080"],
        local_ports: vec![(PORT, 8080)],
        depends_on: vec![("valkey", Condition::Started)],
        ..Service::new("healthcheck", Image::Build("apps/healthcheck"))
    })
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    super::with_valkey(Launch::new(&installed.path), cfg).env("PORT", cfg.port(PORT).to_string())
}

fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    super::http_ok(cfg.port(PORT), "/health").map(drop)
}

/// `/health` answers with exactly the documented fields.
fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    let check = "healthcheck /health";
    let expected = r#"200 {"status":"ok","valkey":"up","latency_ms":<n>}"#;
    vec![match super::http_ok(cfg.port(PORT), "/health") {
        Ok(body) => {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let keys: BTreeSet<&str> = value
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let ok = value["status"] == "ok"
                && value["valkey"] == "up"
                && value["latency_ms"].is_number()
                && keys == BTreeSet::from(["status", "valkey", "latency_ms"]);
            Check::new(check, expected, body, ok)
        }
        Err(err) => Check::failed(check, expected, &err),
    }]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::{tests::installed, valkey};

    #[test]
    fn the_service_gets_its_port_and_valkey_in_the_environment() {
        let cfg = crate::config::tests::config_in(Path::new("/s"));
        let launch = launch(&cfg, &installed("/t/healthcheck"), &Contract::default());
        assert_eq!(launch.program, Path::new("/t/healthcheck"));
        assert!(launch.args.is_empty());
        let port = cfg.port(PORT).to_string();
        let valkey_port = cfg.port(valkey::PORT).to_string();
        let expected = [
            ("VALKEY_HOST", "127.0.0.1"),
            ("VALKEY_PORT", valkey_port.as_str()),
            ("VALKEY_PASSWORD", "v"),
            ("BIND_ADDR", "127.0.0.1"),
            ("PORT", port.as_str()),
        ];
        let env: Vec<(&str, &str)> = launch
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, expected);
    }
}
