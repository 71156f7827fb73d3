//! Conditional trust against the testkit: a private CA trusted for one policy domain only.
//! `private.test` and `neighbour.test` both have their policy host and MX certified by the
//! lab's second CA (which clients are not told to trust); only `private.test` is configured.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mtasts_core::DomainName;
use mtasts_daemon::config::TrustRule;
use mtasts_daemon::{Config, ConfigError, Server};
use mtasts_resolver::{
    FetchSettings, HickoryDns, HttpsFetcher, Resolver, ResolverSettings, SystemClock, TrustHandle,
    client_config,
};
use mtasts_testkit::{CertKind, PolicyHost, SmtpHost, World};

const POLICY_PRIVATE: &str =
    "version: STSv1\nmode: enforce\nmx: mx.private.test\nmax_age: 604800\n";
const POLICY_NEIGHBOUR: &str =
    "version: STSv1\nmode: enforce\nmx: mx.neighbour.test\nmax_age: 604800\n";

async fn world() -> World {
    let private = |body: &str| PolicyHost {
        cert: CertKind::UntrustedCa,
        ..PolicyHost::ok(body)
    };
    World::builder()
        .txt("_mta-sts.private.test", "v=STSv1; id=1;")
        .policy("private.test", private(POLICY_PRIVATE))
        .mx("private.test", 10, "mx.private.test")
        .smtp(
            "mx.private.test",
            SmtpHost {
                cert: CertKind::UntrustedCa,
                ..SmtpHost::default()
            },
        )
        .txt("_mta-sts.neighbour.test", "v=STSv1; id=1;")
        .policy("neighbour.test", private(POLICY_NEIGHBOUR))
        .mx("neighbour.test", 10, "mx.neighbour.test")
        .build()
        .await
        .expect("world")
}

fn rule(name: &str, domains: &[&str], mode: &str, anchors: &[&Path]) -> TrustRule {
    TrustRule {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        mode: mode.into(),
        anchors: anchors.iter().map(|p| p.to_path_buf()).collect(),
        postfix_bundle: None,
        web_pki_bundle: None,
    }
}

/// A server as the daemon assembles it: the fetcher and the answers share one trust handle.
fn server(w: &World, config: Config) -> Arc<Server<HickoryDns, HttpsFetcher<HickoryDns>>> {
    let trust = TrustHandle::new(config.trust_table().expect("trust rules"));
    let dns = Arc::new(HickoryDns::new(Some(w.dns_addr()), Duration::from_secs(5)).expect("dns"));
    let fetch = HttpsFetcher::new(
        dns.clone(),
        client_config(Some(w.ca_file())).expect("tls"),
        FetchSettings {
            connect_map: w.port_map(),
            total_timeout: Duration::from_secs(5),
            ..FetchSettings::default()
        },
    )
    .with_trust(trust.clone());
    let settings = ResolverSettings {
        refresh: false,
        ..ResolverSettings::default()
    };
    let resolver = Resolver::new(dns, fetch, None, Arc::new(SystemClock), settings);
    let mut config = config;
    config.default_zone.dane = false;
    config.cache = mtasts_store::CacheSpec::Memory;
    Server::with_trust(resolver, None, config, trust)
}

fn request(domain: &str) -> Vec<u8> {
    format!("postfix {domain}").into_bytes()
}

#[tokio::test]
async fn without_the_setting_the_private_ca_is_refused() {
    let w = world().await;
    let s = server(&w, Config::default());
    let e = s.explain("postfix", &name("private.test"), false).await;
    let error = e.lookup.fetch_error.as_ref().expect("the fetch failed");
    assert_eq!(error.failure().result_type(), "sts-webpki-invalid");
    // Nothing cached, nothing trusted: deliver as without MTA-STS (RFC 8461 §3.3).
    assert_eq!(
        s.answer(&request("private.test")).await.payload(),
        "NOTFOUND "
    );
    assert!(e.trust.is_none());
}

#[tokio::test]
async fn the_configured_domain_is_fetched_and_its_answer_names_the_anchors() {
    let w = world().await;
    let ca = w.private_ca_file();
    let config = Config {
        trust: vec![rule("corp", &["private.test"], "only", &[ca])],
        ..Config::default()
    };
    let s = server(&w, config);
    let reply = s.answer(&request("private.test")).await.payload();
    assert_eq!(
        reply,
        format!(
            "OK secure match=mx.private.test servername=hostname tafile={}",
            ca.display()
        )
    );
    let e = s.explain("postfix", &name("private.test"), false).await;
    let report = mtasts_daemon::DecisionReport::new(&e);
    let trust = report.trust.expect("the rule is shown");
    assert_eq!(
        (trust.rule.as_str(), trust.mode, trust.applied),
        ("corp", "only", true)
    );
    assert_eq!(trust.anchors, [ca.display().to_string()]);
}

