//! Gathering (all the I/O of a check): what DNS, the policy host and the MX hosts say, kept
//! as raw observations for [`crate::diagnose()`] to judge. Lookups that do not depend on each
//! other run concurrently; so do the MX hosts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mtasts_core::DomainName;
use mtasts_core::dane::{Answer, Tlsa};
use mtasts_resolver::dnssec::host_tlsa;
use mtasts_resolver::validate::Validator;
use mtasts_resolver::{
    Dns, DnsError, DnssecClient, Fetch, FetchError, FetchSettings, Fetched, HickoryDns,
    HttpsFetcher, NoValidatingResolver, TrustError, TxtAnswer, client_config, root_store,
};
use rustls::RootCertStore;

use crate::probe::{TlsOutcome, probe_smtp, tls_handshake};
use crate::report::{AddressProbe, Report};

/// How to reach things.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// DNS server for every lookup; `None`: /etc/resolv.conf. DANE status needs a validating one.
    pub nameserver: Option<SocketAddr>,
    /// Extra trusted CA certificates (PEM) for policy and MX hosts, on top of the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Per network step.
    pub timeout: Duration,
    /// Probe MX hosts on port 25.
    pub smtp: bool,
    /// (published address, port) → where to connect (the lab's ephemeral ports).
    pub connect_map: HashMap<SocketAddr, SocketAddr>,
}

