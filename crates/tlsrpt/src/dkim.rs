//! DKIM on report mail (RFC 8460 §3, RCV-01): a report that arrived by mail counts only with
//! a valid signature from the reporting domain. Signature checking is mail-auth's; which
//! signature counts, and what a failure means for the MTA, is decided here.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::ResponseCode;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

/// Why a message's signatures do not make it a report from its reporting domain. The message
/// is not stored as a report (RCV-01).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unverified {
    #[error("no DKIM-Signature header (RFC 8460 §3: a report mail must be signed)")]
    /// Not signed at all.
    Unsigned,
    #[error("no valid DKIM signature of {domain}: {}", results.join("; "))]
    /// Signed, but no signature of the reporting domain verifies.
    NoValidSignature {
        /// The reporting domain.
        domain: String,
        /// Each signature's `d=` and outcome.
        results: Vec<String>,
    },
    #[error("no reporting domain: neither a TLS-Report-Submitter header nor a From address")]
    /// Nothing says who reports.
    NoReportingDomain,
}

/// The outcome of checking a report message's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature of the reporting domain verifies; `signer` is its `d=`.
    Verified {
        /// The signature's domain.
        signer: String,
    },
    /// Permanently not a report of its reporting domain.
    Unverified(Unverified),
    /// The signer's key could not be fetched now (DNS failure): try again later, nothing is
    /// decided.
    TryLater(String),
}

/// Checks DKIM signatures, looking keys up through the resolver the rest of mtasts uses.
#[derive(Clone)]
pub struct DkimVerifier {
    authenticator: MessageAuthenticator,
}

impl std::fmt::Debug for DkimVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimVerifier").finish_non_exhaustive()
    }
}

/// Why a verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("DNS for DKIM keys")]
    /// The resolver configuration.
    Dns(#[source] mtasts_resolver::DnsError),
    #[error("DNS resolver for DKIM keys")]
    /// hickory refused it.
    Resolver(#[source] hickory_resolver::ResolveError),
}

impl DkimVerifier {
    /// Keys from `nameserver` (UDP, then TCP), or from the servers of /etc/resolv.conf.
    pub fn new(nameserver: Option<SocketAddr>, timeout: Duration) -> Result<Self, SetupError> {
        let (config, mut opts) =
            mtasts_resolver::dns::resolver_config(nameserver).map_err(SetupError::Dns)?;
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.ndots = 0;
        opts.edns0 = true;
        let authenticator =
            MessageAuthenticator::new(config, opts).map_err(SetupError::Resolver)?;
        Ok(Self { authenticator })
    }

    /// Checks `raw` for a valid signature of `reporting_domain` (the `TLS-Report-Submitter`,
    /// else the From domain; see [`reporting_domain`]).
    pub async fn verify(&self, raw: &[u8], reporting_domain: Option<&str>) -> Verdict {
        let Some(domain) = reporting_domain else {
            return Verdict::Unverified(Unverified::NoReportingDomain);
        };
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            return Verdict::Unverified(Unverified::Unsigned);
        };
        if message.dkim_headers.is_empty() {
            return Verdict::Unverified(Unverified::Unsigned);
        }
        let outputs = self.authenticator.verify_dkim(&message).await;
        let mut results = Vec::with_capacity(outputs.len());
        let mut temp_error = None;
        for out in &outputs {
            let signer = out.signature().map(|s| s.d.to_ascii_lowercase());
            let aligned = signer.as_deref().is_some_and(|d| aligned(d, domain));
            match out.result() {
                // mail-auth refuses an `l=` signature itself (neutral): content after the
                // signed length could be anything (MAIL-04).
                DkimResult::Pass if aligned => {
                    if let Some(signer) = signer {
                        return Verdict::Verified { signer };
                    }
                }
                DkimResult::TempError(e) if aligned => temp_error = Some(e.to_string()),
                // mail-auth files a SERVFAIL or REFUSED key lookup under "record not found";
                // RFC 6376 §6.1.2 makes a lookup failure TEMPFAIL, only NXDOMAIN/NODATA is
                // permanent.
                DkimResult::PermError(e @ mail_auth::Error::DnsRecordNotFound(code))
                    if aligned
                        && !matches!(code, ResponseCode::NXDomain | ResponseCode::NoError) =>
                {
                    temp_error = Some(e.to_string());
                }
                _ => {}
            }
            results.push(format!(
                "d={} {}",
                signer.as_deref().unwrap_or("?"),
                describe(out.result())
            ));
        }
        if let Some(e) = temp_error {
            return Verdict::TryLater(format!("DKIM key of {domain}: {e}"));
        }
        Verdict::Unverified(Unverified::NoValidSignature {
            domain: domain.to_string(),
            results,
        })
    }
}

fn describe(result: &DkimResult) -> String {
    match result {
        DkimResult::Pass => "pass (not the reporting domain)".into(),
        DkimResult::Neutral(e) => format!("neutral ({e})"),
        DkimResult::Fail(e) => format!("fail ({e})"),
        DkimResult::PermError(e) => format!("permerror ({e})"),
        DkimResult::TempError(e) => format!("temperror ({e})"),
        DkimResult::None => "none".into(),
    }
}

/// Whether a signature by `signer` speaks for `domain`: the same domain, or one is a
/// subdomain of the other (relaxed alignment without a public suffix list). A one-label
/// signer (a TLD) never counts.
pub fn aligned(signer: &str, domain: &str) -> bool {
    let signer = signer.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    if !signer.contains('.') {
        return false;
    }
    let under = |child: &[u8], parent: &[u8]| {
        child.eq_ignore_ascii_case(parent)
            || child
                .len()
                .checked_sub(parent.len() + 1)
                .is_some_and(|dot| {
                    child[dot] == b'.' && child[dot + 1..].eq_ignore_ascii_case(parent)
                })
    };
    under(signer.as_bytes(), domain.as_bytes()) || under(domain.as_bytes(), signer.as_bytes())
}

/// The reporting domain of a report message: its `TLS-Report-Submitter` (MAIL-02), else the
/// domain of its From address.
pub fn reporting_domain(submitter: Option<&str>, from: Option<&str>) -> Option<String> {
    submitter
        .map(str::to_string)
        .or_else(|| {
            from.and_then(|f| f.rsplit_once('@'))
                .map(|(_, d)| d.to_string())
        })
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_same_or_sub_domain_never_a_tld() {
        assert!(aligned("google.com", "google.com"));
        assert!(aligned("Google.COM", "google.com."));
        assert!(aligned("mail.example.com", "example.com"));
        assert!(aligned("example.com", "tlsrpt.example.com"));
        assert!(!aligned("com", "example.com"));
        assert!(!aligned("badexample.com", "example.com"));
        assert!(!aligned("example.net", "example.com"));
    }

    #[test]
    fn reporting_domain_prefers_the_submitter_header() {
        assert_eq!(
            reporting_domain(Some("Google.com."), Some("noreply@other.example")).as_deref(),
            Some("google.com")
        );
        assert_eq!(
            reporting_domain(None, Some("noreply-smtp-tls-reporting@google.com")).as_deref(),
            Some("google.com")
        );
        assert_eq!(reporting_domain(None, Some("nobody")), None);
        assert_eq!(reporting_domain(Some(" "), None), None);
    }
}
