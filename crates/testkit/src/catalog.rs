//! The named scenario catalog (`catalog/scenarios.toml`): good and deliberately broken
//! MTA-STS domains, loadable into a [`WorldBuilder`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Error;
use crate::dns::DnsFault;
use crate::dnssec::{SignedZone, SigningFault};
use crate::https::PolicyHost;
use crate::smtp::SmtpHost;
use crate::world::WorldBuilder;

/// The catalog shipped with mtasts.
pub const BUILTIN: &str = include_str!("../catalog/scenarios.toml");

/// One domain of the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The domain, e.g. `enforce.test`.
    pub name: String,
    /// What it shows, one line.
    pub about: String,
    #[serde(default = "default_mode")]
    /// The policy mode, e.g. `enforce`.
    pub mode: String,
    #[serde(default = "default_id")]
    /// The TXT id.
    pub id: String,
    #[serde(default = "default_max_age")]
    /// The policy's max_age.
    pub max_age: u64,
    /// MX records, in preference order.
    #[serde(default)]
    pub mx: Vec<String>,
    /// `mx:` lines of the policy; defaults to `mx`.
    pub policy_mx: Option<Vec<String>>,
    /// TXT records at `_mta-sts.<name>`, each a list of character-strings.
    pub txt: Option<Vec<Vec<String>>>,
    /// A DNS fault for the `_mta-sts` name.
    pub txt_fault: Option<DnsFault>,
    /// A CNAME at `_mta-sts` to this name.
    pub txt_cname: Option<String>,
    /// The policy body verbatim, instead of one built from mode/policy_mx/max_age.
    pub body: Option<String>,
    #[serde(default)]
    /// How the policy host behaves.
    pub policy: PolicyHost,
    #[serde(default)]
    /// No `mta-sts.<domain>` host at all.
    pub no_policy_host: bool,
    /// Per-MX overrides.
    #[serde(default)]
    pub smtp: BTreeMap<String, SmtpHost>,
    /// MX host names that are CNAMEs: name → target, where the SMTP server then runs.
    #[serde(default)]
    pub mx_cname: BTreeMap<String, String>,
    /// The domain is its own DNSSEC-signed zone under the lab's signed `test.` (signed for
    /// real in `mtasts lab`, simulated in-process).
    #[serde(default)]
    pub dnssec: bool,
    /// Authenticated denial with NSEC3 instead of NSEC.
    #[serde(default)]
    pub nsec3: bool,
    /// The whole zone broken on purpose: `expired-signatures` or `ds-mismatch`.
    pub dnssec_fault: Option<SigningFault>,
    /// TLSA at `_25._tcp.<host>`: `auto` (3 1 1 of the host's certificate), `ca` (2 0 1 of
    /// the test CA's certificate) or `U S M HEX`.
    #[serde(default)]
    pub tlsa: BTreeMap<String, String>,
    /// Names in the signed zone whose signatures are corrupted (answers fail validation).
    #[serde(default)]
    pub bogus: Vec<String>,
    /// TXT record at `_smtp._tls.<name>` (TLS-RPT).
    pub tlsrpt: Option<String>,
}

fn default_mode() -> String {
    "enforce".into()
}
fn default_id() -> String {
    "20261125".into()
}
fn default_max_age() -> u64 {
    604_800
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    scenario: Vec<Scenario>,
}

/// A loaded catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Every scenario.
    pub scenarios: Vec<Scenario>,
}

impl Catalog {
    /// The shipped catalog.
    pub fn builtin() -> Result<Self, Error> {
        Self::parse(BUILTIN)
    }

