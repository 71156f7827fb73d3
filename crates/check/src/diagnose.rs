//! Diagnosing (pure): from the [`Observations`] of a domain, the findings with their levels,
//! codes and fixes, and the summary. No I/O, so every judgement is unit-testable.

use mtasts_core::dane::{Answer, DaneDecision, DnssecStatus, Tlsa, decide, tlsa_name};
use mtasts_core::errors::Chain;
use mtasts_core::tlsrpt::select_tlsrpt;
use mtasts_core::txt::{Discovery, join_strings, select_record};
use mtasts_core::{DomainName, FetchFailure, Mode, Policy};
use mtasts_resolver::{DnsError, FetchError, TxtAnswer};

use crate::code::Code;
use crate::observe::{HostObservation, Observations};
use crate::policy_findings::valid_policy_findings;
use crate::probe::{CertInfo, SmtpProbe, TlsOutcome, tlsa_matches};
use crate::report::{EXPIRY_WARNING, Level, MxSection, PolicySection, Report, TlsaSection};

/// The report for what was observed.
pub fn diagnose(o: &Observations) -> Report {
    let mut r = Report::new(o.domain.as_str());
    let txt_ok = txt(&o.domain, &o.txt, &mut r);
    let policy = policy(o, &mut r);
    r.mx_dnssec = o.mx.status.to_string();
    if o.mx.records.is_empty() && o.mx.status == DnssecStatus::Indeterminate {
        // No answer at all: whether the domain has MX hosts is unknown, not "none".
        r.lookups_failed.push(format!("MX {}", o.domain));
        r.add(
            "consistency",
            Level::Error,
            Code::DnsError,
            format!(
                "MX lookup of {} failed (no answer from DNS); its MX hosts are unknown",
                o.domain
            ),
            Some("check the domain's DNS servers (or --nameserver)".into()),
        );
    } else if o.mx.records.is_empty() {
        r.add(
            "consistency",
            Level::Warning,
            Code::MxNone,
            format!(
                "{} has no MX records; senders use its A/AAAA records",
                o.domain
            ),
            Some("publish MX records for the mail hosts".into()),
        );
    }
    let hosts: Vec<String> = o.hosts.iter().map(|h| h.host.clone()).collect();
    if let Some(p) = policy {
        consistency(&o.domain, p, &hosts, &mut r);
    }
    for h in &o.hosts {
        let section = mx(h, o.smtp, policy, &mut r);
        r.mx.push(section);
    }
    let dane_decision = dane(o, &mut r);
    tlsrpt(&o.domain, &o.tlsrpt, &mut r);
    summarise(&mut r, o.smtp, txt_ok, policy);
    summarise_dane(&mut r, &dane_decision);
    r
}

/// The TXT step; whether one valid record was found.
fn txt(domain: &DomainName, answer: &Result<TxtAnswer, DnsError>, r: &mut Report) -> bool {
    let step = "txt";
    let name = domain.mta_sts_txt_name();
    match answer {
        Ok(TxtAnswer::Records(rrset)) => {
            r.txt.records = rrset
                .iter()
                .map(|rr| String::from_utf8_lossy(&join_strings(rr)).into_owned())
                .collect();
            match select_record(rrset) {
                Ok(rec) => {
                    r.txt.id = Some(rec.id.clone());
                    r.add(
                        step,
                        Level::Ok,
                        Code::TxtOk,
                        format!("one v=STSv1 record, id {}", rec.id),
                        None,
                    );
                    for (name, _) in &rec.extensions {
                        r.add(
                            step,
                            Level::Info,
                            Code::TxtExtension,
                            format!("unknown field `{name}` (ignored by senders)"),
                            None,
                        );
                    }
                    return true;
                }
                Err(Discovery::NoRecord) => r.add(
                    step,
                    Level::Error,
                    Code::TxtMissing,
                    format!("no TXT record at {name} starts with `v=STSv1;`"),
                    Some(format!("publish `{name} TXT \"v=STSv1; id=<date>\"`")),
                ),
                Err(Discovery::Multiple(n)) => r.add(
                    step,
                    Level::Error,
                    Code::TxtMultiple,
                    format!("{n} v=STSv1 records: senders treat this as no policy (TXT-05)"),
                    Some("keep exactly one v=STSv1 record".into()),
                ),
                Err(Discovery::Invalid(e)) => r.add(
                    step,
                    Level::Error,
                    Code::TxtInvalid,
                    format!("the v=STSv1 record is invalid: {e}"),
                    Some("fix the record; see `mtasts lint record`".into()),
                ),
            }
        }
        Ok(TxtAnswer::NxDomain | TxtAnswer::NoData) => r.add(
            step,
            Level::Error,
            Code::TxtMissing,
            format!("no TXT record at {name}: the domain has no MTA-STS"),
            Some(format!("publish `{name} TXT \"v=STSv1; id=<date>\"`")),
        ),
        Err(e) => {
            r.lookups_failed.push(format!("TXT {name}"));
            r.add(
                step,
                Level::Error,
                dns_code(e),
                format!("TXT lookup of {name} failed: {}", Chain(e)),
                Some("check the domain's DNS servers".into()),
            );
        }
    }
    false
}

