//! Delegated DNS (RFC 8461 §8.2) as a sender meets it: the customer's `_mta-sts` is a CNAME
//! (in the lab's zone) into the provider's delegated zone, answered by `serve`'s listener;
//! the daemon's resolver asks a real recursive resolver (unbound, with stub zones for both
//! authoritative servers), which follows the CNAME from one zone into the other. A policy
//! change is then seen with no DNS edit by anyone.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Dir;
use mtasts_resolver::Dns as _;
use mtasts_serve::Server;

const ZONE: &str = "sts.provider.test";
const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx.customer.test\nmax_age: 86400\n";

async fn id_through(dns: &mtasts_resolver::HickoryDns) -> Option<String> {
    let txt = dns.txt("_mta-sts.customer.test").await.ok()?;
    let mtasts_resolver::TxtAnswer::Records(answer) = txt else {
        return None;
    };
    let joined: Vec<u8> = answer.iter().flatten().flatten().copied().collect();
    let parsed = mtasts_core::txt::parse_record(&joined).ok()?;
    Some(parsed.id.as_str().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_follows_the_customers_cname_into_the_delegated_zone_via_unbound() {
    let dir = Dir::new("recursive");
    std::fs::write(dir.policies().join("customer.test.txt"), POLICY).expect("policy");
    let (server, _) = Server::load(Some(&dir.policies()), None, None, None).expect("load");

    // serve's delegated DNS, UDP and TCP on one port.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let dns_addr = udp.local_addr().expect("addr");
    let tcp = tokio::net::TcpListener::bind(dns_addr).await.expect("tcp");
    let handler = mtasts_serve::dns::Delegated::new(ZONE, server.clone()).expect("zone");
    let mut delegated = hickory_server::ServerFuture::new(handler);
    delegated.register_socket(udp);
    delegated.register_listener(tcp, Duration::from_secs(10));

    // The customer's zone (the lab DNS) holds only the CNAME, set once.
    let world = mtasts_testkit::World::builder()
        .cname(
            "_mta-sts.customer.test",
            &format!("_mta-sts.customer.test.{ZONE}"),
        )
        .build()
        .await
        .expect("world");
    let stubs = [("test", world.dns_addr()), (ZONE, dns_addr)];
    let unbound_dir = dir.0.join("unbound");
    let unbound = tokio::task::spawn_blocking(move || {
        mtasts_testkit::Unbound::start(&stubs, 1, &unbound_dir)
    })
    .await
    .expect("task")
    .expect("unbound (Debian package `unbound`)");

    let dns = mtasts_resolver::HickoryDns::new(Some(unbound.addr()), Duration::from_secs(3))
        .expect("resolver");
    let site_id = |server: &Arc<Server>| {
        server
            .sites()
            .for_host("mta-sts.customer.test")
            .expect("site")
            .id
            .clone()
    };
    let first = site_id(&server);
    assert_eq!(id_through(&dns).await.as_deref(), Some(first.as_str()));

    // A policy change: the new id reaches the sender through the same CNAME.
    std::fs::write(
        dir.policies().join("customer.test.txt"),
        POLICY.replace("enforce", "testing"),
    )
    .expect("policy");
    server.reload().expect("reload");
    let second = site_id(&server);
    assert_ne!(second, first);
    let start = Instant::now();
    while id_through(&dns).await.as_deref() != Some(second.as_str()) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the new id never came through unbound"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = delegated.shutdown_gracefully().await;
}
