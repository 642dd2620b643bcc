//! Garage's service in the Compose files: its configuration rendered from `infra/`, its
//! volumes and secrets as `docker-compose config` reads them.

use super::{GARAGE_TOML, at, compose_config, text, volumes};
use crate::util::repo_root;

/// Garage 2.5: the configuration rendered from infra/, metadata and data in named volumes, the
/// two secrets from files beside github_app_key.pem (image and ports: the main test's tables).
#[test]
fn docker_compose_reads_garage_s_volumes_and_secrets() {
    let config = compose_config();
    let root = repo_root();
    let root = root.to_str().expect("repository path is UTF-8");
    // (Compose v1 prints a service's volumes in an order of its own.)
    let mut garage_volumes = volumes(&config, "garage");
    garage_volumes.sort_unstable();
    assert_eq!(
        garage_volumes,
        [
            format!("{root}/{GARAGE_TOML}:/etc/garage.toml:ro"),
            "amtp_garage_data:/var/lib/garage/data".to_owned(),
            "amtp_garage_meta:/var/lib/garage/meta".to_owned(),
        ]
    );
    let mut secrets: Vec<String> = at(&config, &["services", "garage", "secrets"])
        .as_sequence()
        .expect("secrets is a list")
        .iter()
        .map(|secret| text(at(secret, &["source"])))
        .collect();
    secrets.sort_unstable();
    assert_eq!(secrets, ["garage_admin_token", "garage_rpc_secret"]);
    for secret in secrets {
        assert_eq!(
            text(at(&config, &["secrets", &secret, "file"])),
            format!("{root}/secrets/{secret}")
        );
    }
    for volume in ["amtp_garage_meta", "amtp_garage_data"] {
        assert_eq!(text(at(&config, &["volumes", volume, "name"])), volume);
    }
}

/// What the Garage container reads as /etc/garage.toml: infra/'s template with the container's
/// paths, every interface of the container, the ports' defaults and the Compose secrets.
#[test]
fn garage_s_compose_configuration_comes_from_infra() {
    let path = repo_root().join(GARAGE_TOML);
    let toml = std::fs::read_to_string(&path).expect("read the rendered garage.toml");
    let settings: Vec<&str> = toml.lines().filter(|l| !l.starts_with('#')).collect();
    for line in [
        "metadata_dir = \"/var/lib/garage/meta\"",
        "data_dir = \"/var/lib/garage/data\"",
        "replication_factor = 1",
        "rpc_bind_addr = \"0.0.0.0:3901\"",
        "rpc_secret_file = \"/run/secrets/garage_rpc_secret\"",
        "s3_region = \"garage\"",
        "api_bind_addr = \"0.0.0.0:3900\"",
        "api_bind_addr = \"0.0.0.0:3903\"",
        "admin_token_file = \"/run/secrets/garage_admin_token\"",
    ] {
        assert!(
            settings.contains(&line),
            "{line} not in {}:\n{toml}",
            path.display()
        );
    }
    assert!(
        settings.iter().all(|line| !line.contains("${")),
        "a placeholder is left in {}:\n{toml}",
        path.display()
    );
}
