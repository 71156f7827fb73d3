//! Reports by HTTPS (RFC 8460 §5.4): `POST` of the gzipped report with
//! `Content-Type: application/tlsrpt+gzip` (HTTP-01); any 2xx is delivered, anything else
//! (redirects included, never followed) a failure to retry (HTTP-02). After a certificate
//! error the report may be posted once more without validation (HTTP-03), and that is logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use mtasts_resolver::Dns;
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::config::HttpsConfig;

/// Why a POST did not deliver the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    #[error("`{0}` is not an https: URI with a host")]
    /// Not a usable URI.
    BadUri(String),
    #[error("resolving {host}")]
    /// The host's addresses could not be found.
    Resolve {
        /// The host.
        host: String,
        #[source]
        /// Why.
        source: mtasts_resolver::DnsError,
    },
    #[error("{host} has no address")]
    /// The host has no address.
    NoAddress {
        /// The host.
        host: String,
    },
    #[error("connecting to {addr}")]
    /// TCP failed.
    Connect {
        /// Where.
        addr: SocketAddr,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("TLS with {host} ({addr})")]
    /// The handshake failed (a certificate error among others).
    Tls {
        /// The name.
        host: String,
        /// Where.
        addr: SocketAddr,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("HTTP with {host}")]
    /// The exchange failed.
    Http {
        /// The host.
        host: String,
        #[source]
        /// Why.
        source: hyper::Error,
    },
    #[error("{host} answered {status} (only 2xx delivers, HTTP-02)")]
    /// Not a success.
    Status {
        /// The host.
        host: String,
        /// The status.
        status: u16,
    },
    #[error("no answer from {host} within {secs} s")]
    /// Timed out.
    Timeout {
        /// The host.
        host: String,
        /// The bound.
        secs: u64,
    },
    #[error("the TLS configuration")]
    /// The trust store could not be built.
    Trust(#[source] mtasts_resolver::TrustError),
}

impl PostError {
    fn is_certificate_error(&self) -> bool {
        let Self::Tls { source, .. } = self else {
            return false;
        };
        matches!(
            source
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(rustls::Error::InvalidCertificate(_))
        )
    }
}

/// How a report was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The status answered.
    pub status: u16,
    /// The certificate was not valid and the report went anyway (HTTP-03).
    pub unvalidated: bool,
}

/// Posts reports; one per call, connections not kept.
#[derive(Debug, Clone)]
pub struct Poster {
    validating: Arc<ClientConfig>,
    accepting: Arc<ClientConfig>,
    config: HttpsConfig,
}

