//! The HTTPS policy fetch (RFC 8461 §3.2, §3.3): PKIX-validated TLS ≥ 1.2 with SNI, GET of the
//! well-known URL, no redirects, 200 only, `text/plain`, a hard body cap, connect and total
//! timeouts, no proxy. Each failure names its rule and maps to a TLS-RPT result type.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mtasts_core::policy::{MAX_POLICY_BYTES, Parsed};
use mtasts_core::{DomainName, FetchFailure, Policy, PolicyErrors};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::dns::{Dns, DnsError};
use crate::trust::TrustHandle;

/// Limits of one fetch.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Per TCP connect attempt.
    pub connect_timeout: Duration,
    /// Everything: DNS, connect, TLS, headers, body (FETCH-07; the RFC suggests 60 s).
    pub total_timeout: Duration,
    /// Body cap (FETCH-08).
    pub max_body: usize,
    /// Where to really connect for (address, port 443): the testkit's ephemeral ports.
    pub connect_map: HashMap<SocketAddr, SocketAddr>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_body: MAX_POLICY_BYTES,
            connect_map: HashMap::new(),
        }
    }
}

/// Why a policy could not be fetched. `rule()` names the checklist item; causes are kept as
/// sources (shared, so a lookup's outcome stays cheap to clone).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("policy host {host} has no address")]
    /// The policy host has no address.
    Dns {
        /// The policy host.
        host: String,
        #[source]
        /// Why.
        source: NoAddress,
    },
    #[error("cannot connect to {host} ({addrs})")]
    /// No address of the policy host accepted a connection.
    Connect {
        /// The policy host.
        host: String,
        /// Its addresses, as tried.
        addrs: String,
        #[source]
        /// Why each failed.
        source: ConnectFailures,
    },
    #[error("`{host}` is not a TLS server name")]
    /// The policy host's name is not a valid TLS server name.
    ServerName {
        /// The policy host.
        host: String,
        #[source]
        /// Why.
        source: Arc<rustls_pki_types::InvalidDnsNameError>,
    },
    #[error("TLS certificate of {host} is not valid")]
    /// The policy host's certificate failed PKIX validation.
    WebPki {
        /// The policy host.
        host: String,
        #[source]
        /// The TLS error.
        source: Arc<std::io::Error>,
    },
    #[error("TLS with {host} failed")]
    /// The TLS handshake failed otherwise.
    Tls {
        /// The policy host.
        host: String,
        #[source]
        /// The TLS error.
        source: Arc<std::io::Error>,
    },
    #[error("timed out after {0:?}")]
    /// The fetch took longer than its total limit.
    Timeout(Duration),
    #[error("redirect ({status}) to `{location}` not followed; senders must not follow redirects")]
    /// A redirect, which senders must not follow.
    Redirect {
        /// The 3xx status.
        status: u16,
        /// Its Location header.
        location: String,
    },
    #[error("HTTP status {0}; only 200 yields a policy")]
    /// A status other than 200.
    Status(u16),
    #[error("Content-Type {}; the policy must be served as text/plain", .0.as_deref().map_or("missing".to_string(), |c| format!("`{c}`")))]
    /// A media type other than `text/plain` (or none).
    ContentType(Option<String>),
    #[error("policy is larger than {limit} bytes{}", .declared.map(|d| format!(" (Content-Length: {d})")).unwrap_or_default())]
    /// The body is over the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The Content-Length, if any.
        declared: Option<u64>,
    },
    #[error("HTTP")]
    /// The HTTP exchange failed.
    Http(#[source] Arc<hyper::Error>),
    #[error("building the HTTP request")]
    /// The request could not be built.
    Request(#[source] Arc<http::Error>),
    #[error(transparent)]
    /// The body is not a valid policy.
    Invalid(PolicyErrors),
}

/// Why the policy host has no address to connect to.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NoAddress {
    #[error("no A/AAAA records")]
    /// DNS has no A/AAAA records for it.
    NoRecords,
    #[error(transparent)]
    /// The address lookup failed.
    Lookup(DnsError),
}