#[tokio::test]
async fn the_ca_does_not_become_global() {
    let w = world().await;
    let ca = w.private_ca_file();
    let config = Config {
        trust: vec![rule("corp", &["private.test"], "only", &[ca])],
        ..Config::default()
    };
    let s = server(&w, config);
    // Trusted for private.test...
    assert!(
        s.answer(&request("private.test"))
            .await
            .payload()
            .starts_with("OK secure")
    );
    // ...not for a neighbour certified by the same CA.
    let e = s.explain("postfix", &name("neighbour.test"), false).await;
    assert_eq!(refusal(&e), "sts-webpki-invalid");
    assert_eq!(
        s.answer(&request("neighbour.test")).await.payload(),
        "NOTFOUND "
    );
    assert!(e.trust.is_none());
}

#[tokio::test]
async fn only_replaces_the_web_pki_for_its_domains() {
    let w = world().await;
    // A rule for a domain whose policy host uses the lab's ordinary CA, with the private CA
    // as the only anchor: the ordinary CA is no longer enough for that domain.
    let w2 = World::builder()
        .txt("_mta-sts.ordinary.test", "v=STSv1; id=1;")
        .policy("ordinary.test", PolicyHost::ok(POLICY_PRIVATE))
        .build()
        .await
        .expect("world");
    let ca = w.private_ca_file();
    let only = Config {
        trust: vec![rule("corp", &["ordinary.test"], "only", &[ca])],
        ..Config::default()
    };
    let s = server(&w2, only);
    let e = s.explain("postfix", &name("ordinary.test"), false).await;
    assert_eq!(refusal(&e), "sts-webpki-invalid");
    // `additional` keeps the web PKI (here the daemon's ca_file, the lab CA) for them.
    let dir = TempDir::new("additional");
    let web_pki = dir.0.join("web-pki.pem");
    std::fs::copy(w2.ca_file(), &web_pki).expect("copy");
    let bundle = dir.0.join("corp-bundle.pem");
    let mut r = rule("corp", &["ordinary.test"], "additional", &[ca]);
    r.postfix_bundle = Some(bundle.clone());
    r.web_pki_bundle = Some(web_pki.clone());
    let additional = Config {
        trust: vec![r],
        ca_file: Some(w2.ca_file().to_path_buf()),
        ..Config::default()
    };
    let s = server(&w2, additional);
    let reply = s.answer(&request("ordinary.test")).await.payload();
    assert_eq!(
        reply,
        format!(
            "OK secure match=mx.private.test servername=hostname tafile={}",
            bundle.display()
        )
    );
    // Postfix's bundle: the web PKI file, then the anchors.
    let written = std::fs::read_to_string(&bundle).expect("bundle written");
    let expected = format!(
        "{}{}",
        std::fs::read_to_string(&web_pki).expect("web pki"),
        std::fs::read_to_string(ca).expect("anchor")
    );
    assert_eq!(written, expected);
}

#[tokio::test]
async fn a_reload_replaces_the_rules_for_fetch_and_answer_alike() {
    let w = world().await;
    let ca = w.private_ca_file();
    let s = server(&w, Config::default());
    assert_eq!(
        s.answer(&request("private.test")).await.payload(),
        "NOTFOUND "
    );
    let with_rule = Config {
        trust: vec![rule("corp", &["*.test"], "only", &[ca])],
        ..(*s.config()).clone()
    };
    let notes = s.reload(with_rule);
    assert!(
        notes.iter().any(|n| n == "trust: 1 rule(s) in force"),
        "{notes:?}"
    );
    // A domain first asked after the reload is fetched with the new rule's anchors, and its
    // answer names them.
    assert_eq!(
        s.answer(&request("neighbour.test")).await.payload(),
        format!(
            "OK secure match=mx.neighbour.test servername=hostname tafile={}",
            ca.display()
        )
    );
    // A reload whose anchors cannot be read keeps the rules in force, and says so.
    let broken = Config {
        trust: vec![rule(
            "corp",
            &["*.test"],
            "only",
            &[Path::new("/nonexistent/ca.pem")],
        )],
        ..(*s.config()).clone()
    };
    let notes = s.reload(broken);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("/nonexistent/ca.pem") && n.contains("previous rules stay")),
        "{notes:?}"
    );
}

