//! Probes deep enough to explain: an SMTP client that does EHLO and STARTTLS with or without
//! SNI, and a TLS client that keeps the certificate chain even when validation fails, so the
//! report can say what was presented and why it does not pass.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtasts_core::errors::Chain;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What one certificate says.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// subjectAltName dNSName entries.
    pub dns_names: Vec<String>,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Seconds until expiry (negative: expired).
    pub expires_in: i64,
    #[serde(skip)]
    /// The certificate, DER (for TLSA matching; not in JSON).
    pub der: Vec<u8>,
    #[serde(skip)]
    /// Its SubjectPublicKeyInfo, DER (for TLSA selector 1; not in JSON).
    pub spki: Vec<u8>,
}

impl CertInfo {
    fn parse(der: &[u8], now: i64) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|g| match g {
                        x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let validity = cert.validity();
        Some(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_names,
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
            expires_in: validity.not_after.timestamp() - now,
            der: der.to_vec(),
            spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
        })
    }
}

/// One TLS handshake as the client saw it.
#[derive(Debug, Clone, Serialize)]
pub struct TlsOutcome {
    /// The SNI sent (`None`: none).
    pub sni: Option<String>,
    /// The handshake completed (whatever the certificate).
    pub handshake: bool,
    /// Negotiated TLS version, e.g. `TLSv1_3`.
    pub version: Option<String>,
    /// Negotiated cipher suite.
    pub cipher: Option<String>,
    /// The chain as presented, leaf first, captured even when invalid.
    pub chain: Vec<CertInfo>,
    /// PKIX verdict for the expected name: `None` valid, else why not.
    pub pkix_error: Option<String>,
    /// Whether the chain leads to a root of the web PKI (webpki-roots, without `--ca-file`):
    /// `false` means senders accept it only with the issuing CA configured (conditional trust
    /// or a CA file); `None` when no certificate was presented.
    pub web_pki_issuer: Option<bool>,
    /// Handshake or connection error.
    pub error: Option<String>,
}

impl TlsOutcome {
    /// Handshake done and the chain valid for the name.
    pub fn valid(&self) -> bool {
        self.handshake && self.pkix_error.is_none() && !self.chain.is_empty()
    }
}

/// Keeps the chain and the PKIX verdict, and lets the handshake finish either way.
#[derive(Debug)]
struct Capture {
    inner: Arc<WebPkiServerVerifier>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
    verdict: Mutex<Option<String>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut c) = self.chain.lock() {
            *c = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .err()
            .map(|e| e.to_string());
        if let Ok(mut v) = self.verdict.lock() {
            *v = verdict;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS handshake on `stream`, validating for `name`; SNI sent only if `sni`.
pub async fn tls_handshake<S>(
    stream: S,
    roots: Arc<RootCertStore>,
    name: &str,
    sni: bool,
) -> TlsOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = TlsOutcome {
        sni: sni.then(|| name.to_string()),
        handshake: false,
        version: None,
        cipher: None,
        chain: Vec::new(),
        pkix_error: None,
        web_pki_issuer: None,
        error: None,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = match WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build() {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let capture = Arc::new(Capture {
        inner,
        chain: Mutex::new(Vec::new()),
        verdict: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(capture.clone())
                .with_no_client_auth()
        });
    let mut config = match config {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    config.enable_sni = sni;
    let server_name = match ServerName::try_from(name.to_string()) {
        Ok(n) => n,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    match TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
    {
        Ok(mut tls) => {
            let conn = tls.get_ref().1;
            out.handshake = true;
            out.version = conn.protocol_version().map(|v| format!("{v:?}"));
            out.cipher = conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()));
            let _ = tls.shutdown().await;
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    if let Ok(chain) = capture.chain.lock() {
        out.chain = chain
            .iter()
            .filter_map(|c| CertInfo::parse(c, now))
            .collect();
    }
    out.pkix_error = capture.verdict.lock().ok().and_then(|v| v.clone());
    if let (Ok(chain), Ok(name)) = (capture.chain.lock(), ServerName::try_from(name.to_string()))
        && let Some((leaf, rest)) = chain.split_first()
    {
        out.web_pki_issuer = Some(issued_under_web_pki(leaf, rest, &name));
    }
    out
}

/// Whether `leaf` chains to a web PKI root: any verdict but "unknown issuer" (a wrong name or
/// an expired certificate still names a known CA).
fn issued_under_web_pki(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    name: &ServerName<'_>,
) -> bool {
    static WEB_PKI: std::sync::OnceLock<Option<Arc<WebPkiServerVerifier>>> =
        std::sync::OnceLock::new();
    let verifier = WEB_PKI.get_or_init(|| {
        let roots = mtasts_resolver::root_store(None).ok()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .ok()
    });
    let Some(verifier) = verifier else {
        return false;
    };
    !matches!(
        verifier.verify_server_cert(leaf, intermediates, name, &[], UnixTime::now()),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature
        ))
    )
}

/// One SMTP connection: banner, EHLO, STARTTLS, TLS.
#[derive(Debug, Clone, Serialize)]
pub struct SmtpProbe {
    /// The address as DNS gave it (port 25).
    pub address: SocketAddr,
    /// The server's 220 greeting.
    pub banner: Option<String>,
    /// Whether EHLO listed STARTTLS.
    pub starttls_offered: bool,
    /// The reply to STARTTLS, if sent.
    pub starttls_reply: Option<String>,
    /// Plaintext bytes that arrived after the `220` to STARTTLS (a command-injection sign).
    pub leftover_after_starttls: bool,
    /// The TLS handshake after STARTTLS, if one was attempted.
    pub tls: Option<TlsOutcome>,
    /// Connection error or the step that timed out (in JSON: its text with causes).
    #[serde(serialize_with = "error_text")]
    pub error: Option<ProbeError>,
}

/// Why an SMTP probe stopped early.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error("{step}")]
    /// An I/O error during a step.
    Io {
        /// The step: `connect`, `banner`, `EHLO`, `STARTTLS`.
        step: &'static str,
        #[source]
        /// The I/O error.
        source: Arc<std::io::Error>,
    },
    #[error("timed out during {step} after {after:?}")]
    /// A step took longer than the limit.
    Timeout {
        /// The step that ran out of time.
        step: &'static str,
        /// The limit.
        after: Duration,
    },
    #[error("{step}: connection closed")]
    /// The server closed the connection during a step.
    Closed {
        /// The step.
        step: &'static str,
    },
}

impl ProbeError {
    /// The probe ran out of time (rather than being refused or cut off).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

fn error_text<S: serde::Serializer>(e: &Option<ProbeError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&Chain(e).to_string()),
        None => s.serialize_none(),
    }
}

async fn step<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = std::io::Result<T>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ProbeError::Io {
            step: what,
            source: Arc::new(e),
        }),
        Err(_) => Err(ProbeError::Timeout {
            step: what,
            after: limit,
        }),
    }
}

