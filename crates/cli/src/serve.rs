//! `mtasts serve`: host MTA-STS policies, and `mtasts serve records`: what to publish.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_serve::records::{Target, records};
use mtasts_serve::{Loaded, Server, Sites};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Where to listen, `IP:PORT`.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// A directory of `<domain>.txt` files, each the policy served for that domain.
    #[arg(long, value_name = "DIR", required_unless_present = "sites")]
    policies: Option<PathBuf>,
    /// A sites file (TOML): sites with inline policies and templates applied to customer
    /// domain lists (see docs/serve.md).
    #[arg(long, value_name = "FILE")]
    sites: Option<PathBuf>,
    /// A directory of `*.pem` files, each a certificate chain (leaf first) and its key; the
    /// certificate is chosen by SNI. Required unless `--plain-http` or `--acme-directory`.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["plain_http", "acme_directory"])]
    certs: Option<PathBuf>,
    /// Order certificates for the configured sites' `mta-sts.<domain>` names from this ACME
    /// directory (e.g. `https://acme-v02.api.letsencrypt.org/directory`), validated with
    /// TLS-ALPN-01 on `--listen` (which must be where port 443 of those names arrives).
    #[arg(
        long,
        value_name = "URL",
        requires = "acme_dir",
        conflicts_with = "plain_http"
    )]
    acme_directory: Option<String>,
    /// Where the ACME account and certificates are kept (so a restart re-issues nothing).
    #[arg(long, value_name = "DIR", requires = "acme_directory")]
    acme_dir: Option<PathBuf>,
    /// A PEM root to trust for the ACME directory's own HTTPS (a test CA).
    #[arg(long, value_name = "PEM", requires = "acme_directory")]
    acme_ca: Option<PathBuf>,
    /// A contact URI for the ACME account, e.g. `mailto:hostmaster@example.net` (repeatable).
    #[arg(long, value_name = "URI", requires = "acme_directory")]
    acme_contact: Vec<String>,
    /// Validate with HTTP-01 instead, answered here (`IP:PORT` where port 80 of the sites'
    /// names arrives); this listener serves ACME challenges and nothing else.
    #[arg(long, value_name = "IP:PORT", requires = "acme_directory")]
    acme_http_listen: Option<SocketAddr>,
    /// Serve plain HTTP, for use behind a TLS-terminating reverse proxy only.
    #[arg(long, conflicts_with = "certs")]
    plain_http: bool,
    /// Also take TLS reports (RFC 8460 §5.4) POSTed to `--tlsrpt-path` on the same port,
    /// into this store (`sqlite:PATH` or `postgres://…`).
    #[arg(long, value_name = "DB")]
    tlsrpt_db: Option<mtasts_tlsrpt::DbSpec>,
    /// The path of the report intake.
    #[arg(long, default_value = "/tlsrpt", requires = "tlsrpt_db")]
    tlsrpt_path: String,
    /// Delegated DNS (RFC 8461 §8.2): answer, as the authoritative server of this zone, the
    /// TXT `_mta-sts.<domain>.<zone>` of every site (customers CNAME their `_mta-sts` there).
    #[arg(long, value_name = "ZONE", requires = "dns_listen")]
    delegation_zone: Option<String>,
    /// Where the delegated DNS listens (UDP and TCP), `IP:PORT`.
    #[arg(long, value_name = "IP:PORT", requires = "delegation_zone")]
    dns_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics on `http://IP:PORT/metrics` (keep it on loopback or a
    /// private network).
    #[arg(long, value_name = "IP:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Requests per second allowed per client address (token bucket); a client over it gets
    /// `429`. Default 20, with a burst of 100; `0` turns it off (the default with
    /// `--plain-http`, where every request comes from the proxy's address).
    #[arg(long, value_name = "N")]
    client_rate: Option<f64>,
    /// Requests a client may make at once above `--client-rate`.
    #[arg(long, value_name = "N", default_value_t = 100.0)]
    client_burst: f64,
    /// Reload only on SIGHUP, not when the policy, certificate or sites-file directories
    /// change.
    #[arg(long)]
    no_watch: bool,
    /// `text` or `json` logs (stderr).
    #[arg(long, default_value = "text")]
    log_format: mtasts_daemon::LogFormat,
    /// Log every request (target `mtasts_serve::access`: peer, SNI, host, method, path, HTTP
    /// version, status, bytes, microseconds) and every failed handshake.
    #[arg(long)]
    access_log: bool,
}