/// Every address of the policy host that could not be connected to, with why.
#[derive(Debug, Clone, Default)]
pub struct ConnectFailures(pub Vec<(SocketAddr, ConnectFailure)>);

/// Why one address could not be connected to.
#[derive(Debug, Clone)]
pub enum ConnectFailure {
    /// The connect failed.
    Io(Arc<std::io::Error>),
    /// The connect took longer than this.
    TimedOut(Duration),
}

impl std::fmt::Display for ConnectFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (addr, why)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match why {
                ConnectFailure::Io(e) => write!(f, "{addr}: {e}")?,
                ConnectFailure::TimedOut(d) => write!(f, "{addr}: connect timed out after {d:?}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConnectFailures {}

impl FetchError {
    /// The TLS-RPT classification (RFC 8460 §4.3.2.2).
    pub fn failure(&self) -> FetchFailure {
        match self {
            Self::WebPki { .. } => FetchFailure::WebPkiInvalid,
            Self::ContentType(_) | Self::Invalid(_) => FetchFailure::PolicyInvalid,
            _ => FetchFailure::FetchError,
        }
    }

    /// The checklist item that failed.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Dns { .. }
            | Self::Connect { .. }
            | Self::ServerName { .. }
            | Self::Tls { .. }
            | Self::Http(_)
            | Self::Request(_) => "FETCH-01",
            Self::WebPki { .. } => "PHC-01",
            Self::Timeout(_) => "FETCH-07",
            Self::Redirect { .. } => "FETCH-04",
            Self::Status(_) => "FETCH-03",
            Self::ContentType(_) => "FETCH-06",
            Self::TooLarge { .. } => "FETCH-08",
            Self::Invalid(_) => "POL-11",
        }
    }
}

/// A fetched, valid policy.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The policy and what was tolerated.
    pub parsed: Parsed,
    /// The address it came from.
    pub peer: SocketAddr,
    /// The TLS version used.
    pub tls_version: String,
}

/// Fetches a policy. A trait so tests can script outcomes.
pub trait Fetch: Send + Sync + 'static {
    /// Fetches the policy of `domain` from `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
    fn fetch(
        &self,
        domain: &DomainName,
    ) -> impl Future<Output = Result<Fetched, FetchError>> + Send;

    /// [`Fetch::fetch`] with the policy host's addresses already looked up (in parallel with
    /// the TXT query, to take one round trip off a first contact).
    fn fetch_with_addresses(
        &self,
        domain: &DomainName,
        addresses: Result<Vec<IpAddr>, DnsError>,
    ) -> impl Future<Output = Result<Fetched, FetchError>> + Send {
        let _ = addresses;
        self.fetch(domain)
    }
}

/// Why the trust for policy hosts could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("CA file {}", path.display())]
    /// The CA file could not be read as PEM.
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    #[error("CA file {}: no PEM certificates", path.display())]
    /// The CA file holds no certificate.
    Empty {
        /// The file.
        path: PathBuf,
    },
    #[error("CA file {}: a certificate is not a usable trust anchor", path.display())]
    /// A certificate is not a usable trust anchor.
    Rejected {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: rustls::Error,
    },
    #[error("TLS protocol versions")]
    /// rustls refused the protocol versions.
    Versions(#[source] rustls::Error),
    #[error("trust rule `{rule}`: mode \"additional\" needs a file for Postfix's bundle")]
    /// A rule in additional mode has nowhere to write Postfix's bundle.
    NoBundle {
        /// The rule.
        rule: String,
    },
    #[error("reading {}", path.display())]
    /// A file for a bundle could not be read.
    ReadFile {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("anchor file {}: no PEM certificates or public keys", path.display())]
    /// An anchor file holds neither a certificate nor a public key.
    NoAnchors {
        /// The file.
        path: PathBuf,
    },
    #[error("pinned keys: {0}")]
    /// The verifier for the rule's CA certificates could not be built.
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("writing Postfix's trust bundle {}", path.display())]
    /// Postfix's bundle could not be written.
    WriteBundle {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
}

