//! DANE awareness (RFC 8461 §2, RFC 7672): from DNSSEC-qualified MX and TLSA answers, decide
//! whether DANE governs a destination, so MTA-STS never overrides or weakens it. Pure: the
//! caller does the DNS lookups.

use std::fmt;

/// How a DNS answer was authenticated (by a validating resolver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnssecStatus {
    /// Validated (AD bit from a validating resolver).
    Secure,
    /// In an unsigned zone.
    Insecure,
    /// Validation failed (a validating resolver answers SERVFAIL).
    Bogus,
    /// No answer could be had (timeout, other failure).
    Indeterminate,
}

impl fmt::Display for DnssecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
        })
    }
}

/// A DNS answer with its DNSSEC status. `records` empty with a usable status means NXDOMAIN or
/// NODATA (an authenticated denial when `Secure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    /// How the answer was authenticated.
    pub status: DnssecStatus,
    /// The records (empty: NXDOMAIN or NODATA).
    pub records: Vec<T>,
}

/// One TLSA record (RFC 6698).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlsa {
    /// Certificate usage (0–3).
    pub usage: u8,
    /// Selector: 0 full certificate, 1 SubjectPublicKeyInfo.
    pub selector: u8,
    /// Matching type: 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    /// The association data.
    pub data: Vec<u8>,
}

impl Tlsa {
    /// Usable for SMTP per RFC 7672 §3.1: DANE-TA(2) or DANE-EE(3), selector 0/1, matching
    /// 0/1/2 with a digest of the right length. PKIX-TA(0)/PKIX-EE(1) are unusable.
    pub fn is_usable(&self) -> bool {
        let usage = matches!(self.usage, 2 | 3);
        let selector = matches!(self.selector, 0 | 1);
        let data = match self.matching {
            0 => !self.data.is_empty(),
            1 => self.data.len() == 32,
            2 => self.data.len() == 64,
            _ => false,
        };
        usage && selector && data
    }
}

impl fmt::Display for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        self.data.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// What governs delivery to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaneDecision {
    /// Every MX host has a secure, usable TLSA RRset: Postfix `dane-only`.
    DaneOnly,
    /// DANE applies to some MX hosts, or TLSA records exist but none is usable: Postfix `dane`
    /// (RFC 7672 fallback: unusable TLSA means mandatory unauthenticated TLS for that host).
    Dane(DaneCoverage),
    /// DANE does not apply; the MTA-STS path decides.
    NotApplicable(String),
    /// DNSSEC validation failed on the DANE path (bogus data): defer, never downgrade
    /// (RFC 7672 §2.1.1).
    TempFail(String),
    /// The resolver could not get an answer at all (timeout, SERVFAIL also with checking
    /// disabled, REFUSED): nothing is known about DANE right now. The caller falls back to
    /// the last verdict it had; the decision treats a domain never seen as unknown.
    Unavailable(String),
}

impl DaneDecision {
    /// A stable short name: `dane-only`, `dane`, `not-applicable` or `temporary-failure`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DaneOnly => "dane-only",
            Self::Dane(_) => "dane",
            Self::NotApplicable(_) => "not-applicable",
            Self::TempFail(_) => "temporary-failure",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl fmt::Display for DaneDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DaneOnly => f.write_str("every MX host has a secure, usable TLSA RRset"),
            Self::Dane(DaneCoverage::Partial) => {
                f.write_str("some MX hosts have a secure, usable TLSA RRset")
            }
            Self::Dane(DaneCoverage::UnusableOnly) => {
                f.write_str("TLSA records exist but none is usable")
            }
            Self::Dane(DaneCoverage::SomeUnreachable) => f.write_str(
                "the TLSA records of some MX hosts fail DNSSEC validation (those hosts are unreachable); the others have no usable TLSA",
            ),
            Self::NotApplicable(why) | Self::TempFail(why) | Self::Unavailable(why) => {
                f.write_str(why)
            }
        }
    }
}

