//! `verify`'s checks of Garage: the bootstrap read back from the live node (layout, bucket,
//! key, lifecycle rule, region) and the secret files' modes.

use anyhow::Context;

use super::admin::Admin;
use super::bootstrap::Bootstrap;
use super::s3::{ExpiryRule, S3};
use super::secrets::{AccessKey, access_key_file, admin_token_file, rpc_secret_file};
use crate::config::StackConfig;
use crate::stack::check::{Check, private_file};
use crate::stack::programs::Installed;

pub(super) fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
    let mut checks = match Bootstrap::read(&cfg.repo_root) {
        Ok(wanted) => live_checks(cfg, &wanted),
        Err(err) => vec![Check::failed("garage bootstrap.conf", "readable", &err)],
    };
    for path in [
        rpc_secret_file(cfg),
        admin_token_file(cfg),
        access_key_file(cfg),
    ] {
        checks.push(private_file(&cfg.state_dir, &path).unwrap_or_else(|| {
            let shown = path.strip_prefix(&cfg.state_dir).unwrap_or(&path).display();
            Check::new(
                format!("secret file {shown} mode"),
                "0600",
                "(missing)",
                false,
            )
        }));
    }
    checks
}

fn live_checks(cfg: &StackConfig, wanted: &Bootstrap) -> Vec<Check> {
    let bucket = &wanted.bucket;
    let admin = match Admin::new(cfg) {
        Ok(admin) => admin,
        Err(err) => return vec![Check::failed("garage admin API", "answers", &err)],
    };
    let mut checks = vec![read_back(
        "garage layout",
        nodes_in_zones(std::slice::from_ref(&wanted.zone)),
        layout_zones(&admin).map(|zones| nodes_in_zones(&zones)),
    )];
    let key = AccessKey::read(cfg).and_then(|key| key.context("no access key file"));
    checks.push(read_back(
        format!("garage key {} on bucket {bucket}", wanted.key_name),
        "read, write, owner".to_owned(),
        key.as_ref()
            .map_err(|err| anyhow::anyhow!("{err:#}"))
            .and_then(|key| key_permissions(&admin, bucket, key)),
    ));
    let s3 = match key.and_then(|key| S3::new(cfg, key)) {
        Ok(s3) => s3,
        Err(err) => {
            checks.push(Check::failed("garage S3 API", "answers", &err));
            return checks;
        }
    };
    checks.push(read_back(
        format!("garage {bucket} lifecycle"),
        ExpiryRule::describe(&[ExpiryRule::whole_bucket(wanted.expire_after_days)]),
        s3.lifecycle(bucket)
            .map(|rules| ExpiryRule::describe(&rules)),
    ));
    checks.push(read_back(
        format!("garage {bucket} region"),
        s3.region.clone(),
        s3.location(bucket),
    ));
    checks
}

/// One live value read back: drift when it differs from `expected` or cannot be read.
fn read_back(name: impl Into<String>, expected: String, live: anyhow::Result<String>) -> Check {
    match live {
        Ok(live) => {
            let ok = live == expected;
            Check::new(name, expected, live, ok)
        }
        Err(err) => Check::failed(name, expected, &err),
    }
}

/// `1 node in zone dev`, `2 nodes in zones a, b`.
fn nodes_in_zones(zones: &[String]) -> String {
    match zones {
        [zone] => format!("1 node in zone {zone}"),
        zones => format!("{} nodes in zones {}", zones.len(), zones.join(", ")),
    }
}

/// The zone of each node with a role in the current layout.
fn layout_zones(admin: &Admin) -> anyhow::Result<Vec<String>> {
    Ok(admin
        .cluster_layout()?
        .roles
        .into_iter()
        .map(|role| role.zone)
        .collect())
}

/// What `key` may do on `bucket`, in words (`read, write, owner`), as the admin API says.
fn key_permissions(admin: &Admin, bucket: &str, key: &AccessKey) -> anyhow::Result<String> {
    let info = admin
        .bucket(bucket)?
        .with_context(|| format!("no bucket named {bucket}"))?;
    Ok(info
        .keys
        .iter()
        .find(|entry| entry.access_key_id == key.id)
        .map_or_else(
            || "(not allowed)".to_owned(),
            |entry| entry.permissions.describe(),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_said_in_words() {
        assert_eq!(nodes_in_zones(&["dev".into()]), "1 node in zone dev");
        assert_eq!(
            nodes_in_zones(&["a".into(), "b".into()]),
            "2 nodes in zones a, b"
        );
    }
}
