//! The shipped scenario catalog loads, covers the required cases, and builds a world.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod support;

use std::time::Instant;

use hickory_proto::rr::RecordType;
use mtasts_testkit::{Catalog, CertKind, StartTls};
use support::{dns, txt_strings};

#[test]
fn builtin_catalog_has_at_least_25_explained_domains() {
    let c = Catalog::builtin().expect("catalog parses");
    assert!(c.scenarios.len() >= 25, "{}", c.scenarios.len());
    for s in &c.scenarios {
        assert!(
            s.name.ends_with(".test"),
            "{}: lab names stay under .test",
            s.name
        );
        assert!(
            !s.about.is_empty() && !s.about.contains('\n'),
            "{}: one-line explanation",
            s.name
        );
    }
    for required in [
        "enforce.test",
        "testing.test",
        "none.test",
        "wildcard.test",
        "mx-mismatch.test",
        "no-txt.test",
        "two-txt.test",
        "bad-id.test",
        "txt-not-first.test",
        "redirect.test",
        "oversize.test",
        "hang.test",
        "sni-only.test",
        "no-starttls.test",
        "mx-expired.test",
        "policy-expired.test",
        "policy-untrusted.test",
        "policy-self-signed.test",
    ] {
        assert!(c.get(required).is_some(), "missing {required}");
    }
    let sni = c.get("sni-only.test").expect("sni-only");
    assert!(sni.smtp.values().any(|h| h.default_name.is_some()));
    let strip = c.get("no-starttls.test").expect("no-starttls");
    assert!(
        strip
            .smtp
            .values()
            .any(|h| h.starttls == StartTls::NotOffered)
    );
    assert_eq!(
        c.get("policy-expired.test").map(|s| s.policy.cert),
        Some(CertKind::Expired)
    );
}

#[test]
fn duplicate_or_unknown_keys_are_errors() {
    let dup = "[[scenario]]\nname='a.test'\nabout='x'\n[[scenario]]\nname='A.test'\nabout='y'\n";
    assert!(Catalog::parse(dup).is_err());
    let unknown = "[[scenario]]\nname='a.test'\nabout='x'\nbogus=1\n";
    assert!(Catalog::parse(unknown).is_err());
}

#[tokio::test]
async fn builtin_world_serves_split_and_cname_txt_a_missing_policy_host_and_mx_addresses() {
    let c = Catalog::builtin().expect("catalog");
    let t = Instant::now();
    let w = c.world().build().await.expect("world");
    println!(
        "catalog world ({} domains) started in {:?}",
        c.scenarios.len(),
        t.elapsed()
    );
    let a = w.dns_addr();
    let m = dns(a, "_mta-sts.txt-split.test", RecordType::TXT, false)
        .await
        .expect("answer");
    assert!(txt_strings(&m).contains(&vec!["v=STSv1; id=ab".to_string(), "cd;".to_string()]));
    let m = dns(a, "_mta-sts.txt-cname.test", RecordType::TXT, false)
        .await
        .expect("answer");
    assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    let m = dns(a, "mta-sts.no-policy-host.test", RecordType::A, false)
        .await
        .expect("answer");
    assert!(m.answers().is_empty());
    let m = dns(a, "mx1.enforce.test", RecordType::A, false)
        .await
        .expect("answer");
    assert_eq!(m.answers().len(), 1);
    assert!(w.smtp_addr("mx.elsewhere.test").is_some());
}

#[tokio::test]
async fn large_worlds_get_distinct_addresses_past_the_first_256() {
    let mut b = mtasts_testkit::World::builder();
    for i in 0..600 {
        b = b.policy(&format!("d{i}.test"), mtasts_testkit::PolicyHost::ok("x"));
    }
    let w = b.build().await.expect("world");
    let mut ips: Vec<_> = w.hosts().into_iter().map(|(_, ip)| ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 600);
    assert!(
        ips.iter()
            .all(|ip| !ip.to_string().ends_with(".0") && !ip.to_string().ends_with(".255"))
    );
}
