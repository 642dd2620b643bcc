//! The node's admin API (v2, bearer token): one method per endpoint the stack calls, each
//! with its request and answer as types (the fields the stack reads; Garage's others are
//! ignored), named as in Garage's `garage_api_admin::api`.

use std::fs;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::secrets::{AccessKey, admin_token_file};
use super::{ADMIN_PORT, REQUEST_TIMEOUT};
use crate::config::StackConfig;

/// The node's admin API, with the stack's admin token.
pub(super) struct Admin {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// `GetClusterStatus`: the nodes this node knows.
#[derive(Debug, Deserialize)]
pub(super) struct ClusterStatus {
    pub(super) nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Node {
    pub(super) id: String,
    pub(super) is_up: bool,
}

/// `GetClusterLayout`: the current layout's version and the nodes with a role in it.
#[derive(Debug, Deserialize)]
pub(super) struct ClusterLayout {
    pub(super) version: u64,
    pub(super) roles: Vec<LayoutRole>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LayoutRole {
    pub(super) id: String,
    pub(super) zone: String,
}

/// A storage role for a node, as `UpdateClusterLayout` takes it.
#[derive(Debug, Serialize)]
pub(super) struct RoleChange<'a> {
    pub(super) id: &'a str,
    pub(super) zone: &'a str,
    pub(super) capacity: u64,
    pub(super) tags: [&'a str; 0],
}

/// `GetBucketInfo`, also the answer of `CreateBucket`: its id and the keys allowed on it.
#[derive(Debug, Deserialize)]
pub(super) struct BucketInfo {
    pub(super) id: String,
    pub(super) keys: Vec<BucketKey>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BucketKey {
    pub(super) access_key_id: String,
    pub(super) permissions: Permissions,
}

/// `GetKeyInfo`, also the answer of `ImportKey`: the buckets the key is allowed on.
#[derive(Debug, Deserialize)]
pub(super) struct KeyInfo {
    pub(super) buckets: Vec<KeyBucket>,
}

#[derive(Debug, Deserialize)]
pub(super) struct KeyBucket {
    pub(super) id: String,
    pub(super) permissions: Permissions,
}

/// What a key may do on a bucket (`ApiBucketKeyPerm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Permissions {
    #[serde(default)]
    pub(super) read: bool,
    #[serde(default)]
    pub(super) write: bool,
    #[serde(default)]
    pub(super) owner: bool,
}

impl Permissions {
    /// What the stack's key gets on its bucket.
    pub(super) const ALL: Permissions = Permissions {
        read: true,
        write: true,
        owner: true,
    };

    /// `read, write, owner`, the granted ones only.
    pub(super) fn describe(self) -> String {
        let granted: Vec<&str> = [
            (self.read, "read"),
            (self.write, "write"),
            (self.owner, "owner"),
        ]
        .into_iter()
        .filter_map(|(granted, name)| granted.then_some(name))
        .collect();
        granted.join(", ")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBucket<'a> {
    global_alias: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportKey<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AllowBucketKey<'a> {
    bucket_id: &'a str,
    access_key_id: &'a str,
    permissions: Permissions,
}

#[derive(Serialize)]
struct UpdateClusterLayout<'a> {
    roles: &'a [RoleChange<'a>],
}

#[derive(Serialize)]
struct ApplyClusterLayout {
    version: u64,
}

/// An answer whose fields the stack does not read.
#[derive(Deserialize)]
struct Ignored {}

impl Admin {
    pub(super) fn new(cfg: &StackConfig) -> anyhow::Result<Admin> {
        let path = admin_token_file(cfg);
        let token = fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}; run `cargo xtask up`", path.display()))?;
        Ok(Admin {
            base: format!("http://127.0.0.1:{}", cfg.port(ADMIN_PORT)),
            token: token.trim().to_owned(),
            agent: crate::stack::http_agent(REQUEST_TIMEOUT),
        })
    }

    /// `GET /health`: 200 once the node has quorum, with Garage's sentence either way.
    pub(super) fn health(&self) -> anyhow::Result<(u16, String)> {
        let mut response = self
            .agent
            .get(&format!("{}/health", self.base))
            .call()
            .context("the admin API does not answer")?;
        let status = response.status().as_u16();
        Ok((
            status,
            response.body_mut().read_to_string()?.trim().to_owned(),
        ))
    }

    pub(super) fn cluster_status(&self) -> anyhow::Result<ClusterStatus> {
        self.get("GetClusterStatus", None)?
            .context("GetClusterStatus answered 404")
    }

    pub(super) fn cluster_layout(&self) -> anyhow::Result<ClusterLayout> {
        self.get("GetClusterLayout", None)?
            .context("GetClusterLayout answered 404")
    }

    /// Stages these roles for the next layout version.
    pub(super) fn update_layout(&self, roles: &[RoleChange]) -> anyhow::Result<()> {
        self.post::<Ignored>("UpdateClusterLayout", &UpdateClusterLayout { roles })
            .map(drop)
    }

    /// Makes the staged roles layout `version`, the current one plus 1.
    pub(super) fn apply_layout(&self, version: u64) -> anyhow::Result<()> {
        self.post::<Ignored>("ApplyClusterLayout", &ApplyClusterLayout { version })
            .map(drop)
    }

    /// The bucket of this global name; `None` when there is none.
    pub(super) fn bucket(&self, name: &str) -> anyhow::Result<Option<BucketInfo>> {
        self.get("GetBucketInfo", Some(("globalAlias", name)))
    }

