//! `mtasts scan`: `check` for many domains at bounded concurrency, each within a time limit,
//! one [`Row`] per domain as it completes, stoppable at any moment with what is done kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mtasts_core::DomainName;
use serde::Serialize;

use crate::observe::Checker;
use crate::report::Report;

/// One scan row (CSV columns in this order).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    /// The domain, normalised (as listed when it is not a valid name).
    pub domain: String,
    /// The mode in force, `none-published`, or `unknown` when the domain was not checked.
    pub mode: String,
    /// The worst finding's level.
    pub verdict: String,
    /// Would a compliant sender deliver? `null` (CSV: `unknown`) when no policy is in force or
    /// the check did not get that far; the same field as `check --json`.
    pub deliverable: Option<bool>,
    /// The code of the first error, if any.
    pub error_class: String,
    /// Number of MX hosts.
    pub mx_count: usize,
    /// MX hosts valid only with SNI.
    pub sni_only_count: usize,
    /// Whether any MX host has DNSSEC-secure TLSA records.
    pub dane: bool,
    /// Whether a usable TLS-RPT record exists.
    pub tlsrpt: bool,
}

/// The CSV header line.
pub const CSV_HEADER: &str =
    "domain,mode,verdict,deliverable,error_class,mx_count,sni_only_count,dane,tlsrpt";

impl Row {
    /// The row of a finished check.
    pub fn from_report(r: &Report) -> Self {
        Self {
            domain: r.domain.clone(),
            mode: r.mode.clone().unwrap_or_else(|| "none-published".into()),
            verdict: format!("{:?}", r.verdict).to_ascii_lowercase(),
            deliverable: r.deliverable,
            error_class: r
                .error_class()
                .map(|c| c.as_str())
                .unwrap_or("")
                .to_string(),
            mx_count: r.mx.len(),
            sni_only_count: r.sni_only_count(),
            dane: r.dane_present(),
            tlsrpt: !r.tlsrpt.rua.is_empty(),
        }
    }

    /// The row of a domain that could not be checked (`timeout`, `bad-domain`).
    pub fn failed(domain: &str, class: &str) -> Self {
        Self {
            domain: domain.to_string(),
            mode: "unknown".into(),
            verdict: "error".into(),
            deliverable: None,
            error_class: class.to_string(),
            mx_count: 0,
            sni_only_count: 0,
            dane: false,
            tlsrpt: false,
        }
    }

    /// The CSV line.
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{}",
            self.domain,
            self.mode,
            self.verdict,
            self.deliverable.map_or("unknown".into(), |d| d.to_string()),
            self.error_class,
            self.mx_count,
            self.sni_only_count,
            self.dane,
            self.tlsrpt
        )
    }
}

/// How hard to scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanSettings {
    /// Domains checked at once.
    pub concurrency: usize,
    /// Time limit of one domain.
    pub per_domain: Duration,
}

/// How a scan ended.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Every row, in completion order.
    pub rows: Vec<Row>,
    /// `stop` fired: checks in flight were cancelled and the rest not started.
    pub interrupted: bool,
    /// Checks that panicked (a bug), with the panic's text; their domains have no row.
    pub panicked: Vec<String>,
}

/// Checks `domains` at most `settings.concurrency` at a time; hands each row to `on_row` as
/// it completes. When `stop` completes, checks in flight are cancelled and the scan returns
/// what it has.
pub async fn scan(
    checker: Arc<Checker>,
    domains: Vec<String>,
    settings: ScanSettings,
    mut on_row: impl FnMut(&Row),
    stop: impl Future<Output = ()>,
) -> ScanOutcome {
    let concurrency = settings.concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = domains.into_iter();
    let mut out = ScanOutcome::default();
    tokio::pin!(stop);
    loop {
        while !out.interrupted && tasks.len() < concurrency {
            let Some(d) = queue.next() else { break };
            let checker = checker.clone();
            tasks.spawn(async move {
                match DomainName::parse(&d) {
                    Ok(domain) => {
                        match tokio::time::timeout(settings.per_domain, checker.check(&domain))
                            .await
                        {
                            Ok(report) => Row::from_report(&report),
                            Err(_) => Row::failed(&d, "timeout"),
                        }
                    }
                    Err(_) => Row::failed(&d, "bad-domain"),
                }
            });
        }
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(row)) => {
                    on_row(&row);
                    out.rows.push(row);
                }
                // Cancelled by the stop below; a panic would be a bug, and is reported.
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => out.panicked.push(e.to_string()),
                None => break,
            },
            () = &mut stop, if !out.interrupted => {
                out.interrupted = true;
                tasks.abort_all();
            }
        }
    }
    out
}

/// The summary tables (Markdown) of a scan.
pub fn summary(rows: &[Row]) -> String {
    let by = |f: fn(&Row) -> String| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for r in rows {
            *m.entry(f(r)).or_default() += 1;
        }
        m
    };
    let mut out = String::new();
    let _ = writeln!(out, "\n{} domains", rows.len());
    let _ = writeln!(out, "| verdict | count |\n|---|---|");
    for (k, v) in by(|r| r.verdict.clone()) {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out, "| mode | count |\n|---|---|");
    for (k, v) in by(|r| r.mode.clone()) {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out, "| first error | count |\n|---|---|");
    for (k, v) in by(|r| r.error_class.clone())
        .into_iter()
        .filter(|(k, _)| !k.is_empty())
    {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(
        out,
        "SNI-only MX hosts: {}; with DANE: {}; with TLS-RPT: {}",
        rows.iter().map(|r| r.sni_only_count).sum::<usize>(),
        rows.iter().filter(|r| r.dane).count(),
        rows.iter().filter(|r| r.tlsrpt).count()
    );
    out
}
