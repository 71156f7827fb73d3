//! `mtasts tlsrpt`: TLS reports for a receiving domain, taken in from files and summarised.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_core::errors::Chain;
use mtasts_tlsrpt::{DbSpec, Filter, ReportDb, Stored, receive};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct TlsrptArgs {
    #[command(subcommand)]
    command: TlsrptCommand,
}

#[derive(Debug, Subcommand)]
enum TlsrptCommand {
    /// Store reports from files: `.json` or `.json.gz` (gzip recognised by its content).
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
        let received = match receive(&bytes) {
            Ok(r) => r,
            Err(e) => {
                println!("{name}: refused: {}", Chain(&e));
                refused += 1;
                continue;
            }
        };
        let report = &received.parsed.report;
        match store
            .store(&received, &format!("file:{name}"), now())
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
        since: since.map(|s| now().saturating_sub(s.as_secs())),
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
