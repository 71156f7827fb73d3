//! `mtasts query DOMAIN`: one lookup through the daemon's code path, explained.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mtasts_core::Decision;
use mtasts_core::postfix::policy_domain_from_key;
use mtasts_daemon::{Config, DecisionReport, Server};
use mtasts_resolver::TrustHandle;
use mtasts_resolver::{DaneResolver, DaneSettings, DnssecClient, ResolverSettings};
use mtasts_store::AnyStore;

use crate::net::NetArgs;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The policy domain (the recipient's domain, or a smart host's), in any form Postfix
    /// sends as a key: `host`, `host:port`, `[host]`, `[host]:port`.
    domain: String,
    #[command(flatten)]
    net: NetArgs,
    /// Cache to consult and update: `memory` (a fresh lookup; default), `sqlite:PATH`
    /// (e.g. the daemon's file) or `redis://…`.
    #[arg(long, default_value = "memory")]
    cache: String,
    /// The daemon's configuration file, for its zones (the map names Postfix asks with).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The map name to answer for, as in `socketmap:inet:…:NAME` (default: the default zone).
    #[arg(long, value_name = "NAME", default_value = "postfix")]
    map: String,
    /// Validating resolver IP:PORT whose AD bit the DANE check trusts (default: --nameserver).
    #[arg(long, value_name = "IP:PORT")]
    dane_nameserver: Option<SocketAddr>,
    /// Do not check DANE, whatever the zone says.
    #[arg(long)]
    no_dane: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
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
    let domain = policy_domain_from_key(&args.domain)
        .map_err(anyhow::Error::new)
        .context("the domain to query")?;
    let mut config = match &args.config {
        Some(path) => {
            let (config, warnings) =
                Config::load(path).with_context(|| format!("loading {}", path.display()))?;
            for w in warnings {
                eprintln!("mtasts query: config: {w}");
            }
            config
        }
        None => Config::default(),
    };
    let mut notes = config.detect_postfix(mtasts_daemon::postconf_mail_version);
    notes.extend(config.detect_dnssec(mtasts_daemon::postconf_dnssec));
    // Without a config file the user asked about no Postfix: no news about one.
    if args.config.is_some() {
        for note in notes {
            eprintln!("mtasts query: {note}");
        }
    }
    if args.no_dane {
        config.default_zone.dane = false;
        config.zones.values_mut().for_each(|z| z.dane = false);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let explanation = runtime.block_on(async {
        let store = AnyStore::open(&args.cache, 1000)
            .await
            .with_context(|| format!("--cache {}", args.cache))?;
        let settings = ResolverSettings {
            refresh: false,
            ..ResolverSettings::default()
        };
        // Conditional trust as the daemon applies it: the fetch and the answer share the rules.
        let trust = TrustHandle::new(config.trust_table().context("conditional trust")?);
        let mut endpoints = args.net.endpoints()?;
        endpoints.trust = trust.clone();
        let resolver = endpoints.resolver(Some(store), settings)?;
        let dane = if config.zone(&args.map).dane {
            let server = args.dane_nameserver.or(args.net.nameserver);
            let timeout = args.net.dns_timeout;
            let client = DnssecClient::new(server, timeout).context(
                "DANE checks need a validating resolver (--dane-nameserver, or --no-dane)",
            )?;
            Some(DaneResolver::new(client, DaneSettings::default()))
        } else {
            None
        };
        // Remembered TLS as the daemon sees it: the memories in the configuration's cache.
        let mut memories = std::collections::HashMap::new();
        if config
            .named_zones()
            .any(|(_, z)| z.remember_tls != mtasts_core::decision::RememberMode::Off)
        {
            let mut spec = config.cache.clone();
            if spec == mtasts_store::CacheSpec::Sqlite(None) {
                spec = mtasts_store::CacheSpec::Sqlite(Some(mtasts_daemon::default_sqlite_path()));
            }
            if let Some(r) = mtasts_store::remember::Remembered::open(&spec)
                .await
                .with_context(|| format!("opening the remembered-TLS memories in {spec}"))?
            {
                memories = r
                    .all()
                    .await
                    .with_context(|| format!("reading the remembered-TLS memories in {spec}"))?
                    .into_iter()
                    .collect();
            }
        }
        let server = Server::with_trust(resolver.clone(), dane, config, trust);
        server.set_remembered(memories);
        let explanation = server.explain(&args.map, &domain, true).await;
        resolver.flush().await;
        anyhow::Ok(explanation)
    })?;
    let report = DecisionReport::new(&explanation);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding JSON")?
        );
    } else {
        print_text(&report);
    }
    Ok(match explanation.decision() {
        Decision::Defer(_) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}

fn print_text(r: &DecisionReport) {
    println!("domain:    {}", r.domain);
    println!("decision:  {}", r.reason);
    if let Some(d) = &r.dane {
        println!("dane:      {} ({})", d.decision, d.reason);
    }
    println!("governs:   {} ({})", r.zone.decision, r.zone.reason);
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
    if let Some(t) = &r.trust {
        println!(
            "trust:     rule {} ({}{}): {}",
            t.rule,
            t.mode,
            if t.applied { "" } else { ", not applied" },
            t.anchors.join(", ")
        );
    }
    if let Some(t) = &r.remembered_tls {
        println!("remembered: {}", t.reason);
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