fn dns_code(e: &DnsError) -> Code {
    if matches!(e, DnsError::Timeout) {
        Code::Timeout
    } else {
        Code::DnsError
    }
}

/// The policy step; the policy, if one was fetched.
fn policy<'a>(o: &'a Observations, r: &mut Report) -> Option<&'a Policy> {
    let step = "policy";
    let domain = &o.domain;
    let host = domain.policy_host();
    match &o.fetch {
        Ok(f) => {
            r.add(
                step,
                Level::Ok,
                Code::PolicyOk,
                format!(
                    "fetched {} from {} over {}; valid, mode {}",
                    domain.policy_url(),
                    f.peer,
                    f.tls_version,
                    f.parsed.policy.mode
                ),
                None,
            );
            for finding in valid_policy_findings(&f.parsed, Some(domain)) {
                let fix = (finding.code == Code::PolicyTolerated)
                    .then(|| "senders tolerate this, but fix it".to_string());
                r.add(step, finding.level, finding.code, finding.message, fix);
            }
            let certificate = policy_certificate(&host, o.policy_tls.as_ref(), r);
            r.policy = Some(PolicySection {
                mode: f.parsed.policy.mode.to_string(),
                max_age: f.parsed.policy.max_age,
                mx: f.parsed.policy.mx.iter().map(ToString::to_string).collect(),
                text: f.parsed.policy.render(),
                tls_version: f.tls_version.clone(),
                certificate,
            });
            Some(&f.parsed.policy)
        }
        Err(e) => {
            let code = match e.failure() {
                FetchFailure::FetchError => Code::FetchError,
                FetchFailure::WebPkiInvalid => Code::WebpkiInvalid,
                FetchFailure::PolicyInvalid => Code::PolicyInvalid,
            };
            r.add(
                step,
                Level::Error,
                code,
                format!("{} [{}]: {}", domain.policy_url(), e.rule(), Chain(e)),
                Some(fetch_fix(e, &host)),
            );
            policy_certificate(&host, o.policy_tls.as_ref(), r);
            None
        }
    }
}

/// The policy host's certificate: named when invalid, warned about when expiring.
fn policy_certificate(host: &str, tls: Option<&TlsOutcome>, r: &mut Report) -> Option<CertInfo> {
    let t = tls?;
    let cert = t.chain.first().cloned()?;
    if let Some(err) = &t.pkix_error {
        r.add(
            "policy",
            Level::Info,
            Code::PolicyCert,
            format!(
                "certificate of {host}: {}, issuer {}, valid until {} ({err})",
                describe_cert(&cert),
                cert.issuer,
                cert.not_after
            ),
            None,
        );
    } else if cert.expires_in < EXPIRY_WARNING {
        r.add(
            "policy",
            Level::Warning,
            Code::CertExpiring,
            format!(
                "certificate of {host} expires in {} days ({})",
                cert.expires_in / 86_400,
                cert.not_after
            ),
            Some("renew it".into()),
        );
    }
    if t.pkix_error.is_none() {
        outside_web_pki("policy", host, t, r);
    }
    Some(cert)
}

fn consistency(domain: &DomainName, p: &Policy, hosts: &[String], r: &mut Report) {
    if p.mode == Mode::None {
        r.add(
            "consistency",
            Level::Info,
            Code::ModeNone,
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
                Code::MxCovered,
                format!("MX {host} is covered by `mx: {pat}`"),
                None,
            ),
            None => r.add(
                "consistency",
                level,
                Code::MxNotCovered,
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
                Code::PatternUnused,
                format!("`mx: {pat}` matches none of {domain}'s MX records"),
                Some("remove stale patterns, or check the MX records".into()),
            );
        }
    }
}

