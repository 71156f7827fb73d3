//! Received SMTP TLS reports (RFC 8460 §4): the model, a tolerant parser, and the pure
//! aggregation the summary shows.
//!
//! Tolerant of what real senders send (RCV-03, RCV-04, RCV-06, JSON-08): a missing `mx-host` or
//! `policy-string`, `mx-host` as a string, a timestamp without a zone, `null` or empty values,
//! unknown result and policy types. Each deviation is a [`ReportWarning`] kept with the report;
//! only an unusable report (not a JSON object, no `report-id`, no usable `date-range`, no
//! `policies` array, over the bounds) is an error.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::cache::UnixTime;

/// At most this many `policies` in one report, and `failure-details` in one policy: beyond
/// them a report is refused rather than stored (no sender needs more).
pub const MAX_POLICIES: usize = 10_000;
/// See [`MAX_POLICIES`].
pub const MAX_FAILURE_DETAILS: usize = 10_000;

/// A policy type (JSON-05); unknown values are kept (RCV-06).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyType {
    /// `sts`.
    Sts,
    /// `tlsa`.
    Tlsa,
    /// `no-policy-found`.
    NoPolicyFound,
    /// Anything else, as written.
    Other(String),
}

impl PolicyType {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "sts" => Self::Sts,
            "tlsa" => Self::Tlsa,
            "no-policy-found" => Self::NoPolicyFound,
            other => Self::Other(other.to_string()),
        }
    }

    /// The string as reports write it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sts => "sts",
            Self::Tlsa => "tlsa",
            Self::NoPolicyFound => "no-policy-found",
            Self::Other(s) => s,
        }
    }
}

/// The result types of RFC 8460 §4.3 (and its registry); unknown ones are kept as written.
pub const KNOWN_RESULT_TYPES: &[&str] = &[
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
];

