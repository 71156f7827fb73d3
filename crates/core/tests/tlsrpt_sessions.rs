//! Session results as a sending MTA reports them (libtlsrpt's datagram, protocol version 1):
//! datagrams written here byte for byte as libtlsrpt 0.5.1 writes them (`"name": "value"` for
//! strings, bare numbers for codes, `t` and `f` last in each policy), parsed into the report
//! model, each refusal naming the field and the rule, and a day of sessions aggregated into the
//! `policies` of one report.

use mtasts_core::report::PolicyType;
use mtasts_core::session::{DatagramError, DomainDay, parse_datagram};

/// libtlsrpt's example 3: an MTA-STS policy with MX patterns, one expired certificate.
const STS_FAILURE: &str = r#"{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example","policies":[{"policy-type":2,"policy-domain": "company-y.example","policy-string":["version: STSv1","mode: enforce","mx: *.mail.company-y.example","max_age: 86400"],"mx-host":["*.mail.company-y.example"],"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx1.mail.company-y.example","h": "mx1.mail.company-y.example","r": "198.51.100.7","a": "certificate expired","f": "X509_V_ERR_CERT_HAS_EXPIRED"}],"t":1,"f":1}]}"#;

/// A successful delivery under the same policy.
const STS_SUCCESS: &str = r#"{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example","policies":[{"policy-type":2,"policy-domain": "company-y.example","policy-string":["version: STSv1","mode: enforce","mx: *.mail.company-y.example","max_age: 86400"],"mx-host":["*.mail.company-y.example"],"t":0,"f":0}]}"#;

/// libtlsrpt's example 1: no policy found, success.
const NO_POLICY: &str = r#"{"dpv": "1","d": "Example.NET","pr": "v=TLSRPTv1; rua=https://reports.example.net/tlsrpt","policies":[{"policy-type":9,"t":0,"f":0}]}"#;

#[test]
fn an_sts_failure_datagram_becomes_a_policy_with_one_failure_detail() {
    let s = parse_datagram(STS_FAILURE.as_bytes()).expect("valid");
    assert_eq!(s.domain.as_str(), "company-y.example");
    assert_eq!(
        s.tlsrpt_record,
        "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example"
    );
    assert_eq!(s.policies.len(), 1);
    let p = &s.policies[0];
    assert_eq!(p.policy_type, PolicyType::Sts);
    assert_eq!(p.policy_domain.as_deref(), Some("company-y.example"));
    assert_eq!(p.policy_strings.len(), 4);
    assert_eq!(p.mx_hosts, ["*.mail.company-y.example"]);
    assert!(p.failed);
    let f = &p.failures[0];
    assert_eq!(f.result_type, "certificate-expired");
    assert_eq!(f.sending_mta_ip, Some("192.0.2.1".parse().expect("ip")));
    assert_eq!(
        f.receiving_mx_hostname.as_deref(),
        Some("mx1.mail.company-y.example")
    );
    assert_eq!(f.receiving_ip, Some("198.51.100.7".parse().expect("ip")));
    assert_eq!(
        f.failure_reason_code.as_deref(),
        Some("X509_V_ERR_CERT_HAS_EXPIRED")
    );
    assert_eq!(f.failed_session_count, 1);
}

#[test]
fn no_policy_found_and_the_domain_normalised() {
    let s = parse_datagram(NO_POLICY.as_bytes()).expect("valid");
    assert_eq!(s.domain.as_str(), "example.net");
    assert_eq!(s.policies[0].policy_type, PolicyType::NoPolicyFound);
    assert!(!s.policies[0].failed);
    assert!(s.policies[0].failures.is_empty());
}

