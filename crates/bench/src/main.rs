//! `mtasts-bench`: the pieces of the side-by-side benchmark (bench/run.sh drives them).
//!
//! - `echo`: a bare netstring server on the same tokio stack: the physical limit;
//! - `load`: socketmap load, N connections, one request outstanding each (as Postfix does) or
//!   pipelined; bounded by count and time; prints one JSON result line;
//! - `memory`: resident memory of the daemon's memory tier holding N policies;
//! - `catalog`: the lab catalog of benchmark domains;
//! - `tlsrpt-intake`: gzip'd TLS reports POSTed over HTTPS to the report intake;
//! - `serve-sites`, `serve-load`, `serve-memory`: `mtasts serve` against nginx on the same
//!   sites (files, load, memory per site);
//! - `table`: the markdown table from result lines.

mod intake;
mod serve_bench;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use mtasts_daemon::NetstringCodec;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder, Framed};

#[derive(Debug, Parser)]
#[command(name = "mtasts-bench", about = "mtasts benchmark harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve `OK echo` for every request (the physical limit of this machine's stack).
    Echo {
        #[arg(long)]
        listen: String,
    },
    /// Socketmap load against a server.
    Load(LoadArgs),
    /// Resident memory per policy of the daemon's memory tier.
    Memory {
        #[arg(long, default_value_t = 1_000_000)]
        policies: usize,
        #[arg(long)]
        label: Option<String>,
    },
    /// Lookup latency in a memory tier of N policies, alone and while a refresh sweep (the
    /// refresher's due listing and re-stores, 10,000 at a time) runs beside it.
    Sweep {
        #[arg(long, default_value_t = 1_000_000)]
        policies: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Print the benchmark lab catalog: HOT cached-set domains, COLD distinct ones, and one
    /// hot-cold domain; every policy response delayed by DELAY ms.
    Catalog {
        #[arg(long, default_value_t = 1000)]
        hot: usize,
        #[arg(long, default_value_t = 10_000)]
        cold: usize,
        #[arg(long, default_value_t = 20)]
        delay_ms: u64,
    },
    /// Gzip'd TLS reports POSTed over HTTPS to the report intake (SQLite store).
    TlsrptIntake {
        /// Reports to send (each distinct)…
        #[arg(long, default_value_t = 5000)]
        reports: u64,
        /// …or stop after this many seconds.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Keep-alive connections, one report in flight each.
        #[arg(long, default_value_t = 16)]
        conns: usize,
    },
    /// Write N policy sites (policies/, certs/, ca.pem) and an nginx.conf serving the same
    /// files on PORT.
    ServeSites {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        sites: usize,
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// nginx worker processes (as many as the cores `mtasts serve` uses).
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// HTTPS load against a policy server: a new full TLS handshake per request, or
    /// keep-alive requests; every response must be the site's policy.
    ServeLoad(serve_bench::Load),
    /// Memory (PSS of PID and its children) per site of a server holding SITES sites, beyond
    /// BASELINE bytes (the same server holding one site; `--print` prints PSS alone).
    ServeMemory {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 10_000)]
        sites: usize,
        #[arg(long, default_value_t = 0)]
        baseline: u64,
        #[arg(long)]
        system: Option<String>,
        /// Print the PSS in bytes and nothing else.
        #[arg(long)]
        print: bool,
    },
    /// Markdown table from result lines (JSON, one per line).
    Table {
        /// One JSON-lines file per run.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Text placed above the table (machine, command).
        #[arg(long)]
        header: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Server IP:PORT.
    #[arg(long)]
    target: String,
    /// System name for the result row.
    #[arg(long)]
    system: String,
    /// Scenario name for the result row.
    #[arg(long)]
    scenario: String,
    /// Map name in requests.
    #[arg(long, default_value = "postfix")]
    map: String,
    /// Domains `PREFIX0.test` … `PREFIX{N-1}.test` are requested round-robin.
    #[arg(long, default_value = "hot")]
    prefix: String,
    #[arg(long, default_value_t = 1000)]
    domains: usize,
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Requests in flight per connection (1 = Postfix's way).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Stop after this many requests in total…
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// …or after this many seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Each domain exactly once (cold lookups): `requests` is ignored.
    #[arg(long)]
    once: bool,
}

/// One result row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    system: String,
    scenario: String,
    /// The headline figure and its unit.
    value: f64,
    unit: String,
    #[serde(default)]
    p50_us: Option<f64>,
    #[serde(default)]
    p99_us: Option<f64>,
    #[serde(default)]
    detail: BTreeMap<String, String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    match cli.cmd {
        Cmd::Echo { listen } => rt.block_on(echo(&listen)),
        Cmd::Load(args) => rt.block_on(load(args)),
        Cmd::Memory { policies, label } => memory(policies, label.as_deref()),
        Cmd::Sweep { policies, seconds } => sweep(policies, seconds),
        Cmd::Catalog {
            hot,
            cold,
            delay_ms,
        } => {
            catalog(hot, cold, delay_ms);
            Ok(())
        }
        Cmd::Table { results, header } => table(&results, header.as_deref()),
        Cmd::TlsrptIntake {
            reports,
            seconds,
            conns,
        } => rt.block_on(intake::run(reports, conns, seconds)),
        Cmd::ServeSites {
            dir,
            sites,
            port,
            workers,
        } => serve_bench::sites(&dir, sites, port, workers),
        Cmd::ServeLoad(l) => rt.block_on(serve_bench::load(l)),
        Cmd::ServeMemory {
            pid,
            sites,
            baseline,
            system,
            print,
        } => {
            if print {
                println!("{}", serve_bench::pss_tree(pid)?);
                Ok(())
            } else {
                serve_bench::memory_row(system.as_deref().unwrap_or("?"), pid, sites, baseline)
            }
        }
    }
}

