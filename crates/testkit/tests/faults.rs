//! The testkit proves each fault happens as described, with raw clients over real sockets.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod support;

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use mtasts_testkit::{CertKind, DnsFault, PolicyHost, SmtpHost, StartTls, World};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.good.test\nmax_age: 604800\n";

#[tokio::test]
async fn dns_serves_txt_split_strings_several_records_and_cname() {
    let w = World::builder()
        .txt_strings("_mta-sts.split.test", &["v=STSv1; id=ab", "cd"])
        .txt("_mta-sts.two.test", "v=spf1 -all")
        .txt("_mta-sts.two.test", "v=STSv1; id=7")
        .cname("_mta-sts.alias.test", "_mta-sts.provider.test")
        .txt("_mta-sts.provider.test", "v=STSv1; id=9")
        .mx("good.test", 10, "mx1.good.test")
        .build()
        .await
        .expect("world");
    let m = dns(w.dns_addr(), "_mta-sts.split.test", RecordType::TXT, false)
        .await
        .expect("answer");
    assert_eq!(
        txt_strings(&m),
        vec![vec!["v=STSv1; id=ab".to_string(), "cd".to_string()]]
    );
    let m = dns(w.dns_addr(), "_mta-sts.two.test", RecordType::TXT, true)
        .await
        .expect("tcp answer");
    assert_eq!(txt_strings(&m).len(), 2);
    let m = dns(w.dns_addr(), "_mta-sts.alias.test.", RecordType::TXT, false)
        .await
        .expect("answer");
    assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    assert_eq!(txt_strings(&m), vec![vec!["v=STSv1; id=9".to_string()]]);
    let m = dns(w.dns_addr(), "GOOD.test", RecordType::MX, false)
        .await
        .expect("answer");
    assert_eq!(m.answers().len(), 1);
    assert_eq!(w.dns_queries("_mta-sts.split.test", RecordType::TXT), 1);
}

#[tokio::test]
async fn dns_faults_nxdomain_nodata_servfail_refused_drop_truncate() {
    let w = World::builder()
        .txt("_mta-sts.nodata.test", "irrelevant")
        .dns_fault("_mta-sts.nodata.test", DnsFault::NoData)
        .dns_fault("_mta-sts.servfail.test", DnsFault::ServFail)
        .dns_fault("_mta-sts.refused.test", DnsFault::Refused)
        .dns_fault("_mta-sts.drop.test", DnsFault::Drop)
        .txt("_mta-sts.tc.test", "v=STSv1; id=1")
        .dns_fault("_mta-sts.tc.test", DnsFault::Truncate)
        .mx("only-mx.test", 10, "mx.only-mx.test")
        .build()
        .await
        .expect("world");
    let a = w.dns_addr();
    let rc =
        |m: Option<hickory_proto::op::Message>| m.map(|m| (m.response_code(), m.answers().len()));
    assert_eq!(
        rc(dns(a, "_mta-sts.missing.test", RecordType::TXT, false).await),
        Some((ResponseCode::NXDomain, 0))
    );
    assert_eq!(
        rc(dns(a, "_mta-sts.nodata.test", RecordType::TXT, false).await),
        Some((ResponseCode::NoError, 0))
    );
    assert_eq!(
        rc(dns(a, "only-mx.test", RecordType::TXT, false).await),
        Some((ResponseCode::NoError, 0)),
        "natural NODATA"
    );
    assert_eq!(
        rc(dns(a, "_mta-sts.servfail.test", RecordType::TXT, false).await),
        Some((ResponseCode::ServFail, 0))
    );
    assert_eq!(
        rc(dns(a, "_mta-sts.refused.test", RecordType::TXT, false).await),
        Some((ResponseCode::Refused, 0))
    );
    assert!(
        dns(a, "_mta-sts.drop.test", RecordType::TXT, false)
            .await
            .is_none(),
        "never answers"
    );
    assert_eq!(
        w.dns_queries("_mta-sts.drop.test", RecordType::TXT),
        1,
        "but counts the query"
    );
    let udp = dns(a, "_mta-sts.tc.test", RecordType::TXT, false)
        .await
        .expect("udp");
    assert!(udp.truncated() && udp.answers().is_empty());
    let tcp = dns(a, "_mta-sts.tc.test", RecordType::TXT, true)
        .await
        .expect("tcp");
    assert!(!tcp.truncated());
    assert_eq!(txt_strings(&tcp).len(), 1);
}