async fn reply<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    limit: Duration,
    what: &'static str,
) -> Result<String, ProbeError> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = step(limit, what, r.read_line(&mut line)).await?;
        if n == 0 {
            return Err(ProbeError::Closed { step: what });
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(all.trim_end().to_string());
        }
    }
}

/// Probes `mx` at `connect` (really) / `address` (as published), with or without SNI.
pub async fn probe_smtp(
    address: SocketAddr,
    connect: SocketAddr,
    mx: &str,
    sni: bool,
    roots: Arc<RootCertStore>,
    limit: Duration,
) -> SmtpProbe {
    let mut p = SmtpProbe {
        address,
        banner: None,
        starttls_offered: false,
        starttls_reply: None,
        leftover_after_starttls: false,
        tls: None,
        error: None,
    };
    if let Err(e) = probe_inner(&mut p, connect, mx, sni, roots, limit).await {
        p.error = Some(e);
    }
    p
}

async fn probe_inner(
    p: &mut SmtpProbe,
    connect: SocketAddr,
    mx: &str,
    sni: bool,
    roots: Arc<RootCertStore>,
    limit: Duration,
) -> Result<(), ProbeError> {
    let tcp = step(limit, "connect", TcpStream::connect(connect)).await?;
    let mut io = BufReader::new(tcp);
    p.banner = Some(reply(&mut io, limit, "banner").await?);
    step(
        limit,
        "EHLO",
        io.get_mut().write_all(b"EHLO mtasts-check.invalid\r\n"),
    )
    .await?;
    let ehlo = reply(&mut io, limit, "EHLO").await?;
    p.starttls_offered = ehlo.lines().any(|l| {
        l.get(4..)
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("STARTTLS"))
    });
    if !p.starttls_offered {
        let _ = io.get_mut().write_all(b"QUIT\r\n").await;
        return Ok(());
    }
    step(limit, "STARTTLS", io.get_mut().write_all(b"STARTTLS\r\n")).await?;
    let answer = reply(&mut io, limit, "STARTTLS").await?;
    let ready = answer.starts_with("220");
    p.starttls_reply = Some(answer);
    if !ready {
        let _ = io.get_mut().write_all(b"QUIT\r\n").await;
        return Ok(());
    }
    p.leftover_after_starttls = !io.buffer().is_empty();
    let tls = tokio::time::timeout(limit, tls_handshake(io.into_inner(), roots, mx, sni)).await;
    match tls {
        Ok(t) => p.tls = Some(t),
        Err(_) => {
            return Err(ProbeError::Timeout {
                step: "the TLS handshake",
                after: limit,
            });
        }
    }
    Ok(())
}

/// Whether a TLSA record matches the presented chain (RFC 6698 §2.1, RFC 7672 §3.1).
pub fn tlsa_matches(t: &mtasts_core::dane::Tlsa, chain: &[CertInfo]) -> bool {
    let candidates: Vec<&CertInfo> = match t.usage {
        3 | 1 => chain.first().into_iter().collect(),
        2 | 0 => chain.iter().skip(1).collect(),
        _ => Vec::new(),
    };
    candidates.iter().any(|c| {
        let selected: &[u8] = match t.selector {
            0 => &c.der,
            1 => &c.spki,
            _ => return false,
        };
        match t.matching {
            0 => selected == t.data.as_slice(),
            1 => {
                ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == t.data.as_slice()
            }
            2 => {
                ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == t.data.as_slice()
            }
            _ => false,
        }
    })
}
