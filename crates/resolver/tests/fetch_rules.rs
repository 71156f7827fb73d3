//! RFC 8461 §3.2–3.3 fetch rules against the testkit's policy hosts, one test per rule.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod support;

use mtasts_core::cache::{NoPolicyReason, Source, Verdict};
use mtasts_core::{DomainName, FetchFailure, Mode};
use mtasts_resolver::{FetchError, ManualClock};
use mtasts_testkit::{CertKind, PolicyHost, World};
use support::*;

fn d(s: &str) -> DomainName {
    DomainName::parse(s).expect("domain")
}

fn good(domain: &str) -> String {
    policy("enforce", &[&format!("mx1.{domain}")], 86_400)
}

/// A world with `domain` published (TXT id 1) and its policy host behaving as `host`.
async fn world_with(domain: &str, host: PolicyHost) -> World {
    World::builder()
        .txt(&format!("_mta-sts.{domain}"), "v=STSv1; id=1;")
        .policy(domain, host)
        .build()
        .await
        .expect("world")
}

async fn fetch_failure(domain: &str, host: PolicyHost) -> (FetchError, World) {
    let w = world_with(domain, host).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    let l = r.lookup(&d(domain)).await;
    let err = l
        .fetch_error
        .clone()
        .unwrap_or_else(|| panic!("{domain}: expected a fetch error, got {:?}", l.verdict));
    assert_eq!(
        l.verdict,
        Verdict::NoPolicy(NoPolicyReason::FetchFailed(err.failure())),
        "{domain}: FETCH-10"
    );
    assert!(
        l.state.as_ref().is_some_and(|s| s.policy.is_none()),
        "{domain}: never cached (POL-11)"
    );
    (err, w)
}

#[tokio::test]
async fn fetch_01_02_url_sni_and_host_name_the_policy_host() {
    let w = world_with("good.test", PolicyHost::ok(&good("good.test"))).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    let l = r.lookup(&d("GOOD.test.")).await;
    assert_eq!(l.verdict, Verdict::Policy(Source::Fetched));
    assert_eq!(l.policy().map(|p| p.policy.mode), Some(Mode::Enforce));
    let reqs = w.policy_requests("good.test");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/.well-known/mta-sts.txt");
    assert_eq!(
        reqs[0].tls.sni.as_deref(),
        Some("mta-sts.good.test"),
        "SNI always sent"
    );
    assert_eq!(reqs[0].header("host"), Some("mta-sts.good.test"));
    assert!(matches!(
        reqs[0].tls.version.as_deref(),
        Some("TLSv1_3" | "TLSv1_2")
    ));
}

#[tokio::test]
async fn fetch_03_only_200_yields_a_policy() {
    for status in [204, 206, 304, 404, 500] {
        let host = PolicyHost {
            status,
            ..PolicyHost::ok(&good("s.test"))
        };
        let (e, _) = fetch_failure("s.test", host).await;
        assert!(
            matches!(e, FetchError::Status(s) if s == status),
            "{status}: {e}"
        );
        assert_eq!(
            (e.rule(), e.failure()),
            ("FETCH-03", FetchFailure::FetchError)
        );
    }
}

#[tokio::test]
async fn fetch_04_redirects_are_never_followed() {
    let w = World::builder()
        .txt("_mta-sts.redir.test", "v=STSv1; id=1;")
        .policy(
            "redir.test",
            PolicyHost {
                status: 301,
                location: Some("https://mta-sts.good.test/.well-known/mta-sts.txt".into()),
                ..PolicyHost::default()
            },
        )
        .policy("good.test", PolicyHost::ok(&good("redir.test")))
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup(&d("redir.test"))
        .await;
    let e = l.fetch_error.expect("error");
    assert!(
        matches!(&e, FetchError::Redirect { status: 301, location } if location.contains("mta-sts.good.test")),
        "{e}"
    );
    assert_eq!(e.rule(), "FETCH-04");
    assert!(
        w.policy_requests("good.test").is_empty(),
        "no request to Location"
    );
}

#[tokio::test]
async fn fetch_05_no_conditional_requests_and_cache_headers_ignored() {
    let host = PolicyHost {
        headers: vec![
            ("ETag".into(), "\"abc\"".into()),
            ("Cache-Control".into(), "max-age=3600".into()),
            (
                "Last-Modified".into(),
                "Wed, 01 Jan 2025 00:00:00 GMT".into(),
            ),
        ],
        ..PolicyHost::ok(&good("etag.test"))
    };
    let w = world_with("etag.test", host).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    r.lookup(&d("etag.test")).await;
    w.set_txt("_mta-sts.etag.test", Some("v=STSv1; id=2;"));
    clock.advance(120);
    r.lookup(&d("etag.test")).await; // answers from cache, re-checks in the background
    eventually("refetch after the id change", || {
        w.policy_requests("etag.test").len() == 2
    })
    .await;
    for req in w.policy_requests("etag.test") {
        assert_eq!(req.header("if-none-match"), None);
        assert_eq!(req.header("if-modified-since"), None);
    }
}

