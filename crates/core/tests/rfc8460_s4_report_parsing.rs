//! RFC 8460 §4: received reports. Hand-written fixtures for each quirk real senders have
//! (RCV-03, RCV-04, RCV-06, JSON-08), the errors that make a report unusable, and every real
//! report in `../shared/realworld/corpus/tlsrpt-report/` with its counts computed here
//! independently (from the JSON values, not through the parser).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::collections::BTreeMap;
use std::path::Path;

use mtasts_core::report::{PolicyType, ReportError, parse_report, summarize};

/// The RFC's example (§4.5), with an `mx-host` array.
const RFC_EXAMPLE: &str = r#"{
  "organization-name": "Company-X",
  "date-range": {"start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z"},
  "contact-info": "sts-reporting@company-x.example",
  "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
  "policies": [{
    "policy": {
      "policy-type": "sts",
      "policy-string": ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"],
      "policy-domain": "company-y.example",
      "mx-host": ["*.mail.company-y.example"]
    },
    "summary": {"total-successful-session-count": 5326, "total-failure-session-count": 303},
    "failure-details": [
      {"result-type": "certificate-expired", "sending-mta-ip": "2001:db8:abcd:0012::1",
       "receiving-mx-hostname": "mx1.mail.company-y.example", "failed-session-count": 100},
      {"result-type": "starttls-not-supported", "sending-mta-ip": "2001:db8:abcd:0013::1",
       "receiving-mx-hostname": "mx2.mail.company-y.example", "receiving-ip": "203.0.113.56",
       "failed-session-count": 200, "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"},
      {"result-type": "validation-failure", "sending-mta-ip": "198.51.100.62",
       "receiving-ip": "203.0.113.58", "receiving-mx-hostname": "mx-backup.mail.company-y.example",
       "failed-session-count": 3, "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"}
    ]
  }]
}"#;

