//! `mtasts-bench tlsrpt-intake`: gzip'd TLS reports POSTed over HTTPS to the intake
//! (`mtasts tlsrpt receive`'s code, in process, SQLite store in a temporary file), N
//! keep-alive connections each sending one report after another; every report distinct, so
//! each is parsed and stored. Bounded by count and time.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::Row;

/// A report like the ones large senders mail daily: two policies, a few failure details.
fn report(i: u64) -> Vec<u8> {
    let json = format!(
        r#"{{"organization-name":"Bench Inc.","contact-info":"tlsrpt@bench.example","report-id":"bench-{i}",
"date-range":{{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"}},
"policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx1.d{d}.example","mx: mx2.d{d}.example","max_age: 604800"],
"policy-domain":"d{d}.example","mx-host":["mx1.d{d}.example","mx2.d{d}.example"]}},
"summary":{{"total-successful-session-count":{ok},"total-failure-session-count":12}},
"failure-details":[{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.{a}","receiving-mx-hostname":"mx1.d{d}.example","failed-session-count":7}},
{{"result-type":"starttls-not-supported","sending-mta-ip":"192.0.2.{b}","receiving-mx-hostname":"mx2.d{d}.example","receiving-ip":"198.51.100.7","failed-session-count":5}}]}},
{{"policy":{{"policy-type":"no-policy-found","policy-domain":"other{d}.example"}},"summary":{{"total-successful-session-count":3,"total-failure-session-count":0}}}}]}}"#,
        d = i % 500,
        ok = 1000 + i % 97,
        a = i % 250 + 1,
        b = (i * 7) % 250 + 1,
    );
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(json.as_bytes());
    e.finish().unwrap_or_default()
}

pub async fn run(reports: u64, conns: usize, seconds: f64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("mtasts-bench-intake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).context("temporary directory")?;
    let result = measure(&dir, reports, conns, seconds).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(dir: &std::path::Path, reports: u64, conns: usize, seconds: f64) -> Result<()> {
    let key = rcgen::KeyPair::generate().context("key")?;
    let cert = rcgen::CertificateParams::new(vec!["reports.bench.example".to_string()])
        .context("params")?
        .self_signed(&key)
        .context("cert")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let der_key = rustls_pki_types::PrivateKeyDer::Pkcs8(
        rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .context("server config")?;
    let db_path = dir.join("reports.db");
    let db = mtasts_tlsrpt::ReportDb::open(&mtasts_tlsrpt::DbSpec::Sqlite(db_path.clone()))
        .context("report store")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind")?;
    let addr = listener.local_addr().context("addr")?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let server_task = tokio::spawn(mtasts_tlsrpt::serve(
        listener,
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))),
        mtasts_tlsrpt::Intake::new(db),
        rx,
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).context("root")?;
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("versions")?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    // Prepared before the clock starts: the sender's work is not the intake's.
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..reports).map(|i| Bytes::from(report(i))).collect());
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::try_from_secs_f64(seconds).context("--seconds")?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, bodies, next) = (client.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let name = rustls_pki_types::ServerName::try_from("reports.bench.example")?;
            let tls = tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            let driver = tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut created = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(usize::try_from(i).unwrap_or(usize::MAX)) else {
                    break;
                };
                if Instant::now() >= deadline {
                    break;
                }
                let req = http::Request::post("/tlsrpt")
                    .header(http::header::HOST, "reports.bench.example")
                    .header(http::header::CONTENT_TYPE, "application/tlsrpt+gzip")
                    .body(Full::new(body.clone()))?;
                let t = Instant::now();
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let _ = resp.into_body().collect().await?;
                latencies.push(t.elapsed());
                if status == http::StatusCode::CREATED {
                    created += 1;
                } else {
                    anyhow::bail!("report {i}: {status}");
                }
            }
            driver.abort();
            anyhow::Ok((created, latencies))
        }));
    }
    let mut created = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (c, l) = t.await.context("client task")??;
        created += c;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = server_task.await;
    if created == 0 {
        bail!("no report was stored");
    }
    let mut check = mtasts_tlsrpt::ReportDb::open(&mtasts_tlsrpt::DbSpec::Sqlite(db_path))
        .context("report store")?;
    let stored = check.count().context("count")?;
    if stored != created {
        bail!("{created} answered 201 but {stored} stored");
    }
    latencies.sort();
    let pct = |q: f64| {
        let idx = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(idx).map(|d| d.as_secs_f64() * 1e6)
    };
    let mut detail = BTreeMap::new();
    detail.insert("conns".to_string(), conns.to_string());
    detail.insert("reports".to_string(), created.to_string());
    detail.insert(
        "gzip_bytes".to_string(),
        bodies.first().map_or(0, Bytes::len).to_string(),
    );
    detail.insert("store".to_string(), "sqlite".to_string());
    let row = Row {
        system: "mtasts".into(),
        scenario: format!("tlsrpt HTTPS intake, gzip, {conns} conns"),
        value: created as f64 / elapsed,
        unit: "reports/s".into(),
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        detail,
    };
    println!("{}", serde_json::to_string(&row).context("row")?);
    Ok(())
}