#[tokio::test]
async fn fetch_06_media_type_text_plain_parameters_allowed() {
    for ct in [
        "text/plain; charset=utf-8",
        "TEXT/Plain",
        "text/plain; charset=iso-8859-1; format=flowed",
    ] {
        let w = world_with(
            "ct.test",
            PolicyHost {
                content_type: Some(ct.into()),
                ..PolicyHost::ok(&good("ct.test"))
            },
        )
        .await;
        let clock = ManualClock::new(T0);
        let l = resolver(&w, None, &clock, settings())
            .lookup(&d("ct.test"))
            .await;
        assert_eq!(l.verdict, Verdict::Policy(Source::Fetched), "{ct}");
    }
    let (e, _) = fetch_failure(
        "ct.test",
        PolicyHost {
            content_type: Some("text/html".into()),
            ..PolicyHost::ok(&good("ct.test"))
        },
    )
    .await;
    assert!(
        matches!(&e, FetchError::ContentType(Some(c)) if c == "text/html"),
        "{e}"
    );
    assert_eq!(e.failure(), FetchFailure::PolicyInvalid);
    let (e, _) = fetch_failure(
        "ct.test",
        PolicyHost {
            content_type: None,
            ..PolicyHost::ok(&good("ct.test"))
        },
    )
    .await;
    assert!(matches!(e, FetchError::ContentType(None)), "FETCH-06a: {e}");
}

#[tokio::test]
async fn fetch_07_hanging_and_dripping_hosts_time_out() {
    let started = std::time::Instant::now();
    let (e, _) = fetch_failure(
        "hang.test",
        PolicyHost {
            hang: true,
            ..PolicyHost::ok(&good("hang.test"))
        },
    )
    .await;
    assert!(matches!(e, FetchError::Timeout(_)), "{e}");
    assert_eq!(e.rule(), "FETCH-07");
    let (e, _) = fetch_failure(
        "drip.test",
        PolicyHost {
            drip_ms: Some(200),
            ..PolicyHost::ok(&good("drip.test"))
        },
    )
    .await;
    assert!(matches!(e, FetchError::Timeout(_)), "{e}");
    println!(
        "two timeouts took {:?} (total timeout 1.5 s each)",
        started.elapsed()
    );
}

#[tokio::test]
async fn fetch_08_body_capped_at_64_kib_with_or_without_content_length() {
    let exact = PolicyHost {
        pad_to: Some(65_536),
        ..PolicyHost::ok(&good("cap.test"))
    };
    let w = world_with("cap.test", exact).await;
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup(&d("cap.test"))
        .await;
    assert_eq!(
        l.verdict,
        Verdict::Policy(Source::Fetched),
        "exactly 65536 bytes is accepted: {:?}",
        l.fetch_error
    );
    for (label, host) in [
        (
            "content-length",
            PolicyHost {
                pad_to: Some(65_537),
                ..PolicyHost::ok(&good("cap.test"))
            },
        ),
        (
            "chunked",
            PolicyHost {
                pad_to: Some(65_537),
                chunked: true,
                ..PolicyHost::ok(&good("cap.test"))
            },
        ),
    ] {
        let (e, _) = fetch_failure("cap.test", host).await;
        assert_eq!(e.rule(), "FETCH-08", "{label}: {e}");
        assert!(matches!(e, FetchError::TooLarge { .. }), "{label}: {e}");
    }
    let huge = PolicyHost {
        content_length: Some(10_000_000),
        ..PolicyHost::ok(&good("cap.test"))
    };
    let (e, _) = fetch_failure("cap.test", huge).await;
    assert!(
        matches!(
            e,
            FetchError::TooLarge {
                declared: Some(10_000_000),
                ..
            }
        ),
        "refused before the body: {e}"
    );
}

#[tokio::test]
async fn phc_01_02_policy_host_certificate_must_be_valid_for_the_name() {
    for kind in [
        CertKind::WrongName,
        CertKind::Expired,
        CertKind::UntrustedCa,
        CertKind::SelfSigned,
        CertKind::CnOnly,
    ] {
        let (e, _) = fetch_failure(
            "pki.test",
            PolicyHost {
                cert: kind,
                ..PolicyHost::ok(&good("pki.test"))
            },
        )
        .await;
        assert!(matches!(e, FetchError::WebPki { .. }), "{kind:?}: {e}");
        assert_eq!(e.failure(), FetchFailure::WebPkiInvalid, "{kind:?}");
        assert_eq!(e.failure().result_type(), "sts-webpki-invalid");
    }
}

