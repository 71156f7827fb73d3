//! Reports by mail (RFC 8460 §5.3): the `multipart/report; report-type="tlsrpt"` message with
//! its headers (MAIL-01, MAIL-02, MAIL-05), DKIM-signed by the reporting domain (MAIL-03,
//! MAIL-04, mail-auth), handed to the configured submission server (lettre).
//!
//! MAIL-06 (deliver even when the recipient's TLS fails): the message carries
//! `TLS-Required: No` (RFC 8689 §5), which tells every MTA on the way (Postfix ≥ 3.10 honours
//! it) not to apply MTA-STS or DANE to it.

use lettre::AsyncTransport as _;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

use super::config::{ConfigError, DkimConfig, MailConfig, MailTls};

/// The headers the signature covers (MAIL-03: both TLS-Report headers among them).
const SIGNED: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
    "MIME-Version",
    "Content-Type",
];

/// Why a report could not be mailed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailSendError {
    #[error("`{0}` is not a usable mailto: URI (RFC 6068)")]
    /// The URI names no address.
    BadUri(String),
    #[error("no [mail] section: mailto: reports cannot be sent")]
    /// Mail is not configured.
    NotConfigured,
    #[error("composing the message")]
    /// mail-builder failed.
    Compose(#[source] std::io::Error),
    #[error("DKIM signing")]
    /// mail-auth failed.
    Sign(#[source] mail_auth::Error),
    #[error("reading the submission server's CA file {0}")]
    /// The CA file could not be read.
    CaFile(String, #[source] std::io::Error),
    #[error("submitting to {server}")]
    /// The submission server refused or could not be reached.
    Submit {
        /// The server.
        server: String,
        #[source]
        /// What lettre said.
        source: lettre::transport::smtp::Error,
    },
    #[error("address {0:?}")]
    /// An address lettre does not accept.
    Address(String, #[source] lettre::address::AddressError),
    #[error("building the envelope")]
    /// No sender or recipient.
    Envelope(#[source] lettre::error::Error),
}

/// A DKIM key mail-auth can sign with, checked when the configuration is read.
pub struct SigningKey {
    kind: KeyKind,
    der: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum KeyKind {
    /// RSA-SHA256, PKCS#8.
    RsaPkcs8,
    /// RSA-SHA256, PKCS#1.
    RsaPkcs1,
    /// Ed25519-SHA256 (RFC 8463), PKCS#8.
    Ed25519,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("SigningKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key of `config` (PEM: PKCS#8 RSA or Ed25519, or PKCS#1 RSA).
    pub fn from_config(config: &DkimConfig) -> Result<Self, ConfigError> {
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject;
        let bad = || ConfigError::DkimKey {
            path: config.key_file.clone(),
        };
        let der = PrivateKeyDer::from_pem_slice(config.key_pem.as_bytes()).map_err(|_| bad())?;
        let (kind, der) = match der {
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der().to_vec();
                if RsaKey::<Sha256>::from_pkcs8_der(&der).is_ok() {
                    (KeyKind::RsaPkcs8, der)
                } else if Ed25519Key::from_pkcs8_der(&der).is_ok() {
                    (KeyKind::Ed25519, der)
                } else {
                    return Err(bad());
                }
            }
            PrivateKeyDer::Pkcs1(k) => {
                let der = k.secret_pkcs1_der().to_vec();
                RsaKey::<Sha256>::from_der(&der).map_err(|_| bad())?;
                (KeyKind::RsaPkcs1, der)
            }
            _ => return Err(bad()),
        };
        Ok(Self { kind, der })
    }

    fn sign(
        &self,
        domain: &str,
        selector: &str,
        message: &[u8],
    ) -> Result<String, mail_auth::Error> {
        // No l= (MAIL-04): mail-auth leaves it out unless asked.
        let signature = match self.kind {
            KeyKind::RsaPkcs8 | KeyKind::RsaPkcs1 => {
                let key = if matches!(self.kind, KeyKind::RsaPkcs8) {
                    RsaKey::<Sha256>::from_pkcs8_der(&self.der)?
                } else {
                    RsaKey::<Sha256>::from_der(&self.der)?
                };
                DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED)
                    .sign(message)?
            }
            KeyKind::Ed25519 => DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&self.der)?)
                .domain(domain)
                .selector(selector)
                .headers(SIGNED)
                .sign(message)?,
        };
        Ok(signature.to_header())
    }
}

/// What the message says.
#[derive(Debug, Clone, Copy)]
pub struct ReportMessage<'a> {
    /// `From:` and envelope sender.
    pub from: &'a str,
    /// The recipients (from one `mailto:` URI).
    pub to: &'a [String],
    /// The policy domain (`TLS-Report-Domain`).
    pub policy_domain: &'a str,
    /// The submitter domain (`TLS-Report-Submitter`).
    pub submitter: &'a str,
    /// `report-id`.
    pub report_id: &'a str,
    /// The UTC day covered.
    pub day: &'a str,
    /// The §5.1 file name (`.json.gz`).
    pub filename: &'a str,
    /// The gzipped report.
    pub gzipped: &'a [u8],
    /// `Date:`, seconds since the epoch.
    pub date: u64,
}

/// The addresses of a `mailto:` URI (RFC 6068: percent-decoded, `,`-separated, any
/// `?query` dropped).
pub fn mailto_addresses(uri: &str) -> Result<Vec<String>, MailSendError> {
    let bad = || MailSendError::BadUri(uri.to_string());
    let rest = uri
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("mailto:"))
        .and_then(|_| uri.get(7..))
        .ok_or_else(bad)?;
    let to = rest.split('?').next().unwrap_or_default();
    let mut out = Vec::new();
    for part in to.split(',') {
        let decoded = percent_decode(part).ok_or_else(bad)?;
        let decoded = decoded.trim();
        if decoded.is_empty() {
            continue;
        }
        match decoded.rsplit_once('@') {
            Some((l, d)) if !l.is_empty() && !d.is_empty() => out.push(decoded.to_string()),
            _ => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The signed message, CRLF line ends.
pub fn compose(
    m: &ReportMessage<'_>,
    dkim: &DkimConfig,
    key: &SigningKey,
) -> Result<Vec<u8>, MailSendError> {
    let text = format!(
        "This is an aggregate TLS report (RFC 8460) from {submitter} about {domain} for the UTC day {day}.\r\n\
         The report is attached as {filename}.\r\n",
        submitter = m.submitter,
        domain = m.policy_domain,
        day = m.day,
        filename = m.filename,
    );
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "tlsrpt"),
        vec![
            MimePart::new("text/plain", text),
            MimePart::new("application/tlsrpt+gzip", m.gzipped).attachment(m.filename),
        ],
    );
    let message = MessageBuilder::new()
        .from(m.from)
        .to(m.to.iter().map(|a| a.as_str()).collect::<Vec<_>>())
        // Raw: the MAIL-05 form as written, not an encoded-word.
        .header(
            "Subject",
            Raw::new(format!(
                "Report Domain: {} Submitter: {} Report-ID: <{}>",
                m.policy_domain, m.submitter, m.report_id
            )),
        )
        .date(m.date)
        .message_id(m.report_id.to_string())
        .header("TLS-Report-Domain", Raw::new(m.policy_domain))
        .header("TLS-Report-Submitter", Raw::new(m.submitter))
        .header("TLS-Required", Raw::new("No"))
        .body(body)
        .write_to_vec()
        .map_err(MailSendError::Compose)?;
    let signature = key
        .sign(&dkim.domain, &dkim.selector, &message)
        .map_err(MailSendError::Sign)?;
    let mut signed = signature.into_bytes();
    signed.extend_from_slice(&message);
    Ok(signed)
}

/// Hands `message` to the submission server for `from` → `to`.
pub async fn submit(
    config: &MailConfig,
    submitter: &str,
    to: &[String],
    message: &[u8],
) -> Result<(), MailSendError> {
    let mut tls_params = TlsParameters::builder(config.server_name.clone());
    if let Some(file) = &config.ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| MailSendError::CaFile(file.display().to_string(), e))?;
        let cert = Certificate::from_pem(&pem).map_err(|source| MailSendError::Submit {
            server: config.server.to_string(),
            source,
        })?;
        tls_params = tls_params.add_root_certificate(cert);
    }
    let submit_err = |source| MailSendError::Submit {
        server: config.server.to_string(),
        source,
    };
    let tls = match config.tls {
        MailTls::None => Tls::None,
        MailTls::StartTls => Tls::Required(tls_params.build_rustls().map_err(submit_err)?),
        MailTls::Implicit => Tls::Wrapper(tls_params.build_rustls().map_err(submit_err)?),
    };
    let mut builder = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
        config.server.ip().to_string(),
    )
    .port(config.server.port())
    .tls(tls)
    .hello_name(ClientId::Domain(submitter.to_string()))
    .timeout(Some(config.timeout));
    if let Some((user, password)) = &config.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let transport = builder.build();
    let address = |a: &str| {
        a.parse::<lettre::Address>()
            .map_err(|e| MailSendError::Address(a.to_string(), e))
    };
    let recipients = to
        .iter()
        .map(|a| address(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = lettre::address::Envelope::new(Some(address(&config.from)?), recipients)
        .map_err(MailSendError::Envelope)?;
    transport
        .send_raw(&envelope, message)
        .await
        .map_err(submit_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_uris_give_their_addresses() {
        assert_eq!(
            mailto_addresses("mailto:tlsrpt@example.com").ok(),
            Some(vec!["tlsrpt@example.com".to_string()])
        );
        assert_eq!(
            mailto_addresses("MAILTO:a%2Bb@example.com?subject=x").ok(),
            Some(vec!["a+b@example.com".to_string()])
        );
        assert_eq!(
            mailto_addresses("mailto:a@example.com,b@example.net").ok(),
            Some(vec![
                "a@example.com".to_string(),
                "b@example.net".to_string()
            ])
        );
        for bad in [
            "mailto:",
            "mailto:nobody",
            "https://x",
            "mailto:%zz@x",
            "mail",
        ] {
            assert!(mailto_addresses(bad).is_err(), "{bad}");
        }
    }
}