/// One MX host: its addresses and what each said with and without SNI.
fn mx(h: &HostObservation, smtp: bool, policy: Option<&Policy>, r: &mut Report) -> MxSection {
    let host = h.host.as_str();
    let step = format!("mx {host}");
    let covered_by = policy.and_then(|p| {
        let name = DomainName::parse(host).ok()?;
        p.mx.iter()
            .find(|pat| pat.matches(&name))
            .map(ToString::to_string)
    });
    let section = MxSection {
        host: host.to_string(),
        covered_by,
        addresses: h.probes.clone(),
        tlsa: None,
    };
    if !smtp {
        r.add(
            &step,
            Level::Info,
            Code::SmtpSkipped,
            "port 25 not probed (--no-smtp)".into(),
            None,
        );
        return section;
    }
    match &h.addresses {
        Some(Ok(a)) if a.is_empty() => {
            r.add(
                &step,
                Level::Error,
                Code::MxNoAddress,
                format!("{host} has no A/AAAA records"),
                Some("publish its addresses".into()),
            );
            return section;
        }
        Some(Err(e)) => {
            r.add(
                &step,
                Level::Error,
                Code::DnsError,
                format!("address lookup of {host} failed: {}", Chain(e)),
                None,
            );
            return section;
        }
        _ => {}
    }
    let enforce = policy.is_some_and(|p| p.mode == Mode::Enforce);
    for a in &h.probes {
        diagnose_address(&step, host, enforce, &a.with_sni, &a.without_sni, r);
    }
    section
}

