//! What `infra/garage/bootstrap.conf` asks of a fresh node, and the first-`up` work that
//! gives it: the node's role in the cluster layout, the bucket, the stack's key allowed on
//! it, and the bucket's lifecycle rule. Each step first asks whether the node already has
//! it, so a second `up` changes nothing.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::BOOTSTRAP;
use super::admin::{Admin, Permissions, RoleChange};
use super::s3::{ExpiryRule, S3};
use super::secrets::AccessKey;
use crate::config::StackConfig;
use crate::stack::contract::Setting;

/// How long a fresh node may take to have quorum once its layout is applied.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// The documented values of `infra/garage/bootstrap.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bootstrap {
    pub(crate) bucket: String,
    pub(crate) expire_after_days: u32,
    pub(super) key_name: String,
    pub(super) zone: String,
    capacity_bytes: u64,
}

impl Bootstrap {
    pub(crate) fn read(repo_root: &Path) -> anyhow::Result<Bootstrap> {
        Self::from_settings(&BOOTSTRAP.settings(repo_root)?)
            .context("in infra/garage/bootstrap.conf")
    }

    fn from_settings(settings: &[Setting]) -> anyhow::Result<Bootstrap> {
        let get = |key: &str| -> anyhow::Result<&str> {
            settings
                .iter()
                .find(|s| s.key == key)
                .map(|s| s.value.as_str())
                .with_context(|| format!("`{key}` is missing; add `{key} = ...`"))
        };
        let number = |key: &str| -> anyhow::Result<u64> {
            let value = get(key)?;
            value
                .parse()
                .with_context(|| format!("`{key} = {value}` is not a whole number"))
        };
        let bootstrap = Bootstrap {
            bucket: get("bucket")?.to_owned(),
            expire_after_days: u32::try_from(number("expire_after_days")?)
                .context("`expire_after_days` is too large")?,
            key_name: get("key_name")?.to_owned(),
            zone: get("zone")?.to_owned(),
            capacity_bytes: number("capacity_bytes")?,
        };
        anyhow::ensure!(
            valid_bucket_name(&bootstrap.bucket),
            "bucket {:?} is not an S3 bucket name; use 3-63 lowercase letters, digits and `-`",
            bootstrap.bucket
        );
        anyhow::ensure!(
            bootstrap.expire_after_days > 0,
            "`expire_after_days` must be at least 1 (S3 refuses 0)"
        );
        anyhow::ensure!(
            bootstrap.capacity_bytes > 0,
            "`capacity_bytes` must be above 0"
        );
        Ok(bootstrap)
    }
}

/// S3's rule for the names this stack makes (path-style URLs, no dots).
fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The first-`up` work (the row's `on_ready`), each step skipped when the node already has
/// its result.
pub(super) fn bootstrap(cfg: &StackConfig) -> anyhow::Result<()> {
    let wanted = Bootstrap::read(&cfg.repo_root)?;
    let admin = Admin::new(cfg)?;
    assign_layout(&admin, &wanted).context("garage: cannot assign the node's layout")?;
    let healthy = crate::os::poll::wait_until(HEALTHY_TIMEOUT, || {
        admin.health().is_ok_and(|(status, _)| status == 200)
    });
    if !healthy {
        let (status, sentence) = admin.health()?;
        anyhow::bail!("garage: /health answered {status} after {HEALTHY_TIMEOUT:?}: {sentence}");
    }
    let key = AccessKey::read(cfg)?.context("garage: the access key was not generated")?;
    let bucket_id = ensure_bucket(&admin, &wanted.bucket)
        .with_context(|| format!("garage: cannot create bucket {}", wanted.bucket))?;
    ensure_key(&admin, &key, &wanted.key_name, &bucket_id)
        .with_context(|| format!("garage: cannot allow key {} on the bucket", wanted.key_name))?;
    let s3 = S3::new(cfg, key)?;
    let rules = s3.lifecycle(&wanted.bucket)?;
    if rules != [ExpiryRule::whole_bucket(wanted.expire_after_days)] {
        s3.put_lifecycle(&wanted.bucket, wanted.expire_after_days)
            .with_context(|| format!("garage: cannot set the lifecycle of {}", wanted.bucket))?;
    }
    Ok(())
}

/// Gives this node a storage role, unless the current layout has one for it.
fn assign_layout(admin: &Admin, wanted: &Bootstrap) -> anyhow::Result<()> {
    let status = admin.cluster_status()?;
    let node = status
        .nodes
        .iter()
        .find(|node| node.is_up)
        .context("GetClusterStatus lists no node that is up")?;
    let layout = admin.cluster_layout()?;
    if layout.roles.iter().any(|role| role.id == node.id) {
        return Ok(());
    }
    admin.update_layout(&[RoleChange {
        id: &node.id,
        zone: &wanted.zone,
        capacity: wanted.capacity_bytes,
        tags: [],
    }])?;
    admin.apply_layout(layout.version + 1)
}

/// The bucket's id, after creating it when no bucket has that name.
fn ensure_bucket(admin: &Admin, name: &str) -> anyhow::Result<String> {
    let info = match admin.bucket(name)? {
        Some(info) => info,
        None => admin.create_bucket(name)?,
    };
    Ok(info.id)
}

/// Imports the stack's key when the node lacks it, and allows it everything on the bucket.
fn ensure_key(admin: &Admin, key: &AccessKey, name: &str, bucket_id: &str) -> anyhow::Result<()> {
    let info = match admin.key(&key.id)? {
        Some(info) => info,
        None => admin.import_key(key, name)?,
    };
    let allowed = info
        .buckets
        .iter()
        .any(|bucket| bucket.id == bucket_id && bucket.permissions == Permissions::ALL);
    if !allowed {
        admin.allow_bucket_key(bucket_id, &key.id, Permissions::ALL)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::tests::setting;

    #[test]
    fn the_documented_values_are_read_and_checked() {
        let repo = crate::config::tests::config_in(Path::new("/s")).repo_root;
        let wanted = Bootstrap::read(&repo).unwrap();
        assert_eq!(wanted.bucket, "test-bundles");
        assert_eq!(wanted.expire_after_days, 7);
        assert_eq!(super::super::region(&repo).unwrap(), "garage");

        let mut settings = vec![
            setting("bucket", "Test_Bundles"),
            setting("expire_after_days", "7"),
            setting("key_name", "k"),
            setting("zone", "dev"),
            setting("capacity_bytes", "1"),
        ];
        let err = Bootstrap::from_settings(&settings).unwrap_err();
        assert!(err.to_string().contains("not an S3 bucket name"), "{err}");
        settings[0] = setting("bucket", "ok-bucket");
        settings[1] = setting("expire_after_days", "0");
        let err = Bootstrap::from_settings(&settings).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        settings.remove(1);
        let err = Bootstrap::from_settings(&settings).unwrap_err();
        assert!(
            err.to_string().contains("`expire_after_days` is missing"),
            "{err}"
        );
    }

    #[test]
    fn bucket_names_follow_s3() {
        assert!(valid_bucket_name("test-bundles"));
        for bad in ["ab", "-a-b", "a-b-", "Upper", "with.dot", "under_score"] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
