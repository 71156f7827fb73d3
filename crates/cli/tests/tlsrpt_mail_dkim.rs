//! `mtasts tlsrpt ingest` with one report message on stdin, as an MTA's pipe delivers it: the
//! DKIM signature of the reporting domain is checked against keys the lab DNS serves
//! (RCV-01), and the exit status is the sysexits code the MTA acts on.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::process::{Output, Stdio};

use common::ReportDir as Dir;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mtasts_testkit::World;
use mtasts_testkit::dns::DnsFault;
use tokio::io::AsyncWriteExt;

const REPORT: &str = r#"{"organization-name":"Reporter Inc.","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"},"contact-info":"tlsrpt@reporter.example","report-id":"REPORT-ID","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],"policy-domain":"example.com"},"summary":{"total-successful-session-count":90,"total-failure-session-count":10},"failure-details":[{"result-type":"certificate-expired","receiving-mx-hostname":"mx.example.com","failed-session-count":10}]}]}"#;

const SIGNED_HEADERS: [&str; 6] = [
    "From",
    "Subject",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
    "MIME-Version",
    "Content-Type",
];

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// An RFC 8460 §5.3 report message from `submitter` carrying `report` (gzip'd, base64).
fn message(submitter: &str, report: &str) -> String {
    let part = base64(&gzip(report.as_bytes()))
        .as_bytes()
        .chunks(76)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n");
    format!(
        "From: tlsrpt@{submitter}\r\nTo: tlsrpt@example.com\r\n\
Subject: Report Domain: example.com Submitter: {submitter} Report-ID: <REPORT-ID@{submitter}>\r\n\
TLS-Report-Domain: example.com\r\nTLS-Report-Submitter: {submitter}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report from {submitter}\r\n\
--b1\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"{submitter}!example.com!1764460800!1764547199.json.gz\"\r\n\r\n\
{part}\r\n--b1--\r\n"
    )
}

fn rsa_key() -> RsaKey<Sha256> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dkim-test-rsa.key.pem"
    );
    let der = PrivateKeyDer::from_pem_file(pem).expect("fixture key");
    RsaKey::<Sha256>::from_pkcs8_der(der.secret_der()).expect("RSA key")
}

fn rsa_public() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dkim-test-rsa.p.txt"
    ))
    .expect("fixture public key")
    .trim()
    .to_string()
}

/// `raw` with a DKIM-Signature of `domain`, selector `selector`, by the RSA fixture key.
fn sign_rsa(raw: &str, domain: &str, selector: &str, body_length: bool) -> String {
    let sig = DkimSigner::from_key(rsa_key())
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .body_length(body_length)
        .sign(raw.as_bytes())
        .expect("sign");
    format!("{}{raw}", sig.to_header())
}

struct Lab {
    world: World,
    /// The Ed25519 key (PKCS#8), made for this run.
    ed25519: Vec<u8>,
}

async fn lab() -> Lab {
    let ed25519 = Ed25519Key::generate_pkcs8().expect("ed25519");
    let public = Ed25519Key::from_pkcs8_der(&ed25519)
        .expect("ed25519")
        .public_key();
    // The RSA key declares the TLS-RPT service type (MAIL-04); the Ed25519 one does not.
    let rsa_txt = format!("v=DKIM1; k=rsa; s=tlsrpt; p={}", rsa_public());
    let ed_txt = format!("v=DKIM1; k=ed25519; p={}", base64(&public));
    let world = World::builder()
        .txt("rsa._domainkey.reporter.example", &rsa_txt)
        .txt("ed._domainkey.reporter.example", &ed_txt)
        .txt("rsa._domainkey.other.example", &rsa_txt)
        .dns_fault("down._domainkey.reporter.example", DnsFault::ServFail)
        .build()
        .await
        .expect("world");
    Lab { world, ed25519 }
}