/// Builds the rustls client config: the web PKI roots (webpki-roots, so results do not depend
/// on the host's CA bundle) plus the PEM certificates of `extra_ca_file`.
pub fn client_config(extra_ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TrustError> {
    client_config_with(root_store(extra_ca_file)?)
}

/// The rustls client config for policy hosts verified with `roots` alone.
pub fn client_config_with(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, TrustError> {
    Ok(finish(base_client_config(roots)?))
}

/// A rustls client config verifying against `roots`, TLS 1.3 and 1.2, mtasts' crypto; no ALPN
/// (for other clients of mtasts: PostgreSQL, webhooks).
pub fn base_client_config(roots: rustls::RootCertStore) -> Result<ClientConfig, TrustError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TrustError::Versions)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The rustls client config for policy hosts verified by `verifier` (pinned keys).
pub fn client_config_with_verifier(
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
) -> Result<Arc<ClientConfig>, TrustError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TrustError::Versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(finish(config))
}

/// The crypto every policy fetch uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn finish(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every fetch is a full handshake: a policy host's certificate is validated each time
    // (PHC-01), never taken on trust from a resumed session. Fetches are rare; nothing is lost.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The web PKI roots plus the PEM certificates of `extra_ca_file`.
pub fn root_store(extra_ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TrustError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_file {
        for c in read_pem_certificates(path)? {
            roots.add(c).map_err(|source| TrustError::Rejected {
                path: path.to_path_buf(),
                source,
            })?;
        }
    }
    Ok(roots)
}

/// The PEM certificates of `path`; at least one.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let certs = read_pem::<CertificateDer<'static>>(path)?;
    if certs.is_empty() {
        return Err(TrustError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Every PEM section of type `T` in `path` (others are skipped); possibly none.
pub(crate) fn read_pem<T: PemObject>(path: &Path) -> Result<Vec<T>, TrustError> {
    let read = |source| TrustError::Read {
        path: path.to_path_buf(),
        source,
    };
    T::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<_, _>>()
        .map_err(read)
}

/// The real fetcher.
pub struct HttpsFetcher<D> {
    dns: Arc<D>,
    tls: TlsConnector,
    /// Domains verified with their own anchors instead of `tls`.
    trust: TrustHandle,
    settings: FetchSettings,
}

impl<D> std::fmt::Debug for HttpsFetcher<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsFetcher")
            .field("settings", &self.settings)
            .finish()
    }
}

impl<D: Dns> HttpsFetcher<D> {
    /// A fetcher resolving policy hosts through `dns`, verifying with `tls`.
    pub fn new(dns: Arc<D>, tls: Arc<ClientConfig>, settings: FetchSettings) -> Self {
        Self {
            dns,
            tls: TlsConnector::from(tls),
            trust: TrustHandle::default(),
            settings,
        }
    }

    /// Verifies the domains of `trust`'s rules with their anchors (conditional trust).
    pub fn with_trust(mut self, trust: TrustHandle) -> Self {
        self.trust = trust;
        self
    }

    /// Connects to the first address of `host` that accepts; `known` are addresses already
    /// looked up (first contact), otherwise DNS is asked now.
    async fn connect(
        &self,
        host: &str,
        known: Option<Result<Vec<IpAddr>, DnsError>>,
    ) -> Result<(TcpStream, SocketAddr), FetchError> {
        let looked_up = match known {
            Some(k) => k,
            None => self.dns.addresses(host).await,
        };
        let addrs: Vec<IpAddr> = looked_up.map_err(|e| FetchError::Dns {
            host: host.to_string(),
            source: NoAddress::Lookup(e),
        })?;
        if addrs.is_empty() {
            return Err(FetchError::Dns {
                host: host.to_string(),
                source: NoAddress::NoRecords,
            });
        }
        let mut errors = ConnectFailures::default();
        for ip in &addrs {
            let public = SocketAddr::new(*ip, 443);
            let target = self
                .settings
                .connect_map
                .get(&public)
                .copied()
                .unwrap_or(public);
            match tokio::time::timeout(self.settings.connect_timeout, TcpStream::connect(target))
                .await
            {
                Ok(Ok(s)) => return Ok((s, public)),
                Ok(Err(e)) => errors.0.push((public, ConnectFailure::Io(Arc::new(e)))),
                Err(_) => errors.0.push((
                    public,
                    ConnectFailure::TimedOut(self.settings.connect_timeout),
                )),
            }
        }
        Err(FetchError::Connect {
            host: host.to_string(),
            addrs: addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            source: errors,
        })
    }

