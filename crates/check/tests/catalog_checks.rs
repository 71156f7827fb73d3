//! `check` against every scenario of the lab catalog: verdicts and the diagnosis' key facts.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use mtasts_check::{CheckSettings, Checker, Level, Report};
use mtasts_core::DomainName;
use mtasts_testkit::Catalog;

/// (domain, codes that must appear, verdict, deliverable)
const EXPECT: &[(&str, &[&str], Level, Option<bool>)] = &[
    (
        "enforce.test",
        &[
            "txt-ok",
            "policy-ok",
            "mx-covered",
            "tls-ok",
            "no-sni-ok",
            "tlsrpt-ok",
        ],
        Level::Info,
        Some(true),
    ),
    (
        "testing.test",
        &["testing-mode", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
    ("none.test", &["mode-none"], Level::Warning, Some(true)),
    (
        "wildcard.test",
        &["mx-covered", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
    (
        "mx-mismatch.test",
        &["mx-not-covered", "pattern-unused"],
        Level::Error,
        Some(false),
    ),
    (
        "mx-partial.test",
        &["mx-not-covered"],
        Level::Error,
        Some(true),
    ),
    (
        "no-txt.test",
        &["txt-missing", "policy-ok"],
        Level::Error,
        None,
    ),
    ("two-txt.test", &["txt-multiple"], Level::Error, None),
    ("bad-id.test", &["txt-invalid"], Level::Error, None),
    ("txt-not-first.test", &["txt-missing"], Level::Error, None),
    ("txt-split.test", &["txt-ok"], Level::Warning, Some(true)),
    ("txt-cname.test", &["txt-ok"], Level::Warning, Some(true)),
    ("txt-servfail.test", &["dns-error"], Level::Error, None),
    ("txt-timeout.test", &["timeout"], Level::Error, None),
    (
        "txt-truncated.test",
        &["txt-ok"],
        Level::Warning,
        Some(true),
    ),
    ("redirect.test", &["fetch-error"], Level::Error, None),
    ("status-404.test", &["fetch-error"], Level::Error, None),
    ("html.test", &["policy-invalid"], Level::Error, None),
    (
        "no-content-type.test",
        &["policy-invalid"],
        Level::Error,
        None,
    ),
    ("oversize.test", &["fetch-error"], Level::Error, None),
    (
        "oversize-chunked.test",
        &["fetch-error"],
        Level::Error,
        None,
    ),
    ("slow.test", &["fetch-error"], Level::Error, None),
    ("hang.test", &["fetch-error"], Level::Error, None),
    (
        "policy-invalid.test",
        &["policy-invalid"],
        Level::Error,
        None,
    ),
    ("no-policy-host.test", &["fetch-error"], Level::Error, None),
    (
        "policy-wrong-name.test",
        &["webpki-invalid", "policy-cert"],
        Level::Error,
        None,
    ),
    (
        "policy-expired.test",
        &["webpki-invalid", "policy-cert"],
        Level::Error,
        None,
    ),
    (
        "policy-untrusted.test",
        &["webpki-invalid"],
        Level::Error,
        None,
    ),
    ("private-ca.test", &["webpki-invalid"], Level::Error, None),
    (
        "private-ca-other.test",
        &["webpki-invalid"],
        Level::Error,
        None,
    ),
    (
        "policy-self-signed.test",
        &["webpki-invalid"],
        Level::Error,
        None,
    ),
    (
        "policy-cn-only.test",
        &["webpki-invalid"],
        Level::Error,
        None,
    ),
    (
        "sni-only.test",
        &["sni-only", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
    (
        "sni-required.test",
        &["sni-only", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
    (
        "no-starttls.test",
        &["starttls-missing"],
        Level::Error,
        Some(false),
    ),
    (
        "starttls-refused.test",
        &["starttls-refused"],
        Level::Error,
        Some(false),
    ),
    (
        "tls-broken.test",
        &["tls-failed"],
        Level::Error,
        Some(false),
    ),
    (
        "mx-expired.test",
        &["cert-invalid"],
        Level::Error,
        Some(false),
    ),
    (
        "mx-wrong-name.test",
        &["cert-invalid"],
        Level::Error,
        Some(false),
    ),
    (
        "mx-untrusted.test",
        &["cert-invalid"],
        Level::Error,
        Some(false),
    ),
    (
        "testing-bad-cert.test",
        &["cert-invalid"],
        Level::Warning,
        Some(true),
    ),
    (
        "dane.test",
        &["tlsa-match", "txt-missing"],
        Level::Error,
        None,
    ),
    ("dane-wrong.test", &["tlsa-mismatch"], Level::Error, None),
    (
        "dane-sts.test",
        &["tlsa-match", "mx-not-covered"],
        Level::Error,
        Some(false),
    ),
    (
        "dane-bogus.test",
        &["dnssec-bogus"],
        Level::Error,
        Some(true),
    ),
    ("dane-unusable.test", &["tlsa-unusable"], Level::Error, None),
    (
        "dane-ta.test",
        &["tlsa-match", "txt-missing"],
        Level::Error,
        None,
    ),
    ("dane-expired.test", &["dnssec-bogus"], Level::Error, None),
    (
        "dane-cname.test",
        &["tlsa-match", "mx-not-covered"],
        Level::Error,
        Some(false),
    ),
    (
        "dane-partial.test",
        &["no-dane", "tlsa-mismatch"],
        Level::Error,
        None,
    ),
    (
        "dane-partial-bogus.test",
        &["dnssec-bogus", "tlsa-match"],
        Level::Error,
        None,
    ),
    (
        "dane-ds-mismatch.test",
        &["dnssec-bogus"],
        Level::Error,
        None,
    ),
    (
        "dane-unsigned.test",
        &["tlsa-insecure", "txt-missing"],
        Level::Error,
        None,
    ),
    (
        "dane-offsite.test",
        &["tlsa-insecure", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
    (
        "dane-notlsa.test",
        &["no-dane", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
    (
        "dane-notlsa-nsec3.test",
        &["no-dane", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
    (
        "tlsrpt-bad.test",
        &["tlsrpt-invalid", "tls-ok"],
        Level::Warning,
        Some(true),
    ),
];

fn codes(r: &Report) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

fn text_of(r: &Report) -> String {
    r.findings
        .iter()
        .map(|f| format!("{:?} {}: {}", f.level, f.code, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalog_scenario_gets_its_diagnosis() {
    let catalog = Catalog::builtin().expect("catalog");
    let world = catalog.world().build().await.expect("world");
    let checker = Arc::new(
        Checker::new(CheckSettings {
            nameserver: Some(world.dns_addr()),
            ca_file: Some(world.ca_file().to_path_buf()),
            timeout: Duration::from_secs(2),
            smtp: true,
            connect_map: world.port_map(),
        })
        .expect("checker"),
    );
    for s in &catalog.scenarios {
        assert!(
            EXPECT.iter().any(|(d, ..)| *d == s.name),
            "no expectation for catalog scenario {}",
            s.name
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (domain, ..) in EXPECT {
        let checker = checker.clone();
        tasks.spawn(async move {
            checker
                .check(&DomainName::parse(domain).expect("domain"))
                .await
        });
    }
    let mut reports = Vec::new();
    while let Some(r) = tasks.join_next().await {
        reports.push(r.expect("check"));
    }
    let mut failures = Vec::new();
    for (domain, want, verdict, deliverable) in EXPECT {
        let r = reports
            .iter()
            .find(|r| r.domain == *domain)
            .expect("report");
        let got = codes(r);
        let missing: Vec<&&str> = want.iter().filter(|c| !got.contains(c)).collect();
        if !missing.is_empty() || r.verdict != *verdict || r.deliverable != *deliverable {
            failures.push(format!(
                "{domain}: missing {missing:?}, verdict {:?} (want {verdict:?}), deliverable {:?} (want {deliverable:?})\n{}",
                r.verdict,
                r.deliverable,
                text_of(r)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // Key facts of the diagnosis text.
    let get = |d: &str| reports.iter().find(|r| r.domain == d).expect("report");
    let sni = get("sni-only.test")
        .findings
        .iter()
        .find(|f| f.code == "sni-only")
        .expect("sni-only finding");
    assert!(
        sni.message.contains("default.hosting.test")
            && sni.message.contains("valid only when SNI is sent"),
        "{}",
        sni.message
    );
    let strip = get("no-starttls.test")
        .findings
        .iter()
        .find(|f| f.code == "starttls-missing")
        .expect("finding");
    assert!(
        strip.message.contains("although the policy says enforce"),
        "{}",
        strip.message
    );
    let exp = get("mx-expired.test")
        .findings
        .iter()
        .find(|f| f.code == "cert-invalid")
        .expect("finding");
    assert!(exp.message.contains("expired"), "{}", exp.message);
    let redir = get("redirect.test")
        .findings
        .iter()
        .find(|f| f.code == "fetch-error")
        .expect("finding");
    assert!(
        redir.message.contains("FETCH-04")
            && redir
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("never follow redirects")),
        "{redir:?}"
    );
    let mismatch = get("mx-mismatch.test")
        .findings
        .iter()
        .find(|f| f.code == "mx-not-covered")
        .expect("finding");
    assert!(
        mismatch.message.contains("mx.elsewhere.test"),
        "{}",
        mismatch.message
    );
    assert!(get("dane.test").dane_present() && !get("enforce.test").dane_present());
    // The DANE decision is the daemon's (core `dane::decide`), first in the summary where it
    // governs or fails.
    for (domain, dane) in [
        ("dane.test", "dane-only"),
        ("dane-ta.test", "dane-only"),
        // TLSA at the end of the MX host's validated CNAME chain (RFC 7672 §2.2.3).
        ("dane-cname.test", "dane-only"),
        ("dane-unusable.test", "dane"),
        ("dane-partial.test", "dane"),
        ("dane-partial-bogus.test", "dane"),
        ("dane-bogus.test", "temporary-failure"),
        ("dane-expired.test", "temporary-failure"),
        ("dane-unsigned.test", "not-applicable"),
        ("dane-offsite.test", "not-applicable"),
        ("dane-notlsa.test", "not-applicable"),
        ("enforce.test", "not-applicable"),
    ] {
        assert_eq!(get(domain).dane, dane, "{domain}");
    }
    assert!(
        get("dane.test").summary.starts_with("DANE in force"),
        "{}",
        get("dane.test").summary
    );
    assert!(
        get("dane-expired.test")
            .summary
            .starts_with("DNSSEC fails (MX lookup failed DNSSEC validation): DANE senders defer"),
        "{}",
        get("dane-expired.test").summary
    );
    assert_eq!(get("sni-only.test").sni_only_count(), 1);
    let req = get("sni-required.test")
        .findings
        .iter()
        .find(|f| f.code == "sni-only")
        .expect("finding");
    assert!(
        req.message.contains("without SNI the handshake fails"),
        "{}",
        req.message
    );
    let r = get("enforce.test");
    assert_eq!(r.exit_code(), 0);
    assert!(
        r.summary
            .contains("compliant senders deliver via mx1.enforce.test, mx2.enforce.test"),
        "{}",
        r.summary
    );
    let json = serde_json::to_value(r).expect("json");
    assert_eq!(json["schema"], 1);
    assert_eq!(
        json["mx"][0]["addresses"][0]["with_sni"]["tls"]["sni"],
        "mx1.enforce.test"
    );
    assert!(json["mx"][0]["addresses"][0]["without_sni"]["tls"]["sni"].is_null());
}

#[tokio::test]
async fn no_smtp_skips_port_25() {
    let catalog = Catalog::builtin().expect("catalog");
    let world = catalog.world().build().await.expect("world");
    let checker = Checker::new(CheckSettings {
        nameserver: Some(world.dns_addr()),
        ca_file: Some(world.ca_file().to_path_buf()),
        timeout: Duration::from_secs(2),
        smtp: false,
        connect_map: world.port_map(),
    })
    .expect("checker");
    let r = checker
        .check(&DomainName::parse("enforce.test").expect("domain"))
        .await;
    assert!(codes(&r).contains(&"smtp-skipped"));
    assert_eq!(r.deliverable, None);
    assert_eq!(
        world.smtp_connections("mx1.enforce.test"),
        0,
        "no connection to port 25"
    );
    // The control: with SMTP probing on, the same counter sees the probes (with and without
    // SNI), so the zero above is not a counter that never moves.
    let probing = Checker::new(CheckSettings {
        nameserver: Some(world.dns_addr()),
        ca_file: Some(world.ca_file().to_path_buf()),
        timeout: Duration::from_secs(2),
        smtp: true,
        connect_map: world.port_map(),
    })
    .expect("checker");
    probing
        .check(&DomainName::parse("enforce.test").expect("domain"))
        .await;
    assert!(world.smtp_connections("mx1.enforce.test") >= 2);
}

#[tokio::test]
async fn starttls_injection_expiring_certificates_and_a_missing_tlsrpt_record_are_named() {
    use mtasts_testkit::{CertKind, PolicyHost, SmtpHost, StartTls, World};
    let policy = "version: STSv1\nmode: enforce\nmx: mx1.expiring.test\nmax_age: 604800\n";
    let world = World::builder()
        .sts_domain("inject.test", "1", "enforce", &["mx1.inject.test"])
        .smtp(
            "mx1.inject.test",
            SmtpHost {
                starttls: StartTls::Leftover,
                ..SmtpHost::valid()
            },
        )
        .sts_domain("expiring.test", "1", "enforce", &["mx1.expiring.test"])
        .policy(
            "expiring.test",
            PolicyHost {
                cert: CertKind::ExpiringSoon,
                ..PolicyHost::ok(policy)
            },
        )
        .smtp(
            "mx1.expiring.test",
            SmtpHost {
                cert: CertKind::ExpiringSoon,
                ..SmtpHost::valid()
            },
        )
        .txt(
            "_smtp._tls.expiring.test",
            "v=TLSRPTv1; rua=mailto:tlsrpt@expiring.test",
        )
        .build()
        .await
        .expect("world");
    let checker = Checker::new(CheckSettings {
        nameserver: Some(world.dns_addr()),
        ca_file: Some(world.ca_file().to_path_buf()),
        timeout: Duration::from_secs(5),
        smtp: true,
        connect_map: world.port_map(),
    })
    .expect("checker");
    let inject = checker
        .check(&DomainName::parse("inject.test").expect("domain"))
        .await;
    let c = codes(&inject);
    assert!(c.contains(&"starttls-injection"), "{c:?}");
    assert!(c.contains(&"tlsrpt-missing"), "{c:?}");
    assert!(!c.contains(&"cert-expiring"), "{c:?}");
    let expiring = checker
        .check(&DomainName::parse("expiring.test").expect("domain"))
        .await;
    let found: Vec<_> = expiring
        .findings
        .iter()
        .filter(|f| f.code.as_str() == "cert-expiring")
        .map(|f| f.message.clone())
        .collect();
    // The policy host's certificate and the MX's, each 5½ days from expiry, warned about
    // separately.
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|m| m.contains("mta-sts.expiring.test") && m.contains("expires in 5 days")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|m| m.contains("mx1.expiring.test") && m.contains("expires in 5 days")),
        "{found:?}"
    );
    let c = codes(&expiring);
    assert!(
        !c.contains(&"starttls-injection") && !c.contains(&"tlsrpt-missing"),
        "{c:?}"
    );
}

/// Conditional trust's diagnosis: a certificate that is valid only because its CA was given
/// (`--ca-file`, the lab CA, no web PKI root) is reported with its issuer, for the policy host
/// and each MX; one from an unknown CA is invalid, not this.
#[tokio::test]
async fn check_names_the_issuer_outside_the_web_pki() {
    let catalog = Catalog::builtin().expect("catalog");
    let world = catalog.world().build().await.expect("world");
    let checker = Checker::new(CheckSettings {
        nameserver: Some(world.dns_addr()),
        ca_file: Some(world.ca_file().to_path_buf()),
        timeout: Duration::from_secs(5),
        smtp: true,
        connect_map: world.port_map(),
    })
    .expect("checker");
    let r = checker
        .check(&DomainName::parse("enforce.test").expect("domain"))
        .await;
    let found: Vec<(&str, &str)> = r
        .findings
        .iter()
        .filter(|f| f.code.as_str() == "ca-not-web-pki")
        .map(|f| (f.step.as_str(), f.message.as_str()))
        .collect();
    assert!(
        found.iter().any(|(step, m)| *step == "policy"
            && m.starts_with("mta-sts.enforce.test: certificate issued by CN=mtasts test CA")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(step, m)| step.starts_with("mx ") && m.starts_with("mx1.enforce.test:")),
        "{found:?}"
    );
    let mx = &r.mx[0].addresses[0].with_sni;
    assert_eq!(mx.tls.as_ref().and_then(|t| t.web_pki_issuer), Some(false));
    let untrusted = checker
        .check(&DomainName::parse("mx-untrusted.test").expect("domain"))
        .await;
    let c = codes(&untrusted);
    assert!(c.contains(&"cert-invalid"), "{c:?}");
    assert!(
        !untrusted
            .findings
            .iter()
            .any(|f| f.code.as_str() == "ca-not-web-pki" && f.step.starts_with("mx ")),
        "{c:?}"
    );
}