#[test]
fn every_libtlsrpt_failure_code_maps_to_its_rfc_8460_result_type() {
    let want = [
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
    for (code, name) in want {
        let d = STS_FAILURE.replace("\"c\":204", &format!("\"c\":{code}"));
        let s = parse_datagram(d.as_bytes()).expect("valid");
        assert_eq!(s.policies[0].failures[0].result_type, name, "{code}");
        assert!(
            mtasts_core::report::KNOWN_RESULT_TYPES.contains(&name),
            "{name} is an RFC 8460 type"
        );
    }
}

#[test]
fn refusals_name_the_field_and_the_rule() {
    let cases: [(String, &str); 7] = [
        (
            STS_FAILURE.replace("\"dpv\": \"1\"", "\"dpv\": \"2\""),
            "protocol version \"2\"",
        ),
        (
            STS_FAILURE.replace("\"policy-type\":2", "\"policy-type\":5"),
            "policies[0]: policy-type 5",
        ),
        (
            STS_FAILURE.replace("\"c\":204", "\"c\":999"),
            "policies[0].failure-details[0]: code 999",
        ),
        (
            STS_FAILURE.replace("\"f\":1}]}", "\"f\":2}]}"),
            "policies[0]: final result 2",
        ),
        (
            STS_FAILURE.replace("\"d\": \"company-y.example\"", "\"d\": \"not a domain\""),
            "`d` = \"not a domain\"",
        ),
        ("{\"dpv\": \"1\"".to_string(), "not a libtlsrpt datagram"),
        (
            format!("{{\"d\": \"{}\"}}", "a".repeat(70_000)),
            "over the 65536-byte bound",
        ),
    ];
    for (datagram, want) in cases {
        let e: DatagramError = parse_datagram(datagram.as_bytes()).expect_err(want);
        assert!(e.to_string().contains(want), "{e} (want {want})");
    }
}

#[test]
fn a_day_of_sessions_aggregates_into_one_policy_with_counts() {
    let mut day = DomainDay::default();
    for d in [
        STS_SUCCESS,
        STS_FAILURE,
        STS_SUCCESS,
        STS_FAILURE,
        STS_SUCCESS,
    ] {
        day.add(&parse_datagram(d.as_bytes()).expect("valid"));
    }
    // The same failure seen from another sending address is its own detail.
    day.add(
        &parse_datagram(STS_FAILURE.replace("192.0.2.1", "192.0.2.2").as_bytes()).expect("valid"),
    );
    let policies = day.policy_results();
    assert_eq!(policies.len(), 1, "one policy, however many sessions");
    let p = &policies[0];
    assert_eq!((p.successful, p.failed), (3, 3));
    let counts: Vec<(Option<std::net::IpAddr>, u64)> = p
        .failures
        .iter()
        .map(|f| (f.sending_mta_ip, f.failed_session_count))
        .collect();
    assert_eq!(
        counts,
        [
            (Some("192.0.2.1".parse().expect("ip")), 2),
            (Some("192.0.2.2".parse().expect("ip")), 1)
        ]
    );
    // A different policy (no-policy-found) is a second element.
    day.add(&parse_datagram(NO_POLICY.as_bytes()).expect("valid"));
    assert_eq!(day.policy_results().len(), 2);
}

#[test]
fn dlv_01_the_report_file_name() {
    use mtasts_core::session::report_filename;
    assert_eq!(
        report_filename(
            "mail.sndr.example.com",
            "example.net",
            1_470_013_207,
            1_470_186_007,
            Some("001"),
            true
        ),
        "mail.sndr.example.com!example.net!1470013207!1470186007!001.json.gz"
    );
    assert_eq!(
        report_filename("s.example", "d.example", 1, 2, None, false),
        "s.example!d.example!1!2.json"
    );
}

#[test]
fn utc_days_and_their_rfc_3339_form() {
    use mtasts_core::session::{day_start, rfc3339_utc};
    assert_eq!(day_start("2027-01-15"), Some(1_800_000_000 - 8 * 3600));
    assert_eq!(rfc3339_utc(1_800_000_000), "2027-01-15T08:00:00Z");
    assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(day_start("2027-1-15"), None);
    // Every day start of four years, through a leap day, comes back as itself.
    for d in 0..(4 * 366) {
        let t = 1_700_006_400 + d * 86_400; // 2023-11-15T00:00:00Z onwards
        let text = rfc3339_utc(t);
        assert_eq!(day_start(&text[..10]), Some(t), "{text}");
    }
}

#[test]
fn json_02_to_09_a_generated_report_is_read_back_by_our_receiver_without_a_warning() {
    use mtasts_core::session::{ReportMeta, day_start, render_report};
    let mut day = DomainDay::default();
    for d in [STS_SUCCESS, STS_FAILURE, STS_SUCCESS, STS_FAILURE] {
        day.add(&parse_datagram(d.as_bytes()).expect("valid"));
    }
    let start = day_start("2026-11-30").expect("day");
    let json = render_report(
        &ReportMeta {
            organization: "Sender Inc.",
            contact_info: "tlsrpt@sndr.example",
            report_id: "2026-11-30T00:00:00Z_company-y.example@sndr.example",
            day_start: start,
        },
        &day,
    );
    let parsed = mtasts_core::report::parse_report(json.as_bytes()).expect("our receiver reads it");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let r = &parsed.report;
    assert_eq!((r.start, r.end), (start, start + 86_399));
    assert_eq!(r.organization, "Sender Inc.");
    assert_eq!(r.policies, day.policy_results());
    // mx-host is an array (JSON-08), policies an array (JSON-03).
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(v["policies"].is_array());
    assert!(v["policies"][0]["policy"]["mx-host"].is_array());
    assert_eq!(v["date-range"]["end-datetime"], "2026-11-30T23:59:59Z");
}

#[test]
fn rpt_01_02_the_daemons_own_fetch_failures_are_datagrams_our_collector_reads() {
    use mtasts_core::session::failure_datagram;
    let lines = vec!["version: STSv1".to_string(), "mode: enforce".to_string()];
    let mx = vec!["mx.example.com".to_string()];
    for (result_type, code) in [
        ("sts-policy-fetch-error", 301),
        ("sts-policy-invalid", 302),
        ("sts-webpki-invalid", 303),
    ] {
        let d = failure_datagram("example.com", result_type, &lines, &mx).expect("a code");
        assert!(d.contains(&format!("\"c\":{code}")), "{d}");
        let s = parse_datagram(d.as_bytes()).expect("our collector reads it");
        assert_eq!(s.domain.as_str(), "example.com");
        assert_eq!(
            s.tlsrpt_record, "",
            "the record is looked up when the report is built"
        );
        let p = &s.policies[0];
        assert_eq!(p.policy_type, PolicyType::Sts);
        assert!(p.failed);
        assert_eq!(
            (p.policy_strings.clone(), p.mx_hosts.clone()),
            (lines.clone(), mx.clone())
        );
        assert_eq!(p.failures[0].result_type, result_type);
    }
    // Without a cached policy: no strings, still a failed sts session.
    let d = failure_datagram("example.com", "sts-policy-fetch-error", &[], &[]).expect("code");
    assert!(
        parse_datagram(d.as_bytes()).expect("valid").policies[0]
            .policy_strings
            .is_empty()
    );
    assert_eq!(
        failure_datagram("example.com", "no-such-type", &[], &[]),
        None
    );
}

#[test]
fn a_submitted_line_is_the_same_session_as_the_datagram_libtlsrpt_would_send() {
    use mtasts_core::submission::{SubmissionError, parse_submission};
    let line = r#"{"domain": "company-y.example", "tlsrpt-record": "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example", "policy-type": "sts", "policy-string": ["version: STSv1","mode: enforce","mx: *.mail.company-y.example","max_age: 86400"], "mx-host": ["*.mail.company-y.example"], "result": "certificate-expired", "sending-mta-ip": "192.0.2.1", "receiving-mx-hostname": "MX1.mail.company-y.example.", "receiving-mx-helo": "mx1.mail.company-y.example", "receiving-ip": "198.51.100.7", "additional-information": "certificate expired", "failure-reason-code": "X509_V_ERR_CERT_HAS_EXPIRED"}"#;
    let submitted = parse_submission(line.as_bytes()).expect("valid");
    let datagram = parse_datagram(STS_FAILURE.as_bytes()).expect("valid");
    assert_eq!(submitted, datagram);
    let ok = parse_submission(
        br#"{"domain":"example.net","policy-type":"no-policy-found","result":"success"}"#,
    )
    .expect("valid");
    assert!(!ok.policies[0].failed);
    assert_eq!(ok.tlsrpt_record, "");
    assert_eq!(ok.policies[0].policy_domain.as_deref(), Some("example.net"));
    for (line, want) in [
        (
            r#"{"domain":"example.net","policy-type":"dane","result":"success"}"#,
            "`policy-type` = \"dane\"",
        ),
        (
            r#"{"domain":"example.net","policy-type":"sts","result":"tls-broken"}"#,
            "`result` = \"tls-broken\"",
        ),
        (
            r#"{"domain":"example.net","policy-type":"sts","result":"validation-failure","receiving-ip":"mx1"}"#,
            "`receiving-ip` = \"mx1\"",
        ),
        (
            r#"{"domain":"-bad-","policy-type":"sts","result":"success"}"#,
            "`domain` = \"-bad-\"",
        ),
        (
            r#"{"domain":"example.net","policy-type":"sts","result":"success","colour":"red"}"#,
            "not a session result",
        ),
    ] {
        let e = parse_submission(line.as_bytes()).expect_err(line);
        assert!(e.to_string().contains(want), "{e} for {line}");
    }
    let long = vec![b' '; mtasts_core::submission::MAX_LINE + 1];
    assert!(matches!(
        parse_submission(&long),
        Err(SubmissionError::TooLong(_))
    ));
}