    async fn fetch_inner(
        &self,
        domain: &DomainName,
        known: Option<Result<Vec<IpAddr>, DnsError>>,
        deadline: Instant,
    ) -> Result<Fetched, FetchError> {
        let host = domain.policy_host();
        let (tcp, peer) = self.connect(&host, known).await?;
        let name = ServerName::try_from(host.clone()).map_err(|e| FetchError::ServerName {
            host: host.clone(),
            source: Arc::new(e),
        })?;
        let connector = match self.trust.get().find(domain) {
            Some(rule) => TlsConnector::from(rule.tls.clone()),
            None => self.tls.clone(),
        };
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error(&host, e))?;
        let tls_version = tls
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| FetchError::Http(Arc::new(e)))?;
        let driver = tokio::spawn(conn);
        // FETCH-05: a plain GET, no conditional headers, no caching.
        let request = http::Request::get("/.well-known/mta-sts.txt")
            .header(http::header::HOST, &host)
            .header(
                http::header::USER_AGENT,
                concat!("mtasts/", env!("CARGO_PKG_VERSION")),
            )
            .header(http::header::ACCEPT, "text/plain")
            .header(http::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Request(Arc::new(e)))?;
        let result = self.read_response(&mut sender, request, deadline).await;
        driver.abort();
        let body = result?;
        let parsed = Policy::parse_bytes(&body).map_err(FetchError::Invalid)?;
        Ok(Fetched {
            parsed,
            peer,
            tls_version,
        })
    }

    async fn read_response(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        request: http::Request<Empty<Bytes>>,
        deadline: Instant,
    ) -> Result<Vec<u8>, FetchError> {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Http(Arc::new(e)))?;
        let status = response.status();
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            return Err(FetchError::Redirect {
                status: status.as_u16(),
                location,
            });
        }
        if status != http::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let is_text_plain = content_type.as_deref().is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/plain"))
        });
        if !is_text_plain {
            return Err(FetchError::ContentType(content_type));
        }
        let limit = self.settings.max_body;
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|d| d > limit as u64) {
            return Err(FetchError::TooLarge { limit, declared });
        }
        let mut body = response.into_body();
        let mut out =
            Vec::with_capacity(declared.map_or(4096, |d| usize::try_from(d).unwrap_or(4096)));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Http(Arc::new(e)))?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > limit {
                    return Err(FetchError::TooLarge { limit, declared });
                }
                out.extend_from_slice(&data);
            }
            if Instant::now() > deadline {
                return Err(FetchError::Timeout(self.settings.total_timeout));
            }
        }
        Ok(out)
    }
}

fn tls_error(host: &str, e: std::io::Error) -> FetchError {
    let is_cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    let (host, source) = (host.to_string(), Arc::new(e));
    if is_cert {
        FetchError::WebPki { host, source }
    } else {
        FetchError::Tls { host, source }
    }
}

impl<D: Dns> HttpsFetcher<D> {
    async fn fetch_bounded(
        &self,
        domain: &DomainName,
        known: Option<Result<Vec<IpAddr>, DnsError>>,
    ) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + self.settings.total_timeout;
        tokio::time::timeout(
            self.settings.total_timeout,
            self.fetch_inner(domain, known, deadline),
        )
        .await
        .unwrap_or(Err(FetchError::Timeout(self.settings.total_timeout)))
    }
}

impl<D: Dns> Fetch for HttpsFetcher<D> {
    async fn fetch(&self, domain: &DomainName) -> Result<Fetched, FetchError> {
        self.fetch_bounded(domain, None).await
    }

    async fn fetch_with_addresses(
        &self,
        domain: &DomainName,
        addresses: Result<Vec<IpAddr>, DnsError>,
    ) -> Result<Fetched, FetchError> {
        self.fetch_bounded(domain, Some(addresses)).await
    }
}
