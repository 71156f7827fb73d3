//! Diagnosis is a pure function of what was observed: hand-made observations, no network.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::net::SocketAddr;

use mtasts_check::{Code, HostObservation, Level, Observations, diagnose};
use mtasts_core::dane::{Answer, DnssecStatus};
use mtasts_core::{DomainName, Policy};
use mtasts_resolver::{DnsError, FetchError, Fetched, TxtAnswer};

fn txt(record: &str) -> Result<TxtAnswer, DnsError> {
    Ok(TxtAnswer::Records(vec![vec![record.as_bytes().to_vec()]]))
}

fn observed(fetch: Result<Fetched, FetchError>, mx: &[&str]) -> Observations {
    Observations {
        domain: DomainName::parse("example.test").expect("domain"),
        smtp: false,
        validated_by: None,
        txt: txt("v=STSv1; id=20261201;"),
        fetch,
        policy_tls: None,
        mx: Answer {
            status: DnssecStatus::Insecure,
            records: mx.iter().map(|m| m.to_string()).collect(),
        },
        hosts: mx
            .iter()
            .map(|m| HostObservation {
                host: m.to_string(),
                addresses: None,
                probes: Vec::new(),
                tlsa_base: m.to_string(),
                tlsa: Answer {
                    status: DnssecStatus::Insecure,
                    records: Vec::new(),
                },
            })
            .collect(),
        tlsrpt: Ok(TxtAnswer::NxDomain),
    }
}

fn fetched(text: &str) -> Result<Fetched, FetchError> {
    Ok(Fetched {
        parsed: Policy::parse(text).expect("policy"),
        peer: SocketAddr::from(([192, 0, 2, 1], 443)),
        tls_version: "TLSv1_3".into(),
    })
}

fn codes(o: &Observations) -> Vec<Code> {
    diagnose(o).findings.iter().map(|f| f.code).collect()
}

#[test]
fn a_failed_fetch_means_no_policy_in_force() {
    let o = observed(Err(FetchError::Status(404)), &["mx1.example.test"]);
    let r = diagnose(&o);
    assert_eq!(
        codes(&o),
        vec![
            Code::TxtOk,
            Code::FetchError,
            Code::SmtpSkipped,
            Code::NoDane,
            Code::TlsrptMissing
        ]
    );
    assert_eq!(r.verdict, Level::Error);
    assert!(
        r.summary.starts_with("no MTA-STS policy in force"),
        "{}",
        r.summary
    );
    assert_eq!(r.deliverable, None);
}

#[test]
fn an_enforce_policy_that_misses_the_mx_is_an_error_and_unused_patterns_a_warning() {
    let o = observed(
        fetched("version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 604800\n"),
        &["mx1.example.test"],
    );
    let r = diagnose(&o);
    let found = |c: Code| r.findings.iter().find(|f| f.code == c).map(|f| f.level);
    assert_eq!(found(Code::MxNotCovered), Some(Level::Error));
    assert_eq!(found(Code::PatternUnused), Some(Level::Warning));
    assert_eq!(r.mode.as_deref(), Some("enforce"));
    assert_eq!(r.mx[0].covered_by, None);
    // Same policy in testing: senders report instead of refusing.
    let o = observed(
        fetched("version: STSv1\nmode: testing\nmx: mail.example.test\nmax_age: 604800\n"),
        &["mx1.example.test"],
    );
    let r = diagnose(&o);
    assert_eq!(
        r.findings
            .iter()
            .find(|f| f.code == Code::MxNotCovered)
            .map(|f| f.level),
        Some(Level::Warning)
    );
    assert_eq!(r.deliverable, Some(true));
}

#[test]
fn no_mx_means_the_domain_itself_and_dns_failures_are_named() {
    let mut o = observed(
        Err(FetchError::Timeout(std::time::Duration::from_secs(30))),
        &[],
    );
    o.hosts.push(HostObservation {
        host: "example.test".into(),
        addresses: None,
        probes: Vec::new(),
        tlsa_base: "example.test".into(),
        tlsa: Answer {
            status: DnssecStatus::Indeterminate,
            records: Vec::new(),
        },
    });
    o.txt = Err(DnsError::Timeout);
    let c = codes(&o);
    assert_eq!(c[0], Code::Timeout, "{c:?}");
    assert!(c.contains(&Code::MxNone), "{c:?}");
    assert!(c.contains(&Code::DnssecUnknown), "{c:?}");
}

#[test]
fn dns_without_answers_is_reported_as_failed_lookups_not_as_missing_records() {
    let mut o = observed(Err(FetchError::Status(404)), &[]);
    o.txt = Err(DnsError::Timeout);
    o.tlsrpt = Err(DnsError::Timeout);
    o.mx = Answer {
        status: DnssecStatus::Indeterminate,
        records: Vec::new(),
    };
    let r = diagnose(&o);
    let c = codes(&o);
    assert!(!c.contains(&Code::MxNone), "not \"no MX records\": {c:?}");
    assert!(
        !c.contains(&Code::TlsrptMissing),
        "not \"no TLS-RPT record\": {c:?}"
    );
    assert_eq!(r.exit_code(), 3, "could not run");
    assert_eq!(
        r.lookups_failed,
        [
            "TXT _mta-sts.example.test",
            "MX example.test",
            "TXT _smtp._tls.example.test"
        ]
    );
    assert!(r.summary.starts_with("could not tell"), "{}", r.summary);
    // An answer saying there is nothing is still "missing", and decides the verdict.
    let mut o = observed(Err(FetchError::Status(404)), &[]);
    o.txt = Ok(TxtAnswer::NxDomain);
    let r = diagnose(&o);
    let c = codes(&o);
    assert!(
        c.contains(&Code::MxNone) && c.contains(&Code::TlsrptMissing),
        "{c:?}"
    );
    assert_eq!(r.exit_code(), 2);
}
