//! `mtasts lint`: validate a policy file or a TXT record the way senders will parse it.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_check::{Code, PolicyFinding, invalid_policy_findings, valid_policy_findings};
use mtasts_core::policy::MAX_POLICY_BYTES;
use mtasts_core::txt::{is_sts_record, parse_record};
use mtasts_core::{DomainName, Policy};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(subcommand)]
    what: LintTarget,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum LintTarget {
    /// A policy file (`mta-sts.txt`); `-` reads standard input.
    Policy {
        /// Path of the policy file, or `-`.
        file: PathBuf,
        /// The policy domain, for advice about its own names (e.g. `*.example.com` without
        /// `example.com`).
        #[arg(long)]
        domain: Option<String>,
    },
    /// A `_mta-sts` TXT record, as text (`v=STSv1; id=…`) or as quoted strings from `dig`.
    Record {
        /// The record text.
        text: String,
    },
}

/// One finding, in the documented JSON shape.
#[derive(Debug, Serialize)]
struct Finding {
    /// 1-based line; 0 for the file or record as a whole.
    line: usize,
    key: Option<String>,
    /// Checklist id (`POL-07`) or advice code (`max-age-short`).
    rule: String,
    /// The finding code `mtasts check` reports for the same problem (`policy-invalid`,
    /// `policy-tolerated`, `max-age-short`, `txt-invalid`, …).
    code: Code,
    message: String,
}

impl From<PolicyFinding> for Finding {
    fn from(f: PolicyFinding) -> Self {
        Self {
            line: f.line,
            key: f.key,
            rule: f.rule.into(),
            code: f.code,
            message: f.message,
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    kind: &'static str,
    valid: bool,
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
    /// The canonical rendering of a valid input.
    normalized: Option<String>,
}

pub fn run(args: &LintArgs) -> ExitCode {
    let report = match &args.what {
        LintTarget::Policy { file, domain } => lint_policy(file, domain.as_deref()),
        LintTarget::Record { text } => Ok(lint_record(text)),
    };
    match report {
        Ok(report) => {
            print(&report, args.json);
            if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("mtasts lint: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn lint_policy(file: &PathBuf, domain: Option<&str>) -> Result<Report> {
    let domain = domain
        .map(|d| DomainName::parse(d).with_context(|| format!("--domain `{d}`")))
        .transpose()?;
    let mut body = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut body)
            .context("reading the policy from standard input")?;
    } else {
        body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    let mut errors = Vec::new();
    if body.len() > MAX_POLICY_BYTES {
        errors.push(Finding {
            line: 0,
            key: None,
            rule: "FETCH-08".into(),
            code: Code::FetchError,
            message: format!(
                "the file is {} bytes; senders refuse policies over {MAX_POLICY_BYTES} bytes",
                body.len()
            ),
        });
    }
    let (warnings, normalized) = match Policy::parse_bytes(&body) {
        Ok(parsed) => (
            valid_policy_findings(&parsed, domain.as_ref())
                .into_iter()
                .map(Finding::from)
                .collect(),
            Some(parsed.policy.render()),
        ),
        Err(problems) => {
            errors.extend(
                invalid_policy_findings(&problems)
                    .into_iter()
                    .map(Finding::from),
            );
            (Vec::new(), None)
        }
    };
    let valid = errors.is_empty();
    Ok(Report {
        kind: "policy",
        valid,
        errors,
        warnings,
        normalized: normalized.filter(|_| valid),
    })
}

fn lint_record(text: &str) -> Report {
    let joined = join_quoted(text).unwrap_or_else(|| text.as_bytes().to_vec());
    let mut warnings = Vec::new();
    if !is_sts_record(&joined) {
        warnings.push(Finding {
            line: 0,
            key: None,
            rule: "TXT-04".into(),
            code: Code::TxtMissing,
            message: "senders discard records that do not start with `v=STSv1` followed by `;`"
                .into(),
        });
    }
    match parse_record(&joined) {
        Ok(record) => {
            warnings.extend(record.extensions.iter().map(|(name, _)| Finding {
                line: 0,
                key: Some(name.clone()),
                rule: "TXT-11".into(),
                code: Code::TxtExtension,
                message: "unknown field; senders ignore it".into(),
            }));
            let valid = warnings.iter().all(|w| w.rule != "TXT-04");
            Report {
                kind: "record",
                valid,
                errors: Vec::new(),
                warnings,
                normalized: Some(record.render()),
            }
        }
        Err(e) => Report {
            kind: "record",
            valid: false,
            errors: vec![Finding {
                line: 0,
                key: None,
                rule: e.checklist_id().into(),
                code: Code::TxtInvalid,
                message: e.to_string(),
            }],
            warnings,
            normalized: None,
        },
    }
}

/// `"v=STSv1; id=ab" "cd"` (as `dig` prints a TXT RR) → the joined record (TXT-03).
fn join_quoted(text: &str) -> Option<Vec<u8>> {
    let mut rest = text.trim();
    if !rest.starts_with('"') {
        return None;
    }
    let mut out = Vec::new();
    while let Some(after_quote) = rest.strip_prefix('"') {
        let end = after_quote.find('"')?;
        out.extend_from_slice(&after_quote.as_bytes()[..end]);
        rest = after_quote[end + 1..].trim_start();
    }
    rest.is_empty().then_some(out)
}

fn print(report: &Report, json: bool) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("mtasts lint: cannot encode the report as JSON: {e}"),
        }
        return;
    }
    let verdict = if report.valid { "valid" } else { "invalid" };
    println!("{}: {verdict}", report.kind);
    for (label, findings) in [("error", &report.errors), ("warning", &report.warnings)] {
        for f in findings {
            let mut place = String::new();
            if f.line > 0 {
                place.push_str(&format!("line {}: ", f.line));
            }
            if let Some(k) = &f.key {
                place.push_str(&format!("`{k}`: "));
            }
            // Most messages already end with their rule in parentheses; name it once.
            if f.message.contains(&format!("({}", f.rule)) {
                println!("  {label}: {place}{}", f.message);
            } else {
                println!("  {label}: {place}{} [{}]", f.message, f.rule);
            }
        }
    }
    if let Some(n) = &report.normalized {
        println!("normalized:");
        for line in n.lines() {
            println!("  {line}");
        }
    }
}