#[derive(Debug, Subcommand)]
enum ServeCommand {
    /// Print what each domain publishes: the `_mta-sts` TXT with the id derived from its
    /// policy, the `mta-sts` CNAME when `--cname` is given, and a TLS-RPT record with `--rua`.
    ///
    /// Exit status: 0 printed, 1 some policy file is invalid (the others are printed), 2 setup
    /// error or an unknown DOMAIN.
    Records {
        /// The directory `mtasts serve --policies` reads.
        #[arg(long, value_name = "DIR", required_unless_present = "sites")]
        policies: Option<PathBuf>,
        /// The sites file `mtasts serve --sites` reads.
        #[arg(long, value_name = "FILE")]
        sites: Option<PathBuf>,
        /// The host name `mta-sts.<domain>` should be a CNAME of (this server's name).
        #[arg(long, value_name = "HOST")]
        cname: Option<String>,
        /// A TLS-RPT `rua` to publish, e.g. `mailto:tlsrpt@example.net` or
        /// `https://mta-sts.example.net/tlsrpt`.
        #[arg(long, value_name = "URI")]
        rua: Option<String>,
        /// With delegated DNS: print the `_mta-sts` CNAME into this zone (set once) instead
        /// of the TXT (which `serve --delegation-zone` then answers).
        #[arg(long, value_name = "ZONE")]
        delegation_zone: Option<String>,
        /// JSON lines instead of zone-file lines.
        #[arg(long)]
        json: bool,
        /// Only these domains.
        domains: Vec<String>,
    },
    /// Retire domains (RFC 8461 §8.3): write `<domain>.retire` beside each policy file, so
    /// that `serve` (after SIGHUP) serves `mode: none` under a new id; print that id and
    /// from when the records and files can be removed. Run again: shows where it stands.
    ///
    /// Exit status: 0 retiring, 2 setup error or a DOMAIN without a valid policy file.
    Retire {
        /// The directory `mtasts serve --policies` reads.
        #[arg(long, value_name = "DIR")]
        policies: PathBuf,
        /// When the new TXT id is (or was) published, RFC 3339; the wait counts from then.
        /// Default: now.
        #[arg(long, value_name = "TIME", value_parser = humantime::parse_rfc3339_weak)]
        since: Option<std::time::SystemTime>,
        /// `max_age` of the `mode: none` policy served meanwhile, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = mtasts_serve::retire::DEFAULT_NONE_MAX_AGE)]
        max_age: u64,
        /// The domains to retire.
        #[arg(required = true)]
        domains: Vec<String>,
    },
}

impl ServeArgs {
    /// `records` prints and exits; the server does not.
    pub fn prints_and_exits(&self) -> bool {
        self.command.is_some()
    }
}

