//! Garage through a real S3 client (object_store's `AmazonS3`, as an AWS SDK would sign): on
//! the isolated stack of `cargo xtask test` (its `AWS_*` variables come from the environment;
//! without it these tests fail and say how to run them), test-bundle archives go up, their
//! `s3://` URI goes into `artifacts.storage_uri`, and they come back byte for byte; multipart
//! uploads and a wrong key too. The lifecycle proof restarts Garage, so it has a stack of its
//! own.

use std::time::{Duration, Instant};

use amtp_testkit::stack_env;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::util::TestStack;

/// Where and as whom an S3 client connects.
pub(crate) struct S3Account {
    endpoint: String,
    region: String,
    key_id: String,
    secret: String,
}

impl S3Account {
    /// The isolated stack's, from `cargo xtask test`'s environment.
    fn of_test_stack() -> S3Account {
        S3Account::from(stack_env)
    }

    /// A stack of a test's own, from its `xtask env`.
    pub(crate) fn of(stack: &TestStack) -> S3Account {
        S3Account::from(|key| stack.env_var(key))
    }

    fn from(var: impl Fn(&str) -> String) -> S3Account {
        S3Account {
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION"),
            key_id: var("AWS_ACCESS_KEY_ID"),
            secret: var("AWS_SECRET_ACCESS_KEY"),
        }
    }

    pub(crate) fn bucket(&self, bucket: &str) -> AmazonS3 {
        // reqwest needs a TLS provider even for plain HTTP; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region(&self.region)
            .with_bucket_name(bucket)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .build()
            .expect("an S3 client of the stack's Garage")
    }
}

pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// `len` bytes that differ from one test to the next and compress badly, like an archive.
pub(crate) fn archive_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            // xorshift64: cheap, and the same bytes for the same seed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Distinct per test run: the stack of `cargo xtask test` outlives no run, but tests share it.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// `s3://bucket/key` split into its two parts.
fn parse_storage_uri(uri: &str) -> (&str, &str) {
    uri.strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or_else(|| panic!("{uri} is not s3://bucket/key"))
}

/// A project and a run of it, so that an artifact has a run to belong to.
fn insert_run(db: &mut postgres::Client) -> i64 {
    let project: i64 = db
        .query_one(
            "INSERT INTO projects (github_owner, github_repo, installation_id) \
             VALUES ('amtp-test', $1, 1) RETURNING id",
            &[&unique("garage")],
        )
        .expect("insert a project")
        .get(0);
    db.query_one(
        "INSERT INTO runs (project_id, started_by, git_ref, commit_sha) \
         VALUES ($1, 'garage-test', 'refs/heads/main', repeat('a', 40)) RETURNING id",
        &[&project],
    )
    .expect("insert a run")
    .get(0)
}

#[test]
fn a_test_bundle_is_stored_recorded_in_postgres_and_read_back_through_its_uri() {
    let account = S3Account::of_test_stack();
    let bucket_name = stack_env("ARTIFACTS_BUCKET");
    let bucket = account.bucket(&bucket_name);
    let mut db = postgres::Client::connect(&stack_env("DATABASE_URL"), postgres::NoTls)
        .expect("connect through PgBouncer");
    let run = insert_run(&mut db);
    let bundle = archive_bytes(300 * 1024, run as u64);
    let key = format!("runs/{run}/test-bundle.tar.gz");

    block_on(bucket.put(&Path::from(key.as_str()), PutPayload::from(bundle.clone())))
        .expect("PUT the test bundle");
    // Postgres computes the checksum from the same bytes, so the row vouches for them.
    let uri = format!("s3://{bucket_name}/{key}");
    let id: i64 = db
        .query_one(
            "INSERT INTO artifacts (run_id, kind, storage_uri, size_bytes, checksum_sha256) \
             VALUES ($1, 'test_bundle', $2, $3, encode(sha256($4), 'hex')) RETURNING id",
            &[&run, &uri, &(bundle.len() as i64), &bundle],
        )
        .expect("record the artifact")
        .get(0);

    let row = db
        .query_one(
            "SELECT storage_uri, size_bytes, checksum_sha256, expires_at - created_at \
             = interval '7 days' FROM artifacts WHERE id = $1",
            &[&id],
        )
        .unwrap();
    let stored_uri: String = row.get(0);
    let (uri_bucket, uri_key) = parse_storage_uri(&stored_uri);
    let from_uri = account.bucket(uri_bucket);
    let body = block_on(async { from_uri.get(&Path::from(uri_key)).await?.bytes().await })
        .expect("GET the bundle its storage_uri names");
    assert!(
        body.as_ref() == bundle.as_slice(),
        "the bundle came back changed"
    );
    assert_eq!(row.get::<_, i64>(1), body.len() as i64);
    let checksum: String = db
        .query_one("SELECT encode(sha256($1), 'hex')", &[&body.to_vec()])
        .unwrap()
        .get(0);
    assert_eq!(row.get::<_, String>(2), checksum);
    assert!(
        row.get::<_, bool>(3),
        "the row expires with the bucket's 7-day rule"
    );

    let prefix = Path::from(format!("runs/{run}"));
    let listed: Vec<_> = block_on(from_uri.list(Some(&prefix)).try_collect::<Vec<_>>())
        .expect("LIST the run's artifacts");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].location.as_ref(), uri_key);
    assert_eq!(listed[0].size, bundle.len() as u64);
}

