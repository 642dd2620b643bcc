//! The node's S3 API with the stack's key, for the bucket calls the stack makes there: the
//! lifecycle rule, set and read back, and the bucket's region. Requests are SigV4-presigned
//! URLs (rusty-s3); the XML bodies are types read and written by quick-xml's serde support.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::secrets::AccessKey;
use super::{REQUEST_TIMEOUT, endpoint, region};
use crate::config::StackConfig;

pub(super) struct S3 {
    endpoint: String,
    pub(super) region: String,
    key: AccessKey,
    agent: ureq::Agent,
}

/// One rule of a bucket's lifecycle configuration, as far as this stack reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ExpiryRule {
    pub(super) enabled: bool,
    /// `<Expiration><Days>`; `None` for a rule without one (a `Date`, or none at all).
    pub(super) days: Option<u32>,
    /// No filter narrows it (no prefix, size or tag condition).
    pub(super) whole_bucket: bool,
}

impl ExpiryRule {
    /// The contract's rule: every object expires `days` after it was written.
    pub(super) fn whole_bucket(days: u32) -> ExpiryRule {
        ExpiryRule {
            enabled: true,
            days: Some(days),
            whole_bucket: true,
        }
    }

    pub(super) fn describe(rules: &[ExpiryRule]) -> String {
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

/// S3's `LifecycleConfiguration` document, the parts Garage reads and writes (its own
/// `garage_api_common::xml::lifecycle`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename = "LifecycleConfiguration")]
struct LifecycleConfiguration {
    #[serde(rename = "@xmlns", default)]
    xmlns: String,
    #[serde(rename = "Rule", default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Rule {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "Filter", default, skip_serializing_if = "Option::is_none")]
    filter: Option<Filter>,
    /// The rule-level prefix of the older S3 form (before `Filter`).
    #[serde(rename = "Prefix", default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(
        rename = "Expiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    expiration: Option<Expiration>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Filter {
    #[serde(rename = "Prefix", default)]
    prefix: Option<String>,
    /// Several conditions at once; any is a narrowing.
    #[serde(rename = "And", default, skip_serializing)]
    and: Option<serde::de::IgnoredAny>,
    #[serde(rename = "ObjectSizeGreaterThan", default, skip_serializing)]
    size_gt: Option<u64>,
    #[serde(rename = "ObjectSizeLessThan", default, skip_serializing)]
    size_lt: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Expiration {
    #[serde(rename = "Days", default, skip_serializing_if = "Option::is_none")]
    days: Option<u32>,
    #[serde(rename = "Date", default, skip_serializing_if = "Option::is_none")]
    date: Option<String>,
}

/// `GetBucketLocation`'s answer: the region's name as the element's text.
#[derive(Deserialize)]
struct LocationConstraint {
    #[serde(rename = "$text", default)]
    region: String,
}

const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// The lifecycle configuration S3 clients send: every object expires `days` after it was
/// written. Garage reads `ID`, `Status`, `Filter` and `Expiration`.
fn lifecycle_xml(days: u32) -> anyhow::Result<String> {
    let config = LifecycleConfiguration {
        xmlns: XMLNS.to_owned(),
        rules: vec![Rule {
            id: Some(format!("expire-after-{days}-days")),
            status: "Enabled".to_owned(),
            filter: Some(Filter {
                prefix: Some(String::new()),
                ..Filter::default()
            }),
            prefix: None,
            expiration: Some(Expiration {
                days: Some(days),
                date: None,
            }),
        }],
    };
    let body = quick_xml::se::to_string(&config).context("cannot write the lifecycle XML")?;
    Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{body}"))
}

/// The rules of a `GetBucketLifecycleConfiguration` answer; an empty answer has none.
fn parse_lifecycle(xml: &str) -> anyhow::Result<Vec<ExpiryRule>> {
    if xml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let config: LifecycleConfiguration =
        quick_xml::de::from_str(xml).context("the lifecycle configuration is not S3's XML")?;
    Ok(config
        .rules
        .into_iter()
        .map(|rule| {
            let filter = rule.filter.unwrap_or_default();
            let no_prefix = |prefix: Option<String>| prefix.unwrap_or_default().is_empty();
            ExpiryRule {
                enabled: rule.status.trim() == "Enabled",
                days: rule.expiration.and_then(|e| e.days),
                whole_bucket: no_prefix(filter.prefix)
                    && no_prefix(rule.prefix)
                    && filter.and.is_none()
                    && filter.size_gt.is_none()
                    && filter.size_lt.is_none(),
            }
        })
        .collect())
}

fn parse_location(xml: &str) -> anyhow::Result<String> {
    let location: LocationConstraint =
        quick_xml::de::from_str(xml).context("the bucket location is not S3's XML")?;
    Ok(location.region)
}

impl S3 {
    pub(super) fn new(cfg: &StackConfig, key: AccessKey) -> anyhow::Result<S3> {
        Ok(S3 {
            endpoint: endpoint(cfg),
            region: region(&cfg.repo_root)?,
            key,
            agent: crate::stack::http_agent(REQUEST_TIMEOUT),
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
    pub(super) fn lifecycle(&self, bucket: &str) -> anyhow::Result<Vec<ExpiryRule>> {
        match self.get(bucket, "lifecycle")? {
            Some(xml) => parse_lifecycle(&xml),
            None => Ok(Vec::new()),
        }
    }

    /// GetBucketLocation: the bucket's region, `(none)` when S3 names none.
    pub(super) fn location(&self, bucket: &str) -> anyhow::Result<String> {
        let region = match self.get(bucket, "location")? {
            Some(xml) => parse_location(&xml)?,
            None => String::new(),
        };
        Ok(if region.is_empty() {
            "(none)".to_owned()
        } else {
            region
        })
    }

    /// PutBucketLifecycleConfiguration with the one rule of the contract.
    pub(super) fn put_lifecycle(&self, bucket: &str, days: u32) -> anyhow::Result<()> {
        let url = self.url(rusty_s3::Method::Put, bucket, "lifecycle")?;
        let mut response = self
            .agent
            .put(url.as_str())
            .header("content-type", "application/xml")
            .send(lifecycle_xml(days)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_rule_reads_back_as_it_was_written() {
        let written = lifecycle_xml(7).unwrap();
        assert_eq!(
            written,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><LifecycleConfiguration \
             xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>\
             <ID>expire-after-7-days</ID><Status>Enabled</Status><Filter><Prefix/></Filter>\
             <Expiration><Days>7</Days></Expiration></Rule></LifecycleConfiguration>"
        );
        assert_eq!(
            parse_lifecycle(&written).unwrap(),
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
        let rules = parse_lifecycle(garage).unwrap();
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
        for empty_prefix in ["<Prefix/>", "<Prefix></Prefix>"] {
            let xml = format!(
                "<LifecycleConfiguration><Rule><Status>Enabled</Status><Filter>{empty_prefix}\
                 </Filter><Expiration><Days>7</Days></Expiration></Rule></LifecycleConfiguration>"
            );
            assert_eq!(
                parse_lifecycle(&xml).unwrap(),
                [ExpiryRule::whole_bucket(7)],
                "{xml}"
            );
        }
        let sized = "<LifecycleConfiguration><Rule><Status>Enabled</Status><Filter>\
                     <ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></Filter></Rule>\
                     </LifecycleConfiguration>";
        assert!(!parse_lifecycle(sized).unwrap()[0].whole_bucket);
        assert!(parse_lifecycle("").unwrap().is_empty());
        assert!(parse_lifecycle("<Lifecycle").is_err());
        let location = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><LocationConstraint \
                        xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">garage</LocationConstraint>";
        assert_eq!(parse_location(location).unwrap(), "garage");
    }
}
