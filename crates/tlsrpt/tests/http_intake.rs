//! The HTTPS intake over real sockets (RFC 8460 §5.4): gzip and JSON reports stored and
//! answered 201, a duplicate 200, and refusals with the status that tells a sender what to do:
//! wrong method 405, wrong media type 415, over the size or a gzip bomb 413, junk 400. Each
//! case checks the store, not only the status.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::io::Write;
use std::sync::Arc;

use mtasts_tlsrpt::{DbSpec, Intake, ReportDb, serve};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REPORT: &str = r#"{"organization-name":"Example Inc.","contact-info":"tlsrpt@example.net",
"report-id":"r-1","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-12-01T00:00:00Z"},
"policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},
"summary":{"total-successful-session-count":9,"total-failure-session-count":1}}]}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

struct Running {
    addr: std::net::SocketAddr,
    db_path: std::path::PathBuf,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.db_path);
    }
}

async fn start(tag: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Running {
    let db_path =
        std::env::temp_dir().join(format!("mtasts-intake-{tag}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db_path);
    let db = ReportDb::open(&DbSpec::Sqlite(db_path.clone())).expect("db");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(listener, tls, Intake::new(db), rx));
    Running {
        addr,
        db_path,
        _stop: stop,
    }
}

fn stored(r: &Running) -> u64 {
    ReportDb::open(&DbSpec::Sqlite(r.db_path.clone()))
        .expect("db")
        .count()
        .expect("count")
}

/// Sends one request; the status code. With `declared_length`, only the head is sent.
async fn post<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    content_type: Option<&str>,
    body: &[u8],
    declared_length: Option<usize>,
) -> u16 {
    let mut head = format!(
        "{method} /tlsrpt HTTP/1.1\r\nHost: mta-sts.example.com\r\nConnection: close\r\nContent-Length: {}\r\n",
        declared_length.unwrap_or(body.len())
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write head");
    if declared_length.is_none() {
        s.write_all(body).await.expect("write body");
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"))
}

async fn plain(r: &Running) -> TcpStream {
    TcpStream::connect(r.addr).await.expect("connect")
}

const GZ: Option<&str> = Some("application/tlsrpt+gzip");
const JSON: Option<&str> = Some("application/tlsrpt+json");

#[tokio::test]
async fn reports_are_stored_once_and_refusals_say_why() {
    let r = start("plain", None).await;
    let gz = gzip(REPORT.as_bytes());
    assert_eq!(post(plain(&r).await, "POST", GZ, &gz, None).await, 201);
    assert_eq!(stored(&r), 1);
    assert_eq!(
        post(plain(&r).await, "POST", JSON, REPORT.as_bytes(), None).await,
        200,
        "the same report again: already stored"
    );
    let other = REPORT.replace("\"r-1\"", "\"r-2\"");
    let odd_case = Some("Application/TLSRPT+JSON; charset=utf-8");
    assert_eq!(
        post(plain(&r).await, "POST", odd_case, other.as_bytes(), None).await,
        201
    );
    assert_eq!(stored(&r), 2);
    assert_eq!(post(plain(&r).await, "GET", None, b"", None).await, 405);
    let wrong = Some("application/json");
    assert_eq!(
        post(plain(&r).await, "POST", wrong, REPORT.as_bytes(), None).await,
        415
    );
    assert_eq!(
        post(plain(&r).await, "POST", None, REPORT.as_bytes(), None).await,
        415
    );
    // Declared over the bound: refused before the body is read.
    assert_eq!(
        post(plain(&r).await, "POST", GZ, b"", Some(16 * 1024 * 1024)).await,
        413
    );
    let bomb = gzip(&vec![b' '; 21 * 1024 * 1024]);
    assert_eq!(post(plain(&r).await, "POST", GZ, &bomb, None).await, 413);
    assert_eq!(
        post(
            plain(&r).await,
            "POST",
            JSON,
            b"{\"not\": \"a report\"}",
            None
        )
        .await,
        400
    );
    assert_eq!(stored(&r), 2, "nothing refused was stored");
}

#[tokio::test]
async fn over_https() {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["mta-sts.example.com".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let der_key = rustls_pki_types::PrivateKeyDer::Pkcs8(
        rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .expect("server config");
    let r = start(
        "tls",
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))),
    )
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(
            rustls_pki_types::ServerName::try_from("mta-sts.example.com").expect("name"),
            plain(&r).await,
        )
        .await
        .expect("handshake");
    assert_eq!(
        post(tls, "POST", GZ, &gzip(REPORT.as_bytes()), None).await,
        201
    );
    assert_eq!(stored(&r), 1);
}