#[tokio::test]
async fn pol_11_invalid_policy_is_a_failed_fetch_and_never_cached() {
    let (e, _) = fetch_failure(
        "bad.test",
        PolicyHost::ok("version: STSv1\nmode: Enforce\nmx: a.bad.test\nmax_age: 1\n"),
    )
    .await;
    assert!(
        matches!(&e, FetchError::Invalid(errs) if errs.to_string().contains("line 2")),
        "{e}"
    );
    assert_eq!(e.failure().result_type(), "sts-policy-invalid");
    let mut bytes = good("utf.test");
    bytes.push_str("x: \u{fffd}\n");
    let non_ascii = PolicyHost {
        body: bytes.replace('\u{fffd}', "é"),
        ..PolicyHost::default()
    };
    let w = world_with("utf.test", non_ascii).await;
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup(&d("utf.test"))
        .await;
    assert_eq!(
        l.verdict,
        Verdict::Policy(Source::Fetched),
        "valid UTF-8 extension values are fine"
    );
}

#[tokio::test]
async fn fetch_01_policy_host_without_address_is_a_fetch_error() {
    let w = World::builder()
        .txt("_mta-sts.nohost.test", "v=STSv1; id=1;")
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup(&d("nohost.test"))
        .await;
    let e = l.fetch_error.expect("error");
    assert!(
        matches!(&e, FetchError::Dns { host, .. } if host == "mta-sts.nohost.test"),
        "{e}"
    );
    assert_eq!(e.failure().result_type(), "sts-policy-fetch-error");
}

#[test]
fn fetch_07_limits_are_the_documented_ones() {
    use std::time::Duration;
    // README: 10 s per connect, 60 s per fetch in total (the RFC's suggestion), 64 KiB body.
    let f = mtasts_resolver::FetchSettings::default();
    assert_eq!(
        (f.connect_timeout, f.total_timeout, f.max_body),
        (Duration::from_secs(10), Duration::from_secs(60), 65_536)
    );
    // What the daemon and the CLI build their fetcher from.
    assert_eq!(
        mtasts_resolver::NetEndpoints::default().fetch_timeout,
        Duration::from_secs(60)
    );
}

/// The versions a TLS ClientHello offers in its supported_versions extension (RFC 8446
/// §4.2.1), read off the wire.
fn offered_versions(hello: &[u8]) -> Option<Vec<u16>> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    // Record header (5), handshake header (4), legacy_version (2), random (32).
    let mut i = 5 + 4 + 2 + 32;
    i += 1 + usize::from(*hello.get(i)?); // session id
    i += 2 + usize::from(u16_at(hello, i)?); // cipher suites
    i += 1 + usize::from(*hello.get(i)?); // compression methods
    let end = i + 2 + usize::from(u16_at(hello, i)?);
    i += 2;
    while i + 4 <= end {
        let (kind, len) = (u16_at(hello, i)?, usize::from(u16_at(hello, i + 2)?));
        if kind == 43 {
            let list = hello.get(i + 5..i + 5 + usize::from(*hello.get(i + 4)?))?;
            return Some(
                list.chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                    .collect(),
            );
        }
        i += 4 + len;
    }
    None
}

#[tokio::test]
async fn fetch_tls_offers_only_tls_1_3_and_1_2() {
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    let w = world_with("hello.test", PolicyHost::ok(&good("hello.test"))).await;
    // The policy host's address leads to a listener that keeps the ClientHello and hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let raw = listener.local_addr().expect("addr");
    let public = w
        .port_map()
        .into_iter()
        .find(|(_, bound)| Some(*bound) == w.policy_addr("hello.test"))
        .map(|(public, _)| public)
        .expect("policy host address");
    let capture = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut hello = vec![0u8; 4096];
        let mut n = 0;
        while n < 5 || n < 5 + usize::from(u16::from_be_bytes([hello[3], hello[4]])) {
            let got = s.read(&mut hello[n..]).await.expect("read");
            if got == 0 {
                break;
            }
            n += got;
        }
        hello.truncate(n);
        hello
    });
    let dns =
        Arc::new(mtasts_resolver::HickoryDns::new(Some(w.dns_addr()), DNS_TIMEOUT).expect("dns"));
    let fetch = mtasts_resolver::HttpsFetcher::new(
        dns.clone(),
        mtasts_resolver::client_config(Some(w.ca_file())).expect("tls"),
        mtasts_resolver::FetchSettings {
            connect_map: [(public, raw)].into_iter().collect(),
            total_timeout: Duration::from_secs(5),
            ..mtasts_resolver::FetchSettings::default()
        },
    );
    let clock = ManualClock::new(T0);
    let r = mtasts_resolver::Resolver::new(dns, fetch, None, Arc::new(clock), settings());
    let l = r.lookup(&d("hello.test")).await;
    assert!(l.fetch_error.is_some(), "the listener speaks no TLS");
    let hello = capture.await.expect("capture");
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    assert_eq!(
        offered_versions(&hello),
        Some(vec![0x0304, 0x0303]),
        "TLS 1.3 and 1.2, nothing older"
    );
}
