//! `mtasts daemon`: flags onto the config, logging, signals; the daemon itself is assembled by
//! `mtasts_daemon::Daemon`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mtasts_daemon::{Config, Daemon, ListenAddr, LogFormat, Options};
use mtasts_store::CacheSpec;
use tokio::signal::unix::{SignalKind, signal};

use crate::net::read_port_map;

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
    listen: Vec<ListenAddr>,
    /// Cache: `memory`, `sqlite:PATH` (`sqlite:` = the default path), `redis://…`.
    #[arg(long, value_name = "SPEC")]
    cache: Option<CacheSpec>,
    /// DNS server IP:PORT (default: /etc/resolv.conf).
    #[arg(long, value_name = "IP:PORT")]
    nameserver: Option<SocketAddr>,
    /// Extra trusted CA certificates (PEM) for policy hosts.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Validating resolver IP:PORT whose AD bit the DANE checks trust (default: --nameserver).
    #[arg(long, value_name = "IP:PORT")]
    dane_nameserver: Option<SocketAddr>,
    /// Serve Prometheus metrics, /healthz and `/v1/decision/<domain>` on IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// `text` or `json` logs.
    #[arg(long)]
    log_format: Option<LogFormat>,
    /// Check the configuration, print it as TOML with every setting in force, and exit.
    #[arg(long)]
    check_config: bool,
    /// Testing only: connect to other addresses than DNS says (a lab ports.txt).
    #[arg(long, value_name = "FILE", hide = true)]
    port_map: Option<PathBuf>,
}

fn load_config(args: &DaemonArgs) -> Result<Config> {
    let (mut config, warnings) = match args.config.as_ref().or(args.pmsr_config.as_ref()) {
        Some(path) => Config::load(path).context("loading the configuration")?,
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
    if config.cache == CacheSpec::Sqlite(None) {
        config.cache = CacheSpec::Sqlite(Some(mtasts_daemon::default_sqlite_path()));
    }
    config.nameserver = args.nameserver.or(config.nameserver);
    if let Some(c) = &args.ca_file {
        config.ca_file = Some(c.clone());
    }
    config.dane_nameserver = args.dane_nameserver.or(config.dane_nameserver);
    config.metrics_listen = args.metrics_listen.or(config.metrics_listen);
    config.log_format = args.log_format.unwrap_or(config.log_format);
    config.validate()?;
    // At start and on every SIGHUP, so a Postfix upgrade is noticed without a restart.
    let mut notes = config.detect_postfix(mtasts_daemon::postconf_mail_version);
    notes.extend(config.detect_dnssec(mtasts_daemon::postconf_dnssec));
    for note in notes {
        eprintln!("mtasts daemon: {note}");
    }
    Ok(config)
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
        print!(
            "{}",
            config.to_toml().context("printing the configuration")?
        );
        return Ok(());
    }
    crate::logging::init(config.log_format, "info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: &DaemonArgs, config: Config) -> Result<()> {
    let options = Options {
        connect_map: match &args.port_map {
            Some(p) => read_port_map(p)?,
            None => Default::default(),
        },
    };
    let (postfix, dnssec) = (config.postfix_version, config.postfix_dnssec);
    let daemon = Daemon::from_config(config, options).await?;
    if let Some(bound) = daemon.metrics_addr() {
        tracing::info!(%bound, "metrics on /metrics, health on /healthz, decisions on /v1/decision/<domain>");
    }
    if !daemon.exim_listening().is_empty() {
        tracing::info!(exim = ?daemon.exim_listening(), "answers for Exim");
    }
    tracing::info!(listen = ?daemon.listening(), cache = %daemon.cache(), postfix = %postfix, postfix_dnssec = %dnssec, "mtasts daemon ready");
    let server = daemon.server().clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(daemon.run(stop_rx));

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
    let _ = running.await;
    tracing::info!("stopped");
    Ok(())
}