async fn https_get(w: &World, domain: &str, sni: bool) -> Result<String, String> {
    let addr = w.policy_addr(domain).expect("policy host");
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let config = client_config(w.ca().der(), sni);
    let mut tls = tls_verify(tcp, config, &format!("mta-sts.{domain}")).await?;
    let req = format!(
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.{domain}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(700), tls.read_to_end(&mut out)).await;
    match read {
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&out).into_owned()),
        Ok(Err(e)) if !out.is_empty() => {
            Ok(format!("{}<error {e}>", String::from_utf8_lossy(&out)))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timeout after {} bytes", out.len())),
    }
}

#[tokio::test]
async fn https_policy_host_serves_records_and_misbehaves_on_request() {
    let big = PolicyHost {
        pad_to: Some(70_000),
        ..PolicyHost::ok(POLICY)
    };
    let w = World::builder()
        .policy("good.test", PolicyHost::ok(POLICY))
        .policy(
            "redirect.test",
            PolicyHost {
                status: 301,
                location: Some("https://mta-sts.good.test/.well-known/mta-sts.txt".into()),
                ..PolicyHost::default()
            },
        )
        .policy(
            "noctype.test",
            PolicyHost {
                content_type: None,
                ..PolicyHost::ok(POLICY)
            },
        )
        .policy(
            "chunked.test",
            PolicyHost {
                chunked: true,
                ..big.clone()
            },
        )
        .policy("big.test", big)
        .policy(
            "hang.test",
            PolicyHost {
                hang: true,
                ..PolicyHost::ok(POLICY)
            },
        )
        .build()
        .await
        .expect("world");

    let ok = https_get(&w, "good.test", true).await.expect("fetch");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain\r\n") && ok.ends_with(POLICY),
        "{ok}"
    );
    let reqs = w.policy_requests("good.test");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].tls.sni.as_deref(), Some("mta-sts.good.test"));
    assert_eq!(reqs[0].path, "/.well-known/mta-sts.txt");
    assert_eq!(reqs[0].header("host"), Some("mta-sts.good.test"));

    let redirect = https_get(&w, "redirect.test", true).await.expect("fetch");
    assert!(
        redirect.starts_with("HTTP/1.1 301")
            && redirect.contains("Location: https://mta-sts.good.test/"),
        "{redirect}"
    );
    assert_eq!(
        w.policy_requests("good.test").len(),
        1,
        "the fake never follows anything itself"
    );

    let noctype = https_get(&w, "noctype.test", true).await.expect("fetch");
    assert!(
        !noctype.to_ascii_lowercase().contains("content-type"),
        "{noctype}"
    );

    let big = https_get(&w, "big.test", true).await.expect("fetch");
    assert!(big.contains("Content-Length: 70000\r\n"));
    let chunked = https_get(&w, "chunked.test", true).await.expect("fetch");
    assert!(
        chunked.contains("Transfer-Encoding: chunked\r\n") && !chunked.contains("Content-Length")
    );
    assert!(chunked.len() > 70_000 && chunked.ends_with("0\r\n\r\n"));

    let hang = https_get(&w, "hang.test", true).await;
    assert!(
        matches!(&hang, Err(e) if e.starts_with("timeout after 0 bytes")),
        "{hang:?}"
    );
}

#[tokio::test]
async fn https_certificate_kinds_fail_verification_as_named() {
    let mut b = World::builder();
    for (d, kind) in [
        ("valid.test", CertKind::Valid),
        ("wrongname.test", CertKind::WrongName),
        ("expired.test", CertKind::Expired),
        ("untrusted.test", CertKind::UntrustedCa),
        ("selfsigned.test", CertKind::SelfSigned),
        ("cnonly.test", CertKind::CnOnly),
    ] {
        b = b.policy(
            d,
            PolicyHost {
                cert: kind,
                ..PolicyHost::ok(POLICY)
            },
        );
    }
    let w = b.build().await.expect("world");
    assert!(https_get(&w, "valid.test", true).await.is_ok());
    for (d, expect) in [
        ("wrongname.test", "not valid for name"),
        ("expired.test", "expired"),
        ("untrusted.test", "UnknownIssuer"),
        ("selfsigned.test", "UnknownIssuer"),
        ("cnonly.test", "not valid for name"),
    ] {
        let e = https_get(&w, d, true).await.expect_err(d);
        assert!(e.contains(expect), "{d}: {e}");
        let mut seen = 0;
        for _ in 0..50 {
            seen = w.policy_failed_handshakes(d).len();
            if seen > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, 1, "{d}: the host saw the failed handshake");
    }
}