#[test]
fn bad_rules_are_refused_naming_the_rule_and_field() {
    let err = |rule: TrustRule| -> String {
        let config = Config {
            trust: vec![rule],
            ..Config::default()
        };
        match config.validate() {
            Err(e) => mtasts_core::errors::Chain(&e).to_string(),
            Ok(()) => panic!("accepted"),
        }
    };
    let ca = Path::new("/etc/mtasts/corp.pem");
    let e = err(rule("corp", &["exa mple.com"], "only", &[ca]));
    assert!(
        e.starts_with("trust[0] (corp).domains: `exa mple.com`"),
        "{e}"
    );
    let e = err(rule("corp", &["example.com"], "sometimes", &[ca]));
    assert!(
        e.contains("trust[0] (corp).mode: `sometimes`: `only` or `additional`"),
        "{e}"
    );
    let e = err(rule("corp", &["example.com"], "only", &[]));
    assert!(e.contains("(corp).anchors: at least one PEM file"), "{e}");
    let e = err(rule(
        "corp",
        &["example.com"],
        "only",
        &[Path::new("/a,b.pem")],
    ));
    assert!(e.contains("without commas or white space"), "{e}");
    let e = err(rule(
        "corp",
        &["example.com"],
        "only",
        &[Path::new("rel.pem")],
    ));
    assert!(e.contains("an absolute path"), "{e}");
    let e = err(rule("corp", &["example.com"], "additional", &[ca]));
    assert!(
        e.contains("(corp).postfix_bundle: mode \"additional\" needs"),
        "{e}"
    );
    let e = err(rule("", &["example.com"], "only", &[ca]));
    assert!(e.contains(".name: a name of"), "{e}");
    // An unreadable anchor file is refused when the rules are built, naming rule and file.
    let config = Config {
        trust: vec![rule(
            "corp",
            &["example.com"],
            "only",
            &[Path::new("/nonexistent/ca.pem")],
        )],
        ..Config::default()
    };
    let e: ConfigError = config.trust_table().expect_err("unreadable anchors");
    let text = mtasts_core::errors::Chain(&e).to_string();
    assert!(
        text.starts_with("trust rule `corp`") && text.contains("/nonexistent/ca.pem"),
        "{text}"
    );
}

#[test]
fn a_toml_rule_reads_as_documented() {
    let dir = TempDir::new("toml");
    let path = dir.0.join("mtasts.toml");
    std::fs::write(
        &path,
        "[[trust]]\nname = \"corp\"\ndomains = [\"corp.example\", \"*.corp.example\"]\nanchors = [\"/etc/mtasts/corp-ca.pem\"]\n",
    )
    .expect("write");
    let (config, _) = Config::load(&path).expect("loads");
    let specs = config.trust_specs().expect("valid");
    assert_eq!(specs.len(), 1);
    assert_eq!(
        specs[0].mode,
        mtasts_core::TrustMode::Only,
        "only is the default"
    );
    assert_eq!(specs[0].domains.len(), 2);
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "mtasts-trust-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn name(s: &str) -> DomainName {
    DomainName::parse(s).expect("name")
}

/// PEM `PUBLIC KEY` of a SubjectPublicKeyInfo, as `openssl x509 -pubkey` writes it.
fn public_key_pem(spki: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(spki);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn a_pinned_key_admits_its_self_signed_policy_host_only() {
    let w = World::builder()
        .txt("_mta-sts.pinned.test", "v=STSv1; id=1;")
        .policy(
            "pinned.test",
            PolicyHost {
                cert: CertKind::SelfSigned,
                ..PolicyHost::ok(POLICY_PRIVATE)
            },
        )
        .txt("_mta-sts.unpinned.test", "v=STSv1; id=1;")
        .policy(
            "unpinned.test",
            PolicyHost {
                cert: CertKind::SelfSigned,
                ..PolicyHost::ok(POLICY_PRIVATE)
            },
        )
        .build()
        .await
        .expect("world");
    let dir = TempDir::new("pinned");
    let pin = dir.0.join("pinned-key.pem");
    std::fs::write(
        &pin,
        public_key_pem(&w.policy_spki("pinned.test").expect("spki")),
    )
    .expect("write pin");
    let config = Config {
        trust: vec![rule(
            "pins",
            &["pinned.test", "unpinned.test"],
            "only",
            &[&pin],
        )],
        ..Config::default()
    };
    let s = server(&w, config);
    assert_eq!(
        s.answer(&request("pinned.test")).await.payload(),
        format!(
            "OK secure match=mx.private.test servername=hostname tafile={}",
            pin.display()
        )
    );
    // Covered by the same rule, but its own key is not pinned: refused.
    let e = s.explain("postfix", &name("unpinned.test"), false).await;
    assert_eq!(refusal(&e), "sts-webpki-invalid");
    // A file with neither a certificate nor a key is refused, naming it.
    let empty = dir.0.join("empty.pem");
    std::fs::write(&empty, "nothing here\n").expect("write");
    let bad = Config {
        trust: vec![rule("pins", &["pinned.test"], "only", &[&empty])],
        ..Config::default()
    };
    let text = mtasts_core::errors::Chain(&bad.trust_table().expect_err("no anchors")).to_string();
    assert!(
        text.contains("no PEM certificates or public keys"),
        "{text}"
    );
}

/// The TLS-RPT result type of the lookup's failed fetch.
fn refusal(e: &mtasts_daemon::Explanation) -> &'static str {
    e.lookup
        .fetch_error
        .as_ref()
        .expect("refused")
        .failure()
        .result_type()
}