/// DANE: each host's TLSA with its DNSSEC status, matched against the presented chain; and
/// the domain's DANE decision, by the core's rule, so `check` and the daemon cannot disagree.
fn dane(o: &Observations, r: &mut Report) -> DaneDecision {
    let mx_status = o.mx.status;
    let hosts_tlsa: Vec<(String, Answer<Tlsa>)> = o
        .hosts
        .iter()
        .map(|h| (h.host.clone(), h.tlsa.clone()))
        .collect();
    let decision = decide(&o.mx, &hosts_tlsa);
    r.dane = decision.code().to_string();
    if let Some(anchor) = &o.validated_by {
        r.dnssec_validated_by = "mtasts".into();
        r.add(
            "dane",
            Level::Info,
            Code::ValidatedInProcess,
            format!("DNSSEC validated by mtasts itself against {anchor}: not the view your MTA uses (it trusts its resolver's AD bit)"),
            Some("run a validating resolver (unbound) for the MTA, and check without --validate".into()),
        );
    }
    match mx_status {
        // Nothing below the MX is trustworthy: its hosts' TLSA lookups say nothing more.
        DnssecStatus::Bogus => {
            r.add(
                "dane",
                Level::Error,
                Code::DnssecBogus,
                format!(
                    "MX lookup of {} fails DNSSEC validation: DANE senders defer all mail to it (and validating resolvers give its data to no one)",
                    o.domain
                ),
                Some("fix the zone's signatures, or its DS at the parent".into()),
            );
            return decision;
        }
        DnssecStatus::Indeterminate => {
            r.add(
                "dane",
                Level::Warning,
                Code::DnssecUnknown,
                format!("MX lookup of {} with DNSSEC failed (no answer)", o.domain),
                None,
            );
            return decision;
        }
        DnssecStatus::Secure | DnssecStatus::Insecure => {}
    }
    for h in &o.hosts {
        let host = h.host.as_str();
        let t = &h.tlsa;
        let chain = h
            .probes
            .first()
            .and_then(|a| a.with_sni.tls.as_ref())
            .map(|t| t.chain.clone())
            .unwrap_or_default();
        let matched = (!t.records.is_empty() && !chain.is_empty())
            .then(|| t.records.iter().any(|rec| tlsa_matches(rec, &chain)));
        let (status, records) = (t.status, &t.records);
        let step = "dane";
        let owner = tlsa_name(&h.tlsa_base);
        match (status, records.is_empty()) {
            (DnssecStatus::Bogus, _) => r.add(step, Level::Error, Code::DnssecBogus, format!("TLSA lookup of {owner} fails DNSSEC validation: DANE senders treat {host} as unreachable (RFC 7672 §2.1.1)"), Some("fix the zone's DNSSEC signatures".into())),
            (DnssecStatus::Indeterminate, _) => r.add(step, Level::Warning, Code::DnssecUnknown, format!("TLSA lookup of {owner} failed"), None),
            (DnssecStatus::Secure, false) if mx_status != DnssecStatus::Secure => r.add(step, Level::Warning, Code::TlsaUnused, format!("{host} has TLSA records but the MX RRset is not signed, so DANE senders ignore them"), Some("sign the domain's zone".into())),
            (DnssecStatus::Secure, false) if !records.iter().any(Tlsa::is_usable) => r.add(step, Level::Warning, Code::TlsaUnusable, format!("TLSA at {owner} has no record usable for SMTP (RFC 7672 §3.1: DANE-TA(2) or DANE-EE(3)); DANE senders fall back to unauthenticated TLS"), Some("publish a 3 1 1 record for the server's key".into())),
            (DnssecStatus::Secure, false) => match matched {
                Some(true) => r.add(step, Level::Ok, Code::TlsaMatch, format!("TLSA at {owner} (DNSSEC secure) matches the certificate {host} presents"), None),
                Some(false) => r.add(step, Level::Error, Code::TlsaMismatch, format!("no TLSA record at {owner} matches the certificate {host} presents: DANE senders will not deliver"), Some("publish TLSA for the current key before rotating (3 1 1 <sha256 of the SPKI>)".into())),
                None => r.add(step, Level::Info, Code::TlsaUnchecked, format!("TLSA at {owner} (secure); certificate not probed"), None),
            },
            (DnssecStatus::Insecure, false) if mx_status == DnssecStatus::Secure => r.add(step, Level::Warning, Code::TlsaInsecure, format!("TLSA at {owner} is not DNSSEC-signed (the MX RRset is, but {host} is in an unsigned zone), so senders ignore it"), Some(format!("sign the zone of {host}"))),
            (DnssecStatus::Insecure, false) => r.add(step, Level::Warning, Code::TlsaInsecure, format!("TLSA at {owner} is not DNSSEC-signed, so senders ignore it"), Some("sign the zone".into())),
            (_, true) => r.add(step, Level::Info, Code::NoDane, format!("no TLSA records for {host} ({status})"), None),
        }
        if let Some(m) = r.mx.iter_mut().find(|m| m.host == host) {
            m.tlsa = Some(TlsaSection {
                dnssec: status.to_string(),
                records: records.iter().map(ToString::to_string).collect(),
                matched,
            });
        }
    }
    decision
}

/// Puts DANE first in the summary where it governs or fails: DANE senders follow it before,
/// and regardless of, MTA-STS (RFC 8461 §2).
fn summarise_dane(r: &mut Report, decision: &DaneDecision) {
    let lead = match decision {
        DaneDecision::DaneOnly => format!(
            "DANE in force ({decision}): DANE senders authenticate every MX host by its TLSA records"
        ),
        DaneDecision::Dane(_) => format!(
            "DANE in part ({decision}): DANE senders authenticate the hosts with usable TLSA"
        ),
        DaneDecision::TempFail(why) => format!("DNSSEC fails ({why}): DANE senders defer"),
        _ => return,
    };
    r.summary = format!("{lead}; MTA-STS: {}", r.summary);
}

/// The TLS-RPT record.
fn tlsrpt(domain: &DomainName, answer: &Result<TxtAnswer, DnsError>, r: &mut Report) {
    let name = domain.tlsrpt_txt_name();
    match answer {
        Ok(TxtAnswer::Records(rrset)) => {
            r.tlsrpt.record = rrset
                .iter()
                .map(|rr| String::from_utf8_lossy(&join_strings(rr)).into_owned())
                .find(|t| t.starts_with("v=TLSRPTv1"));
            match select_tlsrpt(rrset) {
                Ok(rec) => {
                    r.tlsrpt.rua = rec.usable.clone();
                    r.add(
                        "tlsrpt",
                        Level::Ok,
                        Code::TlsrptOk,
                        format!("reports go to {}", rec.usable.join(", ")),
                        None,
                    );
                }
                Err(e) => r.add(
                    "tlsrpt",
                    Level::Warning,
                    Code::TlsrptInvalid,
                    format!("{name}: {e}"),
                    Some("publish one `v=TLSRPTv1; rua=mailto:…` record".into()),
                ),
            }
        }
        Err(e) => {
            r.lookups_failed.push(format!("TXT {name}"));
            r.add(
                "tlsrpt",
                Level::Warning,
                dns_code(e),
                format!("TXT lookup of {name} failed: {}", Chain(e)),
                Some("check the domain's DNS servers".into()),
            );
        }
        Ok(TxtAnswer::NxDomain | TxtAnswer::NoData) => r.add(
            "tlsrpt",
            Level::Warning,
            Code::TlsrptMissing,
            format!("no TLS-RPT record at {name}: you will not hear about delivery failures"),
            Some(format!(
                "publish `{name} TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}\"`"
            )),
        ),
    }
}