async fn smtp_starttls(w: &World, host: &str, sni: bool) -> (String, Result<(), String>) {
    let tcp = TcpStream::connect(w.smtp_addr(host).expect("smtp host"))
        .await
        .expect("connect");
    let mut s = BufReader::new(tcp);
    let banner = smtp_reply(&mut s).await;
    assert!(banner.starts_with("220 "), "{banner}");
    let ehlo = smtp_cmd(&mut s, "EHLO client.test").await;
    let go = smtp_cmd(&mut s, "STARTTLS").await;
    if !go.starts_with("220") {
        return (ehlo, Err(go));
    }
    let config = client_config(w.ca().der(), sni);
    let res = tls_verify(s.into_inner(), config, host)
        .await
        .map(|mut tls| {
            drop(tokio::spawn(async move {
                let _ = tls.write_all(b"QUIT\r\n").await;
                let mut sink = Vec::new();
                let _ = tls.read_to_end(&mut sink).await;
            }));
        });
    (ehlo, res)
}

async fn sessions_settle(w: &World, host: &str, n: usize) -> Vec<mtasts_testkit::SmtpSession> {
    for _ in 0..50 {
        let s = w.smtp_sessions(host);
        if s.len() >= n {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.smtp_sessions(host)
}

#[tokio::test]
async fn smtp_sni_only_server_is_valid_only_with_sni_and_records_it() {
    let w = World::builder()
        .smtp("mx1.hosting.test", SmtpHost::sni_only())
        .smtp("mx.plain.test", SmtpHost::valid())
        .build()
        .await
        .expect("world");
    let (ehlo, with_sni) = smtp_starttls(&w, "mx1.hosting.test", true).await;
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert!(with_sni.is_ok(), "{with_sni:?}");
    let (_, without) = smtp_starttls(&w, "mx1.hosting.test", false).await;
    assert!(
        matches!(&without, Err(e) if e.contains("not valid for name")),
        "{without:?}"
    );
    let sessions = sessions_settle(&w, "mx1.hosting.test", 2).await;
    let snis: Vec<Option<String>> = sessions
        .iter()
        .map(|s| s.tls.as_ref().and_then(|t| t.sni.clone()))
        .collect();
    assert!(
        snis.contains(&Some("mx1.hosting.test".into())) && snis.contains(&None),
        "{snis:?}"
    );
    let completed: Vec<&str> = sessions
        .iter()
        .filter(|s| s.tls.as_ref().is_some_and(|t| t.completed))
        .filter_map(|s| s.tls.as_ref()?.version.as_deref())
        .collect();
    assert!(completed.contains(&"TLSv1_3"), "{completed:?}");
    // A correct server works both ways.
    assert!(smtp_starttls(&w, "mx.plain.test", false).await.1.is_ok());
}

#[tokio::test]
async fn smtp_starttls_faults_and_delivery_records() {
    let w = World::builder()
        .smtp(
            "mx.none.test",
            SmtpHost {
                starttls: StartTls::NotOffered,
                ..SmtpHost::valid()
            },
        )
        .smtp(
            "mx.refused.test",
            SmtpHost {
                starttls: StartTls::Refused,
                ..SmtpHost::valid()
            },
        )
        .smtp(
            "mx.broken.test",
            SmtpHost {
                starttls: StartTls::Broken,
                ..SmtpHost::valid()
            },
        )
        .smtp(
            "mx.expired.test",
            SmtpHost {
                cert: CertKind::Expired,
                ..SmtpHost::valid()
            },
        )
        .smtp("mx.good.test", SmtpHost::valid())
        .build()
        .await
        .expect("world");
    let (ehlo, r) = smtp_starttls(&w, "mx.none.test", true).await;
    assert!(
        !ehlo.contains("STARTTLS") && matches!(&r, Err(e) if e.starts_with("502")),
        "{ehlo} {r:?}"
    );
    let (ehlo, r) = smtp_starttls(&w, "mx.refused.test", true).await;
    assert!(
        ehlo.contains("STARTTLS") && matches!(&r, Err(e) if e.starts_with("454")),
        "{r:?}"
    );
    assert!(smtp_starttls(&w, "mx.broken.test", true).await.1.is_err());
    let (_, r) = smtp_starttls(&w, "mx.expired.test", true).await;
    assert!(matches!(&r, Err(e) if e.contains("expired")), "{r:?}");

    // A plaintext delivery is stored with its (absent) TLS state.
    let tcp = TcpStream::connect(w.smtp_addr("mx.good.test").expect("host"))
        .await
        .expect("connect");
    let mut s = BufReader::new(tcp);
    smtp_reply(&mut s).await;
    smtp_cmd(&mut s, "EHLO c.test").await;
    assert!(
        smtp_cmd(&mut s, "MAIL FROM:<a@c.test>")
            .await
            .starts_with("250")
    );
    assert!(
        smtp_cmd(&mut s, "RCPT TO:<b@good.test>")
            .await
            .starts_with("250")
    );
    assert!(smtp_cmd(&mut s, "DATA").await.starts_with("354"));
    assert!(
        smtp_cmd(&mut s, "Subject: hi\r\n\r\n..dot\r\n.")
            .await
            .starts_with("250")
    );
    smtp_cmd(&mut s, "QUIT").await;
    let d = w.deliveries("mx.good.test");
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].from.as_str(), d[0].to.clone()),
        ("a@c.test", vec!["b@good.test".to_string()])
    );
    assert_eq!(d[0].data, b"Subject: hi\r\n\r\n.dot\r\n");
    assert!(d[0].tls.is_none());
}

