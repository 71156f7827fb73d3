//! What one cold domain costs on the wire: the minimum, counted by the lab's DNS and HTTPS
//! servers. A first contact needs the `_mta-sts` TXT record, the policy host's A and AAAA
//! records (asked while the TXT query is out) and one fetch; nothing is asked twice, however
//! many lookups of the domain arrive at once.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod support;

use hickory_proto::rr::RecordType;
use mtasts_core::DomainName;
use mtasts_resolver::ManualClock;
use mtasts_testkit::{PolicyHost, World};
use support::*;

const DOMAIN: &str = "cold.test";

async fn world() -> World {
    World::builder()
        .txt(&format!("_mta-sts.{DOMAIN}"), "v=STSv1; id=1;")
        .policy(
            DOMAIN,
            PolicyHost::ok(&policy("enforce", &["mx.cold.test"], 86_400)),
        )
        .build()
        .await
        .expect("world")
}

/// (TXT, A, AAAA, fetches) the lab saw for the domain.
fn seen(w: &World) -> (u64, u64, u64, usize) {
    let host = format!("mta-sts.{DOMAIN}");
    (
        w.dns_queries(&format!("_mta-sts.{DOMAIN}"), RecordType::TXT),
        w.dns_queries(&host, RecordType::A),
        w.dns_queries(&host, RecordType::AAAA),
        w.policy_requests(DOMAIN).len(),
    )
}

#[tokio::test]
async fn one_cold_lookup_costs_one_txt_one_address_pair_one_fetch() {
    let w = world().await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    let l = r.lookup(&DomainName::parse(DOMAIN).expect("domain")).await;
    assert!(l.policy().is_some(), "{l:?}");
    assert_eq!(seen(&w), (1, 1, 1, 1), "(TXT, A, AAAA, fetches)");
    // Answered from memory from now on: nothing more on the wire.
    r.lookup(&DomainName::parse(DOMAIN).expect("domain")).await;
    assert_eq!(seen(&w), (1, 1, 1, 1), "a cached answer costs nothing");
}

#[tokio::test]
async fn a_hundred_simultaneous_cold_lookups_cost_the_same_as_one() {
    let w = world().await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    let domain = DomainName::parse(DOMAIN).expect("domain");
    let mut lookups = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (r, d) = (r.clone(), domain.clone());
        lookups.spawn(async move { r.lookup(&d).await });
    }
    while let Some(l) = lookups.join_next().await {
        assert!(l.expect("task").policy().is_some());
    }
    assert_eq!(seen(&w), (1, 1, 1, 1), "(TXT, A, AAAA, fetches)");
}

each_backend!(
    a_domain_in_the_backing_store_is_read_once_for_a_hundred_lookups,
    [sqlite, redis]
);
async fn a_domain_in_the_backing_store_is_read_once_for_a_hundred_lookups(name: &str, spec: &str) {
    let w = world().await;
    let clock = ManualClock::new(T0);
    let domain = DomainName::parse(DOMAIN).expect("domain");
    // A first daemon run stores the policy; a second starts with an empty memory tier.
    let first = resolver(&w, Some(open(spec).await), &clock, settings());
    assert!(first.lookup(&domain).await.policy().is_some(), "{name}");
    first.flush().await;
    let before = seen(&w);
    let second = resolver(&w, Some(open(spec).await), &clock, settings());
    let mut lookups = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (r, d) = (second.clone(), domain.clone());
        lookups.spawn(async move { r.lookup(&d).await });
    }
    while let Some(l) = lookups.join_next().await {
        assert!(l.expect("task").policy().is_some(), "{name}");
    }
    let reads = second.stats().store_reads.get();
    assert_eq!(reads, 1, "{name}: backing-store reads for one cold domain");
    assert_eq!(seen(&w), before, "{name}: nothing asked on the wire");
}
