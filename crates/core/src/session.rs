//! TLS session results as a sending MTA reports them, for the reports RFC 8460 asks senders
//! to send: libtlsrpt's datagram (protocol version 1, what Postfix ≥ 3.10 sends to
//! `smtp_tlsrpt_socket_name`), parsed into the report model of [`crate::report`], and the pure
//! daily aggregation of many sessions into one report per policy domain.
//!
//! A datagram is one delivery attempt: the recipient domain (`d`), the TLS-RPT record the MTA
//! found for it (`pr`), and for each policy applied (`policies`) its type (1 `tlsa`, 2 `sts`,
//! 9 `no-policy-found`), domain, strings and MX patterns, the failures seen (`failure-details`,
//! each with a numeric result code `c`) and the final result (`f`: 0 success, 1 failure).
//! Checked against libtlsrpt 0.5.1rc2 (`libtlsrpt.c`, `tlsrpt.h`) and tlsrpt-reporter 0.6.0rc2.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::DomainName;
use crate::report::{FailureDetail, PolicyResult, PolicyType};

/// Bytes in one datagram at most (Postfix's are well under 4 KiB).
pub const MAX_DATAGRAM: usize = 64 * 1024;
/// Policies in one datagram at most (an MTA applies one or two per delivery).
pub const MAX_SESSION_POLICIES: usize = 16;
/// Failure details, policy strings and MX patterns per policy at most.
pub const MAX_ITEMS: usize = 1024;

/// libtlsrpt's failure codes and the RFC 8460 §4.3 result types they stand for.
pub const RESULT_CODES: &[(u64, &str)] = &[
    (201, "starttls-not-supported"),
    (202, "certificate-host-mismatch"),
    (203, "certificate-not-trusted"),
    (204, "certificate-expired"),
    (205, "validation-failure"),
    (301, "sts-policy-fetch-error"),
    (302, "sts-policy-invalid"),
    (303, "sts-webpki-invalid"),
    (304, "tlsa-invalid"),
    (305, "dnssec-invalid"),
    (306, "dane-required"),
];

/// The result type of libtlsrpt failure code `code`.
pub fn result_type(code: u64) -> Option<&'static str> {
    RESULT_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, t)| *t)
}

/// One policy as applied to one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// `tlsa`, `sts` or `no-policy-found`.
    pub policy_type: PolicyType,
    /// The policy domain, lower case.
    pub policy_domain: Option<String>,
    /// The policy's lines (the STS policy, or TLSA records).
    pub policy_strings: Vec<String>,
    /// The STS `mx` patterns.
    pub mx_hosts: Vec<String>,
    /// Whether the session failed under this policy.
    pub failed: bool,
    /// What failed, each with a session count of one.
    pub failures: Vec<FailureDetail>,
}

/// One delivery attempt's TLS result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionResult {
    /// The recipient domain the report is about.
    pub domain: DomainName,
    /// The `_smtp._tls` record the MTA found (where the report goes).
    pub tlsrpt_record: String,
    /// The policies applied.
    pub policies: Vec<SessionPolicy>,
}

/// Why a datagram is not a session result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    #[error("datagram of {0} bytes: over the {MAX_DATAGRAM}-byte bound")]
    /// Too large.
    TooLarge(usize),
    #[error("not a libtlsrpt datagram (JSON of the expected shape)")]
    /// Not JSON, or not the expected fields.
    Json(#[source] serde_json::Error),
    #[error("datagram protocol version {0:?}: only \"1\" is known")]
    /// A version this code does not know.
    Version(String),
    #[error("`d` = {value:?}: not a domain name")]
    /// The recipient domain is not a domain.
    Domain {
        /// As sent.
        value: String,
        #[source]
        /// Why.
        source: crate::domain::DomainError,
    },
    #[error("policies[{index}]: policy-type {code}: not 1 (tlsa), 2 (sts) or 9 (no-policy-found)")]
    /// An unknown policy type code.
    PolicyType {
        /// Which policy.
        index: usize,
        /// The code.
        code: u64,
    },
    #[error("policies[{index}].failure-details[{detail}]: code {code} is not a known result type")]
    /// An unknown failure code.
    ResultCode {
        /// Which policy.
        index: usize,
        /// Which detail.
        detail: usize,
        /// The code.
        code: u64,
    },
    #[error("policies[{index}]: final result {code}: not 0 (success) or 1 (failure)")]
    /// `f` is neither.
    FinalResult {
        /// Which policy.
        index: usize,
        /// The value.
        code: u64,
    },
    #[error("{what}: {count} over the bound of {bound}")]
    /// Over a bound.
    Bound {
        /// What was counted.
        what: &'static str,
        /// How many.
        count: usize,
        /// The bound.
        bound: usize,
    },
}

