//! Gathering: runs postconf, reads the configurations, asks the sockets and the resolver, then
//! hands what it saw to the rules.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtasts_core::dane::DnssecStatus;
use mtasts_daemon::{Config, ListenAddr};
use mtasts_resolver::dns::{Dns, HickoryDns, TxtAnswer};
use mtasts_resolver::dnssec::DnssecClient;
use mtasts_store::CacheSpec;

use crate::postconf;
use crate::probe::{self, Endpoint};
use crate::{Finding, Level, Report, exim, postfix, serve};

/// The daemon's configuration when `--config` is not given, if it exists.
pub const DEFAULT_DAEMON_CONFIG: &str = "/etc/mtasts/daemon.toml";
/// The collector socket the package's unit creates.
pub const DEFAULT_COLLECTOR_SOCKET: &str = "/run/mtasts-tlsrpt/tlsrpt.sock";
/// A socketmap key the daemon answers without any lookup (an IP literal names no domain).
const PROBE_KEY: &str = "[192.0.2.1]";

/// What to look at.
#[derive(Debug, Clone)]
pub struct Options {
    /// The daemon's configuration (`None`: [`DEFAULT_DAEMON_CONFIG`] if it exists).
    pub daemon_config: Option<PathBuf>,
    /// Whether to look at Postfix at all.
    pub postfix: bool,
    /// The postconf to run.
    pub postconf: PathBuf,
    /// A Postfix instance's `config_directory` (`postconf -c`).
    pub postfix_config: Option<PathBuf>,
    /// Exim's configuration: a file, or a directory of conf.d files read in name order.
    pub exim_config: Option<PathBuf>,
    /// The TLS-RPT collector's datagram socket, to see whether one runs here.
    pub collector_socket: PathBuf,
    /// The name whose DNSSEC status tells whether a resolver validates (the root is signed).
    pub dnssec_probe: String,
    /// `serve`'s policies directory and sites file.
    pub serve_policies: Option<PathBuf>,
    /// `serve --sites`.
    pub serve_sites: Option<PathBuf>,
    /// `serve`'s certificate directories (`--certs`, the ACME directory's `certs/`).
    pub serve_certs: Vec<PathBuf>,
    /// The DNS server for `serve`'s TXT lookups (`None`: /etc/resolv.conf).
    pub nameserver: Option<SocketAddr>,
    /// Time limit for each probe.
    pub timeout: Duration,
}

/// Runs every check that applies.
pub async fn run(o: &Options) -> Report {
    let mut report = Report::default();
    let daemon = daemon_config(o, &mut report);
    let dane_answers = daemon
        .as_ref()
        .is_some_and(|c| c.named_zones().any(|(_, z)| z.dane));
    if let Some(c) = &daemon {
        daemon_checks(c, o, dane_answers, &mut report).await;
    }
    if o.postfix {
        postfix_checks(o, daemon.as_ref(), dane_answers, &mut report).await;
    }
    if let Some(path) = &o.exim_config {
        exim_checks(path, daemon.as_ref(), o.timeout, &mut report);
    }
    if o.serve_policies.is_some() || o.serve_sites.is_some() {
        serve_checks(o, &mut report).await;
    }
    report
}

fn daemon_config(o: &Options, report: &mut Report) -> Option<Config> {
    let path = match &o.daemon_config {
        Some(p) => p.clone(),
        None if Path::new(DEFAULT_DAEMON_CONFIG).exists() => DEFAULT_DAEMON_CONFIG.into(),
        None => {
            report.findings.push(Finding::new(
                "daemon",
                "config-default",
                Level::Info,
                format!("no {DEFAULT_DAEMON_CONFIG} and no --config: checking against the daemon's defaults"),
            ));
            return Some(Config::default());
        }
    };
    match Config::load(&path) {
        Ok((config, warnings)) => {
            report.findings.push(Finding::new(
                "daemon",
                "config",
                Level::Ok,
                format!("{} parses", path.display()),
            ));
            for w in warnings {
                report
                    .findings
                    .push(Finding::new("daemon", "config-warning", Level::Warning, w));
            }
            Some(config)
        }
        Err(e) => {
            report.findings.push(
                Finding::new(
                    "daemon",
                    "config-invalid",
                    Level::Error,
                    mtasts_core::errors::Chain(&e).to_string(),
                )
                .fix(format!(
                    "mtasts daemon --check-config --config {}",
                    path.display()
                )),
            );
            None
        }
    }
}

