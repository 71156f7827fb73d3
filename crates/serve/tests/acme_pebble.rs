//! ACME against pebble (Debian's `pebble`, the ACME test CA), validating for real: pebble
//! resolves `mta-sts.<domain>` through the lab's DNS to `serve`'s address and completes
//! TLS-ALPN-01 on serve's own port. Issuance for every configured site, a name the CA
//! refuses (the others still issued, the refused one backed off), a restart that re-issues
//! nothing, and renewal of short-lived certificates at two thirds of their lifetime.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mtasts_serve::Server;
use mtasts_serve::acme::{Acme, AcmeSettings, Validation};

mod common;

use common::Dir;

const SITES: [&str; 3] = ["a.test", "b.test", "refused.test"];

struct Setup {
    dir: Dir,
    server: Arc<Server>,
    settings: AcmeSettings,
    _world: mtasts_testkit::World,
    pebble: mtasts_testkit::Pebble,
    _stop: tokio::sync::watch::Sender<bool>,
    serve_addr: SocketAddr,
}

/// The lab DNS, `serve` with three sites and no certificate, pebble validating against them.
async fn setup(tag: &str, validity_secs: u64, challenge: Validation) -> Setup {
    let dir = Dir::new(tag);
    let ip = Ipv4Addr::new(127, 77, 3, 1);
    let mut world = mtasts_testkit::World::builder();
    for d in SITES {
        std::fs::write(
            dir.0.join("policies").join(format!("{d}.txt")),
            format!("version: STSv1\nmode: enforce\nmx: mx.{d}\nmax_age: 86400\n"),
        )
        .expect("policy");
        world = world.a(&format!("mta-sts.{d}"), ip);
    }
    let world = world.build().await.expect("world");
    let (server, _) = Server::load(
        Some(&dir.0.join("policies")),
        None,
        Some(&dir.0.join("certs")),
        None,
    )
    .expect("load");
    let settings = AcmeSettings {
        directory: String::new(),
        directory_ca: None,
        state: dir.0.join("acme"),
        contact: vec!["mailto:hostmaster@provider.test".into()],
        challenge,
    };
    server.use_acme(settings.certs_dir()).expect("acme dir");
    server.reload().expect("reload");
    let (serve_addr, stop) = common::listen_tls(&server, ip.into()).await;
    // HTTP-01: port 80 of the names, here a free port of the same address.
    let http = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .expect("bind");
    let http_port = http.local_addr().expect("addr").port();
    if challenge == Validation::Http01 {
        tokio::spawn(mtasts_serve::acme::serve_http01(
            http,
            server.use_acme(settings.certs_dir()).expect("acme"),
            stop.subscribe(),
        ));
    }

    let pebble = mtasts_testkit::Pebble::start(
        &mtasts_testkit::PebbleConfig {
            dns: world.dns_addr(),
            tls_port: serve_addr.port(),
            http_port,
            blocklist: vec!["refused.test".into()],
            validity_secs,
        },
        world.ca(),
        &dir.0.join("pebble"),
    )
    .expect("pebble (Debian package `pebble`)");
    Setup {
        dir,
        server,
        settings: AcmeSettings {
            directory: pebble.directory(),
            directory_ca: Some(pebble.api_ca_file().to_path_buf()),
            ..settings
        },
        _world: world,
        pebble,
        _stop: stop,
        serve_addr,
    }
}

fn pebble_root(s: &Setup) -> PathBuf {
    s.pebble.root_file().expect("pebble root")
}

