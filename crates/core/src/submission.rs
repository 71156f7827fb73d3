//! Session results from MTAs without libtlsrpt (Exim's `event_action`, scripts): one JSON
//! object per line, field names as in an RFC 8460 report, parsed into the same
//! [`SessionResult`] a libtlsrpt datagram gives.
//!
//! ```json
//! {"domain": "example.com", "policy-type": "sts", "result": "certificate-expired",
//!  "receiving-mx-hostname": "mx1.example.com", "sending-mta-ip": "192.0.2.1"}
//! ```
//!
//! Required: `domain` (the recipient domain), `policy-type` (`sts`, `tlsa`,
//! `no-policy-found`), `result` (`success` or an RFC 8460 §4.3 result type). Optional:
//! `tlsrpt-record` (the `_smtp._tls` record; absent: looked up when the report is built),
//! `policy-domain` (default: `domain`), `policy-string` and `mx-host` (arrays of strings),
//! and the failure fields `sending-mta-ip`, `receiving-mx-hostname`, `receiving-mx-helo`,
//! `receiving-ip`, `additional-information`, `failure-reason-code`.

use serde::Deserialize;

use crate::DomainName;
use crate::report::{FailureDetail, KNOWN_RESULT_TYPES, PolicyType};
use crate::session::{MAX_ITEMS, SessionPolicy, SessionResult};

/// Bytes in one line at most.
pub const MAX_LINE: usize = 64 * 1024;

/// Why a line is not a session result; each names the field and the rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmissionError {
    #[error("line of {0} bytes: over the {MAX_LINE}-byte bound")]
    /// Too long.
    TooLong(usize),
    #[error("not a session result (one JSON object with the documented fields)")]
    /// Not JSON of the expected shape (serde names the field).
    Json(#[source] serde_json::Error),
    #[error("`domain` = {value:?}: not a domain name")]
    /// The recipient domain is not a domain.
    Domain {
        /// As sent.
        value: String,
        #[source]
        /// Why.
        source: crate::domain::DomainError,
    },
    #[error("`policy-type` = {0:?}: not sts, tlsa or no-policy-found (RFC 8460 §4.4)")]
    /// An unknown policy type.
    PolicyType(String),
    #[error("`result` = {0:?}: not success or an RFC 8460 §4.3 result type")]
    /// An unknown result.
    Result(String),
    #[error("`{field}` = {value:?}: not an IP address")]
    /// An address field that is not an address.
    Address {
        /// The field.
        field: &'static str,
        /// As sent.
        value: String,
    },
    #[error("`{0}`: over {MAX_ITEMS} items")]
    /// An array over the bound.
    Bound(&'static str),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSubmission {
    domain: String,
    tlsrpt_record: Option<String>,
    policy_type: String,
    policy_domain: Option<String>,
    #[serde(default)]
    policy_string: Vec<String>,
    #[serde(default)]
    mx_host: Vec<String>,
    result: String,
    sending_mta_ip: Option<String>,
    receiving_mx_hostname: Option<String>,
    receiving_mx_helo: Option<String>,
    receiving_ip: Option<String>,
    additional_information: Option<String>,
    failure_reason_code: Option<String>,
}

fn address(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<std::net::IpAddr>, SubmissionError> {
    match value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| SubmissionError::Address { field, value: v }),
    }
}

fn text(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Parses one line (without its line end).
pub fn parse_submission(line: &[u8]) -> Result<SessionResult, SubmissionError> {
    if line.len() > MAX_LINE {
        return Err(SubmissionError::TooLong(line.len()));
    }
    let raw: RawSubmission = serde_json::from_slice(line).map_err(SubmissionError::Json)?;
    let domain =
        DomainName::parse(raw.domain.trim()).map_err(|source| SubmissionError::Domain {
            value: raw.domain.clone(),
            source,
        })?;
    let policy_type = match raw.policy_type.as_str() {
        "sts" => PolicyType::Sts,
        "tlsa" => PolicyType::Tlsa,
        "no-policy-found" => PolicyType::NoPolicyFound,
        other => return Err(SubmissionError::PolicyType(other.to_string())),
    };
    if raw.policy_string.len() > MAX_ITEMS {
        return Err(SubmissionError::Bound("policy-string"));
    }
    if raw.mx_host.len() > MAX_ITEMS {
        return Err(SubmissionError::Bound("mx-host"));
    }
    let failures = match raw.result.as_str() {
        "success" => Vec::new(),
        t if KNOWN_RESULT_TYPES.contains(&t) => vec![FailureDetail {
            result_type: t.to_string(),
            sending_mta_ip: address("sending-mta-ip", raw.sending_mta_ip)?,
            receiving_mx_hostname: text(raw.receiving_mx_hostname)
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
            receiving_mx_helo: text(raw.receiving_mx_helo),
            receiving_ip: address("receiving-ip", raw.receiving_ip)?,
            failed_session_count: 1,
            additional_information: text(raw.additional_information),
            failure_reason_code: text(raw.failure_reason_code),
        }],
        other => return Err(SubmissionError::Result(other.to_string())),
    };
    let policy_domain = text(raw.policy_domain)
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_else(|| domain.as_str().to_string());
    Ok(SessionResult {
        tlsrpt_record: text(raw.tlsrpt_record).unwrap_or_default(),
        policies: vec![SessionPolicy {
            policy_type,
            policy_domain: Some(policy_domain),
            policy_strings: raw.policy_string,
            mx_hosts: raw.mx_host,
            failed: !failures.is_empty(),
            failures,
        }],
        domain,
    })
}
