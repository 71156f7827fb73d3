//! `mtasts query DOMAIN`: one lookup through the daemon's code path, explained.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use mtasts_core::cache::{NoPolicyReason, Source, Verdict};
use mtasts_core::postfix::{RenderOptions, policy_reply};
use mtasts_core::{DomainName, UnixTime};
use mtasts_resolver::{Lookup, Origin, ResolverSettings, describe_verdict};
use mtasts_store::AnyStore;
use serde::Serialize;

use crate::net::NetArgs;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The policy domain (the recipient's domain, or a smart host's).
    domain: String,
    #[command(flatten)]
    net: NetArgs,
    /// Cache to consult and update: `memory` (a fresh lookup; default), `sqlite:PATH`
    /// (e.g. the daemon's file) or `redis://…`.
    #[arg(long, default_value = "memory")]
    cache: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The JSON shape of a query.
#[derive(Debug, Serialize)]
struct QueryReport {
    domain: String,
    /// `policy`, `none` or `temporary-failure`.
    decision: &'static str,
    /// `cached`, `fetched`, `no-record`, `dns-failure`, `fetch-failed` or `deferred`.
    reason_code: &'static str,
    reason: String,
    /// `cache` or `network`.
    source: &'static str,
    policy: Option<PolicyReport>,
    /// What Postfix would be told (default zone).
    postfix: String,
    error: Option<ErrorReport>,
    steps: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PolicyReport {
    id: String,
    mode: String,
    mx: Vec<String>,
    max_age: u64,
    fetched_at: String,
    expires_at: String,
    text: String,
}

#[derive(Debug, Serialize)]
struct ErrorReport {
    rule: &'static str,
    result_type: &'static str,
    message: String,
}

fn rfc3339(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

pub fn run(args: &QueryArgs) -> ExitCode {
    match query(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtasts query: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn query(args: &QueryArgs) -> Result<ExitCode> {
    let domain =
        DomainName::parse(&args.domain).with_context(|| format!("domain `{}`", args.domain))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let lookup = runtime.block_on(async {
        let store = AnyStore::open(&args.cache, 1000)
            .await
            .with_context(|| format!("--cache {}", args.cache))?;
        let settings = ResolverSettings {
            refresh: false,
            ..ResolverSettings::default()
        };
        let resolver = args.net.resolver(Some(store), settings)?;
        let lookup = resolver.lookup_traced(&domain).await;
        resolver.flush().await;
        anyhow::Ok(lookup)
    })?;
    let report = report(&lookup);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding JSON")?
        );
    } else {
        print_text(&report);
    }
    Ok(match lookup.verdict {
        Verdict::Defer(_) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}

fn report(l: &Lookup) -> QueryReport {
    let decision = match &l.verdict {
        Verdict::Policy(_) => "policy",
        Verdict::NoPolicy(_) => "none",
        Verdict::Defer(_) => "temporary-failure",
    };
    let policy = l.policy().map(|p| PolicyReport {
        id: p.id.clone(),
        mode: p.policy.mode.to_string(),
        mx: p.policy.mx.iter().map(ToString::to_string).collect(),
        max_age: p.policy.max_age,
        fetched_at: rfc3339(p.fetched_at),
        expires_at: rfc3339(p.expires_at()),
        text: p.policy.render(),
    });
    let postfix = match (&l.verdict, l.policy()) {
        (Verdict::Policy(_), Some(p)) => {
            policy_reply(&l.domain, &p.policy, &RenderOptions::default()).payload()
        }
        (Verdict::Defer(why), _) => format!("TEMP {why}"),
        _ => "NOTFOUND ".to_string(),
    };
    let error = l.fetch_error.as_ref().map(|e| ErrorReport {
        rule: e.rule(),
        result_type: e.failure().result_type(),
        message: e.to_string(),
    });
    let reason_code = match &l.verdict {
        Verdict::Policy(Source::Cached) => "cached",
        Verdict::Policy(Source::Fetched) => "fetched",
        Verdict::NoPolicy(NoPolicyReason::NoRecord(_)) => "no-record",
        Verdict::NoPolicy(NoPolicyReason::DnsFailure(_)) => "dns-failure",
        Verdict::NoPolicy(NoPolicyReason::FetchFailed(_)) => "fetch-failed",
        Verdict::Defer(_) => "deferred",
    };
    QueryReport {
        domain: l.domain.to_string(),
        decision,
        reason_code,
        reason: describe_verdict(&l.verdict),
        source: match (l.origin, &l.verdict) {
            (Origin::Memory, _) | (_, Verdict::Policy(Source::Cached)) => "cache",
            _ => "network",
        },
        policy,
        postfix,
        error,
        steps: l.steps.clone(),
    }
}

fn print_text(r: &QueryReport) {
    println!("domain:    {}", r.domain);
    println!("decision:  {}", r.reason);
    if let Some(p) = &r.policy {
        println!("mode:      {}", p.mode);
        println!(
            "mx:        {}",
            if p.mx.is_empty() {
                "(none)".to_string()
            } else {
                p.mx.join(", ")
            }
        );
        println!("id:        {}", p.id);
        println!("max_age:   {} s", p.max_age);
        println!("fetched:   {}", p.fetched_at);
        println!("expires:   {}", p.expires_at);
    }
    println!("source:    {}", r.source);
    println!("postfix:   {}", r.postfix);
    if let Some(e) = &r.error {
        println!("failed:    {} ({}): {}", e.rule, e.result_type, e.message);
    }
    if !r.steps.is_empty() {
        println!("steps:");
        for (i, s) in r.steps.iter().enumerate() {
            println!("  {}. {s}", i + 1);
        }
    }
}