#[tokio::test]
async fn thirty_domain_world_gives_each_host_its_own_address() {
    let mut b = World::builder();
    let names: Vec<(String, String)> = (0..30)
        .map(|i| (format!("d{i}.test"), format!("mx.d{i}.test")))
        .collect();
    for (d, mx) in &names {
        b = b.sts_domain(d, "1", "enforce", &[mx.as_str()]);
    }
    let t = Instant::now();
    let w = b.build().await.expect("world");
    // Printed, not asserted: timing limits do not belong in tests.
    println!(
        "30-domain world started in {:?} (build reports {:?})",
        t.elapsed(),
        w.started_in()
    );
    assert_eq!(w.hosts().len(), 60);
    let mut ips: Vec<_> = w.hosts().into_iter().map(|(_, ip)| ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 60, "every host has its own address");
}

#[tokio::test]
async fn control_commands_change_the_world_while_it_runs() {
    let w = World::builder()
        .smtp(
            "mx.fixme.test",
            SmtpHost {
                cert: CertKind::Expired,
                ..SmtpHost::valid()
            },
        )
        .policy(
            "fixme.test",
            PolicyHost {
                status: 500,
                ..PolicyHost::default()
            },
        )
        .build()
        .await
        .expect("world");
    let (_, r) = smtp_starttls(&w, "mx.fixme.test", true).await;
    assert!(r.is_err());
    w.control("smtp mx.fixme.test {cert = \"valid\"}")
        .expect("smtp");
    let (_, r) = smtp_starttls(&w, "mx.fixme.test", true).await;
    assert!(r.is_ok(), "{r:?}");
    w.control("policy fixme.test {body = \"version: STSv1\\nmode: none\\nmax_age: 1\\n\"}")
        .expect("policy");
    assert!(
        https_get(&w, "fixme.test", true)
            .await
            .expect("get")
            .ends_with("mode: none\nmax_age: 1\n")
    );
    w.control("txt _mta-sts.fixme.test v=STSv1; id=2;")
        .expect("txt");
    let m = dns(w.dns_addr(), "_mta-sts.fixme.test", RecordType::TXT, false)
        .await
        .expect("dns");
    assert_eq!(txt_strings(&m), vec![vec!["v=STSv1; id=2;".to_string()]]);
    w.control("mx fixme.test 10 mx.fixme.test, 20 mx2.fixme.test")
        .expect("mx");
    let m = dns(w.dns_addr(), "fixme.test", RecordType::MX, false)
        .await
        .expect("dns");
    assert_eq!(m.answers().len(), 2);
    assert!(w.control("smtp nosuch.test {}").is_err());
    assert!(w.control("bogus x y").is_err());
}