/// One `failure-details` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureDetail {
    /// `result-type`, as written (see [`KNOWN_RESULT_TYPES`]).
    pub result_type: String,
    /// `sending-mta-ip`.
    pub sending_mta_ip: Option<IpAddr>,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`.
    pub receiving_ip: Option<IpAddr>,
    /// `failed-session-count`.
    pub failed_session_count: u64,
    /// `additional-information`.
    pub additional_information: Option<String>,
    /// `failure-reason-code`.
    pub failure_reason_code: Option<String>,
}

/// One `policies` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult {
    /// `policy-type`.
    pub policy_type: PolicyType,
    /// `policy-string`, one element per line (empty when left out).
    pub policy_strings: Vec<String>,
    /// `policy-domain`, lower case (`None` when left out).
    pub policy_domain: Option<String>,
    /// `mx-host` patterns (a string is read as one pattern; JSON-08).
    pub mx_hosts: Vec<String>,
    /// `total-successful-session-count`.
    pub successful: u64,
    /// `total-failure-session-count`.
    pub failed: u64,
    /// `failure-details`.
    pub failures: Vec<FailureDetail>,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `organization-name`.
    pub organization: String,
    /// `date-range.start-datetime`, seconds since the epoch.
    pub start: UnixTime,
    /// `date-range.end-datetime`.
    pub end: UnixTime,
    /// `contact-info`.
    pub contact: Option<String>,
    /// `report-id`.
    pub report_id: String,
    /// `policies`.
    pub policies: Vec<PolicyResult>,
}

/// A usable report and what was tolerated reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReport {
    /// The report.
    pub report: Report,
    /// Deviations from RFC 8460, in the order found.
    pub warnings: Vec<ReportWarning>,
}

/// A deviation that was tolerated: where (a JSON path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportWarning {
    /// The member, e.g. `policies[0].policy.mx-host`.
    pub path: String,
    /// What was wrong and what was done.
    pub message: String,
}

impl fmt::Display for ReportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a report cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("not JSON (RFC 8460 §4: a report is I-JSON): {0}")]
    /// Not JSON at all.
    Json(String),
    #[error("the report is not a JSON object (RFC 8460 §4.4)")]
    /// Valid JSON, but not an object.
    NotObject,
    #[error("`{0}` is missing or not a string (RFC 8460 §4.4)")]
    /// A member without which the report cannot be stored.
    Missing(&'static str),
    #[error("`{path}`: `{value}` is not an RFC 3339 date-time (RFC 8460 §4.4)")]
    /// A date that cannot be read.
    BadDate {
        /// Which.
        path: &'static str,
        /// As written.
        value: String,
    },
    #[error("`policies` is not an array (JSON-03: always an array)")]
    /// `policies` is missing or not an array.
    Policies,
    #[error("{what}: more than {limit} (refused as unreasonable)")]
    /// Over a bound.
    TooMany {
        /// What.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
}

/// Parses a report from its JSON text (already decompressed).
pub fn parse_report(json: &[u8]) -> Result<ParsedReport, ReportError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| ReportError::Json(e.to_string()))?;
    let Value::Object(top) = value else {
        return Err(ReportError::NotObject);
    };
    let mut w = Warnings(Vec::new());
    let report_id = required_string(&top, "report-id")?;
    let organization = match top.get("organization-name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            w.add("organization-name", "missing or empty; stored as empty");
            String::new()
        }
    };
    let contact = match top.get("contact-info") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => {
            w.add("contact-info", "missing or empty");
            None
        }
    };
    let range = top
        .get("date-range")
        .and_then(Value::as_object)
        .ok_or(ReportError::Missing("date-range"))?;
    let start = date(range, "start-datetime", "date-range.start-datetime", &mut w)?;
    let end = date(range, "end-datetime", "date-range.end-datetime", &mut w)?;
    if end < start {
        w.add("date-range", "ends before it starts");
    }
    let Some(Value::Array(items)) = top.get("policies") else {
        return Err(ReportError::Policies);
    };
    if items.len() > MAX_POLICIES {
        return Err(ReportError::TooMany {
            what: "policies",
            limit: MAX_POLICIES,
        });
    }
    let mut policies = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("policies[{i}]");
        let Value::Object(item) = item else {
            w.add(&at, "not an object; left out");
            continue;
        };
        policies.push(policy_result(item, &at, &mut w)?);
    }
    Ok(ParsedReport {
        report: Report {
            organization,
            start,
            end,
            contact,
            report_id,
            policies,
        },
        warnings: w.0,
    })
}

struct Warnings(Vec<ReportWarning>);

impl Warnings {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ReportWarning {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

fn required_string(m: &Map<String, Value>, key: &'static str) -> Result<String, ReportError> {
    match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ReportError::Missing(key)),
    }
}

fn date(
    m: &Map<String, Value>,
    key: &'static str,
    path: &'static str,
    w: &mut Warnings,
) -> Result<UnixTime, ReportError> {
    let Some(Value::String(s)) = m.get(key) else {
        return Err(ReportError::Missing(path));
    };
    match parse_datetime(s) {
        Some((t, true)) => Ok(t),
        Some((t, false)) => {
            // RCV-04: Microsoft writes no zone; UTC is what it means.
            w.add(path, "no time zone; read as UTC (RCV-04)");
            Ok(t)
        }
        None => Err(ReportError::BadDate {
            path,
            value: s.clone(),
        }),
    }
}

fn policy_result(
    item: &Map<String, Value>,
    at: &str,
    w: &mut Warnings,
) -> Result<PolicyResult, ReportError> {
    let empty = Map::new();
    let policy = match item.get("policy") {
        Some(Value::Object(p)) => p,
        _ => {
            w.add(&format!("{at}.policy"), "missing; type and domain unknown");
            &empty
        }
    };
    let policy_type = match policy.get("policy-type") {
        Some(Value::String(s)) => {
            let t = PolicyType::parse(s);
            if let PolicyType::Other(o) = &t {
                w.add(
                    &format!("{at}.policy.policy-type"),
                    format!("unknown type `{o}`; kept (RCV-06)"),
                );
            }
            t
        }
        _ => {
            w.add(
                &format!("{at}.policy.policy-type"),
                "missing; kept as `unknown`",
            );
            PolicyType::Other("unknown".into())
        }
    };
    let policy_strings = match policy.get("policy-string") {
        Some(Value::Array(lines)) => {
            let strings: Vec<String> = lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect();
            if strings.len() != lines.len() {
                w.add(
                    &format!("{at}.policy.policy-string"),
                    "elements that are not strings left out (JSON-06)",
                );
            }
            strings
        }
        Some(Value::String(s)) => {
            w.add(
                &format!("{at}.policy.policy-string"),
                "a string, not an array (JSON-06); read as one line",
            );
            vec![s.clone()]
        }
        None | Some(Value::Null) => {
            if policy_type != PolicyType::NoPolicyFound {
                w.add(&format!("{at}.policy.policy-string"), "missing (RCV-03)");
            }
            Vec::new()
        }
        Some(_) => {
            w.add(
                &format!("{at}.policy.policy-string"),
                "not an array; ignored",
            );
            Vec::new()
        }
    };
    let policy_domain = match policy.get("policy-domain") {
        Some(Value::String(s)) if !s.is_empty() => {
            let d = s.trim_end_matches('.').to_ascii_lowercase();
            if !d.is_ascii() {
                w.add(
                    &format!("{at}.policy.policy-domain"),
                    "not in A-labels (JSON-07)",
                );
            }
            Some(d)
        }
        _ => {
            w.add(&format!("{at}.policy.policy-domain"), "missing");
            None
        }
    };
    let mx_hosts = match policy.get("mx-host") {
        Some(Value::Array(hosts)) => hosts
            .iter()
            .filter_map(|h| h.as_str().map(str::to_string))
            .collect(),
        // JSON-08: the RFC's prose says a string; erratum 6241 and Google write an array.
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    };
    let summary = match item.get("summary") {
        Some(Value::Object(s)) => s,
        _ => {
            w.add(&format!("{at}.summary"), "missing; counts read as 0");
            &empty
        }
    };
    let successful = count(
        summary,
        "total-successful-session-count",
        &format!("{at}.summary"),
        w,
    );
    let failed = count(
        summary,
        "total-failure-session-count",
        &format!("{at}.summary"),
        w,
    );
    let failures = match item.get("failure-details") {
        Some(Value::Array(details)) => {
            if details.len() > MAX_FAILURE_DETAILS {
                return Err(ReportError::TooMany {
                    what: "failure-details of one policy",
                    limit: MAX_FAILURE_DETAILS,
                });
            }
            let mut out = Vec::with_capacity(details.len());
            for (j, d) in details.iter().enumerate() {
                let dat = format!("{at}.failure-details[{j}]");
                match d {
                    Value::Object(d) => out.push(failure_detail(d, &dat, w)),
                    _ => w.add(&dat, "not an object; left out"),
                }
            }
            out
        }
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            w.add(&format!("{at}.failure-details"), "not an array; ignored");
            Vec::new()
        }
    };
    let detailed: u64 = failures.iter().map(|f| f.failed_session_count).sum();
    if failed == 0 && detailed > 0 {
        w.add(
            &format!("{at}.summary.total-failure-session-count"),
            format!("0 while failure-details count {detailed} sessions"),
        );
    }
    Ok(PolicyResult {
        policy_type,
        policy_strings,
        policy_domain,
        mx_hosts,
        successful,
        failed,
        failures,
    })
}

fn count(m: &Map<String, Value>, key: &str, at: &str, w: &mut Warnings) -> u64 {
    match m.get(key) {
        // A sender that saw no session of a kind may leave its count out.
        None | Some(Value::Null) => 0,
        Some(v) if let Some(n) = v.as_u64() => n,
        Some(v) => {
            w.add(
                &format!("{at}.{key}"),
                format!("`{v}` is not a non-negative integer; read as 0"),
            );
            0
        }
    }
}

fn optional_string(d: &Map<String, Value>, key: &str) -> Option<String> {
    d.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn failure_detail(d: &Map<String, Value>, at: &str, w: &mut Warnings) -> FailureDetail {
    let result_type = match d.get("result-type").and_then(Value::as_str) {
        Some(t) => {
            if !KNOWN_RESULT_TYPES.contains(&t) {
                w.add(
                    &format!("{at}.result-type"),
                    format!("unknown type `{t}`; kept (RCV-06)"),
                );
            }
            t.to_string()
        }
        None => {
            w.add(&format!("{at}.result-type"), "missing; kept as `unknown`");
            "unknown".into()
        }
    };
    let mut ip = |key: &str| -> Option<IpAddr> {
        let text = optional_string(d, key)?;
        match text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                w.add(
                    &format!("{at}.{key}"),
                    format!("`{text}` is not an IP address"),
                );
                None
            }
        }
    };
    let sending_mta_ip = ip("sending-mta-ip");
    let receiving_ip = ip("receiving-ip");
    let failed_session_count = count(d, "failed-session-count", at, w);
    FailureDetail {
        result_type,
        sending_mta_ip,
        receiving_mx_hostname: optional_string(d, "receiving-mx-hostname")
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
        receiving_mx_helo: optional_string(d, "receiving-mx-helo"),
        receiving_ip,
        failed_session_count,
        additional_information: optional_string(d, "additional-information"),
        failure_reason_code: optional_string(d, "failure-reason-code"),
    }
}

/// Reads an RFC 3339 date-time (`2024-02-22T00:00:00Z`, `…+02:00`, fractions allowed) as
/// seconds since the epoch, and whether it had a zone (RCV-04 reads a missing one as UTC).
pub fn parse_datetime(s: &str) -> Option<(UnixTime, bool)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let (offset, zoned) = match rest {
        "" => (0, false),
        "Z" | "z" => (0, true),
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let tz = &rest[1..];
            if tz.len() != 5 || tz.as_bytes()[2] != b':' {
                return None;
            }
            let h: i64 = tz.get(0..2)?.parse().ok()?;
            let m: i64 = tz.get(3..5)?.parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            (sign * (h * 3600 + m * 60), true)
        }
    };
    let days = days_from_civil(year, month, day);
    let t = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    UnixTime::try_from(t).ok().map(|t| (t, zoned))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Totals for one policy domain and policy type over some reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainSummary {
    /// Successful sessions.
    pub successful: u64,
    /// Failed sessions.
    pub failed: u64,
    /// Failed sessions by result type (from `failure-details`).
    pub failures_by_type: BTreeMap<String, u64>,
    /// Failed sessions by receiving MX host name.
    pub failures_by_mx: BTreeMap<String, u64>,
    /// Failed sessions by sending MTA address.
    pub failures_by_sender: BTreeMap<String, u64>,
    /// Reports that mention the domain with this type.
    pub reports: u64,
    /// Reporting organisations, with how many of their reports.
    pub organizations: BTreeMap<String, u64>,
    /// The policy strings senders saw, with how many reports showed each (joined by `\n`).
    pub policy_strings: BTreeMap<String, u64>,
}

/// The summary key: the policy domain (`None`: the report left it out) and the policy type.
pub type SummaryKey = (Option<String>, String);

/// Adds `report` to `totals` (pure aggregation; the caller chooses which reports).
pub fn summarize(report: &Report, totals: &mut BTreeMap<SummaryKey, DomainSummary>) {
    let mut seen = std::collections::BTreeSet::new();
    for p in &report.policies {
        let key = (p.policy_domain.clone(), p.policy_type.as_str().to_string());
        let s = totals.entry(key.clone()).or_default();
        s.successful = s.successful.saturating_add(p.successful);
        s.failed = s.failed.saturating_add(p.failed);
        for f in &p.failures {
            let n = f.failed_session_count;
            *s.failures_by_type.entry(f.result_type.clone()).or_default() += n;
            if let Some(mx) = &f.receiving_mx_hostname {
                *s.failures_by_mx.entry(mx.clone()).or_default() += n;
            }
            if let Some(ip) = f.sending_mta_ip {
                *s.failures_by_sender.entry(ip.to_string()).or_default() += n;
            }
        }
        if !p.policy_strings.is_empty() {
            *s.policy_strings
                .entry(p.policy_strings.join("\n"))
                .or_default() += 1;
        }
        // A report counts once per key, however many of its policies share it.
        if seen.insert(key) {
            s.reports += 1;
            *s.organizations
                .entry(report.organization.clone())
                .or_default() += 1;
        }
    }
}

/// A UTC day, as days since the epoch (RFC 8460 §4: reports cover UTC days).
pub type UtcDay = u64;

/// Sessions of one (policy domain, policy type) on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaySessions {
    /// Successful sessions.
    pub successful: u64,
    /// Failed sessions.
    pub failed: u64,
}

/// Adds `report`'s sessions to `days`, on the UTC day its range starts (a report covers one
/// day; one that spans more is counted on its first).
pub fn add_daily(report: &Report, days: &mut BTreeMap<(SummaryKey, UtcDay), DaySessions>) {
    let day = report.start / 86_400;
    for p in &report.policies {
        let key = (p.policy_domain.clone(), p.policy_type.as_str().to_string());
        let d = days.entry((key, day)).or_default();
        d.successful = d.successful.saturating_add(p.successful);
        d.failed = d.failed.saturating_add(p.failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_sessions_fall_on_the_utc_day_the_range_starts() {
        let json = |id: &str, start: &str, ok: u64, failed: u64| {
            format!(
                r#"{{"organization-name":"o","report-id":"{id}","date-range":{{"start-datetime":"{start}","end-datetime":"2026-12-01T23:59:59Z"}},
"policies":[{{"policy":{{"policy-type":"sts","policy-domain":"example.com"}},"summary":{{"total-successful-session-count":{ok},"total-failure-session-count":{failed}}}}}]}}"#
            )
        };
        let mut days = BTreeMap::new();
        for (id, start, ok, failed) in [
            ("a", "2026-11-30T00:00:00Z", 10, 1),
            ("b", "2026-11-30T23:59:59Z", 5, 0),
            ("c", "2026-12-01T00:00:00Z", 7, 3),
        ] {
            let r = parse_report(json(id, start, ok, failed).as_bytes()).expect("report");
            add_daily(&r.report, &mut days);
        }
        let key = (Some("example.com".to_string()), "sts".to_string());
        // 2026-11-30 is day 20,787 since the epoch.
        assert_eq!(
            days.get(&(key.clone(), 20_787)),
            Some(&DaySessions {
                successful: 15,
                failed: 1
            })
        );
        assert_eq!(
            days.get(&(key, 20_788)),
            Some(&DaySessions {
                successful: 7,
                failed: 3
            })
        );
    }

    #[test]
    fn rfc3339_dates_with_and_without_zones() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some((0, true)));
        assert_eq!(
            parse_datetime("2024-02-22T00:00:00Z"),
            Some((1_708_560_000, true))
        );
        assert_eq!(
            parse_datetime("2024-02-22T02:00:00+02:00"),
            Some((1_708_560_000, true))
        );
        assert_eq!(
            parse_datetime("2024-02-21T23:00:00.123-01:00"),
            Some((1_708_560_000, true))
        );
        assert_eq!(
            parse_datetime("2024-03-26T00:00:00"),
            Some((1_711_411_200, false))
        );
        for bad in [
            "",
            "2024-02-22",
            "2024-13-01T00:00:00Z",
            "2024-02-22T24:00:00Z",
            "2024-02-22T00:00:00+2",
            "2024-02-22T00:00:00.Z",
            "yesterday",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }
}