/// How far DANE covers a domain's MX hosts when not all of them have usable TLSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaneCoverage {
    /// Some MX hosts have a secure, usable TLSA RRset; the others have none or only unusable ones.
    Partial,
    /// Secure TLSA records exist, but none is usable (RFC 7672 §3.1): no host can be
    /// authenticated by DANE, only encrypted.
    UnusableOnly,
    /// The TLSA lookups of some (not all) MX hosts fail validation, and no other host has
    /// usable TLSA: those hosts are unreachable (RFC 7672 §2.1.1), the others get DANE's
    /// fallbacks. The MTA must still do DANE, or it would use the bogus hosts unchecked.
    SomeUnreachable,
}

/// Decides from the MX answer and, for each MX host (or the domain itself when it has no MX),
/// the TLSA answer at `_25._tcp.<host>`. `hosts_tlsa` must follow the MX answer's hosts.
///
/// - MX lookup bogus → [`DaneDecision::TempFail`]; no answer at all →
///   [`DaneDecision::Unavailable`].
/// - MX RRset not secure → not applicable: an unauthenticated MX can name any host, so its
///   hosts' TLSA records authenticate nothing (RFC 7672 §2.2.1).
/// - a host whose TLSA lookup is bogus is unreachable, not the whole domain (RFC 7672 §2.1.1:
///   the MTA skips it, as Postfix and Exim do themselves): every host bogus → `TempFail`;
///   any unanswered → `Unavailable`;
/// - of the others: all secure and usable → `DaneOnly` (`Dane(Partial)` when some host is
///   unreachable, so the MTA still applies DANE per host); some → `Dane(Partial)`; none but
///   some host unreachable → `Dane(SomeUnreachable)`; TLSA present but none usable →
///   `Dane(UnusableOnly)`; otherwise (authenticated denial, insecure) → not applicable.
pub fn decide(mx: &Answer<String>, hosts_tlsa: &[(String, Answer<Tlsa>)]) -> DaneDecision {
    match mx.status {
        DnssecStatus::Bogus => {
            return DaneDecision::TempFail("MX lookup failed DNSSEC validation".into());
        }
        DnssecStatus::Indeterminate => {
            return DaneDecision::Unavailable("MX lookup failed (resolver unavailable)".into());
        }
        DnssecStatus::Insecure => {
            return DaneDecision::NotApplicable("MX RRset is not DNSSEC-signed".into());
        }
        DnssecStatus::Secure => {}
    }
    if hosts_tlsa.is_empty() {
        return DaneDecision::NotApplicable("no MX hosts".into());
    }
    let mut usable = 0;
    let mut unusable_only = 0;
    let mut bogus = Vec::new();
    for (host, answer) in hosts_tlsa {
        match answer.status {
            DnssecStatus::Bogus => bogus.push(host.as_str()),
            DnssecStatus::Indeterminate => {
                return DaneDecision::Unavailable(format!(
                    "TLSA lookup of {host} failed (resolver unavailable)"
                ));
            }
            DnssecStatus::Insecure => {}
            DnssecStatus::Secure if answer.records.is_empty() => {}
            DnssecStatus::Secure => {
                if answer.records.iter().any(Tlsa::is_usable) {
                    usable += 1;
                } else {
                    unusable_only += 1;
                }
            }
        }
    }
    if bogus.len() == hosts_tlsa.len() {
        let which = match bogus.as_slice() {
            [one] => (*one).to_string(),
            all => format!("every MX host ({})", all.join(", ")),
        };
        return DaneDecision::TempFail(format!("TLSA of {which} failed DNSSEC validation"));
    }
    if usable == hosts_tlsa.len() {
        DaneDecision::DaneOnly
    } else if usable > 0 {
        DaneDecision::Dane(DaneCoverage::Partial)
    } else if !bogus.is_empty() {
        DaneDecision::Dane(DaneCoverage::SomeUnreachable)
    } else if unusable_only > 0 {
        DaneDecision::Dane(DaneCoverage::UnusableOnly)
    } else {
        DaneDecision::NotApplicable("no secure TLSA records for the MX hosts".into())
    }
}

/// `_25._tcp.<host>`, where TLSA records of an SMTP server live (RFC 7672 §2.2).
pub fn tlsa_name(host: &str) -> String {
    format!("_25._tcp.{}", host.trim_end_matches('.'))
}
