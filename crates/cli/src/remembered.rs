//! `mtasts remembered`: remembered TLS — learn from Postfix's log, list, export, import and
//! forget memories. The rule and the store come from the daemon's configuration, so the
//! learner and the daemon agree.

use std::io::{BufRead, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mtasts_core::remember::{Change, Preload, PreloadEntry, Rule};
use mtasts_daemon::Config;
use mtasts_store::CacheSpec;
use mtasts_store::remember::Remembered;

#[derive(Debug, Args)]
pub struct RememberedArgs {
    /// The daemon's configuration: its cache holds the memories, its [remember] the rule
    /// (default: /etc/mtasts/daemon.toml when it exists, else the daemon's defaults).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The cache holding the memories, instead of the configuration's.
    #[arg(long, value_name = "SPEC", global = true)]
    cache: Option<CacheSpec>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Follow Postfix's log (maillog_file, or the syslog file it writes to; `-` reads
    /// standard input, e.g. from `journalctl -f -o short -u postfix@-`) and learn from every
    /// delivery: TLS or plaintext. Runs until SIGTERM or SIGINT (or the end of input).
    Learn {
        /// The log file; rotation (a new file at the path) and truncation are followed.
        #[arg(long, value_name = "FILE")]
        postfix_log: PathBuf,
        /// Read the file from its start instead of from its end.
        #[arg(long)]
        from_start: bool,
        /// Stop at the end of the file instead of waiting for more.
        #[arg(long)]
        once: bool,
        /// Report each possible downgrade through TLS-RPT: submitted to this collector
        /// socket (`tlsrpt collect --submit-socket`) as a `starttls-not-supported` session,
        /// so it reaches the domain's `rua` in the next daily report.
        #[arg(long, value_name = "PATH")]
        tlsrpt_submit: Option<PathBuf>,
    },
    /// Print every domain's memory and where it stands.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the remembered domains as a preload list (JSON, docs/remembered-tls.md).
    Export,
    /// Take in a preload list: its domains are remembered until their `until`.
    Import {
        /// The list (`-`: standard input).
        file: PathBuf,
    },
    /// Delete the memories that hold nothing in force (not remembered, nothing preloaded, no
    /// delivery seen for max_age); `learn` does this at start and daily.
    Prune,
    /// Forget domains (learning starts again at their next delivery).
    Forget {
        /// The domains.
        #[arg(required = true)]
        domains: Vec<String>,
    },
}

impl RememberedArgs {
    /// Prints and exits (everything but `learn`).
    pub fn prints_and_exits(&self) -> bool {
        !matches!(self.cmd, Cmd::Learn { .. })
    }
}

pub fn run(args: &RememberedArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mtasts remembered: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_async(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtasts remembered: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The collector's learner: the memories and rule of the daemon configuration `config`.
pub async fn learner(config: &Path) -> Result<mtasts_tlsrpt::collect::Learner> {
    let (store, config) = open_with(Some(config), None).await?;
    Ok(mtasts_tlsrpt::collect::Learner {
        store,
        rule: config.remember.rule(),
    })
}

async fn open(args: &RememberedArgs) -> Result<(Remembered, Config)> {
    open_with(args.config.as_deref(), args.cache.clone()).await
}

async fn open_with(
    config: Option<&Path>,
    cache: Option<CacheSpec>,
) -> Result<(Remembered, Config)> {
    let default = Path::new("/etc/mtasts/daemon.toml");
    let config = match config {
        Some(p) => Config::load(p).context("loading the configuration")?.0,
        None if default.exists() => {
            Config::load(default)
                .context("loading /etc/mtasts/daemon.toml")?
                .0
        }
        None => Config::default(),
    };
    let mut spec = cache.unwrap_or_else(|| config.cache.clone());
    if spec == CacheSpec::Sqlite(None) {
        spec = CacheSpec::Sqlite(Some(mtasts_daemon::default_sqlite_path()));
    }
    let store = Remembered::open(&spec)
        .await
        .with_context(|| format!("opening the memories in {spec}"))?;
    let Some(store) = store else {
        bail!("cache `memory` keeps no memories: use sqlite:PATH or redis://…");
    };
    Ok((store, config))
}

async fn run_async(args: &RememberedArgs) -> Result<ExitCode> {
    let (store, config) = open(args).await?;
    let rule = config.remember.rule();
    match &args.cmd {
        Cmd::Learn {
            postfix_log,
            from_start,
            once,
            tlsrpt_submit,
        } => {
            let learner = LogLearner {
                store: &store,
                rule,
                submit: tlsrpt_submit.as_deref(),
                follower: mtasts_core::postfix_log::Follower::new(),
            };
            if postfix_log.as_os_str() == "-" {
                learner.stdin().await
            } else {
                learner.follow(postfix_log, *from_start, *once).await
            }
        }
        Cmd::List { json } => {
            let now = now();
            for (domain, m) in store.all().await? {
                let state = m.state(&rule, now);
                let exempt = config.remember.exempt(&domain);
                if *json {
                    let line = serde_json::json!({
                        "domain": domain, "state": state, "exempt": exempt, "memory": m,
                    });
                    println!("{line}");
                } else {
                    let what = match state {
                        mtasts_core::remember::State::Remembered {
                            until, preloaded, ..
                        } => format!(
                            "remembered until {}{}",
                            humantime::format_rfc3339_seconds(
                                std::time::UNIX_EPOCH + Duration::from_secs(until)
                            ),
                            if preloaded { " (preloaded)" } else { "" }
                        ),
                        mtasts_core::remember::State::Learning { deliveries, .. } => format!(
                            "learning: {deliveries} of {} TLS deliveries",
                            rule.min_deliveries
                        ),
                    };
                    println!(
                        "{domain}  {what}{}  downgrades={}",
                        if exempt { " (exempt)" } else { "" },
                        m.downgrades
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Export => {
            let now = now();
            let domains = store
                .all()
                .await?
                .into_iter()
                .filter_map(|(domain, m)| match m.state(&rule, now) {
                    mtasts_core::remember::State::Remembered { until, .. } => {
                        Some(PreloadEntry { domain, until })
                    }
                    mtasts_core::remember::State::Learning { .. } => None,
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&Preload::new(domains))?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Import { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(file).with_context(|| file.display().to_string())?
            };
            let list = Preload::parse(&text).with_context(|| file.display().to_string())?;
            let n = list.domains.len();
            for e in list.domains {
                let until = e.until;
                store
                    .update(&e.domain, move |m| {
                        m.preloaded_until = Some(m.preloaded_until.map_or(until, |u| u.max(until)));
                    })
                    .await?;
            }
            println!("imported {n} domains");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Prune => {
            let n = prune(&store, &rule).await?;
            println!("pruned {n} memories");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Forget { domains } => {
            let mut missing = 0;
            for d in domains {
                let d = mtasts_core::DomainName::parse(d)
                    .with_context(|| format!("`{d}` is not a domain"))?;
                if store.forget(d.as_str()).await? {
                    println!("forgot {d}");
                } else {
                    println!("{d}: nothing remembered");
                    missing += 1;
                }
            }
            Ok(if missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Deletes the memories [`Memory::prunable`] now; how many.
///
/// [`Memory::prunable`]: mtasts_core::remember::Memory::prunable
async fn prune(store: &Remembered, rule: &Rule) -> Result<usize> {
    let now = now();
    let mut n = 0;
    for (domain, m) in store.all().await? {
        if m.prunable(rule, now) && store.forget(&domain).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// How often `learn` prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(86_400);

/// The Postfix log learner: lines in, memories updated, downgrades reported.
struct LogLearner<'a> {
    store: &'a Remembered,
    rule: Rule,
    submit: Option<&'a Path>,
    follower: mtasts_core::postfix_log::Follower,
}

impl LogLearner<'_> {
    async fn line(&mut self, line: &str) -> Result<()> {
        let Some(d) = self.follower.line(line) else {
            return Ok(());
        };
        let (at, seen, rule) = (now(), d.seen, self.rule);
        let change = self
            .store
            .update(d.domain.as_str(), move |m| m.observe(seen, at, &rule))
            .await?;
        match change {
            Change::Remembered => {
                tracing::info!(domain = %d.domain, "remembered TLS: domain now remembered");
            }
            Change::Downgrade => {
                tracing::warn!(domain = %d.domain, relay = %d.relay, "remembered TLS: possible downgrade: a delivery to a domain remembered to do TLS went in plaintext");
                if let Some(path) = self.submit
                    && let Err(e) = submit_downgrade(path, &d).await
                {
                    tracing::error!(socket = %path.display(), error = %format!("{e:#}"), "remembered TLS: the downgrade could not be submitted for TLS-RPT");
                }
            }
            Change::Reset => {
                tracing::debug!(domain = %d.domain, "remembered TLS: plaintext delivery; learning starts again");
            }
            Change::Counted => {
                tracing::debug!(domain = %d.domain, ?seen, "remembered TLS: delivery counted");
            }
        }
        Ok(())
    }

    /// Reads standard input to its end (blocking reads: nothing else runs meanwhile).
    async fn stdin(mut self) -> Result<ExitCode> {
        for line in std::io::stdin().lines() {
            self.line(&line.context("reading standard input")?).await?;
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Follows `path` like `tail -F`: from its end (or start), across rotation and truncation.
    async fn follow(mut self, path: &Path, from_start: bool, once: bool) -> Result<ExitCode> {
        let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, interrupted.clone()).context("signal handler")?;
        }
        let open = |at_end: bool| -> Result<(std::io::BufReader<std::fs::File>, u64)> {
            let mut f = std::fs::File::open(path).with_context(|| path.display().to_string())?;
            let ino = f.metadata()?.ino();
            if at_end {
                f.seek(std::io::SeekFrom::End(0))?;
            }
            Ok((std::io::BufReader::new(f), ino))
        };
        // Postfix may not have written its log yet: wait for it (a file that appears later
        // is read from its start, as a new file after rotation is).
        let mut waited = false;
        while !once && !path.exists() && !interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            if !waited {
                tracing::warn!(log = %path.display(), "remembered TLS: no such log yet; waiting for it");
                waited = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (mut reader, mut ino) = open(!from_start && !waited)?;
        tracing::info!(log = %path.display(), "remembered TLS: following Postfix's log");
        let mut pruned_at: Option<std::time::Instant> = None;
        let mut line = String::new();
        while !interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                let n = prune(self.store, &self.rule).await?;
                tracing::info!(
                    pruned = n,
                    "remembered TLS: memories with nothing in force deleted"
                );
                pruned_at = Some(std::time::Instant::now());
            }
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n > 0 && line.ends_with('\n') {
                self.line(line.trim_end()).await?;
                continue;
            }
            if n > 0 {
                // A line still being written: read it whole next time.
                reader.seek_relative(-i64::try_from(n).unwrap_or(0))?;
            }
            if once {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Rotated (another file at the path) or truncated: the new file from its start.
            if let Ok(meta) = std::fs::metadata(path) {
                let pos = reader.stream_position()?;
                if meta.ino() != ino || meta.len() < pos {
                    (reader, ino) = open(false)?;
                    tracing::info!(log = %path.display(), "remembered TLS: log rotated; reading the new file");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One `starttls-not-supported` session for the downgraded delivery, on the collector's
/// submission protocol; `ok` expected back.
async fn submit_downgrade(path: &Path, d: &mtasts_core::postfix_log::Delivery) -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (host, ip) = match d.relay.split_once('[') {
        Some((h, rest)) => (h, rest.split_once(']').map(|(ip, _)| ip)),
        None => (d.relay.as_str(), None),
    };
    let mut session = serde_json::json!({
        "domain": d.domain.as_str(),
        "policy-type": "no-policy-found",
        "result": "starttls-not-supported",
        "receiving-mx-hostname": host,
        "failure-reason-code": mtasts_core::remember::DOWNGRADE_REASON_CODE,
    });
    if let Some(ip) = ip.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()) {
        session["receiving-ip"] = serde_json::Value::String(ip.to_string());
    }
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .with_context(|| format!("connecting to {}", path.display()))?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{session}\n").as_bytes())
        .await
        .context("sending")?;
    let mut answer = String::new();
    tokio::io::BufReader::new(read)
        .read_line(&mut answer)
        .await
        .context("reading the answer")?;
    if answer.trim() != "ok" {
        bail!("the collector answered `{}`", answer.trim());
    }
    Ok(())
}
