//! `mtasts tlsrpt`: TLS reports for a receiving domain, taken in from files and summarised.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_core::errors::Chain;
use mtasts_tlsrpt::{DbSpec, Filter, ReportDb, Stored, receive, report_from_message};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct TlsrptArgs {
    #[command(subcommand)]
    command: TlsrptCommand,
}

#[derive(Debug, Subcommand)]
enum TlsrptCommand {
    /// Store reports: one report message on stdin, as an MTA's pipe delivers it (DKIM
    /// checked), or files: `.json`/`.json.gz` reports and archived `.eml` messages (DKIM not
    /// checked).
    ///
    /// A message on stdin must carry a valid DKIM signature of its reporting domain
    /// (TLS-Report-Submitter, else From; RCV-01); one without is kept among the ignored
    /// messages, not as a report. Exit status, as sysexits(3) for the MTA: 0 stored,
    /// duplicate or ignored; 65 signed but unusable, or oversized (bounce); 75 DKIM key or
    /// store unavailable (the MTA retries).
    ///
    /// With files: 0 every file stored or already stored, 1 some file unusable (the others
    /// are stored), 2 the store cannot be opened.
    Ingest {
        /// The report store: `sqlite:PATH`, or `postgres://USER@HOST[:PORT]/DB`.
        #[arg(long)]
        db: DbSpec,
        /// DNS server for DKIM keys (IP:PORT); default: the servers in /etc/resolv.conf.
        #[arg(long, value_name = "IP:PORT")]
        nameserver: Option<std::net::SocketAddr>,
        /// DNS timeout per query, in seconds (more than 0, at most 60).
        #[arg(long, default_value = "5", value_name = "SECS", value_parser = crate::net::seconds_up_to::<60>)]
        dns_timeout: Duration,
        /// Report files; none: one message on stdin.
        files: Vec<PathBuf>,
    },
    /// Receive reports POSTed to `rua=https://…` (RFC 8460 §5.4): `201` once stored, `200`
    /// when already stored, `405`/`415`/`413`/`400` for what is not a report.
    ///
    /// HTTPS with `--cert` and `--key`; without them plain HTTP, for use behind a
    /// TLS-terminating proxy only. Stops on SIGTERM or SIGINT. Exit status: 0 stopped, 2 setup
    /// error.
    Receive {
        /// The report store: `sqlite:PATH`, or `postgres://USER@HOST[:PORT]/DB`.
        #[arg(long)]
        db: DbSpec,
        /// Where to listen, `IP:PORT`.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Certificate chain (PEM) for HTTPS.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// Private key (PEM) for HTTPS.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
    },
    /// Sending side: collect TLS session results on a unix datagram socket, in libtlsrpt's
    /// format (point Postfix ≥ 3.10's `smtp_tlsrpt_socket_name` here), counted per UTC day
    /// into the store for the daily reports. Stops on SIGTERM or SIGINT. Exit status: 0
    /// stopped, 2 setup error.
    Collect {
        /// The store: `sqlite:PATH`, or `postgres://USER@HOST[:PORT]/DB`.
        #[arg(long)]
        db: DbSpec,
        /// The socket path (a stale socket there is replaced).
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// Permissions of the socket, octal: the MTA's user must be able to write to it.
        #[arg(long, value_name = "MODE", default_value = "0660", value_parser = parse_mode)]
        socket_mode: u32,
        /// Also take session results as JSON lines on this unix stream socket, each answered
        /// `ok` or `error: …` (Exim's `event_action`, scripts; see docs/tlsrpt.md). Same mode.
        #[arg(long, value_name = "PATH")]
        submit_socket: Option<PathBuf>,
        /// Remembered TLS: also learn from every session which domains do STARTTLS, into the
        /// cache of this daemon configuration with its [remember] rule (docs/remembered-tls.md).
        #[arg(long, value_name = "DAEMON_TOML")]
        remember: Option<PathBuf>,
    },
    /// Send session results, one JSON object per line on stdin, to a collector's
    /// `--submit-socket` (see docs/tlsrpt.md for the fields); prints each answer.
    ///
    /// Exit status: 0 every line stored, 1 some line refused or not stored, 2 no collector.
    Submit {
        /// The collector's submission socket.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
    },
    /// Sending side: build each ended UTC day's reports from the collected sessions (one per
    /// policy domain, after a per-domain delay of up to `max_delay`) and deliver them to
    /// every `rua`: HTTPS POST, or mail DKIM-signed and handed to the submission server of
    /// `--config`. Failed deliveries are retried on later runs with back-off, and given up
    /// after `retry_for` (24 h). Run it from a timer (dist/systemd/mtasts-tlsrpt-send.timer).
    ///
    /// Exit status: 0 nothing failed, 1 some delivery failed (retried later, or given up),
    /// 2 setup error.
    Send {
        /// The store the collector counts into: `sqlite:PATH`, or `postgres://…`.
        #[arg(long)]
        db: DbSpec,
        /// The sending configuration (TOML; see docs/tlsrpt.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Build this UTC day's reports now (it must have ended), whatever the delay.
        #[arg(long, value_name = "YYYY-MM-DD")]
        day: Option<String>,
        /// Print the reports that would be built, with where each would go; store and
        /// deliver nothing.
        #[arg(long)]
        dry_run: bool,
        /// DNS server for `_smtp._tls` records and HTTPS hosts (IP:PORT); default: the
        /// servers in /etc/resolv.conf.
        #[arg(long, value_name = "IP:PORT")]
        nameserver: Option<std::net::SocketAddr>,
        /// DNS timeout per query, in seconds (more than 0, at most 60).
        #[arg(long, default_value = "5", value_name = "SECS", value_parser = crate::net::seconds_up_to::<60>)]
        dns_timeout: Duration,
        /// Act as if the time were this (seconds since the epoch): for tests and backfills.
        #[arg(long, hide = true)]
        now: Option<u64>,
    },
    /// Sending side: the reports built and where each stands with each `rua` URI (delivered,
    /// pending with its next attempt and last error, or given up), newest day last.
    Sent {
        /// The store `send` uses.
        #[arg(long)]
        db: DbSpec,
        /// Only reports of UTC days this long before now or later, e.g. `7d`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "7d")]
        since: Duration,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The web dashboard and Prometheus metrics of the report store: per domain a daily chart
    /// of successful and failed sessions, failure types, the MX hosts failing most, recent
    /// reports with their raw JSON (`GET /`, `/?domain=D`, `/report/ID`, `/metrics`).
    ///
    /// Plain HTTP, read-only, on a loopback address by default; any other address needs
    /// `--token-file` (then every request carries `Authorization: Bearer TOKEN` or
    /// `?token=TOKEN`). Stops on SIGTERM or SIGINT. Exit status: 0 stopped, 2 setup error.
    Dashboard {
        /// The report store: `sqlite:PATH`, or `postgres://USER@HOST[:PORT]/DB`.
        #[arg(long)]
        db: DbSpec,
        /// Where to listen, `IP:PORT`.
        #[arg(long, default_value = "127.0.0.1:8444")]
        listen: std::net::SocketAddr,
        /// A file holding the token requests must carry (its first line).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// How far back the page looks, e.g. `30d`.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        window: Duration,
    },
    /// Alert when a domain's failure rate over a window reaches a threshold: run a command
    /// and/or POST to a webhook, once when it starts and once when it is over (the state is
    /// kept in the store). Meant for a timer (e.g. hourly).
    ///
    /// The command runs through `sh -c` with the alert as JSON on stdin and in
    /// `MTASTS_ALERT_STATE` (`firing`/`resolved`), `_DOMAIN`, `_POLICY_TYPE`, `_FAILURE_RATE`,
    /// `_SUCCESSFUL`, `_FAILED`, `_WINDOW_SECONDS`; the webhook gets the same JSON. Exit
    /// status: 0 every alert sent (or none due), 1 some could not be sent (they are tried again
    /// next run), 2 setup error.
    Alert {
        /// The report store: `sqlite:PATH`, or `postgres://USER@HOST[:PORT]/DB`.
        #[arg(long)]
        db: DbSpec,
        /// Reports whose range ended within this long count, e.g. `1d`.
        #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Failure rate at or above which an alert fires, e.g. `5%`.
        #[arg(long, default_value = "5%", value_parser = mtasts_tlsrpt::alert::parse_percent)]
        threshold: f64,
        /// Domains with fewer sessions in the window never fire.
        #[arg(long, default_value = "100")]
        min_sessions: u64,
        /// A command to run per alert.
        #[arg(long, required_unless_present = "webhook")]
        command: Option<String>,
        /// A URL to POST each alert to (https://, or http:// to loopback).
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Successful and failed sessions per policy domain and policy type, failures by result
    /// type, MX host and sending MTA, reporting organisations and the policies senders saw.
    ///
    /// Exit status: 0 printed, 2 the store cannot be read.
    Summary {
        /// The report store: `sqlite:PATH`, or `postgres://USER@HOST[:PORT]/DB`.
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

impl TlsrptArgs {
    /// The servers (`receive`, `dashboard`) keep ignoring SIGPIPE, and so does `alert`,
    /// which writes to its command's stdin (a command that exits without reading must not
    /// kill it); the rest print and exit.
    pub fn prints_and_exits(&self) -> bool {
        !matches!(
            self.command,
            TlsrptCommand::Receive { .. }
                | TlsrptCommand::Dashboard { .. }
                | TlsrptCommand::Alert { .. }
                | TlsrptCommand::Collect { .. }
        )
    }
}

pub fn run(args: &TlsrptArgs) -> ExitCode {
    let result = match &args.command {
        TlsrptCommand::Ingest {
            db,
            nameserver,
            dns_timeout,
            files,
        } if files.is_empty() => return ingest_stdin(db, *nameserver, *dns_timeout),
        TlsrptCommand::Ingest { db, files, .. } => ingest(db, files),
        TlsrptCommand::Receive {
            db,
            listen,
            cert,
            key,
        } => receive_https(db, *listen, cert.as_deref().zip(key.as_deref())),
        TlsrptCommand::Summary {
            db,
            domain,
            since,
            json,
        } => summary(db, domain.as_deref(), *since, *json),
        TlsrptCommand::Collect {
            db,
            socket,
            socket_mode,
            submit_socket,
            remember,
        } => collect(
            db,
            socket,
            *socket_mode,
            submit_socket.as_deref(),
            remember.as_deref(),
        ),
        TlsrptCommand::Submit { socket } => submit(socket),
        TlsrptCommand::Send {
            db,
            config,
            day,
            dry_run,
            nameserver,
            dns_timeout,
            now,
        } => send(
            db,
            config,
            day.as_deref(),
            *dry_run,
            *nameserver,
            *dns_timeout,
            *now,
        ),
        TlsrptCommand::Sent { db, since, json } => sent(db, *since, *json),
        TlsrptCommand::Alert {
            db,
            window,
            threshold,
            min_sessions,
            command,
            webhook,
        } => alert(
            db,
            &mtasts_tlsrpt::alert::AlertRule {
                threshold_percent: *threshold,
                min_sessions: *min_sessions,
                window_seconds: window.as_secs(),
            },
            command.as_deref(),
            webhook.as_deref(),
        ),
        TlsrptCommand::Dashboard {
            db,
            listen,
            token_file,
            window,
        } => dashboard(db, *listen, token_file.as_deref(), *window),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtasts tlsrpt: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .with_context(|| format!("--cert {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "--cert {}: no PEM certificates",
        cert.display()
    );
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("--key {}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--cert and --key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

fn alert(
    db: &DbSpec,
    rule: &mtasts_tlsrpt::alert::AlertRule,
    command: Option<&str>,
    webhook: Option<&str>,
) -> Result<ExitCode> {
    use mtasts_tlsrpt::alert::{AlertState, evaluate};
    use mtasts_tlsrpt::notify::{post_webhook, run_command};
    let mut store = ReportDb::open(db).context("opening the report store")?;
    let now = mtasts_tlsrpt::unix_now();
    let totals = store
        .summary(&Filter {
            domain: None,
            since: Some(now.saturating_sub(rule.window_seconds)),
        })
        .context("reading the report store")?;
    let firing = store.firing_alerts().context("reading the report store")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut failed = 0;
    for a in evaluate(rule, &totals, &firing) {
        let label = format!(
            "{} {} ({}): {:.1}% failed ({} of {})",
            match a.state {
                AlertState::Firing => "FIRING",
                AlertState::Resolved => "resolved",
            },
            if a.policy_domain.is_empty() {
                "(no policy-domain)"
            } else {
                &a.policy_domain
            },
            a.policy_type,
            a.failure_rate,
            a.failed,
            a.successful + a.failed
        );
        let mut sent = true;
        if let Some(c) = command
            && let Err(e) = runtime.block_on(run_command(c, &a))
        {
            println!("{label}: not sent: {}", Chain(&e));
            sent = false;
        }
        if let Some(w) = webhook
            && let Err(e) = runtime.block_on(post_webhook(w, &a))
        {
            println!("{label}: not sent: {}", Chain(&e));
            sent = false;
        }
        if !sent {
            failed += 1;
            continue;
        }
        let (domain, kind) = a.key();
        store
            .set_alert(&domain, &kind, a.state == AlertState::Firing, now)
            .context("recording the alert in the report store")?;
        println!("{label}: sent");
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn dashboard(
    db: &DbSpec,
    listen: std::net::SocketAddr,
    token_file: Option<&std::path::Path>,
    window: Duration,
) -> Result<ExitCode> {
    let token = token_file
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--token-file {}", f.display()))?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            anyhow::ensure!(
                !token.is_empty(),
                "--token-file {}: the first line is empty",
                f.display()
            );
            Ok(token)
        })
        .transpose()?;
    anyhow::ensure!(
        listen.ip().is_loopback() || token.is_some(),
        "--listen {listen} is not a loopback address: the dashboard shows every report, so it needs --token-file there"
    );
    let store = ReportDb::open(db).context("opening the report store")?;
    serve_until_stopped(
        listen,
        None,
        mtasts_tlsrpt::Site::new(store, token, window),
        "mtasts tlsrpt dashboard",
    )
}

/// Serves `handler` on `listen` until SIGTERM or SIGINT.
fn serve_until_stopped<H: mtasts_tlsrpt::Handler>(
    listen: std::net::SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handler: std::sync::Arc<H>,
    what: &str,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr().context("local address")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let server = tokio::spawn(mtasts_tlsrpt::serve(listener, acceptor, handler, rx));
        eprintln!("{what} ready on {scheme}://{local}/");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop.send(true);
        let _ = server.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("`{s}` is not an octal mode such as 0660"))
}

fn submit(socket: &std::path::Path) -> Result<ExitCode> {
    use std::io::{BufRead as _, BufReader, Write as _};
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connecting to the collector at {}", socket.display()))?;
    let mut answers = BufReader::new(stream.try_clone().context("socket")?);
    let mut stream = stream;
    let mut failed = false;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        stream
            .write_all(format!("{line}\n").as_bytes())
            .context("writing to the collector")?;
        let mut answer = String::new();
        if answers
            .read_line(&mut answer)
            .context("reading the answer")?
            == 0
        {
            anyhow::bail!("the collector closed the connection");
        }
        failed |= !answer.starts_with("ok");
        print!("{answer}");
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn collect(
    db: &DbSpec,
    path: &std::path::Path,
    mode: u32,
    submit_path: Option<&std::path::Path>,
    remember: Option<&std::path::Path>,
) -> Result<ExitCode> {
    use std::os::unix::fs::PermissionsExt as _;
    let store = ReportDb::open(db).context("opening the store")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let socket = mtasts_tlsrpt::collect::bind(path)
            .with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let counts = std::sync::Arc::new(mtasts_tlsrpt::collect::CollectCounts::default());
        let store = std::sync::Arc::new(std::sync::Mutex::new(store));
        let learner = match remember {
            Some(config) => Some(std::sync::Arc::new(crate::remembered::learner(config).await?)),
            None => None,
        };
        let submissions = match submit_path {
            Some(p) => {
                let listener = mtasts_tlsrpt::collect::bind_stream(p)
                    .with_context(|| format!("binding {}", p.display()))?;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("setting the mode of {}", p.display()))?;
                Some(tokio::spawn(mtasts_tlsrpt::collect::serve_submissions(
                    listener,
                    store.clone(),
                    counts.clone(),
                    learner.clone(),
                    rx.clone(),
                )))
            }
            None => None,
        };
        let task = tokio::spawn(mtasts_tlsrpt::collect::collect(
            socket,
            store,
            counts.clone(),
            learner,
            rx,
        ));
        match submit_path {
            Some(p) => eprintln!(
                "mtasts tlsrpt collect ready on {} (submissions on {})",
                path.display(),
                p.display()
            ),
            None => eprintln!("mtasts tlsrpt collect ready on {}", path.display()),
        }
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop.send(true);
        let _ = task.await;
        if let Some(t) = submissions {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(path);
        if let Some(p) = submit_path {
            let _ = std::fs::remove_file(p);
        }
        use std::sync::atomic::Ordering::Relaxed;
        eprintln!(
            "mtasts tlsrpt collect: {} session(s) counted, {} refused (bad datagrams or lines), {} lost to store failures",
            counts.sessions.load(Relaxed),
            counts.refused.load(Relaxed),
            counts.store_failures.load(Relaxed)
        );
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct SentRow {
    day: String,
    domain: String,
    report_id: String,
    uri: String,
    state: &'static str,
    attempts: u32,
    first_attempt: Option<String>,
    next_attempt: Option<String>,
    last_error: Option<String>,
}

fn sent(db: &DbSpec, since: Duration, json: bool) -> Result<ExitCode> {
    let mut store = ReportDb::open(db).context("opening the store")?;
    let from =
        mtasts_tlsrpt::send::day_of(mtasts_tlsrpt::unix_now().saturating_sub(since.as_secs()));
    let rows: Vec<SentRow> = store
        .deliveries_since(&from)
        .context("reading the deliveries")?
        .into_iter()
        .map(|d| SentRow {
            state: d.state.as_str(),
            next_attempt: (d.state == mtasts_tlsrpt::DeliveryState::Pending)
                .then(|| mtasts_core::session::rfc3339_utc(d.next_attempt)),
            first_attempt: d.first_attempt.map(mtasts_core::session::rfc3339_utc),
            day: d.day,
            domain: d.domain,
            report_id: d.report_id,
            uri: d.uri,
            attempts: d.attempts,
            last_error: d.last_error,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no reports built since {from}");
    }
    for r in &rows {
        let mut line = format!(
            "{} {} {} {} {} (attempts {})",
            r.day, r.domain, r.uri, r.state, r.report_id, r.attempts
        );
        if let Some(next) = &r.next_attempt {
            line.push_str(&format!(", next {next}"));
        }
        if let Some(e) = &r.last_error {
            line.push_str(&format!(": {e}"));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn send(
    db: &DbSpec,
    config: &std::path::Path,
    day: Option<&str>,
    dry_run: bool,
    nameserver: Option<std::net::SocketAddr>,
    dns_timeout: Duration,
    now: Option<u64>,
) -> Result<ExitCode> {
    use mtasts_tlsrpt::send::{Rua, SendConfig, Sender};
    let config = SendConfig::load(config)?;
    let store = ReportDb::open(db).context("opening the store")?;
    let dns =
        mtasts_resolver::HickoryDns::new(nameserver, dns_timeout).context("setting up DNS")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let now = now.unwrap_or_else(mtasts_tlsrpt::unix_now);
    let summary = runtime.block_on(async {
        let sender = Sender::new(config, std::sync::Arc::new(dns))?;
        sender
            .run(
                &std::sync::Arc::new(std::sync::Mutex::new(store)),
                now,
                day,
                dry_run,
            )
            .await
    })?;
    let rfc3339 = mtasts_core::session::rfc3339_utc;
    for (r, rua) in &summary.built {
        let to = match rua {
            Rua::Uris(u) if u.is_empty() => "no usable rua URI".to_string(),
            Rua::Uris(u) => u.join(", "),
            Rua::None(why) => format!("nowhere: {why}"),
            Rua::Later(why) => {
                println!("deferred {} {}: {why}", r.day, r.domain);
                continue;
            }
        };
        if dry_run {
            let pretty = serde_json::from_str::<serde_json::Value>(&r.json)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| r.json.clone());
            println!(
                "# {} {} {} -> {to}\n# {}\n{pretty}",
                r.day, r.domain, r.report_id, r.filename
            );
        } else {
            println!("built {} {} {} -> {to}", r.day, r.domain, r.report_id);
        }
    }
    for (day, domain, at) in &summary.waiting {
        println!("waiting {day} {domain} until {}", rfc3339(*at));
    }
    let mut failed = false;
    for (d, outcome) in &summary.attempts {
        match (outcome, d.state) {
            (Ok(how), _) => println!("delivered {} {} {} ({how})", d.day, d.domain, d.uri),
            (Err(e), mtasts_tlsrpt::DeliveryState::GaveUp) => {
                failed = true;
                println!(
                    "gave up {} {} {} after {} attempts: {e}",
                    d.day, d.domain, d.uri, d.attempts
                );
            }
            (Err(e), _) => {
                failed = true;
                println!(
                    "failed {} {} {} (attempt {}, retry at {}): {e}",
                    d.day,
                    d.domain,
                    d.uri,
                    d.attempts,
                    rfc3339(d.next_attempt)
                );
            }
        }
    }
    if summary.built.is_empty() && summary.attempts.is_empty() {
        println!("nothing to send");
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn receive_https(
    db: &DbSpec,
    listen: std::net::SocketAddr,
    tls: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<ExitCode> {
    let acceptor = tls.map(|(c, k)| tls_acceptor(c, k)).transpose()?;
    let store = ReportDb::open(db).context("opening the report store")?;
    if acceptor.is_none() {
        eprintln!(
            "mtasts tlsrpt receive: plain HTTP (no --cert/--key): put it behind a TLS-terminating proxy"
        );
    }
    serve_until_stopped(
        listen,
        acceptor,
        mtasts_tlsrpt::Intake::new(store),
        "mtasts tlsrpt receive",
    )
}

/// One message from the MTA. Every way out is a sysexits code: a setup failure is a
/// temporary one too, so the MTA keeps the message until the operator mends it.
fn ingest_stdin(
    db: &DbSpec,
    nameserver: Option<std::net::SocketAddr>,
    dns_timeout: Duration,
) -> ExitCode {
    use mtasts_tlsrpt::Outcome;
    use mtasts_tlsrpt::live::sysexits;
    let outcome = (|| -> Result<Outcome> {
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                std::io::stdin().lock(),
                u64::try_from(mtasts_tlsrpt::intake::MAX_RECEIVED_BYTES).unwrap_or(u64::MAX) + 1,
            ),
            &mut raw,
        )
        .context("reading the message from stdin")?;
        let verifier = mtasts_tlsrpt::DkimVerifier::new(nameserver, dns_timeout)?;
        let mut store = ReportDb::open(db).context("opening the report store")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        // DNS async, the store blocking: one after the other, never the store inside the runtime.
        let checked = runtime.block_on(mtasts_tlsrpt::check_message(&raw, &verifier));
        Ok(mtasts_tlsrpt::file_message(
            checked,
            &raw,
            &mut store,
            mtasts_tlsrpt::unix_now(),
        ))
    })();
    match outcome {
        Ok(outcome) => {
            match &outcome {
                Outcome::Stored {
                    report_id,
                    organization,
                    signer,
                } => println!("stored report {report_id} from {organization} (DKIM d={signer})"),
                Outcome::Duplicate { report_id } => {
                    println!("duplicate of report {report_id}, already stored")
                }
                Outcome::Ignored { reason } => println!("ignored (kept aside): {reason}"),
                Outcome::Refused { reason } => println!("refused: {reason}"),
                Outcome::TryLater { reason } => println!("try again later: {reason}"),
            }
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            println!("try again later: {e:#}");
            ExitCode::from(sysexits::TEMPFAIL)
        }
    }
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
        // An archived message: the report part, DKIM not checked (archives only).
        let is_mail = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
        let (bytes, mail) = if is_mail {
            match report_from_message(&bytes) {
                Ok(m) => (m.report.clone(), Some(m)),
                Err(e) => {
                    println!("{name}: refused: {}", Chain(&e));
                    refused += 1;
                    continue;
                }
            }
        } else {
            (bytes, None)
        };
        let received = match receive(&bytes) {
            Ok(r) => r,
            Err(e) => {
                println!("{name}: refused: {}", Chain(&e));
                refused += 1;
                continue;
            }
        };
        // META-01: the report's own fields win over the message's headers; say when they differ.
        if let Some(d) = mail.as_ref().and_then(|m| m.report_domain.as_ref())
            && !received
                .parsed
                .report
                .policies
                .iter()
                .any(|p| p.policy_domain.as_deref() == Some(d.as_str()))
        {
            println!(
                "  note: TLS-Report-Domain {d} names no policy domain of the report; the report wins (META-01)"
            );
        }
        let report = &received.parsed.report;
        match store
            .store(
                &received,
                &format!("file:{name}"),
                mtasts_tlsrpt::unix_now(),
            )
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
    /// Messages kept aside, not counted (no valid DKIM, no usable report).
    ignored_messages: Vec<mtasts_tlsrpt::IgnoredMessage>,
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
    let mut store = ReportDb::open(db).context("opening the report store")?;
    let filter = Filter {
        domain: domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
        since: since.map(|s| mtasts_tlsrpt::unix_now().saturating_sub(s.as_secs())),
    };
    let totals = store.summary(&filter).context("reading the report store")?;
    let ignored = store
        .ignored(filter.since)
        .context("reading the report store")?;
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
            serde_json::to_string_pretty(&SummaryJson {
                domains,
                ignored_messages: ignored
            })
            .context("encoding JSON")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if domains.is_empty() {
        println!("no reports");
    }
    if !ignored.is_empty() {
        println!(
            "{} message(s) kept aside, not counted (no valid DKIM signature or no usable report)",
            ignored.len()
        );
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
