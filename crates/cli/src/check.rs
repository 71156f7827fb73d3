//! `mtasts check DOMAIN` and `mtasts scan FILE`.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mtasts_check::scan::{self, CSV_HEADER, ScanSettings};
use mtasts_check::{CheckSettings, Checker, render};
use mtasts_core::postfix::policy_domain_from_key;

/// Flags shared by check and scan.
#[derive(Debug, Clone, Args)]
pub struct CheckNet {
    /// DNS server IP:PORT (default: /etc/resolv.conf). DANE status needs a validating one.
    #[arg(long, value_name = "IP:PORT")]
    nameserver: Option<std::net::SocketAddr>,
    /// Extra trusted CA certificates (PEM), on top of the web PKI roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Time limit per network step, in seconds (more than 0, at most 120).
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = crate::net::seconds_up_to::<120>)]
    timeout: Duration,
    /// Do not probe MX hosts on port 25 (where outbound port 25 is blocked).
    #[arg(long)]
    no_smtp: bool,
    /// Testing only: connect to other addresses than DNS says (a lab ports.txt).
    #[arg(long, value_name = "FILE", hide = true)]
    port_map: Option<PathBuf>,
    /// Validate DNSSEC in mtasts itself instead of trusting the resolver's AD bit, for hosts
    /// without a validating resolver (the resolver must pass DNSSEC records on). Not the view
    /// the MTA uses: reports say so.
    #[arg(long)]
    validate: bool,
    /// With --validate: the trust anchor, a file of DNSKEY records (default: IANA's root keys).
    #[arg(long, value_name = "FILE", requires = "validate")]
    trust_anchor: Option<PathBuf>,
}

impl CheckNet {
    fn checker(&self) -> Result<Checker> {
        let connect_map = match &self.port_map {
            Some(p) => crate::net::read_port_map(p)?,
            None => Default::default(),
        };
        let checker = Checker::new(CheckSettings {
            nameserver: self.nameserver,
            ca_file: self.ca_file.clone(),
            timeout: self.timeout,
            smtp: !self.no_smtp,
            connect_map,
        })
        .map_err(anyhow::Error::new)?;
        if !self.validate {
            return Ok(checker);
        }
        let validator = mtasts_resolver::validate::Validator::new(
            self.nameserver,
            self.trust_anchor.as_deref(),
            self.timeout,
        )
        .context("setting up DNSSEC validation (--validate)")?;
        Ok(checker.with_validator(validator))
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The domain to diagnose, in any form Postfix sends as a key (`host`, `[host]:port`, …).
    domain: String,
    #[command(flatten)]
    net: CheckNet,
    /// Print the report as JSON (schema in README.md).
    #[arg(long)]
    json: bool,
}

pub fn run_check(args: &CheckArgs) -> ExitCode {
    match check(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mtasts check: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn check(args: &CheckArgs) -> Result<u8> {
    let domain = policy_domain_from_key(&args.domain)
        .map_err(anyhow::Error::new)
        .context("the domain to check")?;
    let checker = args.net.checker()?;
    let report = runtime()?.block_on(checker.check(&domain));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("JSON")?);
    } else {
        print!(
            "{}",
            render::text(&report, colour(std::io::stdout().is_terminal()))
        );
    }
    Ok(report.exit_code())
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// File with one domain per line (`#` comments allowed); `-` reads standard input.
    file: PathBuf,
    #[command(flatten)]
    net: CheckNet,
    /// Domains checked at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Time limit per domain, in seconds (more than 0, at most 3600).
    #[arg(long, default_value = "120", value_name = "SECS", value_parser = crate::net::seconds_up_to::<3600>)]
    domain_timeout: Duration,
    /// Row format.
    #[arg(long, value_enum, default_value_t = ScanFormat::Csv)]
    format: ScanFormat,
    /// Write rows here (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Skip domains already in --output and append to it.
    #[arg(long, requires = "output")]
    resume: bool,
}

/// How `scan` writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScanFormat {
    /// Comma-separated, with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Exit status of a scan stopped by Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

pub fn run_scan(args: &ScanArgs) -> ExitCode {
    match scan(args) {
        Ok(Finished::All) => ExitCode::SUCCESS,
        Ok(Finished::Interrupted) => ExitCode::from(INTERRUPTED),
        Err(e) => {
            eprintln!("mtasts scan: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// How a scan ended.
enum Finished {
    All,
    Interrupted,
}

/// The domain list: each line through the key parser `check` and the daemon use (so
/// `ENFORCE.test.`, `[enforce.test]:25` and `bücher.test` name their normalised domain), each
/// domain once, in first-seen order. A line that names no domain stays as written (its row
/// says `bad-domain`).
fn read_domains(file: &PathBuf) -> Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| file.display().to_string())?,
        ))
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for line in reader.lines() {
        let line = line.context("reading the domain list")?;
        let d = line.split('#').next().unwrap_or("").trim();
        if d.is_empty() {
            continue;
        }
        let d = policy_domain_from_key(d).map_or_else(|_| d.to_string(), |n| n.to_string());
        if seen.insert(d.clone()) {
            out.push(d);
        }
    }
    Ok(out)
}

fn done_domains(path: &PathBuf, format: ScanFormat) -> Result<HashSet<String>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(HashSet::new());
    };
    Ok(text
        .lines()
        .filter_map(|l| match format {
            ScanFormat::Jsonl => serde_json::from_str::<serde_json::Value>(l)
                .ok()?
                .get("domain")?
                .as_str()
                .map(str::to_string),
            ScanFormat::Csv => l
                .split(',')
                .next()
                .filter(|d| *d != "domain")
                .map(str::to_string),
        })
        .collect())
}