/// Why a checker could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("setting up DNS")]
    /// DNS could not be set up (e.g. /etc/resolv.conf unreadable).
    Dns(#[source] DnsError),
    #[error("setting up the trust for policy hosts")]
    /// The CA file could not be read.
    Trust(#[from] TrustError),
    #[error("choosing the validating resolver for DANE")]
    /// No nameserver to ask for DNSSEC status.
    Dnssec(#[from] NoValidatingResolver),
}

/// Everything seen about one domain.
#[derive(Debug)]
pub struct Observations {
    /// The domain checked.
    pub domain: DomainName,
    /// Whether MX hosts were probed on port 25.
    pub smtp: bool,
    /// `None`: DNSSEC status is the resolver's AD bit; else mtasts validated it against this
    /// trust anchor itself.
    pub validated_by: Option<String>,
    /// `_mta-sts.<domain>` TXT.
    pub txt: Result<TxtAnswer, DnsError>,
    /// The policy fetch.
    pub fetch: Result<Fetched, FetchError>,
    /// The policy host's certificate, probed after a fetch or a certificate failure.
    pub policy_tls: Option<TlsOutcome>,
    /// The MX RRset with its DNSSEC status.
    pub mx: Answer<String>,
    /// Each MX host (the domain itself when it has no MX), in MX order.
    pub hosts: Vec<HostObservation>,
    /// `_smtp._tls.<domain>` TXT.
    pub tlsrpt: Result<TxtAnswer, DnsError>,
}

/// What one MX host showed.
#[derive(Debug)]
pub struct HostObservation {
    /// The MX host name (or the domain, when it has no MX).
    pub host: String,
    /// Its addresses (`None`: not looked up, port 25 probes are off).
    pub addresses: Option<Result<Vec<IpAddr>, DnsError>>,
    /// Each address probed with and without SNI.
    pub probes: Vec<AddressProbe>,
    /// The TLSA base domain: the host, or where its validated CNAME chain ends when TLSA is
    /// there (RFC 7672 §2.2.3).
    pub tlsa_base: String,
    /// TLSA at `_25._tcp.<tlsa_base>` with its DNSSEC status.
    pub tlsa: Answer<Tlsa>,
}

/// Where DNSSEC status comes from: the resolver's AD bit (the MTA's view), or mtasts' own
/// validation (for hosts without a validating resolver; not what the MTA sees).
enum DnssecView {
    Resolver(DnssecClient),
    Validator(Box<Validator>),
}

impl DnssecView {
    async fn mx(&self, domain: &str) -> Answer<String> {
        match self {
            Self::Resolver(c) => c.mx(domain).await,
            Self::Validator(v) => v.mx(domain).await,
        }
    }

    async fn host_tlsa(&self, host: &str) -> (String, Answer<Tlsa>) {
        match self {
            Self::Resolver(c) => host_tlsa(c, host).await,
            Self::Validator(v) => host_tlsa(v.as_ref(), host).await,
        }
    }

    fn validated_by(&self) -> Option<String> {
        match self {
            Self::Resolver(_) => None,
            Self::Validator(v) => Some(v.anchor().to_string()),
        }
    }
}

/// Runs checks; reusable across domains (scan).
pub struct Checker {
    dns: Arc<HickoryDns>,
    fetcher: HttpsFetcher<HickoryDns>,
    dnssec: DnssecView,
    roots: Arc<RootCertStore>,
    settings: CheckSettings,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Checker {
    /// A checker with its DNS, HTTPS and DNSSEC clients.
    pub fn new(settings: CheckSettings) -> Result<Self, SetupError> {
        let dns = Arc::new(
            HickoryDns::new(settings.nameserver, settings.timeout).map_err(SetupError::Dns)?,
        );
        let tls = client_config(settings.ca_file.as_deref())?;
        let fetcher = HttpsFetcher::new(
            dns.clone(),
            tls,
            FetchSettings {
                connect_timeout: settings.timeout,
                total_timeout: settings.timeout * 3,
                connect_map: settings.connect_map.clone(),
                ..FetchSettings::default()
            },
        );
        let dnssec =
            DnssecView::Resolver(DnssecClient::new(settings.nameserver, settings.timeout)?);
        let roots = Arc::new(root_store(settings.ca_file.as_deref())?);
        Ok(Self {
            dns,
            fetcher,
            dnssec,
            roots,
            settings,
        })
    }

    /// DNSSEC validated by mtasts itself with `validator` instead of trusting the resolver's
    /// AD bit: reports then say so, as it is not the view the MTA uses.
    pub fn with_validator(mut self, validator: Validator) -> Self {
        self.dnssec = DnssecView::Validator(Box::new(validator));
        self
    }

    /// The full diagnosis of `domain`: [`Checker::observe`], then [`crate::diagnose()`].
    pub async fn check(&self, domain: &DomainName) -> Report {
        crate::diagnose::diagnose(&self.observe(domain).await)
    }

    /// Everything a sender would see of `domain`.
    pub async fn observe(&self, domain: &DomainName) -> Observations {
        let (sts_name, tlsrpt_name) = (domain.mta_sts_txt_name(), domain.tlsrpt_txt_name());
        let (txt, tlsrpt, (fetch, policy_tls), mx) = tokio::join!(
            self.dns.txt(&sts_name),
            self.dns.txt(&tlsrpt_name),
            self.fetch_policy(domain),
            self.dnssec.mx(domain.as_str())
        );
        let mut names = mx.records.clone();
        names.dedup();
        if names.is_empty() {
            names.push(domain.to_string());
        }
        let hosts = futures_util::future::join_all(names.into_iter().map(|h| self.host(h))).await;
        Observations {
            domain: domain.clone(),
            smtp: self.settings.smtp,
            validated_by: self.dnssec.validated_by(),
            txt,
            fetch,
            policy_tls,
            mx,
            hosts,
            tlsrpt,
        }
    }

    async fn fetch_policy(
        &self,
        domain: &DomainName,
    ) -> (Result<Fetched, FetchError>, Option<TlsOutcome>) {
        let fetch = self.fetcher.fetch(domain).await;
        let probe = matches!(&fetch, Ok(_) | Err(FetchError::WebPki { .. }));
        let tls = if probe {
            self.policy_tls(&domain.policy_host()).await
        } else {
            None
        };
        (fetch, tls)
    }

    /// The policy host's certificate, for expiry and names.
    async fn policy_tls(&self, host: &str) -> Option<TlsOutcome> {
        let ip = self.dns.addresses(host).await.ok()?.into_iter().next()?;
        let tcp = tokio::time::timeout(
            self.settings.timeout,
            tokio::net::TcpStream::connect(self.connect_addr(ip, 443)),
        )
        .await
        .ok()?
        .ok()?;
        Some(tls_handshake(tcp, self.roots.clone(), host, true).await)
    }

    async fn host(&self, host: String) -> HostObservation {
        let ((tlsa_base, tlsa), (addresses, probes)) =
            tokio::join!(self.dnssec.host_tlsa(&host), self.probe_host(&host));
        HostObservation {
            host,
            addresses,
            probes,
            tlsa_base,
            tlsa,
        }
    }

    async fn probe_host(
        &self,
        host: &str,
    ) -> (Option<Result<Vec<IpAddr>, DnsError>>, Vec<AddressProbe>) {
        if !self.settings.smtp {
            return (None, Vec::new());
        }
        let addresses = self.dns.addresses(host).await;
        let ips = addresses.clone().unwrap_or_default();
        let probes = futures_util::future::join_all(ips.into_iter().map(|ip| async move {
            let public = SocketAddr::new(ip, 25);
            let connect = self.connect_addr(ip, 25);
            let limit = self.settings.timeout;
            let (with_sni, without_sni) = tokio::join!(
                probe_smtp(public, connect, host, true, self.roots.clone(), limit),
                probe_smtp(public, connect, host, false, self.roots.clone(), limit)
            );
            AddressProbe {
                with_sni,
                without_sni,
            }
        }))
        .await;
        (Some(addresses), probes)
    }

    fn connect_addr(&self, ip: IpAddr, port: u16) -> SocketAddr {
        let public = SocketAddr::new(ip, port);
        self.settings
            .connect_map
            .get(&public)
            .copied()
            .unwrap_or(public)
    }
}
