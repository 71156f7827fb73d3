//! ACME against pebble (Debian's `pebble`, the ACME test CA), validating for real: pebble
//! resolves `mta-sts.<domain>` through the lab's DNS to `serve`'s address and completes
//! TLS-ALPN-01 on serve's own port. Issuance for every configured site, a name the CA
//! refuses (the others still issued, the refused one backed off), a restart that re-issues
//! nothing, and renewal of short-lived certificates at two thirds of their lifetime.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtasts_serve::Server;
use mtasts_serve::acme::{Acme, AcmeSettings};

mod common;

use common::Dir;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn wait_port(addr: SocketAddr) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SITES: [&str; 3] = ["a.test", "b.test", "refused.test"];

struct Setup {
    dir: Dir,
    server: Arc<Server>,
    settings: AcmeSettings,
    _world: mtasts_testkit::World,
    _pebble: Killed,
    _stop: tokio::sync::watch::Sender<bool>,
    serve_addr: SocketAddr,
    management: u16,
}

/// The lab DNS, `serve` with three sites and no certificate, pebble validating against them.
async fn setup(tag: &str, validity_secs: u64) -> Setup {
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
        directory_ca: Some(dir.0.join("pebble-ca.pem")),
        state: dir.0.join("acme"),
        contact: vec!["mailto:hostmaster@provider.test".into()],
    };
    server.use_acme(settings.certs_dir()).expect("acme dir");
    server.reload().expect("reload");
    let (serve_addr, stop) = common::listen_tls(&server, ip.into()).await;

    // pebble's own HTTPS: a certificate for localhost from the lab's CA.
    world
        .ca()
        .write_pem(&dir.0.join("pebble-ca.pem"))
        .expect("ca");
    let pem = world.ca().issue_pem(&["localhost"]).expect("cert");
    std::fs::write(dir.0.join("pebble.pem"), &pem).expect("cert");
    let (api, management) = (free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{api}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.0.join("pebble.pem"),
        "privateKey": dir.0.join("pebble.pem"),
        "httpPort": free_port(),
        "tlsPort": serve_addr.port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "domainBlocklist": ["refused.test"],
        "certificateValidityPeriod": validity_secs,
    }});
    std::fs::write(dir.0.join("pebble.json"), config.to_string()).expect("config");
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(dir.0.join("pebble.json"))
        .args(["-dnsserver", &world.dns_addr().to_string()])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble (Debian package `pebble`)");
    let pebble = Killed(pebble);
    wait_port(SocketAddr::from(([127, 0, 0, 1], api)));
    wait_port(SocketAddr::from(([127, 0, 0, 1], management)));
    Setup {
        dir,
        server,
        settings: AcmeSettings {
            directory: format!("https://localhost:{api}/dir"),
            ..settings
        },
        _world: world,
        _pebble: pebble,
        _stop: stop,
        serve_addr,
        management,
    }
}

/// pebble's issuing root (random per run), from its management API.
fn pebble_root(s: &Setup) -> PathBuf {
    let out = s.dir.0.join("pebble-root.pem");
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(s.dir.0.join("pebble-ca.pem"))
        .arg(format!("https://localhost:{}/roots/0", s.management))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("curl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
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
    let s = setup("issue", 3600).await;
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
    let s = setup("renew", 30).await;
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