pub fn run(args: &ServeArgs) -> ExitCode {
    match &args.command {
        Some(_) => crate::logging::init(mtasts_daemon::LogFormat::Text, "warn"),
        // Our own lines at info (start, reloads, retirements), the libraries' warnings.
        None if args.run.access_log => crate::logging::init(
            args.run.log_format,
            &format!("warn,mtasts=info,{}=info", mtasts_serve::server::ACCESS_LOG),
        ),
        None => crate::logging::init(args.run.log_format, "warn,mtasts=info"),
    }
    let result = match &args.command {
        Some(ServeCommand::Records {
            policies,
            sites,
            cname,
            rua,
            delegation_zone,
            json,
            domains,
        }) => print_records(
            policies.as_deref(),
            sites.as_deref(),
            &Publish {
                cname: cname.as_deref(),
                rua: rua.as_deref(),
                zone: delegation_zone.as_deref(),
            },
            *json,
            domains,
        ),
        Some(ServeCommand::Retire {
            policies,
            since,
            max_age,
            domains,
        }) => retire(policies, *since, *max_age, domains),
        None => serve(&args.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtasts serve: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn report(loaded: &Loaded, tls: bool) {
    for p in &loaded.problems {
        tracing::warn!("mtasts serve: not served: {p}");
    }
    if tls {
        for h in &loaded.uncovered {
            tracing::warn!("mtasts serve: no certificate covers {h}: handshakes for it fail");
        }
    }
    let now = mtasts_tlsrpt::unix_now();
    for (domain, r) in &loaded.retiring {
        tracing::info!("mtasts serve: {}", retire_status(domain, r, now));
    }
}

/// One line on where a retirement stands.
fn retire_status(domain: &str, r: &mtasts_serve::retire::Retirement, now: u64) -> String {
    use mtasts_serve::retire::rfc3339;
    if r.complete(now) {
        format!(
            "{domain}: retired (mode none since {}): since {} its records and files can be removed",
            rfc3339(r.since),
            rfc3339(r.safe_after())
        )
    } else {
        format!(
            "{domain}: retiring (mode none since {}): keep its records until {}, then remove them and its files",
            rfc3339(r.since),
            rfc3339(r.safe_after())
        )
    }
}

fn serve(args: &RunArgs) -> Result<ExitCode> {
    let tlsrpt = args
        .tlsrpt_db
        .as_ref()
        .map(|db| {
            mtasts_tlsrpt::ReportDb::open(db)
                .context("opening the report store")
                .map(|store| (args.tlsrpt_path.clone(), mtasts_tlsrpt::Intake::new(store)))
        })
        .transpose()?;
    let (server, mut loaded) = Server::load(
        args.policies.as_deref(),
        args.sites.as_deref(),
        args.certs.as_deref(),
        tlsrpt,
    )
    .map_err(|e| anyhow::anyhow!(mtasts_core::errors::Chain(&e).to_string()))?;
    let tls = !args.plain_http;
    let rate = args.client_rate.unwrap_or(if tls { 20.0 } else { 0.0 });
    anyhow::ensure!(
        rate >= 0.0
            && rate.is_finite()
            && args.client_burst >= 1.0
            && args.client_burst.is_finite(),
        "--client-rate must be 0 (off) or more, and --client-burst 1 or more"
    );
    if rate > 0.0 {
        server.limit_clients(mtasts_serve::limits::ClientRate {
            per_second: rate,
            burst: args.client_burst,
        });
    }
    let acme = match (&args.acme_directory, &args.acme_dir) {
        (Some(directory), Some(state)) => {
            let settings = mtasts_serve::acme::AcmeSettings {
                directory: directory.clone(),
                directory_ca: args.acme_ca.clone(),
                state: state.clone(),
                contact: args.acme_contact.clone(),
                challenge: if args.acme_http_listen.is_some() {
                    mtasts_serve::acme::Validation::Http01
                } else {
                    mtasts_serve::acme::Validation::TlsAlpn01
                },
            };
            let challenges = server
                .use_acme(settings.certs_dir())
                .with_context(|| format!("--acme-dir {}", state.display()))?;
            // Once more, now with ACME's certificates.
            loaded = server
                .reload()
                .map_err(|e| anyhow::anyhow!(mtasts_core::errors::Chain(&e).to_string()))?;
            Some((settings, challenges))
        }
        _ => None,
    };
    // With ACME, names without a certificate are expected: they are being ordered.
    report(&loaded, tls && acme.is_none());
    let acceptor = if tls {
        Some(server.tls_acceptor().context("TLS configuration")?)
    } else {
        tracing::warn!(
            "mtasts serve: plain HTTP (--plain-http): put it behind a TLS-terminating proxy"
        );
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let local = listener.local_addr().context("local address")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(mtasts_serve::serve(
            listener,
            acceptor,
            server.clone(),
            rx.clone(),
        ));
        if let Some((settings, challenges)) = acme {
            if let Some(addr) = args.acme_http_listen {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("--acme-http-listen {addr}"))?;
                tracing::info!(
                    "mtasts serve: ACME HTTP-01 on http://{addr}/.well-known/acme-challenge/"
                );
                tokio::spawn(mtasts_serve::acme::serve_http01(
                    l,
                    challenges.clone(),
                    rx.clone(),
                ));
            }
            tokio::spawn(run_acme(settings, server.clone(), challenges, rx.clone()));
        }
        if let Some(addr) = args.metrics_listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics-listen {addr}"))?;
            tracing::info!(
                "mtasts serve: metrics on http://{}/metrics",
                l.local_addr().context("local address")?
            );
            tokio::spawn(mtasts_serve::serve_metrics(l, server.clone(), rx.clone()));
        }
        let mut dns = match (&args.delegation_zone, args.dns_listen) {
            (Some(zone), Some(addr)) => {
                let handler = mtasts_serve::dns::Delegated::new(zone, server.clone())
                    .with_context(|| format!("--delegation-zone {zone}"))?;
                let mut future = hickory_server::ServerFuture::new(handler);
                let udp = tokio::net::UdpSocket::bind(addr)
                    .await
                    .with_context(|| format!("--dns-listen {addr} (UDP)"))?;
                let tcp = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("--dns-listen {addr} (TCP)"))?;
                let local = udp.local_addr().context("local address")?;
                future.register_socket(udp);
                future.register_listener(tcp, std::time::Duration::from_secs(10));
                tracing::info!("mtasts serve: delegated DNS for {zone} on {local} (UDP and TCP)");
                Some(future)
            }
            _ => None,
        };
        tracing::info!(
            "mtasts serve ready on {}://{local}/: {} site(s), {} certificate name(s)",
            if tls { "https" } else { "http" },
            loaded.sites,
            loaded.names
        );
        let mut changes = if args.no_watch {
            None
        } else {
            let dirs = mtasts_serve::watch::dirs(
                args.policies.as_deref(),
                args.sites.as_deref(),
                args.certs.as_deref(),
            );
            let watch = mtasts_serve::watch::Changes::watch(&dirs)
                .map_err(|e| anyhow::anyhow!(mtasts_core::errors::Chain(&e).to_string()))
                .context("--no-watch reloads on SIGHUP only")?;
            Some(watch)
        };
        let reload = |why: &str| match server.reload() {
            Ok(l) => {
                report(&l, tls);
                tracing::info!(
                    "mtasts serve reloaded ({why}): {} site(s), {} certificate name(s)",
                    l.sites,
                    l.names
                );
            }
            Err(e) => tracing::warn!(
                "mtasts serve: reload ({why}) failed, the previous sites stay: {}",
                mtasts_core::errors::Chain(&e)
            ),
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload("SIGHUP"),
                () = next_change(changes.as_mut()) => reload("files changed"),
            }
        }
        let _ = stop.send(true);
        let _ = task.await;
        if let Some(dns) = dns.as_mut() {
            let _ = dns.shutdown_gracefully().await;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The ACME side: the account (retried every minute while the CA cannot be reached), then
/// its passes, until shutdown.
async fn run_acme(
    settings: mtasts_serve::acme::AcmeSettings,
    server: std::sync::Arc<mtasts_serve::Server>,
    challenges: std::sync::Arc<mtasts_serve::acme::Challenges>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match mtasts_serve::acme::Acme::start(settings.clone(), server.clone(), challenges.clone())
            .await
        {
            Ok(acme) => {
                tracing::info!(directory = %settings.directory, "mtasts serve: ACME account ready");
                return acme.run(shutdown).await;
            }
            Err(e) => tracing::warn!(
                "mtasts serve: ACME: {}; retrying in a minute",
                mtasts_core::errors::Chain(&e)
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The next burst of file changes; never, without a watch or once it ended.
async fn next_change(changes: Option<&mut mtasts_serve::watch::Changes>) {
    if let Some(c) = changes
        && c.next().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

/// What `records` is asked to print beside the TXT.
struct Publish<'a> {
    cname: Option<&'a str>,
    rua: Option<&'a str>,
    zone: Option<&'a str>,
}

fn print_records(
    policies: Option<&Path>,
    config: Option<&Path>,
    publish: &Publish<'_>,
    json: bool,
    only: &[String],
) -> Result<ExitCode> {
    let sites = Sites::load(policies, config)
        .map_err(|e| anyhow::anyhow!(mtasts_core::errors::Chain(&e).to_string()))?;
    for p in &sites.problems {
        eprintln!("mtasts serve records: not served: {p}");
    }
    let wanted: Vec<String> = only
        .iter()
        .map(|d| format!("mta-sts.{}", d.trim_end_matches('.').to_ascii_lowercase()))
        .collect();
    for w in &wanted {
        anyhow::ensure!(
            sites.for_host(w).is_some(),
            "{}: no valid policy for it",
            w.trim_start_matches("mta-sts.")
        );
    }
    let target = publish
        .cname
        .map_or(Target::Unspecified, |c| Target::Cname(c.to_string()));
    let now = mtasts_tlsrpt::unix_now();
    for site in sites.iter() {
        if !wanted.is_empty() && !wanted.contains(&site.host()) {
            continue;
        }
        let r = records(site, &target, publish.rua, publish.zone, now);
        if json {
            println!("{}", serde_json::to_string(&r).context("encoding JSON")?);
            continue;
        }
        if let Some(retiring) = &site.retiring {
            println!("; {}", retire_status(&r.domain, retiring, now));
        }
        match &r.delegated {
            Some(cname) => {
                println!("{cname}");
                println!("; answered by `mtasts serve --delegation-zone`: {}", r.txt);
            }
            None => println!("{}", r.txt),
        }
        match &r.host {
            Some(h) => println!("{h}"),
            None => println!(
                "; mta-sts.{}. must resolve to this server (A/AAAA, or CNAME with --cname)",
                r.domain
            ),
        }
        if let Some(t) = &r.tlsrpt {
            println!("{t}");
        }
    }
    Ok(if sites.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `serve retire`: writes each domain's `.retire` beside its policy file (kept as it is when
/// one exists: rerunning never moves `since`), then reports from the sites as `serve` loads them.
fn retire(
    dir: &Path,
    since: Option<std::time::SystemTime>,
    max_age: u64,
    domains: &[String],
) -> Result<ExitCode> {
    let since = since
        .unwrap_or_else(std::time::SystemTime::now)
        .duration_since(std::time::UNIX_EPOCH)
        .context("--since is before 1970")?
        .as_secs();
    let before = Sites::load_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut hosts = Vec::new();
    for d in domains {
        let host = format!("mta-sts.{}", d.trim_end_matches('.').to_ascii_lowercase());
        let site = before.for_host(&host).with_context(|| {
            format!(
                "{d}: no valid policy file in {} (a domain of a sites file is retired with a [[retire]] entry, see docs/serve.md)",
                dir.display()
            )
        })?;
        if site.retiring.is_none() {
            let path = site.source.with_extension("retire");
            let text = format!(
                "# Retiring {} (RFC 8461 §8.3), written by `mtasts serve retire`.\n\
                 since = \"{}\"\nprevious_max_age = {}\nmax_age = {max_age}\n",
                site.domain,
                mtasts_serve::retire::rfc3339(since),
                site.policy.max_age
            );
            let tmp = path.with_extension("retire.tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        hosts.push(host);
    }
    let after = Sites::load_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let now = mtasts_tlsrpt::unix_now();
    let mut failed = false;
    for host in &hosts {
        let Some(site) = after.for_host(host) else {
            failed = true;
            continue;
        };
        let Some(r) = &site.retiring else {
            // The written file was refused; the problem is printed below.
            failed = true;
            continue;
        };
        println!("{}", retire_status(site.domain.as_ref(), r, now));
        println!(
            "  serve it: send SIGHUP to `mtasts serve` (it then serves mode none with id {})",
            site.id
        );
        println!(
            "  publish:  _mta-sts.{}. IN TXT \"v=STSv1; id={};\"  (with --delegation-zone it is answered for you)",
            site.domain, site.id
        );
    }
    for p in &after.problems {
        eprintln!("mtasts serve retire: {p}");
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
