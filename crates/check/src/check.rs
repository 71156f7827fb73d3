//! `mtasts check`: every step a sender takes, each with a verdict, what was seen, and a fix.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mtasts_core::advice::policy_advice;
use mtasts_core::dane::{DnssecStatus, tlsa_name};
use mtasts_core::errors::Chain;
use mtasts_core::mx::MxPattern;
use mtasts_core::tlsrpt::select_tlsrpt;
use mtasts_core::txt::{Discovery, join_strings, select_record};
use mtasts_core::{DomainName, Mode, Policy};
use mtasts_resolver::{
    Dns, DnsError, DnssecClient, Fetch, FetchError, FetchSettings, HickoryDns, HttpsFetcher,
    NoValidatingResolver, TrustError, TxtAnswer, client_config, root_store,
};
use rustls::RootCertStore;
use serde::Serialize;

use crate::probe::{CertInfo, SmtpProbe, TlsOutcome, probe_smtp, tls_handshake, tlsa_matches};

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
    pub code: &'static str,
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
            .filter(|f| f.code == "sni-only")
            .map(|f| f.step.as_str())
            .collect();
        hosts.dedup();
        hosts.len()
    }

    /// The error class of the first error, for scan rows.
    pub fn error_class(&self) -> Option<&'static str> {
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

/// How to reach things.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    pub nameserver: Option<SocketAddr>,
    pub ca_file: Option<PathBuf>,
    /// Per network step.
    pub timeout: Duration,
    /// Probe MX hosts on port 25.
    pub smtp: bool,
    /// (published address, port) → where to connect (the lab's ephemeral ports).
    pub connect_map: HashMap<SocketAddr, SocketAddr>,
}