fn endpoint(l: &ListenAddr) -> Endpoint {
    match l {
        ListenAddr::Tcp(a) => Endpoint::Tcp(a.to_string()),
        ListenAddr::Unix(p) => Endpoint::Unix(p.clone()),
    }
}

async fn daemon_checks(c: &Config, o: &Options, dane_answers: bool, report: &mut Report) {
    for l in &c.listen {
        let ep = endpoint(l);
        let timeout = o.timeout;
        let answer = blocking(move || probe::socketmap(&ep, "postfix", PROBE_KEY, timeout)).await;
        report.findings.push(match answer {
            Ok(reply) => Finding::new(
                "daemon",
                "listening",
                Level::Ok,
                format!("{l} answers socketmap (`{}`)", reply.trim_end()),
            ),
            Err(e) => Finding::new(
                "daemon",
                "not-listening",
                Level::Error,
                format!("{l}: {}", mtasts_core::errors::Chain(&e)),
            )
            .fix("systemctl enable --now mtasts-daemon.socket (or start mtasts daemon); under socket activation the socket unit's ListenStream= is the address"),
        });
    }
    match &c.cache {
        CacheSpec::Memory => report.findings.push(Finding::new(
            "daemon",
            "cache-memory",
            Level::Warning,
            "cache = \"memory\": policies are lost on restart, so every domain is fetched again and a restart during an attack loses the protection of cached policies".into(),
        ).fix("cache = \"sqlite:/var/lib/mtasts/cache.sqlite3\"")),
        CacheSpec::Sqlite(path) => {
            let path = path.clone().unwrap_or_else(mtasts_daemon::default_sqlite_path);
            report.findings.push(match std::fs::metadata(&path) {
                Ok(m) => Finding::new(
                    "daemon",
                    "cache",
                    Level::Ok,
                    format!("SQLite cache {} ({} bytes)", path.display(), m.len()),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Finding::new(
                    "daemon",
                    "cache-new",
                    Level::Info,
                    format!(
                        "SQLite cache {} not created yet (the daemon creates it and its directory at start)",
                        path.display()
                    ),
                ),
                Err(e) => Finding::new(
                    "daemon",
                    "cache-unreadable",
                    Level::Error,
                    format!("SQLite cache {}: {e}", path.display()),
                ),
            });
        }
        CacheSpec::Redis(url) => {
            let ep = Endpoint::Tcp(redis_address(url));
            let timeout = o.timeout;
            let shown = ep.clone();
            let r = blocking(move || probe::listening(&ep, timeout)).await;
            report.findings.push(match r {
                Ok(()) => Finding::new("daemon", "cache", Level::Ok, format!("Redis at {shown} accepts connections")),
                Err(e) => Finding::new(
                    "daemon",
                    "cache-unreachable",
                    Level::Error,
                    format!("Redis cache: {}; the daemon runs on its memory tier only", mtasts_core::errors::Chain(&e)),
                ),
            });
        }
    }
    if dane_answers {
        let server = c.dane_nameserver.or(c.nameserver);
        let (shown, status) = dnssec_status(server, &o.dnssec_probe, o.timeout).await;
        report.findings.push(match status {
            Ok(DnssecStatus::Secure) => Finding::new(
                "dns",
                "validating",
                Level::Ok,
                format!("the daemon's DANE resolver {shown} validates ({} came back with the AD bit)", o.dnssec_probe),
            ),
            Ok(DnssecStatus::Insecure) => Finding::new(
                "dns",
                "not-validating",
                Level::Warning,
                format!("the daemon's DANE resolver {shown} answered {} without the AD bit: it does not validate, so DANE never applies and domains get their MTA-STS answers", o.dnssec_probe),
            )
            .fix("run a validating resolver (unbound) on loopback and set dane_nameserver to it"),
            Ok(status) => Finding::new(
                "dns",
                "resolver-failing",
                Level::Error,
                format!("the daemon's DANE resolver {shown} gave no usable answer for {} ({status})", o.dnssec_probe),
            ),
            Err(e) => {
                report.incomplete = true;
                Finding::new("dns", "no-resolver", Level::Warning, e)
            }
        });
        // The MTA asks /etc/resolv.conf's resolver for its own DANE lookups: a different one
        // can see other DNSSEC (another trust anchor, a stale cache, no validation).
        let system = DnssecClient::new(None, o.timeout).map(|c| c.server());
        if let (Some(daemon), Ok(system)) = (server, system)
            && daemon != system
        {
            report.findings.push(
                Finding::new(
                    "dns",
                    "dane-resolver-differs",
                    Level::Warning,
                    format!("the daemon asks {daemon} for DANE, the MTA asks {system} (/etc/resolv.conf): they can disagree about which domains DANE covers"),
                )
                .fix("use one validating resolver for both: leave dane_nameserver (and nameserver) unset, or point /etc/resolv.conf at it"),
            );
        }
    }
}

/// `redis://[user:pass@]host[:port][/db]` → `host:port`.
fn redis_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or("");
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    }
}