#[tokio::test]
async fn dnssec_simulation_sets_ad_for_secure_names_and_servfails_bogus_ones() {
    use hickory_proto::rr::RData;
    let w = World::builder()
        .dnssec_secure("dane.test")
        .mx("dane.test", 10, "mx1.dane.test")
        .smtp("mx1.dane.test", SmtpHost::valid())
        .tlsa_for("_25._tcp.mx1.dane.test", "mx1.dane.test")
        .mx("plain.test", 10, "mx1.dane.test")
        .tlsa("_25._tcp.mx1.bogus.test", 3, 1, 1, vec![0; 32])
        .dnssec_secure("bogus.test")
        .dns_fault("_25._tcp.mx1.bogus.test", DnsFault::Bogus)
        .build()
        .await
        .expect("world");
    let a = w.dns_addr();
    let m = dns_with(a, "dane.test", RecordType::MX, false, true)
        .await
        .expect("answer");
    assert!(m.authentic_data(), "secure name with DO: AD set");
    let m = dns_with(a, "dane.test", RecordType::MX, false, false)
        .await
        .expect("answer");
    assert!(!m.authentic_data(), "AD only when asked");
    let m = dns_with(a, "plain.test", RecordType::MX, false, true)
        .await
        .expect("answer");
    assert!(!m.authentic_data(), "insecure name");
    let m = dns_with(
        a,
        "_25._tcp.nothing.dane.test",
        RecordType::TLSA,
        false,
        true,
    )
    .await
    .expect("answer");
    assert!(
        m.authentic_data() && m.response_code() == ResponseCode::NXDomain,
        "authenticated denial"
    );
    let m = dns_with(a, "_25._tcp.mx1.bogus.test", RecordType::TLSA, false, true)
        .await
        .expect("answer");
    assert_eq!(
        m.response_code(),
        ResponseCode::ServFail,
        "bogus is SERVFAIL"
    );

    // The automatic TLSA record is SHA-256 of the SPKI inside the certificate the MX serves.
    let m = dns_with(a, "_25._tcp.mx1.dane.test", RecordType::TLSA, false, true)
        .await
        .expect("answer");
    let Some(RData::TLSA(t)) = m.answers().first().map(|r| r.data().clone()) else {
        panic!("no TLSA")
    };
    let tcp = TcpStream::connect(w.smtp_addr("mx1.dane.test").expect("addr"))
        .await
        .expect("connect");
    let mut s = BufReader::new(tcp);
    smtp_reply(&mut s).await;
    smtp_cmd(&mut s, "EHLO c.test").await;
    smtp_cmd(&mut s, "STARTTLS").await;
    let tls = tls_verify(
        s.into_inner(),
        client_config(w.ca().der(), true),
        "mx1.dane.test",
    )
    .await
    .expect("tls");
    let cert = tls.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).expect("certificate");
    let spki = parsed.tbs_certificate.subject_pki.raw;
    assert_eq!(
        (
            u8::from(t.cert_usage()),
            u8::from(t.selector()),
            u8::from(t.matching())
        ),
        (3, 1, 1),
        "DANE-EE, SPKI, SHA-256"
    );
    assert_eq!(
        t.cert_data(),
        ring::digest::digest(&ring::digest::SHA256, spki).as_ref(),
        "TLSA digest is SHA-256 of the served certificate's SubjectPublicKeyInfo"
    );
}

#[tokio::test]
async fn control_errors_say_what_is_wrong() {
    let w = World::builder()
        .sts_domain("enforce.test", "1", "enforce", &["mx1.enforce.test"])
        .build()
        .await
        .expect("world");
    let err = |line: &str| match w.control(line) {
        Ok(ok) => panic!("{line}: accepted: {ok}"),
        Err(e) => e.to_string(),
    };
    let e = err("bogus");
    assert!(e.contains("unknown command"), "{e}");
    let e = err("policy enforce.test {mode = \"testing\"}");
    assert!(
        e.contains("unknown field `mode`"),
        "the reason, not only a position: {e}"
    );
    assert!(
        e.contains("(column 2)"),
        "the column in the table as typed: {e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    let e = err("policy");
    assert!(e.contains("missing name"), "{e}");
}
