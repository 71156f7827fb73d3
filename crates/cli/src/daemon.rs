//! `mtasts daemon`: wiring of config, cache, resolver, listeners, metrics and signals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mtasts_daemon::{Config, Server};
use mtasts_store::AnyStore;
use tokio::signal::unix::{SignalKind, signal};

use crate::net::{Endpoints, build_resolver};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Configuration file: TOML (see docs/daemon.toml), or a postfix-mta-sts-resolver YAML
    /// file (`.yml`/`.yaml`), which is mapped with warnings for what is not carried over.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A postfix-mta-sts-resolver `mta-sts-daemon.yml` to migrate from.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pmsr_config: Option<PathBuf>,
    /// Listen on IP:PORT or unix:/path (repeatable; replaces the config's list).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Cache: `memory`, `sqlite:PATH` (`sqlite:` = the default path), `redis://…`.
    #[arg(long, value_name = "SPEC")]
    cache: Option<String>,
    /// DNS server IP:PORT (default: /etc/resolv.conf).
    #[arg(long, value_name = "IP:PORT")]
    nameserver: Option<String>,
    /// Extra trusted CA certificates (PEM) for policy hosts.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Validating resolver IP:PORT whose AD bit the DANE checks trust (default: --nameserver).
    #[arg(long, value_name = "IP:PORT")]
    dane_nameserver: Option<String>,
    /// Serve Prometheus metrics on IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    metrics_listen: Option<String>,
    /// `text` or `json` logs.
    #[arg(long)]
    log_format: Option<String>,
    /// Check the configuration, print it, and exit.
    #[arg(long)]
    check_config: bool,
    /// Testing only: connect to other addresses than DNS says (a lab ports.txt).
    #[arg(long, value_name = "FILE", hide = true)]
    port_map: Option<PathBuf>,
}

/// The default SQLite cache path: /var/lib/mtasts for root, ~/.local/state/mtasts otherwise.
pub fn default_sqlite_path() -> PathBuf {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    match std::env::var_os("HOME") {
        Some(home) if !is_root => PathBuf::from(home).join(".local/state/mtasts/cache.sqlite3"),
        _ => PathBuf::from(mtasts_store::DEFAULT_SQLITE_PATH),
    }
}

fn load_config(args: &DaemonArgs) -> Result<Config> {
    let (mut config, warnings) = match args.config.as_ref().or(args.pmsr_config.as_ref()) {
        Some(path) => Config::load(path).with_context(|| format!("loading {}", path.display()))?,
        None => (Config::default(), Vec::new()),
    };
    for w in warnings {
        eprintln!("mtasts daemon: config: {w}");
    }
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    if let Some(c) = &args.cache {
        config.cache = c.clone();
    }
    if let Some(n) = &args.nameserver {
        config.nameserver = Some(n.clone());
    }
    if let Some(c) = &args.ca_file {
        config.ca_file = Some(c.clone());
    }
    if let Some(n) = &args.dane_nameserver {
        config.dane_nameserver = Some(n.clone());
    }
    if let Some(m) = &args.metrics_listen {
        config.metrics_listen = Some(m.clone());
    }
    if let Some(f) = &args.log_format {
        config.log_format = f.clone();
    }
    if config.cache == "sqlite:" {
        config.cache = format!("sqlite:{}", default_sqlite_path().display());
    }
    config.validate()?;
    // At start and on every SIGHUP, so a Postfix upgrade is noticed without a restart.
    for note in config.detect_postfix(mtasts_daemon::postconf_mail_version) {
        eprintln!("mtasts daemon: {note}");
    }
    Ok(config)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(args: &DaemonArgs) -> ExitCode {
    match daemon(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtasts daemon: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn daemon(args: &DaemonArgs) -> Result<()> {
    let config = load_config(args)?;
    if args.check_config {
        println!("{config:#?}");
        return Ok(());
    }
    init_logging(&config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: &DaemonArgs, config: Config) -> Result<()> {
    let store = AnyStore::open(&config.cache, config.resolver.memory_capacity)
        .await
        .with_context(|| format!("opening the cache `{}`", config.cache))?;
    let nameserver = config
        .nameserver
        .as_deref()
        .map(|n| n.parse().with_context(|| format!("nameserver `{n}`")))
        .transpose()?;
    let resolver = build_resolver(
        &Endpoints {
            nameserver,
            ca_file: config.ca_file.as_deref(),
            dns_timeout: config.resolver.dns_timeout,
            fetch_timeout: config.resolver.fetch_timeout,
            port_map: args.port_map.as_deref(),
        },
        Some(store.clone()),
        config.resolver_settings(),
    )?;
    let dane_enabled = config.default_zone.dane || config.zones.values().any(|z| z.dane);
    let dane = if dane_enabled {
        let server = config
            .dane_nameserver
            .as_deref()
            .map(|n| n.parse().with_context(|| format!("dane_nameserver `{n}`")))
            .transpose()?
            .or(nameserver);
        let timeout = Duration::try_from_secs_f64(config.resolver.dns_timeout)
            .unwrap_or(Duration::from_secs(5));
        let client = mtasts_resolver::DnssecClient::new(server, timeout)
            .context("DANE checks need a validating resolver (set dane_nameserver, or dane = false in the zones)")?;
        Some(mtasts_resolver::DaneResolver::new(
            client,
            mtasts_resolver::DaneSettings::default(),
        ))
    } else {
        None
    };
    let listeners = mtasts_daemon::bind(&config).await?;
    let grace =
        Duration::try_from_secs_f64(config.shutdown_timeout).unwrap_or(Duration::from_secs(20));
    let described: Vec<String> = listeners.iter().map(|l| l.describe()).collect();
    let server = Server::new(resolver.clone(), dane, config.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = &config.metrics_listen {
        let addr = addr
            .parse()
            .with_context(|| format!("metrics_listen `{addr}`"))?;
        let bound = mtasts_daemon::metrics::serve(addr, server.clone(), stop_rx.clone())
            .await
            .with_context(|| format!("metrics listener {addr}"))?;
        tracing::info!(%bound, "metrics on /metrics");
    }
    let refresher = resolver.spawn_refresher();
    tracing::info!(listen = ?described, cache = store.kind(), postfix = %config.postfix_version, "mtasts daemon ready");
    let running = tokio::spawn(server.clone().run(listeners, stop_rx, grace));

    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match load_config(args) {
                Ok(new) => {
                    for note in server.reload(new) {
                        tracing::warn!("reload: {note}");
                    }
                    tracing::info!("configuration reloaded");
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the running configuration"),
            },
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some(r) = refresher {
        r.abort();
    }
    let _ = running.await;
    tracing::info!("stopped");
    Ok(())
}