#[test]
fn a_multipart_upload_larger_than_its_part_size_is_stored_whole() {
    let account = S3Account::of_test_stack();
    let bucket = account.bucket(&stack_env("ARTIFACTS_BUCKET"));
    // S3's smallest part (but the last) is 5 MiB: three parts, the last one short.
    const PART: usize = 5 * 1024 * 1024;
    let archive = archive_bytes(2 * PART + 1024 * 1024, 7);
    let path = Path::from(unique("multipart/test-bundle") + ".tar.gz");

    let stored = block_on(async {
        let mut upload = bucket.put_multipart(&path).await?;
        for part in archive.chunks(PART) {
            upload.put_part(PutPayload::from(part.to_vec())).await?;
        }
        upload.complete().await?;
        let meta = bucket.head(&path).await?;
        let body = bucket.get(&path).await?.bytes().await?;
        Ok::<_, object_store::Error>((meta, body))
    });
    let (meta, body) = stored.expect("a multipart upload of three parts");
    assert_eq!(meta.size, archive.len() as u64);
    assert!(
        body.as_ref() == archive.as_slice(),
        "the parts came back changed"
    );
}

#[test]
fn a_wrong_key_is_refused_at_once_with_access_denied() {
    let right = S3Account::of_test_stack();
    let bucket = stack_env("ARTIFACTS_BUCKET");
    let unknown_key = S3Account {
        key_id: "GK000000000000000000000000".to_owned(),
        ..S3Account::of_test_stack()
    };
    let wrong_secret = S3Account {
        secret: "0".repeat(64),
        ..S3Account::of_test_stack()
    };
    for (what, account) in [("unknown key", unknown_key), ("wrong secret", wrong_secret)] {
        let began = Instant::now();
        let err = block_on(account.bucket(&bucket).get(&Path::from("any/object")))
            .err()
            .unwrap_or_else(|| panic!("a GET with the {what} must be refused"));
        let elapsed = began.elapsed();
        assert!(
            matches!(err, object_store::Error::PermissionDenied { .. }),
            "{what}: {err}"
        );
        // S3's code in Garage's XML answer (Garage sends `AccessDenied` for both).
        assert!(err.to_string().contains("AccessDenied"), "{what}: {err}");
        assert!(elapsed < Duration::from_secs(3), "{what}: took {elapsed:?}");
    }
    // The right key passes the same door: only the object is missing.
    let err = block_on(
        right
            .bucket(&bucket)
            .get(&Path::from(unique("missing").as_str())),
    )
    .unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
}

