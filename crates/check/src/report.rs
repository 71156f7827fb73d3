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
    Ok,
    Info,
    Warning,
    Error,
}

/// One observation.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `txt`, `policy`, `consistency`, `mx <host>`, `dane`, `tlsrpt`.
    pub step: String,
    pub level: Level,
    /// Stable machine code, e.g. `sni-only`, `fetch-error`.
    pub code: Code,
    pub message: String,
    /// One line on how to fix it.
    pub fix: Option<String>,
}

/// The `_mta-sts` TXT records seen.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TxtSection {
    pub records: Vec<String>,
    pub id: Option<String>,
}

/// The policy as fetched.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySection {
    pub mode: String,
    pub max_age: u64,
    pub mx: Vec<String>,
    pub text: String,
    pub tls_version: String,
    pub certificate: Option<CertInfo>,
}

/// One address of an MX host, probed with and without SNI.
#[derive(Debug, Clone, Serialize)]
pub struct AddressProbe {
    pub with_sni: SmtpProbe,
    pub without_sni: SmtpProbe,
}

/// DANE for one MX host.
#[derive(Debug, Clone, Serialize)]
pub struct TlsaSection {
    pub dnssec: String,
    pub records: Vec<String>,
    /// Whether a record matches the certificate presented with SNI (None: nothing to match).
    pub matched: Option<bool>,
}

/// One MX host.
#[derive(Debug, Clone, Serialize)]
pub struct MxSection {
    pub host: String,
    /// The policy pattern that covers it, if any.
    pub covered_by: Option<String>,
    pub addresses: Vec<AddressProbe>,
    pub tlsa: Option<TlsaSection>,
}

/// The TLS-RPT record.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsRptSection {
    pub record: Option<String>,
    pub rua: Vec<String>,
}

/// The whole diagnosis. Its JSON form is documented in README.md (schema version 1).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub domain: String,
    /// The worst finding: ok, info, warning or error.
    pub verdict: Level,
    /// Would a compliant sender deliver under this policy today? `null`: no policy in force,
    /// or MX hosts not probed.
    pub deliverable: Option<bool>,
    pub summary: String,
    pub mode: Option<String>,
    pub findings: Vec<Finding>,
    pub txt: TxtSection,
    pub policy: Option<PolicySection>,
    pub mx: Vec<MxSection>,
    pub mx_dnssec: String,
    pub tlsrpt: TlsRptSection,
}

impl Report {
    /// Exit status: 0 all ok, 1 warnings only, 2 errors.
    pub fn exit_code(&self) -> u8 {
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
            tlsrpt: TlsRptSection::default(),
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
