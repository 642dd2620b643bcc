//! Garage, the S3-compatible store of the test-bundle archives that `artifacts.storage_uri`
//! points at: one node with `infra/garage/garage.toml`, bootstrapped from
//! `infra/garage/bootstrap.conf`.
//!
//! `prepare` generates the node's secrets once (RPC secret, admin token, the stack's S3
//! access key: files of mode 0600 in `<state>/garage`). Once the node answers, `bootstrap`
//! gives it its role in the cluster layout, creates the bucket, imports the access key, allows
//! it on the bucket (admin API v2, bearer token) and sets the bucket's lifecycle rule (S3
//! `PutBucketLifecycleConfiguration`, which the admin API has no equivalent of). Each step
//! first asks whether the node already has it, so a second `up` changes nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::{Daemon, Kind, Program, Unit};
use crate::config::{PortVar, StackConfig, write_private};
use crate::os::process::Launch;
use crate::stack::check::{Check, private_file};
use crate::stack::contract::{self, Contract, Setting};
use crate::stack::programs::{Installed, OffPin, Wanted};

/// The S3 API, the seed's port 3900.
pub(crate) const PORT: PortVar = PortVar {
    var: "GARAGE_S3_PORT",
    default: 3900,
};

/// Node-to-node RPC; Garage needs it bound even alone.
pub(crate) const RPC_PORT: PortVar = PortVar {
    var: "GARAGE_RPC_PORT",
    default: 3901,
};

/// The admin API: `/health`, layout, buckets and keys.
pub(crate) const ADMIN_PORT: PortVar = PortVar {
    var: "GARAGE_ADMIN_PORT",
    default: 3903,
};

/// The release `.ci/run` installs and the README names; the flake's may differ (docs/nix.md).
const PIN: &str = "2.5.0";

pub(crate) const UNIT: Unit = Unit {
    name: "garage",
    program: Program::External(Wanted {
        names: &["garage"],
        version_arg: "--version",
        pin: PIN,
        install_hint: "it with Cargo: `cargo install garage --version 2.5.0 --locked` (about \
                       20 minutes on 2 cores, once per machine)",
        off_pin: OffPin::Drift,
    }),
    depends_on: &[],
    enabled: super::always,
    checks,
    kind: Kind::Daemon(Daemon {
        port: PORT,
        more_ports: &[RPC_PORT, ADMIN_PORT],
        // Garage's graceful stop (server.rs): its API servers and background workers end,
        // the metadata database is closed, then it exits.
        stop_signal: Signal::SIGTERM,
        prepare,
        launch,
        probe,
        on_ready: bootstrap,
        ..Daemon::DEFAULT
    }),
};

/// How long a fresh node may take to have quorum once its layout is applied.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);
/// Every request to the node: loopback, so anything slower is a node that does not answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn dir(cfg: &StackConfig) -> PathBuf {
    cfg.service_dir(UNIT.name)
}

fn conf_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("garage.toml")
}

fn rpc_secret_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("rpc_secret")
}

fn admin_token_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("admin_token")
}

/// The stack's S3 access key, `AWS_ACCESS_KEY_ID=` and `AWS_SECRET_ACCESS_KEY=` lines.
fn access_key_file(cfg: &StackConfig) -> PathBuf {
    dir(cfg).join("access_key.env")
}

/// The documented values of `infra/garage/bootstrap.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bootstrap {
    pub(crate) bucket: String,
    pub(crate) expire_after_days: u32,
    key_name: String,
    zone: String,
    capacity_bytes: u64,
}

