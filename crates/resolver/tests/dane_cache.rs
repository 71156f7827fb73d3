//! DANE decisions are reused for their TTL on the injected clock, then looked up again
//! (positive 5 min, negative 1 min, failure 10 s), against the testkit's DNSSEC simulation.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use mtasts_core::DomainName;
use mtasts_resolver::{DaneResolver, DaneSettings, DnssecClient, ManualClock};
use mtasts_testkit::{DnsFault, World};

fn d(s: &str) -> DomainName {
    DomainName::parse(s).expect("domain")
}

#[tokio::test]
async fn decisions_live_for_their_ttl_on_the_injected_clock() {
    let w = World::builder()
        .dnssec_secure("dane.test")
        .mx("dane.test", 10, "mx1.dane.test")
        .smtp("mx1.dane.test", mtasts_testkit::SmtpHost::valid())
        .tlsa_for("_25._tcp.mx1.dane.test", "mx1.dane.test")
        .mx("plain.test", 10, "mx1.plain.test")
        .dnssec_secure("bogus.test")
        .dns_fault("bogus.test", DnsFault::Bogus)
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(1_900_000_000);
    let dane = DaneResolver::new(
        DnssecClient::new(Some(w.dns_addr()), Duration::from_millis(500)).expect("client"),
        DaneSettings::default(),
    )
    .with_clock(Arc::new(clock.clone()));
    let mx = |name: &str| w.dns_queries(name, RecordType::MX);

    for (domain, ttl, want) in [
        ("dane.test", 300, "dane-only"),
        ("plain.test", 60, "not-applicable"),
        ("bogus.test", 10, "temporary-failure"),
    ] {
        let name = d(domain);
        assert_eq!(dane.check(&name).await.code(), want, "{domain}");
        let asked = mx(domain);
        assert!(asked >= 1, "{domain}: MX asked");
        clock.advance(ttl - 1);
        assert!(dane.cached(&name).is_some(), "{domain}: still cached");
        assert_eq!(dane.check(&name).await.code(), want);
        assert_eq!(mx(domain), asked, "{domain}: answered from the cache");
        clock.advance(1);
        assert!(dane.cached(&name).is_none(), "{domain}: expired at {ttl} s");
        let again = dane.check(&name).await;
        assert_eq!(again.code(), want);
        assert!(mx(domain) > asked, "{domain}: looked up again");
    }
}