/// Runs checks; reusable across domains (scan).
pub struct Checker {
    dns: Arc<HickoryDns>,
    fetcher: HttpsFetcher<HickoryDns>,
    dnssec: DnssecClient,
    roots: Arc<RootCertStore>,
    settings: CheckSettings,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Why a checker could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("setting up DNS")]
    Dns(#[source] DnsError),
    #[error("setting up the trust for policy hosts")]
    Trust(#[from] TrustError),
    #[error("choosing the validating resolver for DANE")]
    Dnssec(#[from] NoValidatingResolver),
}

impl Checker {
    /// A checker with its DNS, HTTPS and DNSSEC clients.
    pub fn new(settings: CheckSettings) -> Result<Self, SetupError> {
        let dns = Arc::new(
            HickoryDns::new(settings.nameserver, settings.timeout).map_err(SetupError::Dns)?,
        );
        let tls = client_config(settings.ca_file.as_deref())?;
        let fetcher = HttpsFetcher::new(
            dns.clone(),
            tls,
            FetchSettings {
                connect_timeout: settings.timeout,
                total_timeout: settings.timeout * 3,
                connect_map: settings.connect_map.clone(),
                ..FetchSettings::default()
            },
        );
        let dnssec = DnssecClient::new(settings.nameserver, settings.timeout)?;
        let roots = Arc::new(root_store(settings.ca_file.as_deref())?);
        Ok(Self {
            dns,
            fetcher,
            dnssec,
            roots,
            settings,
        })
    }

    fn connect_addr(&self, ip: IpAddr, port: u16) -> SocketAddr {
        let public = SocketAddr::new(ip, port);
        self.settings
            .connect_map
            .get(&public)
            .copied()
            .unwrap_or(public)
    }

    /// The full diagnosis of `domain`.
    pub async fn check(&self, domain: &DomainName) -> Report {
        let mut r = Report {
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
        };
        let (txt_ok, policy) = tokio::join!(self.step_txt(domain), self.step_policy(domain));
        let txt_ok = txt_ok.apply(&mut r);
        let policy = policy.apply(&mut r);
        let mx_answer = self.dnssec.mx(domain.as_str()).await;
        r.mx_dnssec = mx_answer.status.to_string();
        let mut hosts = mx_answer.records.clone();
        hosts.dedup();
        if hosts.is_empty() {
            r.add(
                "consistency",
                Level::Warning,
                "mx-none",
                format!("{domain} has no MX records; senders use its A/AAAA records"),
                Some("publish MX records for the mail hosts".into()),
            );
            hosts.push(domain.to_string());
        }
        if let Some(p) = &policy {
            self.consistency(domain, p, &hosts, &mut r);
        }
        let mut sections = Vec::new();
        for host in &hosts {
            sections.push(self.step_mx(host, policy.as_ref(), &mut r).await);
        }
        r.mx = sections;
        self.step_dane(&mut r, mx_answer.status).await;
        self.step_tlsrpt(domain, &mut r).await;
        self.summarise(&mut r, txt_ok, policy.as_ref());
        r
    }

    async fn step_txt(&self, domain: &DomainName) -> StepResult<bool> {
        let mut s = StepResult::new("txt", false);
        match self.dns.txt(&domain.mta_sts_txt_name()).await {
            Ok(TxtAnswer::Records(rrset)) => {
                s.txt.records = rrset
                    .iter()
                    .map(|rr| String::from_utf8_lossy(&join_strings(rr)).into_owned())
                    .collect();
                match select_record(&rrset) {
                    Ok(rec) => {
                        s.txt.id = Some(rec.id.clone());
                        s.push(
                            Level::Ok,
                            "txt-ok",
                            format!("one v=STSv1 record, id {}", rec.id),
                            None,
                        );
                        for (name, _) in &rec.extensions {
                            s.push(
                                Level::Info,
                                "txt-extension",
                                format!("unknown field `{name}` (ignored by senders)"),
                                None,
                            );
                        }
                        s.value = true;
                    }
                    Err(Discovery::NoRecord) => s.push(
                        Level::Error,
                        "txt-missing",
                        format!(
                            "no TXT record at {} starts with `v=STSv1;`",
                            domain.mta_sts_txt_name()
                        ),
                        Some(format!(
                            "publish `{} TXT \"v=STSv1; id=<date>\"`",
                            domain.mta_sts_txt_name()
                        )),
                    ),
                    Err(Discovery::Multiple(n)) => s.push(
                        Level::Error,
                        "txt-multiple",
                        format!("{n} v=STSv1 records: senders treat this as no policy (TXT-05)"),
                        Some("keep exactly one v=STSv1 record".into()),
                    ),
                    Err(Discovery::Invalid(e)) => s.push(
                        Level::Error,
                        "txt-invalid",
                        format!("the v=STSv1 record is invalid: {e}"),
                        Some("fix the record; see `mtasts lint record`".into()),
                    ),
                }
            }
            Ok(TxtAnswer::NxDomain | TxtAnswer::NoData) => s.push(
                Level::Error,
                "txt-missing",
                format!(
                    "no TXT record at {}: the domain has no MTA-STS",
                    domain.mta_sts_txt_name()
                ),
                Some(format!(
                    "publish `{} TXT \"v=STSv1; id=<date>\"`",
                    domain.mta_sts_txt_name()
                )),
            ),
            Err(e) => s.push(
                Level::Error,
                if matches!(e, DnsError::Timeout) {
                    "timeout"
                } else {
                    "dns-error"
                },
                format!(
                    "TXT lookup of {} failed: {}",
                    domain.mta_sts_txt_name(),
                    Chain(&e)
                ),
                Some("check the domain's DNS servers".into()),
            ),
        }
        s
    }

    async fn step_policy(&self, domain: &DomainName) -> StepResult<Option<Policy>> {
        let mut s = StepResult::new("policy", None);
        let host = domain.policy_host();
        match self.fetcher.fetch(domain).await {
            Ok(f) => {
                let body = f.parsed.policy.render();
                s.push(
                    Level::Ok,
                    "policy-ok",
                    format!(
                        "fetched {} from {} over {}; valid, mode {}",
                        domain.policy_url(),
                        f.peer,
                        f.tls_version,
                        f.parsed.policy.mode
                    ),
                    None,
                );
                for w in &f.parsed.warnings {
                    s.push(
                        Level::Warning,
                        "policy-tolerated",
                        w.to_string(),
                        Some("senders tolerate this, but fix it".into()),
                    );
                }
                for a in policy_advice(&f.parsed.policy, Some(domain)) {
                    s.push(Level::Warning, a.code(), a.to_string(), None);
                }
                let certificate = self.policy_certificate(&host, &mut s).await;
                s.policy = Some(PolicySection {
                    mode: f.parsed.policy.mode.to_string(),
                    max_age: f.parsed.policy.max_age,
                    mx: f.parsed.policy.mx.iter().map(ToString::to_string).collect(),
                    text: body,
                    tls_version: f.tls_version,
                    certificate,
                });
                s.value = Some(f.parsed.policy);
            }
            Err(e) => {
                let code = match e.failure() {
                    mtasts_core::FetchFailure::FetchError => "fetch-error",
                    mtasts_core::FetchFailure::WebPkiInvalid => "webpki-invalid",
                    mtasts_core::FetchFailure::PolicyInvalid => "policy-invalid",
                };
                let fix = fetch_fix(&e, &host);
                s.push(
                    Level::Error,
                    code,
                    format!("{} [{}]: {}", domain.policy_url(), e.rule(), Chain(&e)),
                    Some(fix),
                );
                if matches!(e, FetchError::WebPki { .. }) {
                    self.policy_certificate(&host, &mut s).await;
                }
            }
        }
        s
    }

    /// The policy host's certificate, for expiry and names.
    async fn policy_certificate(
        &self,
        host: &str,
        s: &mut StepResult<Option<Policy>>,
    ) -> Option<CertInfo> {
        let ip = self.dns.addresses(host).await.ok()?.into_iter().next()?;
        let tcp = tokio::time::timeout(
            self.settings.timeout,
            tokio::net::TcpStream::connect(self.connect_addr(ip, 443)),
        )
        .await
        .ok()?
        .ok()?;
        let t = tls_handshake(tcp, self.roots.clone(), host, true).await;
        let cert = t.chain.first().cloned()?;
        if let Some(err) = &t.pkix_error {
            s.push(
                Level::Info,
                "policy-cert",
                format!(
                    "certificate of {host}: {}, issuer {}, valid until {} ({err})",
                    describe_cert(&cert),
                    cert.issuer,
                    cert.not_after
                ),
                None,
            );
        } else if cert.expires_in < EXPIRY_WARNING {
            s.push(
                Level::Warning,
                "cert-expiring",
                format!(
                    "certificate of {host} expires in {} days ({})",
                    cert.expires_in / 86_400,
                    cert.not_after
                ),
                Some("renew it".into()),
            );
        }
        Some(cert)
    }

    fn consistency(&self, domain: &DomainName, p: &Policy, hosts: &[String], r: &mut Report) {
        if p.mode == Mode::None {
            r.add(
                "consistency",
                Level::Info,
                "mode-none",
                "mode none: the policy is withdrawn; MX hosts are not checked against it".into(),
                None,
            );
            return;
        }
        let level = if p.mode == Mode::Enforce {
            Level::Error
        } else {
            Level::Warning
        };
        for host in hosts {
            let covered = DomainName::parse(host).ok().and_then(|h| {
                p.mx.iter()
                    .find(|pat| pat.matches(&h))
                    .map(ToString::to_string)
            });
            match covered {
                Some(pat) => r.add(
                    "consistency",
                    Level::Ok,
                    "mx-covered",
                    format!("MX {host} is covered by `mx: {pat}`"),
                    None,
                ),
                None => r.add(
                    "consistency",
                    level,
                    "mx-not-covered",
                    format!(
                        "MX {host} matches no `mx:` pattern of the policy; senders {} it",
                        if p.mode == Mode::Enforce {
                            "will not deliver to"
                        } else {
                            "report"
                        }
                    ),
                    Some(format!(
                        "add `mx: {host}` to the policy (and change the TXT id)"
                    )),
                ),
            }
        }
        for pat in &p.mx {
            let used = hosts
                .iter()
                .filter_map(|h| DomainName::parse(h).ok())
                .any(|h| pat.matches(&h));
            if !used {
                r.add(
                    "consistency",
                    Level::Warning,
                    "pattern-unused",
                    format!("`mx: {pat}` matches none of {domain}'s MX records"),
                    Some("remove stale patterns, or check the MX records".into()),
                );
            }
        }
    }

    async fn step_mx(&self, host: &str, policy: Option<&Policy>, r: &mut Report) -> MxSection {
        let step = format!("mx {host}");
        let covered_by = policy.and_then(|p| {
            let h = DomainName::parse(host).ok()?;
            p.mx.iter()
                .find(|pat: &&MxPattern| pat.matches(&h))
                .map(ToString::to_string)
        });
        let mut section = MxSection {
            host: host.to_string(),
            covered_by,
            addresses: Vec::new(),
            tlsa: None,
        };
        if !self.settings.smtp {
            r.add(
                &step,
                Level::Info,
                "smtp-skipped",
                "port 25 not probed (--no-smtp)".into(),
                None,
            );
            return section;
        }
        let enforce = policy.is_some_and(|p| p.mode == Mode::Enforce);
        let addrs = match self.dns.addresses(host).await {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => {
                r.add(
                    &step,
                    Level::Error,
                    "mx-no-address",
                    format!("{host} has no A/AAAA records"),
                    Some("publish its addresses".into()),
                );
                return section;
            }
            Err(e) => {
                r.add(
                    &step,
                    Level::Error,
                    "dns-error",
                    format!("address lookup of {host} failed: {}", Chain(&e)),
                    None,
                );
                return section;
            }
        };
        for ip in addrs {
            let public = SocketAddr::new(ip, 25);
            let connect = self.connect_addr(ip, 25);
            let (with_sni, without_sni) = tokio::join!(
                probe_smtp(
                    public,
                    connect,
                    host,
                    true,
                    self.roots.clone(),
                    self.settings.timeout
                ),
                probe_smtp(
                    public,
                    connect,
                    host,
                    false,
                    self.roots.clone(),
                    self.settings.timeout
                )
            );
            diagnose_address(&step, host, enforce, &with_sni, &without_sni, r);
            section.addresses.push(AddressProbe {
                with_sni,
                without_sni,
            });
        }
        section
    }

    async fn step_dane(&self, r: &mut Report, mx_status: DnssecStatus) {
        let mut sections = Vec::new();
        for m in &r.mx {
            let t = self.dnssec.tlsa(&tlsa_name(&m.host)).await;
            let chain = m
                .addresses
                .first()
                .and_then(|a| a.with_sni.tls.as_ref())
                .map(|t| t.chain.clone())
                .unwrap_or_default();
            let matched = (!t.records.is_empty() && !chain.is_empty())
                .then(|| t.records.iter().any(|rec| tlsa_matches(rec, &chain)));
            sections.push((m.host.clone(), t.status, t.records.clone(), matched));
        }
        for (host, status, records, matched) in sections {
            let step = "dane";
            match (status, records.is_empty()) {
                (DnssecStatus::Bogus, _) => r.add(step, Level::Error, "dnssec-bogus", format!("TLSA lookup of {} fails DNSSEC validation: DANE senders defer", tlsa_name(&host)), Some("fix the zone's DNSSEC signatures".into())),
                (DnssecStatus::Indeterminate, _) => r.add(step, Level::Warning, "dnssec-unknown", format!("TLSA lookup of {} failed", tlsa_name(&host)), None),
                (DnssecStatus::Secure, false) if mx_status != DnssecStatus::Secure => r.add(step, Level::Warning, "tlsa-unused", format!("{host} has TLSA records but the MX RRset is not signed, so DANE senders ignore them"), Some("sign the domain's zone".into())),
                (DnssecStatus::Secure, false) if !records.iter().any(mtasts_core::dane::Tlsa::is_usable) => r.add(step, Level::Warning, "tlsa-unusable", format!("TLSA at {} has no record usable for SMTP (RFC 7672 §3.1: DANE-TA(2) or DANE-EE(3)); DANE senders fall back to unauthenticated TLS", tlsa_name(&host)), Some("publish a 3 1 1 record for the server's key".into())),
                (DnssecStatus::Secure, false) => match matched {
                    Some(true) => r.add(step, Level::Ok, "tlsa-match", format!("TLSA at {} (DNSSEC secure) matches the certificate {host} presents", tlsa_name(&host)), None),
                    Some(false) => r.add(step, Level::Error, "tlsa-mismatch", format!("no TLSA record at {} matches the certificate {host} presents: DANE senders will not deliver", tlsa_name(&host)), Some("publish TLSA for the current key before rotating (3 1 1 <sha256 of the SPKI>)".into())),
                    None => r.add(step, Level::Info, "tlsa-unchecked", format!("TLSA at {} (secure); certificate not probed", tlsa_name(&host)), None),
                },
                (DnssecStatus::Insecure, false) => r.add(step, Level::Warning, "tlsa-insecure", format!("TLSA at {} is not DNSSEC-signed, so senders ignore it", tlsa_name(&host)), Some("sign the zone".into())),
                (_, true) => r.add(step, Level::Info, "no-dane", format!("no TLSA records for {host} ({status})"), None),
            }
            if let Some(m) = r.mx.iter_mut().find(|m| m.host == host) {
                m.tlsa = Some(TlsaSection {
                    dnssec: status.to_string(),
                    records: records.iter().map(ToString::to_string).collect(),
                    matched,
                });
            }
        }
    }

    async fn step_tlsrpt(&self, domain: &DomainName, r: &mut Report) {
        let name = domain.tlsrpt_txt_name();
        match self.dns.txt(&name).await {
            Ok(TxtAnswer::Records(rrset)) => {
                r.tlsrpt.record = rrset
                    .iter()
                    .map(|rr| String::from_utf8_lossy(&join_strings(rr)).into_owned())
                    .find(|t| t.starts_with("v=TLSRPTv1"));
                match select_tlsrpt(&rrset) {
                    Ok(rec) => {
                        r.tlsrpt.rua = rec.usable.clone();
                        r.add(
                            "tlsrpt",
                            Level::Ok,
                            "tlsrpt-ok",
                            format!("reports go to {}", rec.usable.join(", ")),
                            None,
                        );
                    }
                    Err(e) => r.add(
                        "tlsrpt",
                        Level::Warning,
                        "tlsrpt-invalid",
                        format!("{name}: {e}"),
                        Some("publish one `v=TLSRPTv1; rua=mailto:…` record".into()),
                    ),
                }
            }
            _ => r.add(
                "tlsrpt",
                Level::Warning,
                "tlsrpt-missing",
                format!("no TLS-RPT record at {name}: you will not hear about delivery failures"),
                Some(format!(
                    "publish `{name} TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}\"`"
                )),
            ),
        }
    }

    fn summarise(&self, r: &mut Report, txt_ok: bool, policy: Option<&Policy>) {
        r.verdict = r
            .findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Ok);
        let Some(p) = policy.filter(|_| txt_ok) else {
            r.summary =
                "no MTA-STS policy in force: senders deliver as if the domain had none".into();
            return;
        };
        r.mode = Some(p.mode.to_string());
        match p.mode {
            Mode::Enforce if !self.settings.smtp => {
                r.summary = "enforce policy in force; MX hosts not probed".into();
            }
            Mode::Enforce => {
                let good: Vec<&str> =
                    r.mx.iter()
                        .filter(|m| {
                            m.covered_by.is_some()
                                && m.addresses
                                    .iter()
                                    .any(|a| a.with_sni.tls.as_ref().is_some_and(TlsOutcome::valid))
                        })
                        .map(|m| m.host.as_str())
                        .collect();
                r.deliverable = Some(!good.is_empty());
                r.summary = if good.is_empty() {
                    "enforce policy in force, but no MX host passes: compliant senders will NOT deliver (they defer)".into()
                } else {
                    format!(
                        "enforce policy in force: compliant senders deliver via {}",
                        good.join(", ")
                    )
                };
            }
            Mode::Testing => {
                r.deliverable = Some(true);
                r.summary = "testing policy: senders deliver regardless and report failures; under enforce the errors above would block delivery".into();
            }
            Mode::None => {
                r.deliverable = Some(true);
                r.summary =
                    "mode none: the policy is withdrawn; senders deliver as without MTA-STS".into();
            }
        }
    }
}

fn describe_cert(c: &CertInfo) -> String {
    if c.dns_names.is_empty() {
        format!("no DNS names, subject {}", c.subject)
    } else {
        format!("names {}", c.dns_names.join(", "))
    }
}

fn fetch_fix(e: &FetchError, host: &str) -> String {
    match e {
        FetchError::Redirect { .. } => format!(
            "serve the policy at https://{host}/.well-known/mta-sts.txt directly with status 200; senders never follow redirects"
        ),
        FetchError::Status(_) => "serve the policy with status 200".into(),
        FetchError::ContentType(_) => "serve the policy as Content-Type: text/plain".into(),
        FetchError::TooLarge { .. } => "keep the policy under 64 KiB".into(),
        FetchError::Timeout(_) => format!("make https://{host}/ answer promptly"),
        FetchError::WebPki { .. } => format!(
            "install a publicly trusted, unexpired certificate whose subjectAltName covers {host}"
        ),
        FetchError::Invalid(_) => "fix the policy; see `mtasts lint policy`".into(),
        FetchError::Dns { .. } => format!("publish A/AAAA records for {host}"),
        _ => format!("make https://{host}/.well-known/mta-sts.txt reachable over TLS"),
    }
}

fn diagnose_address(
    step: &str,
    host: &str,
    enforce: bool,
    with_sni: &SmtpProbe,
    without_sni: &SmtpProbe,
    r: &mut Report,
) {
    let at = with_sni.address;
    if let Some(e) = &with_sni.error {
        let code = if e.is_timeout() {
            "timeout"
        } else {
            "smtp-unreachable"
        };
        r.add(
            step,
            Level::Error,
            code,
            format!("{host} [{at}]: {}", Chain(e)),
            Some("make port 25 reachable".into()),
        );
        return;
    }
    if !with_sni.starttls_offered {
        let (level, msg) = if enforce {
            (
                Level::Error,
                format!(
                    "{host} [{at}] does not offer STARTTLS although the policy says enforce: a server without TLS, or STARTTLS stripped on the path"
                ),
            )
        } else {
            (
                Level::Warning,
                format!("{host} [{at}] does not offer STARTTLS"),
            )
        };
        r.add(
            step,
            level,
            "starttls-missing",
            msg,
            Some("enable STARTTLS on the MX".into()),
        );
        return;
    }
    if let Some(reply) = with_sni
        .starttls_reply
        .as_ref()
        .filter(|r| !r.starts_with("220"))
    {
        r.add(
            step,
            Level::Error,
            "starttls-refused",
            format!("{host} [{at}] answers STARTTLS with `{reply}`"),
            Some("fix the MX's TLS configuration".into()),
        );
        return;
    }
    if with_sni.leftover_after_starttls {
        r.add(step, Level::Warning, "starttls-injection", format!("{host} [{at}] sent plaintext after its 220 to STARTTLS (command-injection leftovers)"), Some("upgrade the MX software".into()));
    }
    let Some(tls) = &with_sni.tls else { return };
    if !tls.handshake && tls.chain.is_empty() {
        r.add(
            step,
            Level::Error,
            "tls-failed",
            format!(
                "{host} [{at}]: TLS handshake failed: {}",
                tls.error.clone().unwrap_or_default()
            ),
            Some("fix the MX's TLS configuration".into()),
        );
        return;
    }
    let cert = tls.chain.first();
    let desc = cert.map(describe_cert).unwrap_or_default();
    let proto = format!(
        "{} {}",
        tls.version.clone().unwrap_or_default(),
        tls.cipher.clone().unwrap_or_default()
    );
    match &tls.pkix_error {
        Some(err) => r.add(
            step,
            if enforce {
                Level::Error
            } else {
                Level::Warning
            },
            "cert-invalid",
            format!("{host} [{at}] with SNI: certificate not valid for {host}: {err} ({desc})"),
            Some(format!(
                "install a publicly trusted certificate covering {host}"
            )),
        ),
        None => r.add(
            step,
            Level::Ok,
            "tls-ok",
            format!("{host} [{at}] with SNI: valid certificate ({desc}), {proto}"),
            None,
        ),
    }
    if let Some(c) = cert.filter(|c| c.expires_in < EXPIRY_WARNING && c.expires_in > 0) {
        r.add(
            step,
            Level::Warning,
            "cert-expiring",
            format!(
                "{host}: certificate expires in {} days ({})",
                c.expires_in / 86_400,
                c.not_after
            ),
            Some("renew it".into()),
        );
    }
    let Some(plain) = without_sni
        .tls
        .as_ref()
        .filter(|p| p.handshake && !p.chain.is_empty())
    else {
        // A TLS-level refusal without SNI while SNI works: the server only works with SNI.
        if let Some(err) = without_sni.tls.as_ref().and_then(|t| t.error.clone())
            && tls.valid()
        {
            r.add(
                step,
                Level::Warning,
                "sni-only",
                format!("{host} [{at}]: works only when SNI is sent; without SNI the handshake fails ({err}) — senders that send no SNI (e.g. some MTAs) will fail under enforce"),
                Some(format!("configure a default certificate (no SNI) that covers {host}")),
            );
            return;
        }
        // The probe without SNI failed for another reason: say so, but claim nothing about SNI.
        let why = without_sni
            .error
            .as_ref()
            .map(|e| Chain(e).to_string())
            .or_else(|| without_sni.tls.as_ref().and_then(|t| t.error.clone()))
            .unwrap_or_else(|| "no TLS".into());
        r.add(
            step,
            Level::Info,
            "no-sni-probe-failed",
            format!("{host} [{at}] without SNI: {why}"),
            None,
        );
        return;
    };
    match (tls.valid(), plain.valid()) {
        (true, false) => {
            let default = plain
                .chain
                .first()
                .map(describe_cert)
                .unwrap_or_else(|| plain.error.clone().unwrap_or_default());
            r.add(step, Level::Warning, "sni-only", format!("{host} [{at}]: valid only when SNI is sent; without SNI it presents {default} — senders that send no SNI (e.g. some MTAs) will fail under enforce"), Some(format!("make the default certificate (no SNI) cover {host} too")));
        }
        (_, true) => r.add(
            step,
            Level::Ok,
            "no-sni-ok",
            format!("{host} [{at}] without SNI: the default certificate is valid too"),
            None,
        ),
        (false, false) => {}
    }
}

/// Findings of one step, applied to the report in order.
struct StepResult<T> {
    step: &'static str,
    findings: Vec<Finding>,
    txt: TxtSection,
    policy: Option<PolicySection>,
    value: T,
}

impl<T> StepResult<T> {
    fn new(step: &'static str, value: T) -> Self {
        Self {
            step,
            findings: Vec::new(),
            txt: TxtSection::default(),
            policy: None,
            value,
        }
    }

    fn push(&mut self, level: Level, code: &'static str, message: String, fix: Option<String>) {
        self.findings.push(Finding {
            step: self.step.to_string(),
            level,
            code,
            message,
            fix,
        });
    }

    fn apply(self, r: &mut Report) -> T {
        r.findings.extend(self.findings);
        if !self.txt.records.is_empty() || self.txt.id.is_some() {
            r.txt = self.txt;
        }
        if self.policy.is_some() {
            r.policy = self.policy;
        }
        self.value
    }
}

impl Report {
    fn add(
        &mut self,
        step: &str,
        level: Level,
        code: &'static str,
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