async fn echo(listen: &str) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| listen.to_string())?;
    eprintln!("echo server on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        // The daemon's own I/O pattern: every whole request read is answered, then the
        // replies go out in one write; so the limit includes batching for pipelined clients.
        tokio::spawn(async move {
            let (mut stream, mut codec) = (stream, NetstringCodec::default());
            let (mut input, mut output) = (BytesMut::with_capacity(16384), BytesMut::new());
            loop {
                while let Ok(Some(_request)) = codec.decode(&mut input) {
                    let _ = codec.encode(&b"OK echo"[..], &mut output);
                }
                if !output.is_empty() {
                    if stream.write_all(&output).await.is_err() {
                        return;
                    }
                    output.clear();
                }
                match stream.read_buf(&mut input).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
    }
}

async fn load(a: LoadArgs) -> Result<()> {
    let deadline = Instant::now() + Duration::try_from_secs_f64(a.seconds).context("--seconds")?;
    let total = if a.once { a.domains as u64 } else { a.requests };
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..a.conns.max(1) {
        let (next, target, map, prefix) = (
            next.clone(),
            a.target.clone(),
            a.map.clone(),
            a.prefix.clone(),
        );
        let (domains, pipeline) = (a.domains.max(1) as u64, a.pipeline.max(1));
        tasks.spawn(async move {
            let mut hist =
                hdrhistogram::Histogram::<u64>::new(3).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut answers: BTreeMap<String, u64> = BTreeMap::new();
            let stream = TcpStream::connect(&target)
                .await
                .with_context(|| target.clone())?;
            stream.set_nodelay(true)?;
            let mut framed = Framed::new(stream, NetstringCodec::new(200_000));
            'outer: loop {
                let mut batch = Vec::with_capacity(pipeline);
                for _ in 0..pipeline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || Instant::now() >= deadline {
                        break;
                    }
                    batch.push(format!("{map} {prefix}{}.test", i % domains));
                }
                if batch.is_empty() {
                    break 'outer;
                }
                let t = Instant::now();
                for req in &batch {
                    framed.feed(req.as_bytes()).await?;
                }
                framed.flush().await?;
                for _ in 0..batch.len() {
                    let reply: Bytes = framed.next().await.context("server closed")??;
                    let status = reply
                        .split(|&b| b == b' ')
                        .next()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .unwrap_or_default();
                    *answers.entry(status).or_default() += 1;
                }
                let micros = u64::try_from(t.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                for _ in 0..batch.len() {
                    hist.record(micros).ok();
                }
            }
            anyhow::Ok((hist, answers))
        });
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (h, a) = joined??;
        hist.add(h).map_err(|e| anyhow::anyhow!("{e}"))?;
        for (k, v) in a {
            *answers.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = hist.len();
    if n == 0 {
        bail!("no requests completed");
    }
    let mut detail: BTreeMap<String, String> = answers
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    detail.insert("requests".into(), n.to_string());
    detail.insert("conns".into(), a.conns.to_string());
    detail.insert("pipeline".into(), a.pipeline.to_string());
    detail.insert("seconds".into(), format!("{elapsed:.2}"));
    let row = Row {
        system: a.system,
        scenario: a.scenario,
        value: n as f64 / elapsed,
        unit: if a.once {
            "domains/s".into()
        } else {
            "req/s".into()
        },
        p50_us: Some(hist.value_at_quantile(0.5) as f64),
        p99_us: Some(hist.value_at_quantile(0.99) as f64),
        detail,
    };
    println!("{}", serde_json::to_string(&row)?);
    Ok(())
}

fn rss_bytes() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("statm format")?;
    Ok(pages * 4096)
}

/// Fills `store` with `policies` policies as the resolver stores them; the total policy text
/// size, and the names if `keep_names` (not when measuring memory: they would count).
fn fill(
    store: &mtasts_store::MemoryStore,
    policies: usize,
    keep_names: bool,
) -> Result<(Vec<mtasts_core::DomainName>, u64)> {
    use mtasts_core::cache::{CachedPolicy, DomainState, TxtLookup};
    use mtasts_core::{DomainName, Policy};
    use mtasts_store::EntryMeta;
    let mut text_bytes = 0u64;
    let mut names = Vec::with_capacity(policies);
    for i in 0..policies {
        let domain = DomainName::parse(&format!("d{i}.example.com")).context("domain")?;
        let text = format!(
            "version: STSv1\nmode: enforce\nmx: mx{i}.example.com\nmx: *.mx.example.net\nmax_age: 604800\n"
        );
        text_bytes += text.len() as u64;
        let policy = Policy::parse(&text)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .policy;
        // Built as the resolver builds it: the TXT answer and the policy share one id.
        let id: mtasts_core::cache::PolicyId = format!("{i:016}").into();
        let state = DomainState {
            policy: Some(CachedPolicy {
                policy,
                id: id.clone(),
                fetched_at: 1_800_000_000,
            }),
            txt: Some((1_800_000_000, TxtLookup::Found(id))),
            failed_fetch: None,
        };
        store.put_now(
            &domain,
            Arc::new(state),
            EntryMeta {
                refresh_at: Some(1_800_086_400),
                expires_at: 1_800_604_800,
            },
        );
        if keep_names {
            names.push(domain);
        }
    }
    Ok((names, text_bytes))
}

fn memory(policies: usize, label: Option<&str>) -> Result<()> {
    use mtasts_store::MemoryStore;
    let store = MemoryStore::new(policies);
    let before = rss_bytes()?;
    let (_, text_bytes) = fill(&store, policies, false)?;
    let after = rss_bytes()?;
    let per = (after.saturating_sub(before)) as f64 / policies as f64;
    let text_per = text_bytes as f64 / policies as f64;
    let mut detail = BTreeMap::new();
    detail.insert("policies".into(), policies.to_string());
    detail.insert("policy_text_bytes".into(), format!("{text_per:.0}"));
    detail.insert(
        "overhead_beyond_text".into(),
        format!("{:.0}", per - text_per),
    );
    detail.insert("held".into(), store.len().to_string());
    let row = Row {
        system: label.unwrap_or("mtasts").into(),
        scenario: "memory per cached policy".into(),
        value: per,
        unit: "bytes".into(),
        p50_us: None,
        p99_us: None,
        detail,
    };
    println!("{}", serde_json::to_string(&row)?);
    Ok(())
}

fn sweep(policies: usize, seconds: f64) -> Result<()> {
    use mtasts_store::{EntryMeta, MemoryStore, Store};
    use std::sync::atomic::AtomicBool;
    let store = Arc::new(MemoryStore::new(policies));
    let (names, _) = fill(&store, policies, true)?;
    let names = Arc::new(names);
    let phase = Duration::try_from_secs_f64(seconds).context("--seconds")?;
    // Lookups of random cached domains, timed one by one (nanoseconds).
    let measure = |store: &MemoryStore| -> Result<(hdrhistogram::Histogram<u64>, u64)> {
        let mut hist =
            hdrhistogram::Histogram::<u64>::new(3).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (mut n, mut x) = (0u64, 0x9e37_79b9_7f4a_7c15u64);
        let end = Instant::now() + phase;
        while Instant::now() < end {
            for _ in 0..1000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let d = &names[usize::try_from(x % names.len() as u64).unwrap_or(0)];
                let t = Instant::now();
                let _state = store.get_now(d);
                let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                // Corrected for coordinated omission: a lookup stalled behind a shard lock
                // also delays the ones that would have been issued meanwhile (one per 2 µs).
                hist.record_correct(ns.max(1), 2_000)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                n += 1;
            }
        }
        Ok((hist, n))
    };
    let row = |scenario: &str,
               (hist, lookups): &(hdrhistogram::Histogram<u64>, u64),
               extra: &[(&str, String)]| {
        let mut detail = BTreeMap::new();
        detail.insert("policies".to_string(), policies.to_string());
        detail.insert(
            "p99.9_us".to_string(),
            format!("{:.2}", hist.value_at_quantile(0.999) as f64 / 1000.0),
        );
        detail.insert(
            "max_us".to_string(),
            format!("{:.0}", hist.max() as f64 / 1000.0),
        );
        for (k, v) in extra {
            detail.insert((*k).to_string(), v.clone());
        }
        Row {
            system: "mtasts".into(),
            scenario: scenario.into(),
            value: *lookups as f64 / seconds,
            unit: "lookups/s".into(),
            p50_us: Some(hist.value_at_quantile(0.5) as f64 / 1000.0),
            p99_us: Some(hist.value_at_quantile(0.99) as f64 / 1000.0),
            detail,
        }
    };
    let alone = measure(&store)?;
    println!(
        "{}",
        serde_json::to_string(&row("memory-tier lookup, 1 thread", &alone, &[]))?
    );
    // The refresher's work without the network: list what is due (all of it, here), 10,000 at
    // a time, and store each back with a later refresh time, over and over. Re-stores are paced
    // at 10,000/s, some 60 times what network-bound refreshes reach (16 at once, ~100 ms each).
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || -> Result<u64> {
            let rt = tokio::runtime::Builder::new_current_thread().build()?;
            let (mut restored, mut stamp) = (0u64, 1_800_100_000u64);
            while !stop.load(Ordering::Relaxed) {
                let due = rt.block_on(store.due(1_900_000_000, 10_000))?;
                for (i, d) in due.into_iter().enumerate() {
                    if i % 10 == 9 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if let Some(state) = store.get_now(&d) {
                        stamp += 1;
                        store.put_now(
                            &d,
                            state,
                            EntryMeta {
                                refresh_at: Some(stamp),
                                expires_at: 1_800_604_800,
                            },
                        );
                        restored += 1;
                    }
                }
            }
            Ok(restored)
        })
    };
    let during = measure(&store)?;
    stop.store(true, Ordering::Relaxed);
    let restored = sweeper
        .join()
        .map_err(|_| anyhow::anyhow!("sweeper panicked"))??;
    println!(
        "{}",
        serde_json::to_string(&row(
            "memory-tier lookup, 1 thread, refresh sweep beside it",
            &during,
            &[(
                "refreshed_per_s",
                format!("{:.0}", restored as f64 / seconds)
            )]
        ))?
    );
    Ok(())
}