/// Admin API v2 calls of a test stack's Garage, with its admin token.
fn admin(stack: &TestStack, endpoint: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let token = std::fs::read_to_string(stack.state_dir.join("garage/admin_token"))
        .expect("the admin token of the stack");
    let url = format!(
        "http://127.0.0.1:{}/v2/{endpoint}",
        stack.port("GARAGE_ADMIN_PORT")
    );
    let bearer = format!("Bearer {}", token.trim());
    let mut response = match body {
        None => ureq::get(&url).header("authorization", &bearer).call(),
        Some(body) => ureq::post(&url)
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .send(body.to_string()),
    }
    .unwrap_or_else(|err| panic!("admin API {endpoint}: {err}"));
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

/// Sets or reads a bucket's lifecycle configuration with S3's own calls, signed with
/// rusty-s3 (object_store has no lifecycle API).
fn lifecycle(account: &S3Account, bucket: &str, put: Option<&str>) -> (u16, String) {
    let method = if put.is_some() {
        rusty_s3::Method::Put
    } else {
        rusty_s3::Method::Get
    };
    let base = url::Url::parse(&format!("{}/{bucket}", account.endpoint)).unwrap();
    let url = rusty_s3::signing::sign(
        &jiff::Timestamp::now(),
        method,
        base,
        &account.key_id,
        &account.secret,
        None,
        &account.region,
        60,
        std::iter::once(("lifecycle", "")),
        std::iter::empty(),
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = match put {
        Some(xml) => agent.put(url.as_str()).send(xml),
        None => agent.get(url.as_str()).call(),
    }
    .expect("S3 lifecycle call");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Garage's lifecycle worker makes one pass a day: at UTC midnight, or at a start when its
/// record (`<metadata_dir>/lifecycle_worker_state`) shows no pass yet today. This stack's first
/// start made today's pass, so removing that record before a restart stands for the next day;
/// a rule with an expiry date in the past then matches every object the pass meets.
#[test]
fn garage_s_lifecycle_worker_removes_what_a_rule_matches_and_data_survives_down_and_up() {
    let stack = TestStack::new("garage-lifecycle");
    stack.up();
    let account = S3Account::of(&stack);
    let bucket = stack.env_var("ARTIFACTS_BUCKET");
    let scratch = "lifecycle-proof";
    let scratch_id = admin(
        &stack,
        "CreateBucket",
        Some(serde_json::json!({ "globalAlias": scratch })),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(
        &stack,
        "AllowBucketKey",
        Some(serde_json::json!({
            "bucketId": scratch_id,
            "accessKeyId": account.key_id,
            "permissions": { "read": true, "write": true, "owner": true },
        })),
    );
    let rule = "<LifecycleConfiguration><Rule><ID>past</ID><Status>Enabled</Status>\
                <Filter><Prefix></Prefix></Filter><Expiration><Date>2000-01-01T00:00:00Z\
                </Date></Expiration></Rule></LifecycleConfiguration>";
    let (status, body) = lifecycle(&account, scratch, Some(rule));
    assert_eq!(status, 200, "PutBucketLifecycleConfiguration: {body}");
    let (status, body) = lifecycle(&account, scratch, None);
    assert_eq!(status, 200, "GetBucketLifecycleConfiguration: {body}");
    assert!(body.contains("<Date>2000-01-01T00:00:00Z</Date>"), "{body}");
    // The stack's own bucket keeps its 7-day rule, which a fresh object does not match.
    let (_, own_rule) = lifecycle(&account, &bucket, None);
    assert!(own_rule.contains("<Days>7</Days>"), "{own_rule}");

    let expired = Path::from("runs/1/test-bundle.tar.gz");
    let kept = Path::from("runs/2/test-bundle.tar.gz");
    let bundle = archive_bytes(64 * 1024, 11);
    block_on(async {
        account
            .bucket(scratch)
            .put(&expired, PutPayload::from(bundle.clone()))
            .await?;
        account
            .bucket(&bucket)
            .put(&kept, PutPayload::from(bundle.clone()))
            .await
    })
    .expect("PUT both bundles");

    stack.ok(&["down"]);
    let record = stack.state_dir.join("garage/meta/lifecycle_worker_state");
    std::fs::remove_file(&record)
        .unwrap_or_else(|err| panic!("{} (today's pass): {err}", record.display()));
    stack.up();

    let list = |bucket: &str| {
        block_on(account.bucket(bucket).list(None).try_collect::<Vec<_>>())
            .expect("LIST")
            .into_iter()
            .map(|meta| meta.location.to_string())
            .collect::<Vec<_>>()
    };
    let removed = crate::util::wait_for(Duration::from_secs(20), || list(scratch).is_empty());
    let log = std::fs::read_to_string(stack.state_dir.join("logs/garage.log")).unwrap();
    assert!(removed, "still in {scratch}: {:?}\n{log}", list(scratch));
    assert!(
        log.contains("objects expired: 1"),
        "the worker's own account of the pass is missing:\n{log}"
    );
    // Data survives `down`/`up`, and the restart's bootstrap found everything done.
    let body = block_on(async { account.bucket(&bucket).get(&kept).await?.bytes().await })
        .expect("GET the bundle after down and up");
    assert!(body.as_ref() == bundle.as_slice());
    for call in [
        "ApplyClusterLayout",
        "ImportKey",
        "AllowBucketKey",
        "CreateBucket",
    ] {
        // AllowBucketKey and CreateBucket: the bootstrap's and the test's own, one each.
        let expected = if call.ends_with("Layout") || call == "ImportKey" {
            1
        } else {
            2
        };
        assert_eq!(
            count(&log, &format!("POST /v2/{call}")),
            expected,
            "{call} after a restart:\n{log}"
        );
    }
    assert_eq!(count(&log, "PUT /test-bundles?"), 1, "{log}");
    assert_eq!(admin(&stack, "GetClusterLayout", None)["version"], 1);

    // `reset` deletes the store with the rest of the state.
    stack.ok(&["reset"]);
    assert!(!stack.state_dir.join("garage").exists());
}