fn scan(args: &ScanArgs) -> Result<Finished> {
    let all = read_domains(&args.file)?;
    let done = match (&args.output, args.resume) {
        (Some(p), true) => done_domains(p, args.format)?,
        _ => HashSet::new(),
    };
    let todo: Vec<String> = all.iter().filter(|d| !done.contains(*d)).cloned().collect();
    let mut sink: Box<dyn Write + Send> = match &args.output {
        Some(p) => {
            let fresh = !args.resume || !p.exists();
            let f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(!fresh)
                .truncate(fresh)
                .open(p)
                .with_context(|| p.display().to_string())?;
            Box::new(std::io::BufWriter::new(f))
        }
        None => Box::new(std::io::stdout()),
    };
    if args.format == ScanFormat::Csv && done.is_empty() {
        writeln!(sink, "{CSV_HEADER}")?;
    }
    if !done.is_empty() {
        eprintln!(
            "resuming: {} of {} domains already done",
            all.len() - todo.len(),
            all.len()
        );
    }
    let checker = Arc::new(args.net.checker()?);
    let per_domain = args.domain_timeout;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(todo.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let settings = ScanSettings {
        concurrency: args.concurrency,
        per_domain,
    };
    let csv = args.format == ScanFormat::Csv;
    let outcome = runtime()?.block_on(scan::scan(
        checker,
        todo,
        settings,
        |row| {
            let line = if csv {
                row.csv()
            } else {
                serde_json::to_string(row).unwrap_or_default()
            };
            let _ = writeln!(sink, "{line}");
            let _ = sink.flush();
            bar.inc(1);
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    ));
    if outcome.interrupted {
        eprintln!("interrupted: writing partial results (rerun with --resume to continue)");
    }
    for p in &outcome.panicked {
        eprintln!("a check failed: {p}");
    }
    bar.finish_and_clear();
    let _ = sink.flush();
    eprint!("{}", scan::summary(&outcome.rows));
    Ok(if outcome.interrupted {
        Finished::Interrupted
    } else {
        Finished::All
    })
}

/// Colour on a terminal unless `NO_COLOR` is set to anything non-empty (no-color.org).
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