#[derive(Deserialize)]
struct RawDatagram {
    dpv: Option<String>,
    d: String,
    #[serde(default)]
    pr: String,
    #[serde(default)]
    policies: Vec<RawPolicy>,
}

#[derive(Deserialize)]
struct RawPolicy {
    #[serde(rename = "policy-type")]
    policy_type: u64,
    #[serde(rename = "policy-domain")]
    policy_domain: Option<String>,
    #[serde(rename = "policy-string", default)]
    policy_string: Vec<String>,
    #[serde(rename = "mx-host", default)]
    mx_host: Vec<String>,
    #[serde(rename = "failure-details", default)]
    failure_details: Vec<RawFailure>,
    f: u64,
}

#[derive(Deserialize)]
struct RawFailure {
    c: u64,
    s: Option<String>,
    n: Option<String>,
    h: Option<String>,
    r: Option<String>,
    a: Option<String>,
    f: Option<String>,
}

fn bound(what: &'static str, count: usize, bound: usize) -> Result<(), DatagramError> {
    if count > bound {
        return Err(DatagramError::Bound { what, count, bound });
    }
    Ok(())
}

fn ip(s: Option<&String>) -> Option<IpAddr> {
    s.and_then(|s| s.trim().parse().ok())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Parses one datagram.
pub fn parse_datagram(bytes: &[u8]) -> Result<SessionResult, DatagramError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(DatagramError::TooLarge(bytes.len()));
    }
    let raw: RawDatagram = serde_json::from_slice(bytes).map_err(DatagramError::Json)?;
    if let Some(v) = raw.dpv.as_deref()
        && v != "1"
    {
        return Err(DatagramError::Version(v.to_string()));
    }
    let domain = DomainName::parse(raw.d.trim()).map_err(|source| DatagramError::Domain {
        value: raw.d.clone(),
        source,
    })?;
    bound("policies", raw.policies.len(), MAX_SESSION_POLICIES)?;
    let mut policies = Vec::with_capacity(raw.policies.len());
    for (index, p) in raw.policies.into_iter().enumerate() {
        bound("policy-string", p.policy_string.len(), MAX_ITEMS)?;
        bound("mx-host", p.mx_host.len(), MAX_ITEMS)?;
        bound("failure-details", p.failure_details.len(), MAX_ITEMS)?;
        let policy_type = match p.policy_type {
            1 => PolicyType::Tlsa,
            2 => PolicyType::Sts,
            9 => PolicyType::NoPolicyFound,
            code => return Err(DatagramError::PolicyType { index, code }),
        };
        let failed = match p.f {
            0 => false,
            1 => true,
            code => return Err(DatagramError::FinalResult { index, code }),
        };
        let mut failures = Vec::with_capacity(p.failure_details.len());
        for (detail, f) in p.failure_details.into_iter().enumerate() {
            let result_type = result_type(f.c).ok_or(DatagramError::ResultCode {
                index,
                detail,
                code: f.c,
            })?;
            failures.push(FailureDetail {
                result_type: result_type.to_string(),
                sending_mta_ip: ip(f.s.as_ref()),
                receiving_mx_hostname: non_empty(f.n).map(|n| n.to_ascii_lowercase()),
                receiving_mx_helo: non_empty(f.h),
                receiving_ip: ip(f.r.as_ref()),
                failed_session_count: 1,
                additional_information: non_empty(f.a),
                failure_reason_code: non_empty(f.f),
            });
        }
        policies.push(SessionPolicy {
            policy_type,
            policy_domain: non_empty(p.policy_domain)
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
            policy_strings: p.policy_string,
            mx_hosts: p.mx_host,
            failed,
            failures,
        });
    }
    Ok(SessionResult {
        domain,
        tlsrpt_record: raw.pr,
        policies,
    })
}

/// The libtlsrpt datagram (protocol version 1) of a session that failed before TLS: the STS
/// policy of `domain` could not be applied (`result_type`: `sts-policy-fetch-error`,
/// `sts-policy-invalid` or `sts-webpki-invalid`). `policy_strings` and `mx_hosts` are the
/// cached policy's, if one is in force. `None` for a result type libtlsrpt has no code for.
pub fn failure_datagram(
    domain: &str,
    result_type: &str,
    policy_strings: &[String],
    mx_hosts: &[String],
) -> Option<String> {
    let code = RESULT_CODES.iter().find(|(_, t)| *t == result_type)?.0;
    Some(
        serde_json::json!({
            "dpv": "1",
            "d": domain,
            "pr": "",
            "policies": [{
                "policy-type": 2,
                "policy-domain": domain,
                "policy-string": policy_strings,
                "mx-host": mx_hosts,
                "failure-details": [{"c": code}],
                "t": 1,
                "f": 1,
            }],
        })
        .to_string(),
    )
}

