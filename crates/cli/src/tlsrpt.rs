//! `mtasts tlsrpt`: TLS reports for a receiving domain, taken in from files and summarised.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_core::errors::Chain;
use mtasts_tlsrpt::{DbSpec, Filter, ReportDb, Stored, receive, report_from_message};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct TlsrptArgs {
    #[command(subcommand)]
    command: TlsrptCommand,
}

#[derive(Debug, Subcommand)]
enum TlsrptCommand {
    /// Store reports from files: `.json` or `.json.gz` (gzip recognised by its content), or
    /// archived report messages `.eml` (the report part is taken; DKIM is not checked).
    ///
    /// Exit status: 0 every file stored or already stored, 1 some file unusable (the others
    /// are stored), 2 the store cannot be opened.
    Ingest {
        /// The report store, `sqlite:PATH`.
        #[arg(long)]
        db: DbSpec,
        /// Report files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Receive reports POSTed to `rua=https://…` (RFC 8460 §5.4): `201` once stored, `200`
    /// when already stored, `405`/`415`/`413`/`400` for what is not a report.
    ///
    /// HTTPS with `--cert` and `--key`; without them plain HTTP, for use behind a
    /// TLS-terminating proxy only. Stops on SIGTERM or SIGINT. Exit status: 0 stopped, 2 setup
    /// error.
    Receive {
        /// The report store, `sqlite:PATH`.
        #[arg(long)]
        db: DbSpec,
        /// Where to listen, `IP:PORT`.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Certificate chain (PEM) for HTTPS.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// Private key (PEM) for HTTPS.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
    },
    /// Successful and failed sessions per policy domain and policy type, failures by result
    /// type, MX host and sending MTA, reporting organisations and the policies senders saw.
    ///
    /// Exit status: 0 printed, 2 the store cannot be read.
    Summary {
        /// The report store, `sqlite:PATH`.
        #[arg(long)]
        db: DbSpec,
        /// Only this policy domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only reports whose range ends within this long before now, e.g. `30d`.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &TlsrptArgs) -> ExitCode {
    let result = match &args.command {
        TlsrptCommand::Ingest { db, files } => ingest(db, files),
        TlsrptCommand::Receive {
            db,
            listen,
            cert,
            key,
        } => receive_https(db, *listen, cert.as_deref().zip(key.as_deref())),
        TlsrptCommand::Summary {
            db,
            domain,
            since,
            json,
        } => summary(db, domain.as_deref(), *since, *json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtasts tlsrpt: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .with_context(|| format!("--cert {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "--cert {}: no PEM certificates",
        cert.display()
    );
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("--key {}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--cert and --key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

fn receive_https(
    db: &DbSpec,
    listen: std::net::SocketAddr,
    tls: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<ExitCode> {
    let acceptor = tls.map(|(c, k)| tls_acceptor(c, k)).transpose()?;
    let store = ReportDb::open(db).context("opening the report store")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr().context("local address")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        if acceptor.is_none() {
            eprintln!(
                "mtasts tlsrpt receive: plain HTTP (no --cert/--key): put it behind a TLS-terminating proxy"
            );
        }
        let server = tokio::spawn(mtasts_tlsrpt::serve(
            listener,
            acceptor,
            mtasts_tlsrpt::Intake::new(store),
            rx,
        ));
        eprintln!("mtasts tlsrpt receive ready on {scheme}://{local}/");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop.send(true);
        let _ = server.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn ingest(db: &DbSpec, files: &[PathBuf]) -> Result<ExitCode> {
    let mut store = ReportDb::open(db).context("opening the report store")?;
    let (mut stored, mut duplicates, mut refused) = (0, 0, 0);
    for file in files {
        let name = file.display();
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                println!("{name}: refused: {e}");
                refused += 1;
                continue;
            }
        };
        // An archived message: the report part, DKIM not checked (archives only).
        let is_mail = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
        let (bytes, mail) = if is_mail {
            match report_from_message(&bytes) {
                Ok(m) => (m.report.clone(), Some(m)),
                Err(e) => {
                    println!("{name}: refused: {}", Chain(&e));
                    refused += 1;
                    continue;
                }
            }
        } else {
            (bytes, None)
        };
        let received = match receive(&bytes) {
            Ok(r) => r,
            Err(e) => {
                println!("{name}: refused: {}", Chain(&e));
                refused += 1;
                continue;
            }
        };
        // META-01: the report's own fields win over the message's headers; say when they differ.
        if let Some(d) = mail.as_ref().and_then(|m| m.report_domain.as_ref())
            && !received
                .parsed
                .report
                .policies
                .iter()
                .any(|p| p.policy_domain.as_deref() == Some(d.as_str()))
        {
            println!(
                "  note: TLS-Report-Domain {d} names no policy domain of the report; the report wins (META-01)"
            );
        }
        let report = &received.parsed.report;
        match store
            .store(
                &received,
                &format!("file:{name}"),
                mtasts_tlsrpt::unix_now(),
            )
            .with_context(|| format!("storing {name}"))?
        {
            Stored::New(_) => {
                stored += 1;
                println!(
                    "{name}: stored report {} from {} ({} warning(s))",
                    report.report_id,
                    report.organization,
                    received.parsed.warnings.len()
                );
            }
            Stored::Duplicate => {
                duplicates += 1;
                println!(
                    "{name}: duplicate of report {} from {}, already stored",
                    report.report_id, report.organization
                );
            }
        }
        for w in &received.parsed.warnings {
            println!("  warning: {w}");
        }
    }
    println!("{stored} stored, {duplicates} duplicate(s), {refused} refused");
    Ok(if refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Serialize)]
struct SummaryJson {
    domains: Vec<DomainJson>,
}

#[derive(Debug, Serialize)]
struct DomainJson {
    policy_domain: Option<String>,
    policy_type: String,
    successful: u64,
    failed: u64,
    failures_by_type: std::collections::BTreeMap<String, u64>,
    failures_by_mx: std::collections::BTreeMap<String, u64>,
    failures_by_sender: std::collections::BTreeMap<String, u64>,
    reports: u64,
    organizations: std::collections::BTreeMap<String, u64>,
    policy_strings: Vec<PolicyStringJson>,
}

#[derive(Debug, Serialize)]
struct PolicyStringJson {
    lines: Vec<String>,
    reports: u64,
}

fn summary(
    db: &DbSpec,
    domain: Option<&str>,
    since: Option<Duration>,
    json: bool,
) -> Result<ExitCode> {
    let store = ReportDb::open(db).context("opening the report store")?;
    let filter = Filter {
        domain: domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
        since: since.map(|s| mtasts_tlsrpt::unix_now().saturating_sub(s.as_secs())),
    };
    let totals = store.summary(&filter).context("reading the report store")?;
    let domains: Vec<DomainJson> = totals
        .into_iter()
        .map(|((policy_domain, policy_type), s)| DomainJson {
            policy_domain,
            policy_type,
            successful: s.successful,
            failed: s.failed,
            failures_by_type: s.failures_by_type,
            failures_by_mx: s.failures_by_mx,
            failures_by_sender: s.failures_by_sender,
            reports: s.reports,
            organizations: s.organizations,
            policy_strings: s
                .policy_strings
                .into_iter()
                .map(|(text, reports)| PolicyStringJson {
                    lines: text.split('\n').map(str::to_string).collect(),
                    reports,
                })
                .collect(),
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&SummaryJson { domains }).context("encoding JSON")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if domains.is_empty() {
        println!("no reports");
    }
    for d in &domains {
        let total = d.successful + d.failed;
        let rate = if total == 0 {
            0.0
        } else {
            d.failed as f64 * 100.0 / total as f64
        };
        println!(
            "{} ({}): {} successful, {} failed ({rate:.1}%), {} report(s) from {}",
            d.policy_domain.as_deref().unwrap_or("(no policy-domain)"),
            d.policy_type,
            d.successful,
            d.failed,
            d.reports,
            d.organizations
                .iter()
                .map(|(o, n)| format!("{} ({n})", if o.is_empty() { "(unnamed)" } else { o }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (t, n) in &d.failures_by_type {
            println!("  {t}: {n}");
        }
        for (mx, n) in &d.failures_by_mx {
            println!("  mx {mx}: {n} failed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