    pub(super) fn create_bucket(&self, name: &str) -> anyhow::Result<BucketInfo> {
        self.post("CreateBucket", &CreateBucket { global_alias: name })
    }

    /// The key of this id; `None` when the node does not have it.
    pub(super) fn key(&self, id: &str) -> anyhow::Result<Option<KeyInfo>> {
        self.get("GetKeyInfo", Some(("id", id)))
    }

    /// Gives the node this key (its id and secret kept), under `name`.
    pub(super) fn import_key(&self, key: &AccessKey, name: &str) -> anyhow::Result<KeyInfo> {
        let request = ImportKey {
            access_key_id: &key.id,
            secret_access_key: &key.secret,
            name,
        };
        self.post("ImportKey", &request)
    }

    pub(super) fn allow_bucket_key(
        &self,
        bucket_id: &str,
        key_id: &str,
        permissions: Permissions,
    ) -> anyhow::Result<()> {
        let request = AllowBucketKey {
            bucket_id,
            access_key_id: key_id,
            permissions,
        };
        self.post::<Ignored>("AllowBucketKey", &request).map(drop)
    }

    /// A `GET /v2/<endpoint>`; `None` on 404 (no such bucket or key).
    fn get<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: Option<(&str, &str)>,
    ) -> anyhow::Result<Option<T>> {
        let mut request = self
            .agent
            .get(&format!("{}/v2/{endpoint}", self.base))
            .header("authorization", &format!("Bearer {}", self.token));
        if let Some((key, value)) = query {
            request = request.query(key, value);
        }
        Self::answer(endpoint, request.call())
    }

    fn post<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let request = self
            .agent
            .post(&format!("{}/v2/{endpoint}", self.base))
            .header("authorization", &format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        let body = serde_json::to_string(body)?;
        Self::answer(endpoint, request.send(body))?
            .with_context(|| format!("admin API {endpoint} answered 404"))
    }

    fn answer<T: DeserializeOwned>(
        endpoint: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Option<T>> {
        let mut response = response.with_context(|| format!("admin API {endpoint}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        match status {
            200 => Ok(Some(serde_json::from_str(&body).with_context(|| {
                format!("admin API {endpoint} answered something other than its JSON: {body}")
            })?)),
            404 => Ok(None),
            _ => anyhow::bail!("admin API {endpoint} answered {status}: {body}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_are_the_json_garage_takes() {
        let role = RoleChange {
            id: "n1",
            zone: "dev",
            capacity: 10,
            tags: [],
        };
        assert_eq!(
            serde_json::to_value(UpdateClusterLayout { roles: &[role] }).unwrap(),
            json!({ "roles": [{ "id": "n1", "zone": "dev", "capacity": 10, "tags": [] }] })
        );
        let allow = AllowBucketKey {
            bucket_id: "b1",
            access_key_id: "GK1",
            permissions: Permissions::ALL,
        };
        assert_eq!(
            serde_json::to_value(allow).unwrap(),
            json!({
                "bucketId": "b1",
                "accessKeyId": "GK1",
                "permissions": { "read": true, "write": true, "owner": true },
            })
        );
        let import = ImportKey {
            access_key_id: "GK1",
            secret_access_key: "s",
            name: "k",
        };
        assert_eq!(
            serde_json::to_value(import).unwrap(),
            json!({ "accessKeyId": "GK1", "secretAccessKey": "s", "name": "k" })
        );
        assert_eq!(
            serde_json::to_value(CreateBucket { global_alias: "b" }).unwrap(),
            json!({ "globalAlias": "b" })
        );
    }

    #[test]
    fn answers_are_read_from_garage_s_json() {
        // Shortened answers of Garage 2.5 (its other fields are ignored).
        let status: ClusterStatus = serde_json::from_value(json!({
            "layoutVersion": 1,
            "nodes": [{ "id": "n1", "isUp": true, "draining": false, "role": null }],
        }))
        .unwrap();
        assert!(status.nodes[0].is_up);
        let layout: ClusterLayout = serde_json::from_value(json!({
            "version": 1,
            "roles": [{ "id": "n1", "zone": "dev", "tags": [], "capacity": 10 }],
            "partitionSize": 1,
            "stagedRoleChanges": [],
        }))
        .unwrap();
        assert_eq!((layout.version, layout.roles[0].zone.as_str()), (1, "dev"));
        let bucket: BucketInfo = serde_json::from_value(json!({
            "id": "b1",
            "globalAliases": ["test-bundles"],
            "keys": [{
                "accessKeyId": "GK1",
                "name": "k",
                "permissions": { "read": true, "write": false },
                "bucketLocalAliases": [],
            }],
        }))
        .unwrap();
        assert_eq!(bucket.keys[0].permissions.describe(), "read");
        let key: KeyInfo = serde_json::from_value(json!({
            "accessKeyId": "GK1",
            "name": "k",
            "buckets": [{
                "id": "b1",
                "globalAliases": [],
                "localAliases": [],
                "permissions": { "read": true, "write": true, "owner": true },
            }],
        }))
        .unwrap();
        assert_eq!(key.buckets[0].permissions, Permissions::ALL);
        assert_eq!(Permissions::ALL.describe(), "read, write, owner");
        assert_eq!(Permissions::default().describe(), "");
    }
}
