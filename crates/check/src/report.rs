//! The diagnosis of one domain: findings and what was seen, in the documented JSON shape
//! (README.md, schema 1).

use serde::Serialize;

use crate::code::Code;
use crate::probe::{CertInfo, SmtpProbe};

/// Certificates expiring sooner than this get a warning.
pub const EXPIRY_WARNING: i64 = 14 * 86_400;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing wrong.
    Ok,
    /// Worth knowing, not a problem.
    Info,
    /// Senders still deliver, but something should be fixed.
    Warning,
    /// Senders cannot deliver as the policy says, or the check could not tell.
    Error,
}

/// One observation.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `txt`, `policy`, `consistency`, `mx <host>`, `dane`, `tlsrpt`.
    pub step: String,
    /// How bad it is.
    pub level: Level,
    /// Stable machine code, e.g. `sni-only`, `fetch-error`.
    pub code: Code,
    /// What was seen, in words.
    pub message: String,
    /// One line on how to fix it.
    pub fix: Option<String>,
}

/// The `_mta-sts` TXT records seen.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TxtSection {
    /// Every TXT record at `_mta-sts.<domain>`, strings joined.
    pub records: Vec<String>,
    /// The `id` of the one valid record.
    pub id: Option<String>,
}

/// The policy as fetched.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySection {
    /// `enforce`, `testing` or `none`.
    pub mode: String,
    /// Seconds.
    pub max_age: u64,
    /// The `mx` patterns.
    pub mx: Vec<String>,
    /// The policy as senders parsed it, in canonical form.
    pub text: String,
    /// TLS version of the fetch.
    pub tls_version: String,
    /// The policy host's certificate.
    pub certificate: Option<CertInfo>,
}

/// One address of an MX host, probed with and without SNI.
#[derive(Debug, Clone, Serialize)]
pub struct AddressProbe {
    /// The probe sending SNI = the MX name.
    pub with_sni: SmtpProbe,
    /// The probe sending no SNI.
    pub without_sni: SmtpProbe,
}

/// DANE for one MX host.
#[derive(Debug, Clone, Serialize)]
pub struct TlsaSection {
    /// DNSSEC status of the TLSA answer.
    pub dnssec: String,
    /// The TLSA records, presentation form.
    pub records: Vec<String>,
    /// Whether a record matches the certificate presented with SNI (None: nothing to match).
    pub matched: Option<bool>,
}

/// One MX host.
#[derive(Debug, Clone, Serialize)]
pub struct MxSection {
    /// The MX host name.
    pub host: String,
    /// The policy pattern that covers it, if any.
    pub covered_by: Option<String>,
    /// Each of its addresses, probed.
    pub addresses: Vec<AddressProbe>,
    /// Its TLSA records, if looked up.
    pub tlsa: Option<TlsaSection>,
}

/// The TLS-RPT record.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsRptSection {
    /// The `v=TLSRPTv1` record, if any.
    pub record: Option<String>,
    /// The usable `rua` URIs.
    pub rua: Vec<String>,
}

/// The whole diagnosis. Its JSON form is documented in README.md (schema version 1).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// JSON schema version (1).
    pub schema: u32,
    /// The domain checked.
    pub domain: String,
    /// The worst finding: ok, info, warning or error.
    pub verdict: Level,
    /// Would a compliant sender deliver under this policy today? `null`: no policy in force,
    /// or MX hosts not probed.
    pub deliverable: Option<bool>,
    /// One sentence: what senders do today.
    pub summary: String,
    /// The mode in force, if a policy is.
    pub mode: Option<String>,
    /// Every finding, in step order.
    pub findings: Vec<Finding>,
    /// The TXT records seen.
    pub txt: TxtSection,
    /// The policy fetched, if any.
    pub policy: Option<PolicySection>,
    /// Each MX host.
    pub mx: Vec<MxSection>,
    /// DNSSEC status of the MX RRset.
    pub mx_dnssec: String,
    /// What DANE decides for the domain, as the daemon decides it (`mtasts_core::dane::
    /// decide`): `dane-only`, `dane`, `not-applicable`, `temporary-failure` or `unavailable`.
    pub dane: String,
    /// Who validated the DNSSEC status: `resolver` (its AD bit, the view the MTA uses) or
    /// `mtasts` (in-process, `--validate`: not the MTA's view).
    pub dnssec_validated_by: String,
    /// The TLS-RPT record.
    pub tlsrpt: TlsRptSection,
    /// DNS gave no answer for lookups the verdict rests on (the `_mta-sts` TXT, the MX set,
    /// the TLS-RPT record): what they would have shown is unknown, not absent.
    pub lookups_failed: Vec<String>,
}

impl Report {
    /// Exit status: 0 all ok, 1 warnings only, 2 errors, 3 could not tell (lookups failed).
    pub fn exit_code(&self) -> u8 {
        if !self.lookups_failed.is_empty() {
            return 3;
        }
        match self.verdict {
            Level::Ok | Level::Info => 0,
            Level::Warning => 1,
            Level::Error => 2,
        }
    }

    /// Number of MX hosts whose certificate is valid only with SNI.
    pub fn sni_only_count(&self) -> usize {
        let mut hosts: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| f.code == Code::SniOnly)
            .map(|f| f.step.as_str())
            .collect();
        hosts.dedup();
        hosts.len()
    }

    /// The error class of the first error, for scan rows.
    pub fn error_class(&self) -> Option<Code> {
        self.findings
            .iter()
            .find(|f| f.level == Level::Error)
            .map(|f| f.code)
    }

    /// Whether any MX host has DNSSEC-secure TLSA records.
    pub fn dane_present(&self) -> bool {
        self.mx.iter().any(|m| {
            m.tlsa
                .as_ref()
                .is_some_and(|t| t.dnssec == "secure" && !t.records.is_empty())
        })
    }
}

impl Report {
    /// An empty report for `domain`.
    pub fn new(domain: &str) -> Self {
        Self {
            schema: 1,
            domain: domain.to_string(),
            verdict: Level::Ok,
            deliverable: None,
            summary: String::new(),
            mode: None,
            findings: Vec::new(),
            txt: TxtSection::default(),
            policy: None,
            mx: Vec::new(),
            mx_dnssec: String::new(),
            dane: String::new(),
            dnssec_validated_by: "resolver".into(),
            tlsrpt: TlsRptSection::default(),
            lookups_failed: Vec::new(),
        }
    }

    /// Adds a finding.
    pub fn add(
        &mut self,
        step: &str,
        level: Level,
        code: Code,
        message: String,
        fix: Option<String>,
    ) {
        self.findings.push(Finding {
            step: step.to_string(),
            level,
            code,
            message,
            fix,
        });
    }
}