/// What identifies one `policies` element of a report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyKey {
    /// The type.
    pub policy_type: PolicyType,
    /// The domain.
    pub policy_domain: Option<String>,
    /// The strings.
    pub policy_strings: Vec<String>,
    /// The MX patterns.
    pub mx_hosts: Vec<String>,
}

/// Sessions of one policy over a day, and their failures with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyCounts {
    /// Sessions that succeeded.
    pub successful: u64,
    /// Sessions that failed.
    pub failed: u64,
    /// Failure details (with `failed_session_count` 0) and how often each was seen.
    pub failures: BTreeMap<FailureKey, u64>,
}

/// A failure detail without its count, as an ordered key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailureKey {
    /// `result-type`.
    pub result_type: String,
    /// `sending-mta-ip`.
    pub sending_mta_ip: Option<IpAddr>,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`.
    pub receiving_ip: Option<IpAddr>,
    /// `additional-information`.
    pub additional_information: Option<String>,
    /// `failure-reason-code`.
    pub failure_reason_code: Option<String>,
}

impl From<&FailureDetail> for FailureKey {
    fn from(f: &FailureDetail) -> Self {
        Self {
            result_type: f.result_type.clone(),
            sending_mta_ip: f.sending_mta_ip,
            receiving_mx_hostname: f.receiving_mx_hostname.clone(),
            receiving_mx_helo: f.receiving_mx_helo.clone(),
            receiving_ip: f.receiving_ip,
            additional_information: f.additional_information.clone(),
            failure_reason_code: f.failure_reason_code.clone(),
        }
    }
}

/// One day's sessions of one recipient domain (and one TLS-RPT record), by policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainDay {
    /// By policy.
    pub policies: BTreeMap<PolicyKey, PolicyCounts>,
}

impl DomainDay {
    /// Counts one session's results.
    pub fn add(&mut self, session: &SessionResult) {
        for p in &session.policies {
            let counts = self.policies.entry(p.key()).or_default();
            if p.failed {
                counts.failed += 1;
            } else {
                counts.successful += 1;
            }
            for f in &p.failures {
                *counts.failures.entry(FailureKey::from(f)).or_default() += f.failed_session_count;
            }
        }
    }

    /// The `policies` of the day's report, in key order.
    pub fn policy_results(&self) -> Vec<PolicyResult> {
        self.policies
            .iter()
            .map(|(k, c)| PolicyResult {
                policy_type: k.policy_type.clone(),
                policy_strings: k.policy_strings.clone(),
                policy_domain: k.policy_domain.clone(),
                mx_hosts: k.mx_hosts.clone(),
                successful: c.successful,
                failed: c.failed,
                failures: c
                    .failures
                    .iter()
                    .map(|(f, n)| FailureDetail {
                        result_type: f.result_type.clone(),
                        sending_mta_ip: f.sending_mta_ip,
                        receiving_mx_hostname: f.receiving_mx_hostname.clone(),
                        receiving_mx_helo: f.receiving_mx_helo.clone(),
                        receiving_ip: f.receiving_ip,
                        failed_session_count: *n,
                        additional_information: f.additional_information.clone(),
                        failure_reason_code: f.failure_reason_code.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

fn opt_str(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

fn str_list(v: &serde_json::Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyKey {
    /// The key as stored: JSON with the report's field names, fields in a fixed order (so
    /// equal keys are equal text).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "policy-type": self.policy_type.as_str(),
            "policy-domain": self.policy_domain,
            "policy-string": self.policy_strings,
            "mx-host": self.mx_hosts,
        })
        .to_string()
    }

    /// The key [`PolicyKey::to_json`] wrote.
    pub fn from_json(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Self {
            policy_type: PolicyType::parse(v.get("policy-type")?.as_str()?),
            policy_domain: opt_str(&v, "policy-domain"),
            policy_strings: str_list(&v, "policy-string"),
            mx_hosts: str_list(&v, "mx-host"),
        })
    }
}

impl FailureKey {
    /// The key as stored, like [`PolicyKey::to_json`].
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "result-type": self.result_type,
            "sending-mta-ip": self.sending_mta_ip.map(|i| i.to_string()),
            "receiving-mx-hostname": self.receiving_mx_hostname,
            "receiving-mx-helo": self.receiving_mx_helo,
            "receiving-ip": self.receiving_ip.map(|i| i.to_string()),
            "additional-information": self.additional_information,
            "failure-reason-code": self.failure_reason_code,
        })
        .to_string()
    }

    /// The key [`FailureKey::to_json`] wrote.
    pub fn from_json(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let ip = |k: &str| opt_str(&v, k).and_then(|s| s.parse().ok());
        Some(Self {
            result_type: opt_str(&v, "result-type")?,
            sending_mta_ip: ip("sending-mta-ip"),
            receiving_mx_hostname: opt_str(&v, "receiving-mx-hostname"),
            receiving_mx_helo: opt_str(&v, "receiving-mx-helo"),
            receiving_ip: ip("receiving-ip"),
            additional_information: opt_str(&v, "additional-information"),
            failure_reason_code: opt_str(&v, "failure-reason-code"),
        })
    }
}

impl SessionPolicy {
    /// This policy's key in a day's counts.
    pub fn key(&self) -> PolicyKey {
        PolicyKey {
            policy_type: self.policy_type.clone(),
            policy_domain: self.policy_domain.clone(),
            policy_strings: self.policy_strings.clone(),
            mx_hosts: self.mx_hosts.clone(),
        }
    }
}

/// What a generated report says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMeta<'a> {
    /// `organization-name`: who sends the report.
    pub organization: &'a str,
    /// `contact-info`: an address at the submitter domain (MAIL-02).
    pub contact_info: &'a str,
    /// `report-id`, unique per report.
    pub report_id: &'a str,
    /// The UTC day covered, its first second (JSON-10: one whole UTC day).
    pub day_start: crate::cache::UnixTime,
}

/// The first second of UTC day `day` (`YYYY-MM-DD`).
pub fn day_start(day: &str) -> Option<crate::cache::UnixTime> {
    if day.len() != 10 {
        return None;
    }
    crate::report::parse_datetime(&format!("{day}T00:00:00Z")).map(|(t, _)| t)
}

/// `t` as RFC 3339 UTC (`2026-11-30T00:00:00Z`).
pub fn rfc3339_utc(t: crate::cache::UnixTime) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The RFC 8460 §4.4 report of one day's sessions of one policy domain (JSON-02 to JSON-09:
/// `policies` always an array, `mx-host` an array, counts as integers, addresses in their
/// canonical text form, optional fields left out when unknown).
pub fn render_report(meta: &ReportMeta<'_>, day: &DomainDay) -> String {
    use serde_json::{Map, Value, json};
    let policies: Vec<Value> = day
        .policy_results()
        .iter()
        .map(|p| {
            let mut policy = Map::new();
            policy.insert("policy-type".into(), json!(p.policy_type.as_str()));
            if !p.policy_strings.is_empty() {
                policy.insert("policy-string".into(), json!(p.policy_strings));
            }
            if let Some(d) = &p.policy_domain {
                policy.insert("policy-domain".into(), json!(d));
            }
            if !p.mx_hosts.is_empty() {
                policy.insert("mx-host".into(), json!(p.mx_hosts));
            }
            let failures: Vec<Value> = p
                .failures
                .iter()
                .map(|f| {
                    let mut o = Map::new();
                    o.insert("result-type".into(), json!(f.result_type));
                    let mut put = |k: &str, v: Option<String>| {
                        if let Some(v) = v {
                            o.insert(k.into(), json!(v));
                        }
                    };
                    put("sending-mta-ip", f.sending_mta_ip.map(|i| i.to_string()));
                    put("receiving-mx-hostname", f.receiving_mx_hostname.clone());
                    put("receiving-mx-helo", f.receiving_mx_helo.clone());
                    put("receiving-ip", f.receiving_ip.map(|i| i.to_string()));
                    put("additional-information", f.additional_information.clone());
                    put("failure-reason-code", f.failure_reason_code.clone());
                    o.insert("failed-session-count".into(), json!(f.failed_session_count));
                    Value::Object(o)
                })
                .collect();
            let mut element = Map::new();
            element.insert("policy".into(), Value::Object(policy));
            element.insert(
                "summary".into(),
                json!({
                    "total-successful-session-count": p.successful,
                    "total-failure-session-count": p.failed,
                }),
            );
            if !failures.is_empty() {
                element.insert("failure-details".into(), Value::Array(failures));
            }
            Value::Object(element)
        })
        .collect();
    json!({
        "organization-name": meta.organization,
        "date-range": {
            "start-datetime": rfc3339_utc(meta.day_start),
            "end-datetime": rfc3339_utc(meta.day_start + 86_399),
        },
        "contact-info": meta.contact_info,
        "report-id": meta.report_id,
        "policies": policies,
    })
    .to_string()
}

/// The report's file name (RFC 8460 §5.1, DLV-01):
/// `<submitter>!<policy domain>!<begin>!<end>[!<unique id>].json[.gz]`.
pub fn report_filename(
    submitter: &str,
    policy_domain: &str,
    begin: crate::cache::UnixTime,
    end: crate::cache::UnixTime,
    unique_id: Option<&str>,
    gzip: bool,
) -> String {
    let unique = unique_id.map(|u| format!("!{u}")).unwrap_or_default();
    let ext = if gzip { "json.gz" } else { "json" };
    format!("{submitter}!{policy_domain}!{begin}!{end}{unique}.{ext}")
}