impl Poster {
    /// The web PKI roots plus `config.ca_file`.
    pub fn new(config: &HttpsConfig) -> Result<Self, PostError> {
        let roots = mtasts_resolver::fetch::root_store(config.ca_file.as_deref())
            .map_err(PostError::Trust)?;
        let validating =
            Arc::new(mtasts_resolver::fetch::base_client_config(roots).map_err(PostError::Trust)?);
        let provider = mtasts_resolver::fetch::provider();
        let accepting = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| PostError::Trust(mtasts_resolver::TrustError::Versions(e)))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth();
        Ok(Self {
            validating,
            accepting: Arc::new(accepting),
            config: config.clone(),
        })
    }

    /// POSTs `gzipped` to `uri`, resolving its host through `dns`.
    pub async fn post<D: Dns>(
        &self,
        dns: &D,
        uri: &str,
        gzipped: &[u8],
    ) -> Result<Posted, PostError> {
        let target = Target::parse(uri)?;
        let addrs = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => dns
                .addresses(&target.host)
                .await
                .map_err(|source| PostError::Resolve {
                    host: target.host.clone(),
                    source,
                })?,
        };
        let body = Bytes::copy_from_slice(gzipped);
        // The next address only when this one cannot be reached at all.
        let mut last = PostError::NoAddress {
            host: target.host.clone(),
        };
        for ip in addrs {
            let addr = SocketAddr::new(ip, target.port);
            match self.to_addr(uri, &target, addr, body.clone()).await {
                Err(e @ PostError::Connect { .. }) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    async fn to_addr(
        &self,
        uri: &str,
        target: &Target,
        addr: SocketAddr,
        body: Bytes,
    ) -> Result<Posted, PostError> {
        match self
            .once(&self.validating, target, addr, body.clone())
            .await
        {
            Err(e) if e.is_certificate_error() && self.config.retry_without_validation => {
                tracing::warn!(uri, error = %mtasts_core::errors::Chain(&e),
                    "tlsrpt send: certificate not valid; posting once more without validation (RFC 8460 §3 allows it)");
                let status = self.once(&self.accepting, target, addr, body).await?;
                Ok(Posted {
                    status,
                    unvalidated: true,
                })
            }
            Err(e) => Err(e),
            Ok(status) => Ok(Posted {
                status,
                unvalidated: false,
            }),
        }
    }

    async fn once(
        &self,
        tls: &Arc<ClientConfig>,
        target: &Target,
        addr: SocketAddr,
        body: Bytes,
    ) -> Result<u16, PostError> {
        let secs = self.config.timeout.as_secs();
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|source| PostError::Connect { addr, source })?;
            let name = ServerName::try_from(target.host.clone())
                .map_err(|_| PostError::BadUri(target.uri.clone()))?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| PostError::Tls {
                    host: target.host.clone(),
                    addr,
                    source,
                })?;
            let http = |source| PostError::Http {
                host: target.host.clone(),
                source,
            };
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(http)?;
            let driver = tokio::spawn(conn);
            let request = http::Request::post(target.path_and_query.as_str())
                .header(http::header::HOST, target.authority.as_str())
                .header(http::header::CONTENT_TYPE, "application/tlsrpt+gzip")
                .header(
                    http::header::USER_AGENT,
                    concat!("mtasts/", env!("CARGO_PKG_VERSION")),
                )
                .body(Full::new(body))
                .map_err(|_| PostError::BadUri(target.uri.clone()))?;
            let response = sender.send_request(request).await.map_err(http)?;
            let status = response.status().as_u16();
            // Read (and drop) the answer so the server sees a complete exchange.
            let _ = response.into_body().collect().await;
            driver.abort();
            Ok(status)
        };
        let status = tokio::time::timeout(Duration::from_secs(secs.max(1)), exchange)
            .await
            .map_err(|_| PostError::Timeout {
                host: target.host.clone(),
                secs,
            })??;
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(PostError::Status {
                host: target.host.clone(),
                status,
            })
        }
    }
}

/// An `https:` URI taken apart.
#[derive(Debug)]
struct Target {
    uri: String,
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(uri: &str) -> Result<Self, PostError> {
        let bad = || PostError::BadUri(uri.to_string());
        let parsed: http::Uri = uri.parse().map_err(|_| bad())?;
        if parsed.scheme_str().map(str::to_ascii_lowercase).as_deref() != Some("https") {
            return Err(bad());
        }
        let authority = parsed.authority().ok_or_else(bad)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            uri: uri.to_string(),
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_string(),
            path_and_query: parsed
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }
}

/// Accepts any certificate chain but still checks the handshake's signatures (HTTP-03's
/// second attempt only).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_uris_are_taken_apart_and_others_refused() {
        let t = Target::parse("https://Reports.Example.com:8443/tlsrpt?x=1").expect("uri");
        assert_eq!(t.host, "reports.example.com");
        assert_eq!(t.port, 8443);
        assert_eq!(t.path_and_query, "/tlsrpt?x=1");
        let t = Target::parse("https://reports.example.com").expect("uri");
        assert_eq!((t.port, t.path_and_query.as_str()), (443, "/"));
        for bad in ["http://x.example/", "mailto:a@b", "https:///x", "nonsense"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