async fn dnssec_status(
    server: Option<SocketAddr>,
    probe: &str,
    timeout: Duration,
) -> (String, Result<DnssecStatus, String>) {
    let shown = server.map_or("(/etc/resolv.conf)".to_string(), |s| s.to_string());
    match DnssecClient::new(server, timeout) {
        Ok(client) => (shown, Ok(client.mx(probe).await.status)),
        Err(e) => (
            shown,
            Err(format!(
                "no resolver to ask: {}",
                mtasts_core::errors::Chain(&e)
            )),
        ),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn postfix_checks(
    o: &Options,
    daemon: Option<&Config>,
    dane_answers: bool,
    report: &mut Report,
) {
    let (program, dir) = (o.postconf.clone(), o.postfix_config.clone());
    let params = match blocking(move || postconf::read(&program, dir.as_deref())).await {
        Ok(p) => p,
        Err(e) => {
            let not_installed = matches!(&e, postconf::PostconfError::Run { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
            if not_installed && o.postfix_config.is_none() {
                report.findings.push(Finding::new(
                    "postfix",
                    "not-installed",
                    Level::Info,
                    format!("{} not found: Postfix not checked", o.postconf.display()),
                ));
            } else {
                report.could_not_run(
                    "postfix",
                    "postconf-failed",
                    mtasts_core::errors::Chain(&e).to_string(),
                );
            }
            return;
        }
    };
    let (maps, _) = postfix::policy_maps(&params);
    let mut probed = Vec::new();
    for m in maps {
        let (ep, name, timeout) = (m.endpoint.clone(), m.name.clone(), o.timeout);
        let answer = blocking(move || probe::socketmap(&ep, &name, PROBE_KEY, timeout)).await;
        probed.push((m, answer));
    }
    let ca_file = match params.value("smtp_tls_CAfile") {
        "" => None,
        f => Some((PathBuf::from(f), count_certificates(Path::new(f)))),
    };
    let resolver = if dane_answers && params.value("smtp_dns_support_level") == "dnssec" {
        // Postfix asks the resolvers of /etc/resolv.conf.
        match dnssec_status(None, &o.dnssec_probe, o.timeout).await {
            (_, Ok(s)) => Some((o.dnssec_probe.clone(), s)),
            (_, Err(_)) => Some((o.dnssec_probe.clone(), DnssecStatus::Indeterminate)),
        }
    } else {
        None
    };
    let tlsrpt_socket = match params.value("smtp_tlsrpt_socket_name") {
        "" => None,
        name => {
            let path = params.queue_path(name);
            let r = probe::datagram_socket(&path);
            Some((path, r))
        }
    };
    let collector = probe::datagram_socket(&o.collector_socket)
        .ok()
        .map(|()| o.collector_socket.clone());
    let facts = postfix::Facts {
        params,
        maps: probed,
        ca_file,
        dane_answers,
        tlsrpt_forced: daemon.is_some_and(|c| c.named_zones().any(|(_, z)| z.tlsrpt == Some(true))),
        resolver,
        tlsrpt_socket,
        collector,
        remembering: daemon.is_some_and(|c| {
            c.named_zones()
                .any(|(_, z)| z.remember_tls != mtasts_core::decision::RememberMode::Off)
        }),
    };
    report.findings.extend(postfix::findings(&facts));
}

fn count_certificates(path: &Path) -> Result<usize, std::io::Error> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.matches("-----BEGIN CERTIFICATE-----").count())
}

fn exim_checks(path: &Path, daemon: Option<&Config>, timeout: Duration, report: &mut Report) {
    let text = match read_exim(path) {
        Ok(t) => t,
        Err(e) => {
            report.could_not_run(
                "exim",
                "config-unreadable",
                format!("{}: {e}", path.display()),
            );
            return;
        }
    };
    let config = exim::parse(&text);
    let listen = daemon.map(|c| c.exim_listen.clone()).unwrap_or_default();
    let answers = config.answers.as_deref().unwrap_or(exim::DEFAULT_ANSWERS);
    let probe = exim::answers_endpoint(answers).map(|ep| probe::listening(&ep, timeout));
    report
        .findings
        .extend(exim::findings(&config, &listen, probe.as_ref()));
    let remembering = daemon.is_some_and(|c| {
        c.zone(mtasts_daemon::exim::EXIM_ZONE).remember_tls
            != mtasts_core::decision::RememberMode::Off
    });
    report
        .findings
        .extend(exim::remembered_findings(&config, remembering));
}

/// A file, or a conf.d tree whose files are joined in path order (as update-exim4.conf does).
fn read_exim(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return std::fs::read_to_string(path);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut text = String::new();
    for f in files {
        text.push_str(&std::fs::read_to_string(&f)?);
        text.push('\n');
    }
    Ok(text)
}

async fn serve_checks(o: &Options, report: &mut Report) {
    let sites = match mtasts_serve::sites::Sites::load(
        o.serve_policies.as_deref(),
        o.serve_sites.as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => {
            report.findings.push(Finding::new(
                "serve",
                "sites-invalid",
                Level::Error,
                mtasts_core::errors::Chain(&e).to_string(),
            ));
            return;
        }
    };
    let dirs: Vec<&Path> = o.serve_certs.iter().map(PathBuf::as_path).collect();
    let certs = if dirs.is_empty() {
        None
    } else {
        match mtasts_serve::certs::Certs::load_dirs(&dirs) {
            Ok(c) => Some(c),
            Err(e) => {
                report.findings.push(Finding::new(
                    "serve",
                    "certs-unreadable",
                    Level::Error,
                    e.to_string(),
                ));
                return;
            }
        }
    };
    let dns = match HickoryDns::new(o.nameserver, o.timeout) {
        Ok(d) => d,
        Err(e) => {
            report.could_not_run(
                "serve",
                "no-resolver",
                mtasts_core::errors::Chain(&e).to_string(),
            );
            return;
        }
    };
    let mut facts = Vec::new();
    for site in sites.iter() {
        let published = match dns.txt(&format!("_mta-sts.{}", site.domain)).await {
            Ok(TxtAnswer::Records(rrs)) => Ok(rrs
                .iter()
                .map(|strings| mtasts_core::txt::join_strings(strings))
                .filter(|r| mtasts_core::txt::is_sts_record(r))
                .map(|r| {
                    mtasts_core::txt::parse_record(&r)
                        .map(|rec| rec.id)
                        .unwrap_or_else(|_| String::from_utf8_lossy(&r).to_string())
                })
                .collect()),
            Ok(TxtAnswer::NxDomain | TxtAnswer::NoData) => Ok(Vec::new()),
            Err(e) => Err(mtasts_core::errors::Chain(&e).to_string()),
        };
        let host = site.host();
        facts.push(serve::SiteFacts {
            domain: site.domain.to_string(),
            served_id: site.id.clone(),
            published,
            cert_not_after: certs
                .as_ref()
                .and_then(|c| c.validity(&host))
                .and_then(|(_, t)| i64::try_from(t).ok()),
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    report
        .findings
        .extend(serve::findings(&facts, certs.is_some(), now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_give_their_address() {
        assert_eq!(redis_address("redis://127.0.0.1:6380/0"), "127.0.0.1:6380");
        assert_eq!(
            redis_address("rediss://u:p@cache.example:7000"),
            "cache.example:7000"
        );
        assert_eq!(redis_address("redis://localhost/2"), "localhost:6379");
    }
}