    /// Parses a catalog file's text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| Error::Config(format!("scenario catalog: {e}")))?;
        let mut seen = std::collections::HashSet::new();
        for s in &file.scenario {
            if !seen.insert(s.name.to_ascii_lowercase()) {
                return Err(Error::Config(format!(
                    "scenario catalog: `{}` is listed twice",
                    s.name
                )));
            }
            let needs_dnssec = [
                ("bogus", !s.bogus.is_empty()),
                ("nsec3", s.nsec3),
                ("dnssec_fault", s.dnssec_fault.is_some()),
            ];
            if let Some((field, _)) = needs_dnssec.iter().find(|(_, set)| *set && !s.dnssec) {
                return Err(Error::Config(format!(
                    "scenario catalog: `{}`: {field} needs dnssec = true (it breaks a signed zone)",
                    s.name
                )));
            }
        }
        Ok(Self {
            scenarios: file.scenario,
        })
    }

    /// The scenario for `name`.
    pub fn get(&self, name: &str) -> Option<&Scenario> {
        self.scenarios
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// A builder holding every scenario.
    pub fn world(&self) -> WorldBuilder {
        self.scenarios
            .iter()
            .fold(crate::World::builder(), |b, s| s.apply(b))
    }
}

impl Scenario {
    /// The policy body this scenario serves.
    pub fn policy_body(&self) -> String {
        if let Some(body) = &self.body {
            return body.clone();
        }
        let mut out = format!("version: STSv1\nmode: {}\n", self.mode);
        for m in self.policy_mx.as_ref().unwrap_or(&self.mx) {
            out.push_str(&format!("mx: {m}\n"));
        }
        out.push_str(&format!("max_age: {}\n", self.max_age));
        out
    }

    /// Adds this scenario's records and hosts to a builder.
    pub fn apply(&self, mut b: WorldBuilder) -> WorldBuilder {
        let txt_name = format!("_mta-sts.{}", self.name);
        match (&self.txt_cname, &self.txt) {
            (Some(target), _) => {
                b = b
                    .cname(&txt_name, target)
                    .txt(target, &format!("v=STSv1; id={};", self.id));
            }
            (None, Some(records)) => {
                for r in records {
                    let strings: Vec<&str> = r.iter().map(String::as_str).collect();
                    b = b.txt_strings(&txt_name, &strings);
                }
            }
            (None, None) => b = b.txt(&txt_name, &format!("v=STSv1; id={};", self.id)),
        }
        if let Some(fault) = self.txt_fault {
            b = b.dns_fault(&txt_name, fault);
        }
        if !self.no_policy_host {
            let mut host = self.policy.clone();
            if host.body.is_empty() {
                host.body = self.policy_body();
            }
            if host.content_type.as_deref() == Some("") {
                host.content_type = None;
            }
            b = b.policy(&self.name, host);
        }
        if self.dnssec {
            b = b.signed_zone(SignedZone {
                nsec3: self.nsec3,
                fault: self.dnssec_fault,
                broken: self.bogus.clone(),
                ..SignedZone::new(&self.name)
            });
        }
        if let Some(t) = &self.tlsrpt {
            b = b.txt(&format!("_smtp._tls.{}", self.name), t);
        }
        for (host, spec) in &self.tlsa {
            let owner = tlsa_owner(host);
            b = match parse_tlsa(spec) {
                Some((u, s, m, data)) => b.tlsa(&owner, u, s, m, data),
                None if spec == "ca" => b.tlsa_for_ca(&owner),
                None => b.tlsa_for(&owner, host),
            };
        }
        for (i, mx) in self.mx.iter().enumerate() {
            let pref = u16::try_from(10 * (i + 1)).unwrap_or(u16::MAX);
            let spec = self.smtp.get(mx).cloned().unwrap_or_default();
            b = b.mx(&self.name, pref, mx);
            b = match self.mx_cname.get(mx) {
                Some(target) => b.cname(mx, target).smtp(target, spec),
                None => b.smtp(mx, spec),
            };
        }
        b
    }
}

fn tlsa_owner(host: &str) -> String {
    format!("_25._tcp.{}", host.trim_end_matches('.'))
}

/// `U S M HEX` → fields; `auto` (or anything else) → None.
fn parse_tlsa(spec: &str) -> Option<(u8, u8, u8, Vec<u8>)> {
    let mut parts = spec.split_whitespace();
    let u = parts.next()?.parse().ok()?;
    let s = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let hex = parts.next()?;
    let data = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    Some((u, s, m, data))
}