/// The policy over HTTPS through serve, verified against `root`.
fn fetch(s: &Setup, root: &Path, domain: &str) -> (bool, String) {
    let host = format!("mta-sts.{domain}");
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(root)
        .args([
            "--resolve",
            &format!("{host}:{}:{}", s.serve_addr.port(), s.serve_addr.ip()),
        ])
        .arg(format!(
            "https://{host}:{}/.well-known/mta-sts.txt",
            s.serve_addr.port()
        ))
        .output()
        .expect("curl");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn serial(path: &Path) -> String {
    let pem = std::fs::read(path).expect("cert");
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|c: rustls_pki_types::CertificateDer<'static>| c)
        .expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
    cert.raw_serial_as_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_for_configured_sites_refuses_one_and_a_restart_reissues_nothing() {
    let s = setup("issue", 3600, Validation::TlsAlpn01).await;
    let now = mtasts_tlsrpt::unix_now();
    let challenges = s.server.use_acme(s.settings.certs_dir()).expect("acme");
    let mut acme = Acme::start(s.settings.clone(), s.server.clone(), challenges.clone())
        .await
        .expect("account");
    assert_eq!(acme.due(now).len(), 3, "nothing is covered yet");
    let pass = acme.pass(now).await;
    assert_eq!(
        pass.issued,
        vec!["mta-sts.a.test", "mta-sts.b.test"],
        "{pass:?}"
    );
    assert_eq!(pass.failed.len(), 1, "{pass:?}");
    let (host, err) = &pass.failed[0];
    assert_eq!(host, "mta-sts.refused.test");
    let why = mtasts_core::errors::Chain(err).to_string();
    assert!(why.contains("mta-sts.refused.test"), "{why}");
    assert!(s.dir.0.join("acme/account.json").exists());

    // Served with the issued certificates, verified against pebble's root.
    let root = pebble_root(&s);
    for d in ["a.test", "b.test"] {
        let (ok, body) = fetch(&s, &root, d);
        assert!(ok && body.starts_with("version: STSv1\n"), "{d}: {body}");
    }
    let (ok, _) = fetch(&s, &root, "refused.test");
    assert!(!ok, "no certificate for the refused name");

    // The refused name waits out its back-off; nothing else is due.
    let again = acme.pass(now + 1).await;
    assert!(
        again.issued.is_empty() && again.failed.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.backing_off, vec!["mta-sts.refused.test"]);

    // A restart: the stored account, the stored certificates: nothing re-issued.
    let a_serial = serial(&s.dir.0.join("acme/certs/mta-sts.a.test.pem"));
    drop(acme);
    let (server2, _) = Server::load(
        Some(&s.dir.0.join("policies")),
        None,
        Some(&s.dir.0.join("certs")),
        None,
    )
    .expect("load");
    let challenges2 = server2.use_acme(s.settings.certs_dir()).expect("acme");
    server2.reload().expect("reload");
    let acme2 = Acme::start(s.settings.clone(), server2.clone(), challenges2)
        .await
        .expect("stored account");
    assert_eq!(acme2.due(now), vec!["mta-sts.refused.test"]);
    assert_eq!(
        serial(&s.dir.0.join("acme/certs/mta-sts.a.test.pem")),
        a_serial
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_are_renewed_at_two_thirds_of_their_lifetime() {
    let s = setup("renew", 30, Validation::TlsAlpn01).await;
    let challenges = s.server.use_acme(s.settings.certs_dir()).expect("acme");
    let mut acme = Acme::start(s.settings.clone(), s.server.clone(), challenges)
        .await
        .expect("account");
    let start = mtasts_tlsrpt::unix_now();
    let first = acme.pass(start).await;
    assert_eq!(first.issued.len(), 2, "{first:?}");
    let path = s.dir.0.join("acme/certs/mta-sts.a.test.pem");
    let before = serial(&path);
    let (not_before, not_after) = s
        .server
        .certs()
        .validity("mta-sts.a.test")
        .expect("validity");
    let renew_at = not_before + (not_after - not_before) / 3 * 2;
    assert!(
        !acme
            .due(renew_at - 1)
            .contains(&"mta-sts.a.test".to_string()),
        "not before two thirds"
    );
    assert!(acme.due(renew_at).contains(&"mta-sts.a.test".to_string()));
    // Wait for real: pebble issues from its own clock.
    while mtasts_tlsrpt::unix_now() < renew_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = acme.pass(mtasts_tlsrpt::unix_now()).await;
    assert!(
        second.issued.contains(&"mta-sts.a.test".to_string()),
        "{second:?}"
    );
    assert_ne!(serial(&path), before, "a new certificate");
    let root = pebble_root(&s);
    let (ok, body) = fetch(&s, &root, "a.test");
    assert!(ok, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_on_port_80_issues_as_well() {
    let s = setup("http01", 3600, Validation::Http01).await;
    let challenges = s.server.use_acme(s.settings.certs_dir()).expect("acme");
    let mut acme = Acme::start(s.settings.clone(), s.server.clone(), challenges)
        .await
        .expect("account");
    let pass = acme.pass(mtasts_tlsrpt::unix_now()).await;
    assert_eq!(
        pass.issued,
        vec!["mta-sts.a.test", "mta-sts.b.test"],
        "{pass:?}"
    );
    let root = pebble_root(&s);
    let (ok, body) = fetch(&s, &root, "b.test");
    assert!(ok && body.starts_with("version: STSv1\n"), "{body}");
    let metrics = s.server.metrics_text();
    assert!(
        metrics.contains("mtasts_serve_acme_orders_total{result=\"issued\"} 2")
            && metrics.contains("mtasts_serve_acme_orders_total{result=\"failed\"} 1"),
        "{metrics}"
    );
}