async fn ingest(lab: &Lab, db: &str, raw: &[u8]) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "ingest", "--db", db, "--dns-timeout", "2"])
        .args(["--nameserver", &lab.world.dns_addr().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mtasts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(raw).await.expect("write message");
    drop(stdin);
    child.wait_with_output().await.expect("wait")
}

fn summary(db: &str) -> serde_json::Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "summary", "--db", db, "--json"])
        .output()
        .expect("summary");
    assert_eq!(o.status.code(), Some(0));
    serde_json::from_slice(&o.stdout).expect("summary JSON")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_reports_are_stored_and_duplicates_once() {
    let lab = lab().await;
    let dir = Dir::new("valid");
    let db = dir.db();
    let rsa = sign_rsa(
        &message("reporter.example", REPORT),
        "reporter.example",
        "rsa",
        false,
    );
    let o = ingest(&lab, &db, rsa.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("stored report REPORT-ID from Reporter Inc. (DKIM d=reporter.example)"),
        "{}",
        text(&o)
    );
    // Ed25519 (RFC 8463), a second report.
    let raw = message("reporter.example", &REPORT.replace("REPORT-ID", "REPORT-2"));
    let sig = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&lab.ed25519).expect("ed25519"))
        .domain("reporter.example")
        .selector("ed")
        .headers(SIGNED_HEADERS)
        .sign(raw.as_bytes())
        .expect("sign");
    let ed = format!("{}{raw}", sig.to_header());
    let o = ingest(&lab, &db, ed.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("stored report REPORT-2"), "{}", text(&o));
    // The same message again: stored once, and the MTA is told it was delivered.
    let o = ingest(&lab, &db, rsa.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("duplicate of report REPORT-ID"),
        "{}",
        text(&o)
    );
    let v = summary(&db);
    assert_eq!(v["domains"][0]["policy_domain"], "example.com");
    assert_eq!(v["domains"][0]["reports"], 2);
    assert_eq!(v["domains"][0]["successful"], 180);
    assert_eq!(v["domains"][0]["failed"], 20);
    assert_eq!(v["ignored_messages"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_and_foreign_signatures_are_kept_aside_not_stored() {
    let lab = lab().await;
    let dir = Dir::new("invalid");
    let db = dir.db();
    let raw = message("reporter.example", REPORT);
    // Missing signature.
    let o = ingest(&lab, &db, raw.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("ignored (kept aside): RCV-01: no DKIM-Signature header"),
        "{}",
        text(&o)
    );
    // A valid signature whose body was changed afterwards (a forged count).
    let tampered = sign_rsa(&raw, "reporter.example", "rsa", false)
        .replace("This is an aggregate", "This is a forged");
    let o = ingest(&lab, &db, tampered.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(
            "no valid DKIM signature of reporter.example: d=reporter.example neutral (Calculated body hash does not match"
        ),
        "{}",
        text(&o)
    );
    // Valid, but by another domain than the reporting one.
    let foreign = sign_rsa(&raw, "other.example", "rsa", false);
    let o = ingest(&lab, &db, foreign.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("d=other.example pass (not the reporting domain)"),
        "{}",
        text(&o)
    );
    // A selector with no key.
    let nokey = sign_rsa(&raw, "reporter.example", "gone", false);
    let o = ingest(&lab, &db, nokey.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("no valid DKIM signature"), "{}", text(&o));
    // `l=`: valid, but for part of the body only (MAIL-04).
    let partial = sign_rsa(&raw, "reporter.example", "rsa", true);
    let o = ingest(&lab, &db, partial.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("Insecure 'l=' tag found in Signature"),
        "{}",
        text(&o)
    );
    let v = summary(&db);
    assert_eq!(v["domains"].as_array().map(Vec::len), Some(0), "{v}");
    let ignored = v["ignored_messages"].as_array().expect("ignored list");
    assert_eq!(ignored.len(), 5, "{v}");
    assert!(
        ignored
            .iter()
            .all(|i| i["reporting_domain"] == "reporter.example"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_or_store_failure_asks_the_mta_to_retry_and_bad_signed_data_bounces() {
    let lab = lab().await;
    let dir = Dir::new("retry");
    let db = dir.db();
    let raw = message("reporter.example", REPORT);
    // The key lookup fails (SERVFAIL): nothing decided, EX_TEMPFAIL.
    let down = sign_rsa(&raw, "reporter.example", "down", false);
    let o = ingest(&lab, &db, down.as_bytes()).await;
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    assert!(
        text(&o).contains("try again later: DKIM key of reporter.example"),
        "{}",
        text(&o)
    );
    // The store cannot be opened: EX_TEMPFAIL, the MTA keeps the message.
    let signed = sign_rsa(&raw, "reporter.example", "rsa", false);
    let nowhere = format!("sqlite:{}", dir.0.join("missing/dir/reports.db").display());
    let o = ingest(&lab, &nowhere, signed.as_bytes()).await;
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    // Signed by the reporting domain, but the report is broken: EX_DATAERR, so the reporter
    // (who is authenticated) learns; the message is kept aside.
    let broken = sign_rsa(
        &message("reporter.example", "{\"organization-name\": 3}"),
        "reporter.example",
        "rsa",
        false,
    );
    let o = ingest(&lab, &db, broken.as_bytes()).await;
    assert_eq!(o.status.code(), Some(65), "{}", text(&o));
    assert!(
        text(&o).contains("refused: unusable report"),
        "{}",
        text(&o)
    );
    let v = summary(&db);
    assert_eq!(v["domains"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(
        v["ignored_messages"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    // Over the size bound: bounced, not kept.
    let huge = vec![b'a'; 15 * 1024 * 1024 + 10];
    let o = ingest(&lab, &db, &huge).await;
    assert_eq!(o.status.code(), Some(65), "{}", text(&o));
    // After the DNS mends, the retried message is stored.
    lab.world.set_txt(
        "down._domainkey.reporter.example",
        Some(&format!("v=DKIM1; k=rsa; p={}", rsa_public())),
    );
    let o = ingest(&lab, &db, down.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(summary(&db)["domains"][0]["reports"], 1);
}

/// The same pipe into a real PostgreSQL (the store is used outside the async DNS part).
#[cfg_attr(
    not(mtasts_run_postgres),
    ignore = "needs PostgreSQL's server programs (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_unsigned_messages_into_postgres() {
    let lab = lab().await;
    let server = mtasts_testkit::PostgresServer::start().expect("PostgreSQL");
    let db = server.url();
    let raw = message("reporter.example", REPORT);
    let o = ingest(
        &lab,
        &db,
        sign_rsa(&raw, "reporter.example", "rsa", false).as_bytes(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("stored report REPORT-ID"), "{}", text(&o));
    let o = ingest(&lab, &db, raw.as_bytes()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("ignored (kept aside)"), "{}", text(&o));
    let v = summary(&db);
    assert_eq!(v["domains"][0]["successful"], 90);
    assert_eq!(
        v["ignored_messages"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
}