fn summarise(r: &mut Report, smtp: bool, txt_ok: bool, policy: Option<&Policy>) {
    r.verdict = r
        .findings
        .iter()
        .map(|f| f.level)
        .max()
        .unwrap_or(Level::Ok);
    let Some(p) = policy.filter(|_| txt_ok) else {
        r.summary = if r.lookups_failed.is_empty() {
            "no MTA-STS policy in force: senders deliver as if the domain had none".into()
        } else {
            format!(
                "could not tell: DNS gave no answer for {}; rerun when it answers",
                r.lookups_failed.join(", ")
            )
        };
        return;
    };
    r.mode = Some(p.mode.to_string());
    match p.mode {
        Mode::Enforce if !smtp => {
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

/// A certificate valid only because its CA was given (`--ca-file`): say which CA, and that
/// senders need it configured, for this domain alone if they can (conditional trust).
fn outside_web_pki(step: &str, host: &str, tls: &TlsOutcome, r: &mut Report) {
    if tls.web_pki_issuer != Some(false) {
        return;
    }
    let issuer = tls
        .chain
        .first()
        .map(|c| c.issuer.clone())
        .unwrap_or_default();
    r.add(
        step,
        Level::Info,
        Code::CaNotWebPki,
        format!(
            "{host}: certificate issued by {issuer}, which is not a web PKI root: only senders configured to trust that CA accept it (with mtasts, a [[trust]] rule for this domain)"
        ),
        None,
    );
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
            Code::Timeout
        } else {
            Code::SmtpUnreachable
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
            Code::StarttlsMissing,
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
            Code::StarttlsRefused,
            format!("{host} [{at}] answers STARTTLS with `{reply}`"),
            Some("fix the MX's TLS configuration".into()),
        );
        return;
    }
    if with_sni.leftover_after_starttls {
        r.add(step, Level::Warning, Code::StarttlsInjection, format!("{host} [{at}] sent plaintext after its 220 to STARTTLS (command-injection leftovers)"), Some("upgrade the MX software".into()));
    }
    let Some(tls) = &with_sni.tls else { return };
    if !tls.handshake && tls.chain.is_empty() {
        r.add(
            step,
            Level::Error,
            Code::TlsFailed,
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
            Code::CertInvalid,
            format!("{host} [{at}] with SNI: certificate not valid for {host}: {err} ({desc})"),
            Some(format!(
                "install a publicly trusted certificate covering {host}"
            )),
        ),
        None => {
            r.add(
                step,
                Level::Ok,
                Code::TlsOk,
                format!("{host} [{at}] with SNI: valid certificate ({desc}), {proto}"),
                None,
            );
            outside_web_pki(step, host, tls, r);
        }
    }
    if let Some(c) = cert.filter(|c| c.expires_in < EXPIRY_WARNING && c.expires_in > 0) {
        r.add(
            step,
            Level::Warning,
            Code::CertExpiring,
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
                Code::SniOnly,
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
            Code::NoSniProbeFailed,
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
            r.add(step, Level::Warning, Code::SniOnly, format!("{host} [{at}]: valid only when SNI is sent; without SNI it presents {default} — senders that send no SNI (e.g. some MTAs) will fail under enforce"), Some(format!("make the default certificate (no SNI) cover {host} too")));
        }
        (_, true) => r.add(
            step,
            Level::Ok,
            Code::NoSniOk,
            format!("{host} [{at}] without SNI: the default certificate is valid too"),
            None,
        ),
        (false, false) => {}
    }
}
