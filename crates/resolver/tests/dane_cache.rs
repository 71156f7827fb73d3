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

/// DANE checks against the world's DNS with the default lifetimes, on `clock`.
fn checker(w: &World, clock: &ManualClock) -> DaneResolver {
    DaneResolver::new(
        DnssecClient::new(Some(w.dns_addr()), Duration::from_secs(5)).expect("client"),
        DaneSettings::default(),
    )
    .with_clock(Arc::new(clock.clone()))
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
    let dane = checker(&w, &clock);
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

#[tokio::test]
async fn an_unanswered_dane_check_falls_back_to_the_last_verdict_and_bogus_never_does() {
    let w = World::builder()
        .dnssec_secure("dane.test")
        .mx("dane.test", 10, "mx1.dane.test")
        .smtp("mx1.dane.test", mtasts_testkit::SmtpHost::valid())
        .tlsa_for("_25._tcp.mx1.dane.test", "mx1.dane.test")
        .mx("plain.test", 10, "mx1.plain.test")
        .dnssec_secure("never.test")
        .dns_fault("never.test", DnsFault::ServFail)
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(1_900_000_000);
    let dane = checker(&w, &clock);
    assert_eq!(dane.check(&d("dane.test")).await.code(), "dane-only");
    assert_eq!(dane.check(&d("plain.test")).await.code(), "not-applicable");
    // The resolver now answers SERVFAIL for everything, also with checking disabled: no
    // answer at all, not a validation failure.
    w.with_zone(|z| {
        z.fault("dane.test", DnsFault::ServFail);
        z.fault("plain.test", DnsFault::ServFail);
    });
    clock.advance(301);
    assert_eq!(
        dane.check(&d("dane.test")).await.code(),
        "dane-only",
        "the last verdict stands in"
    );
    assert_eq!(dane.check(&d("plain.test")).await.code(), "not-applicable");
    // Never seen: unknown.
    assert_eq!(dane.check(&d("never.test")).await.code(), "unavailable");
    // Bogus data (validation fails, the data is there with checking disabled) is never
    // replaced by a last verdict.
    w.with_zone(|z| z.fault("dane.test", DnsFault::Bogus));
    clock.advance(11);
    assert_eq!(
        dane.check(&d("dane.test")).await.code(),
        "temporary-failure"
    );
    // After last_verdict_ttl (7 days) an old verdict no longer stands in.
    w.with_zone(|z| z.fault("plain.test", DnsFault::ServFail));
    clock.advance(7 * 86_400);
    assert_eq!(dane.check(&d("plain.test")).await.code(), "unavailable");
}

#[tokio::test]
async fn the_decision_cache_is_bounded() {
    let w = World::builder().build().await.expect("world");
    let dane = DaneResolver::new(
        DnssecClient::new(Some(w.dns_addr()), Duration::from_secs(5)).expect("client"),
        DaneSettings {
            capacity: 100,
            ..DaneSettings::default()
        },
    );
    for i in 0..300 {
        dane.check(&d(&format!("n{i}.test"))).await;
    }
    assert_eq!(dane.len(), 100);
}

/// Captures what is logged while a test holds it.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

#[tokio::test]
async fn a_domain_that_drops_dane_is_counted_and_logged_as_a_possible_downgrade() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let w = World::builder()
        .dnssec_secure("drop.test")
        .mx("drop.test", 10, "mx1.drop.test")
        .smtp("mx1.drop.test", mtasts_testkit::SmtpHost::valid())
        .tlsa_for("_25._tcp.mx1.drop.test", "mx1.drop.test")
        .mx("plain.test", 10, "mx1.plain.test")
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(1_900_000_000);
    let dane = checker(&w, &clock);
    assert_eq!(dane.check(&d("drop.test")).await.code(), "dane-only");
    assert_eq!(dane.check(&d("plain.test")).await.code(), "not-applicable");
    // The TLSA record goes (authenticated denial): DANE no longer applies.
    w.with_zone(|z| z.clear_type("_25._tcp.mx1.drop.test", RecordType::TLSA));
    clock.advance(300);
    assert_eq!(dane.check(&d("drop.test")).await.code(), "not-applicable");
    clock.advance(60);
    assert_eq!(dane.check(&d("plain.test")).await.code(), "not-applicable");
    assert_eq!(
        dane.downgrades(),
        1,
        "drop.test only; plain.test never had DANE"
    );
    let text = logs.text();
    assert_eq!(
        text.matches("possible downgrade").count(),
        1,
        "one warning: {text}"
    );
    assert!(
        text.contains("WARN") && text.contains("drop.test"),
        "names the domain: {text}"
    );
}

#[tokio::test]
async fn mx_hosts_come_in_preference_order_whatever_the_answer_order() {
    let w = World::builder()
        .dnssec_secure("order.test")
        .mx("order.test", 20, "a.order.test")
        .mx("order.test", 10, "z.order.test")
        .mx("order.test", 20, "b.order.test")
        .build()
        .await
        .expect("world");
    let client = DnssecClient::new(Some(w.dns_addr()), Duration::from_secs(5)).expect("client");
    let mx = client.mx("order.test").await;
    assert_eq!(mx.records, ["z.order.test", "a.order.test", "b.order.test"]);
}

#[tokio::test]
async fn tlsa_is_looked_up_at_the_end_of_a_secure_cname_chain_first() {
    // RFC 7672 §2.2.3: the expanded name first, the MX name when the expanded one has none.
    let w = World::builder()
        .dnssec_secure("cn.test")
        .cname("mx.cn.test", "real.cn.test")
        .a("real.cn.test", std::net::Ipv4Addr::new(127, 9, 0, 1))
        .tlsa("_25._tcp.real.cn.test", 3, 1, 1, vec![1; 32])
        .cname("other.cn.test", "bare.cn.test")
        .a("bare.cn.test", std::net::Ipv4Addr::new(127, 9, 0, 2))
        .tlsa("_25._tcp.other.cn.test", 3, 1, 1, vec![2; 32])
        .cname("mx.insecure.test", "real.cn.test")
        .build()
        .await
        .expect("world");
    let client = DnssecClient::new(Some(w.dns_addr()), Duration::from_secs(5)).expect("client");
    let (base, answer) = client.host_tlsa("mx.cn.test").await;
    assert_eq!(
        (base.as_str(), answer.records[0].data[0]),
        ("real.cn.test", 1)
    );
    let (base, answer) = client.host_tlsa("other.cn.test").await;
    assert_eq!(
        (base.as_str(), answer.records[0].data[0]),
        ("other.cn.test", 2)
    );
    // The chain starts in an unsigned zone: not validated end to end, so the MX name only.
    let (base, answer) = client.host_tlsa("mx.insecure.test").await;
    assert_eq!(base, "mx.insecure.test");
    assert!(answer.records.is_empty());
}