impl Bootstrap {
    pub(crate) fn read(repo_root: &Path) -> anyhow::Result<Bootstrap> {
        Self::from_settings(&contract::garage_bootstrap(repo_root)?)
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

/// `s3_region` of `infra/garage/garage.toml`: the region S3 clients sign for.
pub(crate) fn region(repo_root: &Path) -> anyhow::Result<String> {
    region_of(&contract::garage_toml(repo_root)?)
        .context("infra/garage/garage.toml has no `s3_region = \"...\"` in [s3_api]; add it")
}

fn region_of(toml: &str) -> Option<String> {
    toml.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "s3_region").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The stack's access key to the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccessKey {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl AccessKey {
    /// `None` until the first `up` generated it.
    pub(crate) fn read(cfg: &StackConfig) -> anyhow::Result<Option<AccessKey>> {
        let path = access_key_file(cfg);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
                .with_context(|| {
                    format!(
                        "{} has no {key}; delete it and run `cargo xtask reset`",
                        path.display()
                    )
                })
        };
        Ok(Some(AccessKey {
            id: value("AWS_ACCESS_KEY_ID")?,
            secret: value("AWS_SECRET_ACCESS_KEY")?,
        }))
    }

    /// Garage's own shape of a key: `GK` and 12 random bytes, a secret of 32 random bytes.
    fn generate() -> anyhow::Result<AccessKey> {
        Ok(AccessKey {
            id: format!("GK{}", random_hex(12)?),
            secret: random_hex(32)?,
        })
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|err| anyhow::anyhow!("no system randomness: {err}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a secret file (mode 0600) unless it exists: generated once, kept across `up`s.
fn keep_or_generate(
    path: &Path,
    generate: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    write_private(path, generate()?.as_bytes())
}

fn prepare(cfg: &StackConfig, _: &Installed, _: &Contract) -> anyhow::Result<()> {
    let dir = super::create_service_dir(cfg, UNIT.name)?;
    for sub in ["meta", "data"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    }
    keep_or_generate(&rpc_secret_file(cfg), || random_hex(32))?;
    keep_or_generate(&admin_token_file(cfg), || random_hex(32))?;
    keep_or_generate(&access_key_file(cfg), || {
        let key = AccessKey::generate()?;
        Ok(format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            key.id, key.secret
        ))
    })?;
    let toml = render_toml(&contract::garage_toml(&cfg.repo_root)?, cfg)?;
    let path = conf_file(cfg);
    fs::write(&path, toml).with_context(|| format!("cannot write {}", path.display()))
}

/// `infra/garage/garage.toml` with its placeholders filled in; an unknown one is an error.
fn render_toml(template: &str, cfg: &StackConfig) -> anyhow::Result<String> {
    let rendered = template
        .replace("${AMTP_GARAGE_DIR}", &toml_string_content(&dir(cfg))?)
        .replace("${GARAGE_S3_PORT}", &cfg.port(PORT).to_string())
        .replace("${GARAGE_RPC_PORT}", &cfg.port(RPC_PORT).to_string())
        .replace("${GARAGE_ADMIN_PORT}", &cfg.port(ADMIN_PORT).to_string());
    if let Some(start) = rendered.find("${") {
        let name: String = rendered[start..]
            .chars()
            .take_while(|c| *c != '}')
            .collect();
        anyhow::bail!(
            "infra/garage/garage.toml has an unknown placeholder `{name}}}`; known: \
             AMTP_GARAGE_DIR, GARAGE_S3_PORT, GARAGE_RPC_PORT, GARAGE_ADMIN_PORT"
        );
    }
    Ok(format!(
        "# Rendered by `cargo xtask up` from infra/garage/garage.toml; edit that file.\n{rendered}"
    ))
}

/// A path as the inside of a TOML basic string (the template's `"..."`): `\` and `"` escaped,
/// so a state dir with spaces or quotes stays one path.
fn toml_string_content(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8; TOML cannot hold it", path.display()))?;
    anyhow::ensure!(
        !text.chars().any(char::is_control),
        "{text:?} holds a control character; choose a state dir without one"
    );
    Ok(text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn launch(cfg: &StackConfig, installed: &Installed, _: &Contract) -> Launch {
    // The secrets are in files the config names, never on the command line. Garage's own
    // default log level, whatever RUST_LOG the xtask was run with: its request lines and the
    // lifecycle worker's passes, which the tests read.
    Launch::new(&installed.path)
        .arg("-c")
        .arg(conf_file(cfg))
        .arg("server")
        .env("RUST_LOG", "netapp=info,garage=info")
}

/// The node's admin API, with the stack's admin token.
struct Admin {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Admin {
    fn new(cfg: &StackConfig) -> anyhow::Result<Admin> {
        let path = admin_token_file(cfg);
        let token = fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}; run `cargo xtask up`", path.display()))?;
        Ok(Admin {
            base: format!("http://127.0.0.1:{}", cfg.port(ADMIN_PORT)),
            token: token.trim().to_owned(),
            agent: super::http_agent(REQUEST_TIMEOUT),
        })
    }

    /// `GET /health`: 200 once the node has quorum, with Garage's sentence either way.
    fn health(&self) -> anyhow::Result<(u16, String)> {
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

    /// A v2 `GET` endpoint; `None` on 404 (no such bucket or key).
    fn get(&self, endpoint: &str) -> anyhow::Result<Option<Value>> {
        let request = self
            .agent
            .get(&format!("{}/v2/{endpoint}", self.base))
            .header("authorization", &format!("Bearer {}", self.token));
        Self::answer(endpoint, request.call())
    }

    fn post(&self, endpoint: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self
            .agent
            .post(&format!("{}/v2/{endpoint}", self.base))
            .header("authorization", &format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        Self::answer(endpoint, request.send(body.to_string()))?
            .with_context(|| format!("admin API {endpoint} answered 404"))
    }

    fn answer(
        endpoint: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Option<Value>> {
        let name = endpoint.split('?').next().unwrap_or(endpoint);
        let mut response = response.with_context(|| format!("admin API {name}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        match status {
            200 => Ok(Some(serde_json::from_str(&body).with_context(|| {
                format!("admin API {name} answered something other than JSON")
            })?)),
            404 => Ok(None),
            _ => anyhow::bail!("admin API {name} answered {status}: {body}"),
        }
    }
}

/// Ready when `/health` says so, or when a fresh node answers that it has no layout yet
/// (quorum needs one, and `bootstrap`, which runs next, gives it).
fn probe(cfg: &StackConfig) -> anyhow::Result<()> {
    let admin = Admin::new(cfg)?;
    let (status, sentence) = admin.health()?;
    if status == 200 {
        return Ok(());
    }
    let layout = admin
        .get("GetClusterLayout")?
        .context("admin API GetClusterLayout answered 404")?;
    let assigned = layout["roles"].as_array().is_some_and(|r| !r.is_empty());
    anyhow::ensure!(!assigned, "/health answered {status}: {sentence}");
    Ok(())
}

/// The first-`up` work, each step skipped when the node already has its result.
fn bootstrap(cfg: &StackConfig) -> anyhow::Result<()> {
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
    let status = admin
        .get("GetClusterStatus")?
        .context("GetClusterStatus answered 404")?;
    let node = status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["isUp"] == true))
        .and_then(|node| node["id"].as_str())
        .context("GetClusterStatus lists no node that is up")?
        .to_owned();
    let layout = admin
        .get("GetClusterLayout")?
        .context("GetClusterLayout answered 404")?;
    let has_role = layout["roles"]
        .as_array()
        .is_some_and(|roles| roles.iter().any(|r| r["id"] == node.as_str()));
    if has_role {
        return Ok(());
    }
    let version = layout["version"]
        .as_u64()
        .context("GetClusterLayout has no version")?;
    admin.post(
        "UpdateClusterLayout",
        &json!({ "roles": [{
            "id": node,
            "zone": wanted.zone,
            "capacity": wanted.capacity_bytes,
            "tags": [],
        }] }),
    )?;
    admin.post("ApplyClusterLayout", &json!({ "version": version + 1 }))?;
    Ok(())
}

/// The bucket's id, after creating it when no bucket has that name.
fn ensure_bucket(admin: &Admin, name: &str) -> anyhow::Result<String> {
    let info = match admin.get(&format!("GetBucketInfo?globalAlias={name}"))? {
        Some(info) => info,
        None => admin.post("CreateBucket", &json!({ "globalAlias": name }))?,
    };
    Ok(info["id"]
        .as_str()
        .context("the bucket info has no id")?
        .to_owned())
}

/// Imports the stack's key when the node lacks it, and allows it everything on the bucket.
fn ensure_key(admin: &Admin, key: &AccessKey, name: &str, bucket_id: &str) -> anyhow::Result<()> {
    let info = match admin.get(&format!("GetKeyInfo?id={}", key.id))? {
        Some(info) => info,
        None => admin.post(
            "ImportKey",
            &json!({
                "accessKeyId": key.id,
                "secretAccessKey": key.secret,
                "name": name,
            }),
        )?,
    };
    let allowed = info["buckets"].as_array().is_some_and(|buckets| {
        buckets.iter().any(|b| {
            b["id"] == bucket_id
                && ["read", "write", "owner"]
                    .iter()
                    .all(|p| b["permissions"][*p] == true)
        })
    });
    if !allowed {
        admin.post(
            "AllowBucketKey",
            &json!({
                "bucketId": bucket_id,
                "accessKeyId": key.id,
                "permissions": { "read": true, "write": true, "owner": true },
            }),
        )?;
    }
    Ok(())
}

/// One rule of a bucket's lifecycle configuration, as far as this stack reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExpiryRule {
    pub(crate) enabled: bool,
    /// `<Expiration><Days>`; `None` for a rule without one (a `Date`, or none at all).
    pub(crate) days: Option<u32>,
    /// No filter narrows it (no prefix, size or tag condition).
    pub(crate) whole_bucket: bool,
}

impl ExpiryRule {
    fn whole_bucket(days: u32) -> ExpiryRule {
        ExpiryRule {
            enabled: true,
            days: Some(days),
            whole_bucket: true,
        }
    }

    fn describe(rules: &[ExpiryRule]) -> String {
        if rules.is_empty() {
            return "(no lifecycle rule)".to_owned();
        }
        let words: Vec<String> = rules
            .iter()
            .map(|rule| {
                format!(
                    "{}, {}, {}",
                    if rule.enabled { "enabled" } else { "disabled" },
                    rule.days
                        .map_or("no expiry in days".to_owned(), |d| format!(
                            "expire after {d} days"
                        )),
                    if rule.whole_bucket {
                        "whole bucket"
                    } else {
                        "filtered"
                    }
                )
            })
            .collect();
        words.join("; ")
    }
}

/// The lifecycle configuration S3 clients send: every object expires `days` after it was
/// written. Garage reads `ID`, `Status`, `Filter` and `Expiration`.
fn lifecycle_xml(days: u32) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Rule><ID>expire-after-{days}-days</ID><Status>Enabled</Status>\
         <Filter><Prefix></Prefix></Filter>\
         <Expiration><Days>{days}</Days></Expiration></Rule>\
         </LifecycleConfiguration>"
    )
}

/// The rules of a `GetBucketLifecycleConfiguration` answer. Garage writes the elements
/// without whitespace or namespaces prefixes, so a search for each tag is enough.
fn parse_lifecycle(xml: &str) -> Vec<ExpiryRule> {
    xml.split("<Rule>")
        .skip(1)
        .map(|rule| {
            let rule = rule.split("</Rule>").next().unwrap_or(rule);
            let filter = element(rule, "Filter").unwrap_or("");
            let prefix = element(filter, "Prefix").unwrap_or("");
            ExpiryRule {
                enabled: element(rule, "Status") == Some("Enabled"),
                days: element(element(rule, "Expiration").unwrap_or(""), "Days")
                    .and_then(|days| days.trim().parse().ok()),
                whole_bucket: prefix.is_empty()
                    && !filter.contains("<And>")
                    && !filter.contains("<ObjectSize")
                    && element(rule, "Prefix").unwrap_or("").is_empty(),
            }
        })
        .collect()
}

/// The text between `<name>` (or `<name attributes>`) and `</name>`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}");
    let mut from = 0;
    let start = loop {
        let at = xml[from..].find(&open)? + from + open.len();
        match xml[at..].chars().next()? {
            '>' => break at + 1,
            ' ' => break xml[at..].find('>')? + at + 1,
            // `<PrefixOther>` or a self-closing `<Prefix/>`: not this element's text.
            _ => from = at,
        }
    };
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// The node's S3 API with the stack's key: the few bucket calls the admin API lacks, over
/// SigV4-presigned URLs.
struct S3 {
    endpoint: String,
    region: String,
    key: AccessKey,
    agent: ureq::Agent,
}

impl S3 {
    fn new(cfg: &StackConfig, key: AccessKey) -> anyhow::Result<S3> {
        Ok(S3 {
            endpoint: endpoint(cfg),
            region: region(&cfg.repo_root)?,
            key,
            agent: super::http_agent(REQUEST_TIMEOUT),
        })
    }

    /// A presigned path-style URL of `bucket` with one subresource (`lifecycle`, `location`).
    fn url(
        &self,
        method: rusty_s3::Method,
        bucket: &str,
        subresource: &str,
    ) -> anyhow::Result<url::Url> {
        let url = url::Url::parse(&format!("{}/{bucket}", self.endpoint))
            .with_context(|| format!("bad endpoint {}", self.endpoint))?;
        Ok(rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            &self.key.id,
            &self.key.secret,
            None,
            &self.region,
            60,
            [(subresource, "")].into_iter(),
            std::iter::empty(),
        ))
    }

    /// `GET ?<subresource>`: the XML body, `None` when S3 answers 404 (nothing set).
    fn get(&self, bucket: &str, subresource: &str) -> anyhow::Result<Option<String>> {
        let url = self.url(rusty_s3::Method::Get, bucket, subresource)?;
        let mut response = self
            .agent
            .get(url.as_str())
            .call()
            .with_context(|| format!("S3 GET {bucket}?{subresource}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        match status {
            200 => Ok(Some(body)),
            404 => Ok(None),
            _ => anyhow::bail!("S3 GET {bucket}?{subresource} answered {status}: {body}"),
        }
    }

    /// GetBucketLifecycleConfiguration; no rules when none is set.
    fn lifecycle(&self, bucket: &str) -> anyhow::Result<Vec<ExpiryRule>> {
        Ok(self
            .get(bucket, "lifecycle")?
            .map(|xml| parse_lifecycle(&xml))
            .unwrap_or_default())
    }

    /// PutBucketLifecycleConfiguration with the one rule of the contract.
    fn put_lifecycle(&self, bucket: &str, days: u32) -> anyhow::Result<()> {
        let url = self.url(rusty_s3::Method::Put, bucket, "lifecycle")?;
        let mut response = self
            .agent
            .put(url.as_str())
            .header("content-type", "application/xml")
            .send(lifecycle_xml(days))
            .with_context(|| format!("S3 PUT {bucket}?lifecycle"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        anyhow::ensure!(
            status == 200,
            "S3 PUT {bucket}?lifecycle answered {status}: {body}"
        );
        Ok(())
    }
}

/// The S3 endpoint clients use (`AWS_ENDPOINT_URL`).
pub(crate) fn endpoint(cfg: &StackConfig) -> String {
    format!("http://127.0.0.1:{}", cfg.port(PORT))
}

/// What an S3 client of the stack needs: endpoint, key, region and bucket. The key appears
/// once the first `up` generated it; an unreadable `infra/garage` is said, not fatal.
pub(crate) fn client_vars(cfg: &StackConfig) -> Vec<(&'static str, String)> {
    let mut vars = vec![("AWS_ENDPOINT_URL", endpoint(cfg))];
    match AccessKey::read(cfg) {
        Ok(Some(key)) => {
            vars.push(("AWS_ACCESS_KEY_ID", key.id));
            vars.push(("AWS_SECRET_ACCESS_KEY", key.secret));
        }
        Ok(None) => {}
        Err(err) => eprintln!("warning: {err:#}"),
    }
    match region(&cfg.repo_root) {
        Ok(region) => vars.push(("AWS_REGION", region)),
        Err(err) => eprintln!("warning: {err:#}"),
    }
    match Bootstrap::read(&cfg.repo_root) {
        Ok(wanted) => vars.push(("ARTIFACTS_BUCKET", wanted.bucket)),
        Err(err) => eprintln!("warning: {err:#}"),
    }
    vars
}

/// The bootstrap read back from the live node: layout, bucket, key, lifecycle rule, region,
/// and the secret files' modes.
fn checks(cfg: &StackConfig, _: Option<&Installed>) -> Vec<Check> {
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
        layout_roles(&admin).map(|zones| nodes_in_zones(&zones)),
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
        s3.get(bucket, "location").map(|body| {
            body.as_deref()
                .and_then(|xml| element(xml, "LocationConstraint"))
                .unwrap_or("(none)")
                .to_owned()
        }),
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
fn layout_roles(admin: &Admin) -> anyhow::Result<Vec<String>> {
    let layout = admin
        .get("GetClusterLayout")?
        .context("GetClusterLayout answered 404")?;
    Ok(layout["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .map(|r| r["zone"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default())
}

/// What `key` may do on `bucket`, in words (`read, write, owner`), as the admin API says.
fn key_permissions(admin: &Admin, bucket: &str, key: &AccessKey) -> anyhow::Result<String> {
    let info = admin
        .get(&format!("GetBucketInfo?globalAlias={bucket}"))?
        .with_context(|| format!("no bucket named {bucket}"))?;
    let Some(entry) = info["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["accessKeyId"] == key.id.as_str()))
    else {
        return Ok("(not allowed)".to_owned());
    };
    let granted: Vec<&str> = ["read", "write", "owner"]
        .into_iter()
        .filter(|p| entry["permissions"][*p] == true)
        .collect();
    Ok(granted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::tests::{args, launched, setting};

    #[test]
    fn the_toml_gets_loopback_ports_and_a_quoted_state_dir() {
        let cfg = crate::config::tests::config_in(Path::new("/tmp/rt sp/st\"ate"));
        let template = contract::garage_toml(&cfg.repo_root).unwrap();
        let toml = render_toml(&template, &cfg).unwrap();
        assert!(
            toml.contains("\nmetadata_dir = \"/tmp/rt sp/st\\\"ate/garage/meta\"\n"),
            "{toml}"
        );
        assert!(toml.contains("\nreplication_factor = 1\n"), "{toml}");
        for (key, port) in [
            ("rpc_bind_addr", RPC_PORT),
            ("api_bind_addr", PORT),
            ("api_bind_addr", ADMIN_PORT),
        ] {
            let line = format!("\n{key} = \"127.0.0.1:{}\"\n", cfg.port(port));
            assert!(toml.contains(&line), "{line} missing from\n{toml}");
        }
        assert!(
            toml.contains("\nrpc_secret_file = \"/tmp/rt sp/st\\\"ate/garage/rpc_secret\"\n"),
            "{toml}"
        );
        assert!(!toml.contains("${"), "{toml}");
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let cfg = crate::config::tests::config_in(Path::new("/s"));
        let err = render_toml("data_dir = \"${AMTP_GARAGE_DATA}\"\n", &cfg).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown placeholder `${AMTP_GARAGE_DATA}`"),
            "{err}"
        );
    }

    #[test]
    fn garage_gets_its_config_file_and_the_server_command_only() {
        let launch = launched(launch, "/s t", "/root/.cargo/bin/garage");
        assert_eq!(launch.program, Path::new("/root/.cargo/bin/garage"));
        assert_eq!(args(&launch), ["-c", "/s t/garage/garage.toml", "server"]);
        assert_eq!(
            launch.env,
            [("RUST_LOG".to_owned(), "netapp=info,garage=info".to_owned())],
            "the secrets stay in their 0600 files"
        );
    }

    #[test]
    fn the_documented_values_are_read_and_checked() {
        let repo = crate::config::tests::config_in(Path::new("/s")).repo_root;
        let wanted = Bootstrap::read(&repo).unwrap();
        assert_eq!(wanted.bucket, "test-bundles");
        assert_eq!(wanted.expire_after_days, 7);
        assert_eq!(region(&repo).unwrap(), "garage");

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
    fn the_lifecycle_rule_reads_back_as_it_was_written() {
        assert_eq!(
            parse_lifecycle(&lifecycle_xml(7)),
            [ExpiryRule::whole_bucket(7)]
        );
        // Garage's own answer (garage_api_common's serializer: the empty prefix as `<Prefix/>`
        // or `<Prefix></Prefix>`), and rules that are not the contract's.
        let garage = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><LifecycleConfiguration \
                      xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ID>a</ID>\
                      <Status>Enabled</Status><Filter><Prefix>logs/</Prefix></Filter>\
                      <Expiration><Days>30</Days></Expiration></Rule><Rule><Status>Disabled\
                      </Status><Expiration><Date>2020-01-01T00:00:00Z</Date></Expiration>\
                      </Rule></LifecycleConfiguration>";
        let rules = parse_lifecycle(garage);
        assert_eq!(
            rules,
            [
                ExpiryRule {
                    enabled: true,
                    days: Some(30),
                    whole_bucket: false
                },
                ExpiryRule {
                    enabled: false,
                    days: None,
                    whole_bucket: true
                },
            ]
        );
        assert_eq!(
            ExpiryRule::describe(&rules),
            "enabled, expire after 30 days, filtered; disabled, no expiry in days, whole bucket"
        );
        assert!(parse_lifecycle("").is_empty());
        let location = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><LocationConstraint \
                        xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">garage</LocationConstraint>";
        assert_eq!(element(location, "LocationConstraint"), Some("garage"));
    }

    #[test]
    fn a_missing_garage_names_the_install_command_of_the_pin() {
        let Program::External(wanted) = &UNIT.program else {
            panic!("garage is an external program")
        };
        assert_eq!(wanted.pin, "2.5.0");
        let command = format!("cargo install garage --version {} --locked", wanted.pin);
        assert!(
            wanted.install_hint.contains(&command),
            "{}",
            wanted.install_hint
        );
        let ci = std::fs::read_to_string(
            crate::config::tests::config_in(Path::new("/s"))
                .repo_root
                .join(".ci/run"),
        )
        .unwrap();
        assert!(
            ci.contains(&format!("garage_version={}", wanted.pin)),
            ".ci/run installs another Garage"
        );
    }

    #[test]
    fn generated_keys_have_garage_s_shape() {
        let key = AccessKey::generate().unwrap();
        assert_eq!(key.id.len(), 26);
        assert!(key.id.starts_with("GK"));
        assert_eq!(key.secret.len(), 64);
        assert_ne!(key.secret, AccessKey::generate().unwrap().secret);
    }

    #[test]
    fn bucket_names_follow_s3() {
        assert!(valid_bucket_name("test-bundles"));
        for bad in ["ab", "-a-b", "a-b-", "Upper", "with.dot", "under_score"] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
