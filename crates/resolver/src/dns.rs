//! DNS for discovery and for the policy host's address: every lookup goes through this, never
//! through getaddrinfo.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};

/// Records of one TXT RRset, each as its character-strings; or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtAnswer {
    /// The records, each as its character-strings.
    Records(Vec<Vec<Vec<u8>>>),
    /// The name does not exist.
    NxDomain,
    /// The name exists without TXT records.
    NoData,
}

/// A DNS failure that says nothing about the data (DNS-02, DNS-03 keep these apart).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("SERVFAIL")]
    /// The server answered SERVFAIL (or DNSSEC validation failed).
    ServFail,
    #[error("REFUSED")]
    /// The server refused the query.
    Refused,
    #[error("timed out")]
    /// No answer in time.
    Timeout,
    #[error("response code {0}")]
    /// Another failing response code.
    ResponseCode(ResponseCode),
    #[error("reading /etc/resolv.conf")]
    /// /etc/resolv.conf could not be read.
    SystemConfig(#[source] Arc<ResolveError>),
    #[error("lookup failed")]
    /// Another resolver failure.
    Resolve(#[source] Arc<ResolveError>),
}

impl PartialEq for DnsError {
    /// Same kind of failure (causes are not compared).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::ResponseCode(a), Self::ResponseCode(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for DnsError {}

/// The lookups the resolver needs. A trait so tests can script DNS outcomes directly.
pub trait Dns: Send + Sync + 'static {
    /// TXT records at `name`.
    fn txt(&self, name: &str) -> impl Future<Output = Result<TxtAnswer, DnsError>> + Send;
    /// IPv4 and IPv6 addresses of `host` (empty: none).
    fn addresses(&self, host: &str) -> impl Future<Output = Result<Vec<IpAddr>, DnsError>> + Send;
    /// The MX RRset of `domain` as (preference, exchange without the trailing dot, lower
    /// case); empty when the name has no MX records or does not exist.
    fn mx(&self, domain: &str)
    -> impl Future<Output = Result<Vec<(u16, String)>, DnsError>> + Send;
}

/// [`Dns`] through hickory-resolver, with no second cache: the policy cache is the cache, and
/// a TXT change must be seen on the next check.
#[derive(Debug, Clone)]
pub struct HickoryDns {
    resolver: TokioResolver,
}

impl HickoryDns {
    /// Queries `nameserver` (UDP, then TCP on truncation), or the servers of /etc/resolv.conf.
    pub fn new(nameserver: Option<SocketAddr>, timeout: Duration) -> Result<Self, DnsError> {
        let (config, mut opts) = resolver_config(nameserver)?;
        opts.cache_size = 0;
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        opts.edns0 = true;
        opts.try_tcp_on_error = true;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Ok(Self { resolver })
    }
}

/// Which servers to ask: `nameserver` (UDP, then TCP), or those of /etc/resolv.conf with its
/// options. Every hickory resolver of mtasts starts here.
pub fn resolver_config(
    nameserver: Option<SocketAddr>,
) -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    match nameserver {
        Some(addr) => {
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            Ok((config, ResolverOpts::default()))
        }
        None => hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| DnsError::SystemConfig(Arc::new(e))),
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Sorts a hickory error into "no data" outcomes and real failures, by its kind.
fn classify(e: &ResolveError) -> Result<TxtAnswer, DnsError> {
    if let Some(proto) = e.proto() {
        match proto.kind() {
            ProtoErrorKind::NoRecordsFound { response_code, .. } => {
                return match *response_code {
                    ResponseCode::NXDomain => Ok(TxtAnswer::NxDomain),
                    ResponseCode::NoError => Ok(TxtAnswer::NoData),
                    ResponseCode::ServFail => Err(DnsError::ServFail),
                    ResponseCode::Refused => Err(DnsError::Refused),
                    other => Err(DnsError::ResponseCode(other)),
                };
            }
            ProtoErrorKind::Timeout => return Err(DnsError::Timeout),
            // Connecting to the server timed out (hickory reports it as I/O).
            ProtoErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                return Err(DnsError::Timeout);
            }
            _ => {}
        }
    }
    Err(DnsError::Resolve(Arc::new(e.clone())))
}

impl Dns for HickoryDns {
    async fn txt(&self, name: &str) -> Result<TxtAnswer, DnsError> {
        match self.resolver.lookup(fqdn(name), RecordType::TXT).await {
            Ok(lookup) => {
                let records: Vec<Vec<Vec<u8>>> = lookup
                    .record_iter()
                    .filter_map(|r| match r.data() {
                        RData::TXT(t) => Some(t.txt_data().iter().map(|s| s.to_vec()).collect()),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    Ok(TxtAnswer::NoData)
                } else {
                    Ok(TxtAnswer::Records(records))
                }
            }
            Err(e) => classify(&e),
        }
    }

    async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        match self.resolver.lookup(fqdn(domain), RecordType::MX).await {
            Ok(lookup) => Ok(lookup
                .record_iter()
                .filter_map(|r| crate::dnssec::pick_mx(r.data()))
                .collect()),
            Err(e) => classify(&e).map(|_| Vec::new()),
        }
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = fqdn(host);
        let (v4, v6) = tokio::join!(
            self.resolver.lookup(name.clone(), RecordType::A),
            self.resolver.lookup(name, RecordType::AAAA)
        );
        let mut out = Vec::new();
        let mut first_error = None;
        for result in [v4, v6] {
            match result {
                Ok(l) => out.extend(l.record_iter().filter_map(|r| match r.data() {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => {
                    if let Err(err) = classify(&e) {
                        first_error.get_or_insert(err);
                    }
                }
            }
        }
        match (out.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }
}