fn catalog(hot: usize, cold: usize, delay_ms: u64) {
    println!("# Generated by mtasts-bench catalog: benchmark domains (no SMTP servers).");
    let one = |name: &str, about: &str, delay: u64| {
        println!(
            "[[scenario]]\nname = \"{name}\"\nabout = \"{about}\"\nmode = \"enforce\"\npolicy_mx = [\"mx1.{name}\", \"*.mx.{name}\"]\npolicy = {{ delay_ms = {delay} }}\n"
        );
    };
    for i in 0..hot {
        one(&format!("hot{i}.test"), "bench: cached set", 0);
    }
    for i in 0..cold {
        one(&format!("cold{i}.test"), "bench: cold lookups", delay_ms);
    }
    one(
        "hotcold0.test",
        "bench: one cold domain asked 1000 times at once",
        delay_ms.max(100),
    );
}

/// The median of `v` (the mean of the middle two for an even count); `None` if empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One table from one results file per run: each figure is the median over the runs, with
/// the spread (lowest–highest) beside it; ratios are taken within each run, then the median.
fn table(results: &[PathBuf], header: Option<&std::path::Path>) -> Result<()> {
    let mut runs: Vec<Vec<Row>> = Vec::new();
    for path in results {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        let rows: Vec<Row> = text
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .with_context(|| format!("result lines of {}", path.display()))?;
        runs.push(rows);
    }
    if let Some(h) = header {
        print!(
            "{}",
            std::fs::read_to_string(h).with_context(|| h.display().to_string())?
        );
    }
    println!(
        "| system | scenario | figure (median of {}) | spread | p50 | p99 | × mtasts | × echo limit | details (median run) |",
        runs.len()
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let find = |run: &[Row], system: &str, scenario: &str| {
        run.iter()
            .find(|r| r.system == system && r.scenario == scenario)
            .map(|r| r.value)
    };
    let mut seen = std::collections::HashSet::new();
    let first = runs.first().cloned().unwrap_or_default();
    for r in first.iter().chain(runs.iter().skip(1).flatten()) {
        if !seen.insert((r.system.clone(), r.scenario.clone())) {
            continue;
        }
        let same: Vec<(usize, &Row)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, run)| {
                run.iter()
                    .find(|x| x.system == r.system && x.scenario == r.scenario)
                    .map(|x| (i, x))
            })
            .collect();
        let values: Vec<f64> = same.iter().map(|(_, x)| x.value).collect();
        let Some(value) = median(values.clone()) else {
            continue;
        };
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let spread = if same.len() < 2 {
            "–".to_string()
        } else {
            format!(
                "{lo:.0}–{hi:.0} (±{:.0}%)",
                (hi - lo) / 2.0 / value.max(f64::MIN_POSITIVE) * 100.0
            )
        };
        let ratio = |base: &str| {
            let ratios: Vec<f64> = same
                .iter()
                .filter_map(|(i, x)| {
                    find(&runs[*i], base, &r.scenario)
                        .filter(|b| *b > 0.0)
                        .map(|b| x.value / b)
                })
                .collect();
            median(ratios).map_or("–".into(), |m| format!("{m:.2}"))
        };
        let us = |v: Option<f64>| {
            v.map_or("–".into(), |v| {
                if v >= 1000.0 {
                    format!("{:.2} ms", v / 1000.0)
                } else if v >= 10.0 {
                    format!("{v:.0} µs")
                } else {
                    format!("{v:.2} µs")
                }
            })
        };
        let p50 = median(same.iter().filter_map(|(_, x)| x.p50_us).collect());
        let p99 = median(same.iter().filter_map(|(_, x)| x.p99_us).collect());
        let median_run = same
            .iter()
            .min_by(|a, b| {
                (a.1.value - value)
                    .abs()
                    .total_cmp(&(b.1.value - value).abs())
            })
            .map(|(_, x)| *x)
            .unwrap_or(r);
        let detail: Vec<String> = median_run
            .detail
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "| {} | {} | {} {} | {} | {} | {} | {} | {} | {} |",
            r.system,
            r.scenario,
            if value >= 100.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            },
            r.unit,
            spread,
            us(p50),
            us(p99),
            ratio("mtasts"),
            ratio("echo"),
            detail.join(" ")
        );
    }
    Ok(())
}