fn warnings_of(json: &str) -> Vec<String> {
    parse_report(json.as_bytes())
        .expect("usable")
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn json_02_04_the_rfc_example_reads_without_warnings() {
    let parsed = parse_report(RFC_EXAMPLE.as_bytes()).expect("valid");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let r = parsed.report;
    assert_eq!(r.organization, "Company-X");
    assert_eq!((r.start, r.end), (1_459_468_800, 1_459_555_199));
    let p = &r.policies[0];
    assert_eq!(p.policy_type, PolicyType::Sts);
    assert_eq!(p.policy_domain.as_deref(), Some("company-y.example"));
    assert_eq!((p.successful, p.failed), (5326, 303));
    assert_eq!(p.failures.len(), 3);
    assert_eq!(
        p.failures[1].receiving_ip,
        Some("203.0.113.56".parse().expect("ip"))
    );
    assert_eq!(
        p.failures[2].failure_reason_code.as_deref(),
        Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED")
    );
}

#[test]
fn json_08_mx_host_as_a_string_or_an_array() {
    let s = RFC_EXAMPLE.replace(
        r#""mx-host": ["*.mail.company-y.example"]"#,
        r#""mx-host": "*.mail.company-y.example""#,
    );
    let r = parse_report(s.as_bytes()).expect("valid").report;
    assert_eq!(r.policies[0].mx_hosts, ["*.mail.company-y.example"]);
}

#[test]
fn rcv_03_missing_mx_host_and_policy_string_are_tolerated() {
    let s = RFC_EXAMPLE
        .replace(r#""mx-host": ["*.mail.company-y.example"]"#, r#""x-other": 0"#)
        .replace(
            r#""policy-string": ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"],"#,
            "",
        );
    let parsed = parse_report(s.as_bytes()).expect("usable");
    assert!(parsed.report.policies[0].mx_hosts.is_empty());
    assert!(parsed.report.policies[0].policy_strings.is_empty());
    assert_eq!(
        parsed
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["policies[0].policy.policy-string: missing (RCV-03)"]
    );
}

#[test]
fn rcv_04_a_date_without_zone_is_utc_with_a_warning() {
    let s = RFC_EXAMPLE.replace("2016-04-01T00:00:00Z", "2016-04-01T00:00:00");
    let parsed = parse_report(s.as_bytes()).expect("usable");
    assert_eq!(parsed.report.start, 1_459_468_800);
    assert_eq!(
        warnings_of(&s),
        ["date-range.start-datetime: no time zone; read as UTC (RCV-04)"]
    );
}

#[test]
fn rcv_06_unknown_types_are_kept_nulls_and_empty_values_tolerated() {
    let s = RFC_EXAMPLE
        .replace("\"certificate-expired\"", "\"quantum-interference\"")
        .replace(
            "\"policy-type\": \"sts\"",
            "\"policy-type\": \"future-type\"",
        )
        .replace(
            "\"sending-mta-ip\": \"198.51.100.62\"",
            "\"sending-mta-ip\": \"\"",
        )
        .replace(
            "\"failure-reason-code\": \"X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED\"",
            "\"failure-reason-code\": null",
        );
    let parsed = parse_report(s.as_bytes()).expect("usable");
    let p = &parsed.report.policies[0];
    assert_eq!(p.policy_type, PolicyType::Other("future-type".into()));
    assert_eq!(p.failures[0].result_type, "quantum-interference");
    assert_eq!(p.failures[2].sending_mta_ip, None);
    assert_eq!(p.failures[2].failure_reason_code, None);
    let w = warnings_of(&s);
    assert!(
        w.contains(
            &"policies[0].policy.policy-type: unknown type `future-type`; kept (RCV-06)".into()
        ),
        "{w:?}"
    );
    assert!(
        w.contains(
            &"policies[0].failure-details[0].result-type: unknown type `quantum-interference`; kept (RCV-06)"
                .into()
        ),
        "{w:?}"
    );
}

#[test]
fn unusable_reports_are_errors_naming_the_rule() {
    assert!(matches!(parse_report(b"{"), Err(ReportError::Json(_))));
    assert_eq!(parse_report(b"[1]"), Err(ReportError::NotObject));
    let no_id = RFC_EXAMPLE.replace("\"report-id\"", "\"report_id\"");
    assert_eq!(
        parse_report(no_id.as_bytes()),
        Err(ReportError::Missing("report-id"))
    );
    let bad_date = RFC_EXAMPLE.replace("2016-04-01T00:00:00Z", "April 1st");
    assert_eq!(
        parse_report(bad_date.as_bytes()).map(|_| ()),
        Err(ReportError::BadDate {
            path: "date-range.start-datetime",
            value: "April 1st".into()
        })
    );
    let one_policy = RFC_EXAMPLE.replacen("\"policies\": [", "\"policies\": ", 1);
    let one_policy = one_policy.trim_end().trim_end_matches('}').trim_end();
    let one_policy = format!("{}}}", one_policy.trim_end_matches(']'));
    assert_eq!(
        parse_report(one_policy.as_bytes()).map(|_| ()),
        Err(ReportError::Policies),
        "JSON-03: policies must be an array"
    );
    let many = format!(
        r#"{{"organization-name":"x","report-id":"1","date-range":{{"start-datetime":"2020-01-01T00:00:00Z","end-datetime":"2020-01-02T00:00:00Z"}},"policies":[{}]}}"#,
        vec!["{}"; mtasts_core::report::MAX_POLICIES + 1].join(",")
    );
    assert!(matches!(
        parse_report(many.as_bytes()),
        Err(ReportError::TooMany {
            what: "policies",
            ..
        })
    ));
}

#[test]
fn the_summary_adds_sessions_and_failures_by_type_mx_and_sender() {
    let r = parse_report(RFC_EXAMPLE.as_bytes()).expect("valid").report;
    let mut totals = BTreeMap::new();
    summarize(&r, &mut totals);
    summarize(&r, &mut totals);
    let s = &totals[&(Some("company-y.example".into()), "sts".into())];
    assert_eq!((s.successful, s.failed, s.reports), (2 * 5326, 2 * 303, 2));
    assert_eq!(s.failures_by_type["starttls-not-supported"], 400);
    assert_eq!(s.failures_by_mx["mx1.mail.company-y.example"], 200);
    assert_eq!(s.failures_by_sender["198.51.100.62"], 6);
    assert_eq!(s.organizations["Company-X"], 2);
    assert_eq!(s.policy_strings.len(), 1);
}

fn corpus() -> Vec<std::path::PathBuf> {
    let Some(root) = option_env!("MTASTS_REALWORLD_DIR") else {
        panic!("MTASTS_REALWORLD_DIR is set by build.rs when the corpus is there");
    };
    let dir = Path::new(root).join("tlsrpt-report");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no reports in {}", dir.display());
    v
}

#[cfg_attr(
    not(mtasts_have_realworld),
    ignore = "../shared/realworld/corpus is not beside the checkout (or set MTASTS_REALWORLD)"
)]
#[test]
fn every_real_report_is_usable_and_counted_as_its_json_says() {
    for path in corpus() {
        let bytes = std::fs::read(&path).expect("read");
        let parsed =
            parse_report(&bytes).unwrap_or_else(|e| panic!("{}: unusable: {e}", path.display()));
        // Independently: the sums straight from the JSON values.
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let policies = v["policies"].as_array().expect("policies");
        let sum = |key: &str| -> u64 {
            policies
                .iter()
                .map(|p| p["summary"][key].as_u64().unwrap_or(0))
                .sum()
        };
        let details: u64 = policies
            .iter()
            .flat_map(|p| p["failure-details"].as_array().cloned().unwrap_or_default())
            .map(|d| d["failed-session-count"].as_u64().unwrap_or(0))
            .sum();
        let r = &parsed.report;
        assert_eq!(r.policies.len(), policies.len(), "{}", path.display());
        assert_eq!(
            r.policies.iter().map(|p| p.successful).sum::<u64>(),
            sum("total-successful-session-count"),
            "{}",
            path.display()
        );
        assert_eq!(
            r.policies.iter().map(|p| p.failed).sum::<u64>(),
            sum("total-failure-session-count"),
            "{}",
            path.display()
        );
        assert_eq!(
            r.policies
                .iter()
                .flat_map(|p| &p.failures)
                .map(|f| f.failed_session_count)
                .sum::<u64>(),
            details,
            "{}",
            path.display()
        );
        assert_eq!(
            r.report_id,
            v["report-id"].as_str().expect("id"),
            "{}",
            path.display()
        );
    }
}
