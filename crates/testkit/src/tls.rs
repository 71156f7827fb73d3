//! TLS server side shared by the HTTPS and SMTP fakes: a certificate chosen by SNI, a default
//! for clients that send none, and a record of what each client did.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::Error;

/// Certificates by SNI name plus a default.
#[derive(Debug, Default)]
struct CertTable {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

/// Picks a certificate by SNI (case-insensitive), else the default; `None` aborts the
/// handshake. The table can be replaced while serving (a scenario "fixed" mid-test).
#[derive(Debug, Default)]
pub struct SniResolver {
    table: RwLock<CertTable>,
}

impl SniResolver {
    /// A resolver picking from `by_name` by the lower-cased SNI, else `default`.
    pub fn new(
        by_name: HashMap<String, Arc<CertifiedKey>>,
        default: Option<Arc<CertifiedKey>>,
    ) -> Self {
        let r = Self::default();
        r.replace(by_name, default);
        r
    }

    /// Swaps in new certificates for new handshakes.
    pub fn replace(
        &self,
        by_name: HashMap<String, Arc<CertifiedKey>>,
        default: Option<Arc<CertifiedKey>>,
    ) {
        let by_name = by_name
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        if let Ok(mut t) = self.table.write() {
            *t = CertTable { by_name, default };
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.read().ok()?;
        hello
            .server_name()
            .and_then(|sni| table.by_name.get(&sni.to_ascii_lowercase()).cloned())
            .or_else(|| table.default.clone())
    }
}

/// A rustls server config (TLS 1.2 and 1.3, ring) around a resolver.
pub fn server_config(
    resolver: Arc<SniResolver>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What a client did during a TLS handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsRecord {
    /// The SNI the client sent, if any.
    pub sni: Option<String>,
    /// `TLSv1_3`, `TLSv1_2`, … once the handshake completed.
    pub version: Option<String>,
    /// Whether the handshake completed.
    pub completed: bool,
}

/// Runs a server handshake on `stream`, returning the TLS stream (if it completed) and a record.
pub async fn accept<S>(
    config: Arc<ServerConfig>,
    stream: S,
) -> (Option<tokio_rustls::server::TlsStream<S>>, TlsRecord)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let Ok(start) = acceptor.await else {
        return (None, TlsRecord::default());
    };
    let sni = start.client_hello().server_name().map(str::to_string);
    let mut record = TlsRecord {
        sni,
        ..TlsRecord::default()
    };
    match start.into_stream(config).await {
        Ok(tls) => {
            record.version = tls.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
            record.completed = true;
            (Some(tls), record)
        }
        Err(_) => (None, record),
    }
}
