//! The rules for Postfix: the policy map points at a running mtasts, `secure` has trust
//! anchors, DANE answers meet `smtp_dns_support_level = dnssec` and a validating resolver,
//! and the TLSRPT settings match the version and the collector.

use std::path::PathBuf;

use mtasts_core::dane::DnssecStatus;
use mtasts_daemon::Version;

use crate::postconf::Params;
use crate::probe::{Endpoint, ProbeError};
use crate::{Finding, Level};

const AREA: &str = "postfix";

/// One `socketmap:` entry of `smtp_tls_policy_maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMap {
    /// The entry as written.
    pub spec: String,
    /// Where it connects (relative unix paths under `queue_directory`).
    pub endpoint: Endpoint,
    /// The map name sent with each request (the daemon's zone).
    pub name: String,
}

/// The `socketmap:` entries of `smtp_tls_policy_maps` (`proxy:` wrappers allowed), and the
/// other entries as written.
pub fn policy_maps(params: &Params) -> (Vec<PolicyMap>, Vec<String>) {
    let mut maps = Vec::new();
    let mut others = Vec::new();
    for spec in params
        .value("smtp_tls_policy_maps")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let inner = spec.strip_prefix("proxy:").unwrap_or(spec);
        let Some(rest) = inner.strip_prefix("socketmap:") else {
            others.push(spec.to_string());
            continue;
        };
        let Some((target, name)) = rest.rsplit_once(':') else {
            others.push(spec.to_string());
            continue;
        };
        let endpoint = if let Some(a) = target.strip_prefix("inet:") {
            Endpoint::Tcp(a.to_string())
        } else if let Some(p) = target.strip_prefix("unix:") {
            Endpoint::Unix(params.queue_path(p))
        } else {
            others.push(spec.to_string());
            continue;
        };
        maps.push(PolicyMap {
            spec: spec.to_string(),
            endpoint,
            name: name.to_string(),
        });
    }
    (maps, others)
}

/// What doctor gathered about a Postfix instance.
#[derive(Debug)]
pub struct Facts {
    /// `postconf -x`.
    pub params: Params,
    /// Each socketmap entry and what a probe request got.
    pub maps: Vec<(PolicyMap, Result<String, ProbeError>)>,
    /// `smtp_tls_CAfile`, when set: whether it could be read and holds certificates.
    pub ca_file: Option<(PathBuf, Result<usize, std::io::Error>)>,
    /// Whether the daemon gives DANE answers (a zone with `dane = true`).
    pub dane_answers: bool,
    /// Whether a zone has `tlsrpt = true` set explicitly.
    pub tlsrpt_forced: bool,
    /// The DNSSEC status of the probe name through Postfix's resolver, when asked.
    pub resolver: Option<(String, DnssecStatus)>,
    /// Postfix's `smtp_tlsrpt_socket_name` as a path and whether it takes datagrams.
    pub tlsrpt_socket: Option<(PathBuf, Result<(), ProbeError>)>,
    /// A collector socket found running on this host (`--tlsrpt-socket`).
    pub collector: Option<PathBuf>,
    /// Whether a daemon zone has `remember_tls` on.
    pub remembering: bool,
}

/// The findings for `facts`.
pub fn findings(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let p = &f.params;
    let version = Version::parse(p.value("mail_version"));
    out.push(Finding::new(
        AREA,
        "version",
        Level::Info,
        format!(
            "Postfix {} (config_directory {})",
            p.value("mail_version"),
            p.value("config_directory")
        ),
    ));
    policy_map(f, &mut out);
    trust_anchors(f, &mut out);
    dnssec(f, &mut out);
    tlsrpt(f, version, &mut out);
    if f.remembering && f.params.yes("smtp_tls_connection_reuse") {
        out.push(
            Finding::new(
                AREA,
                "tls-connection-reuse",
                Level::Warning,
                "smtp_tls_connection_reuse = yes: a message sent on a reused TLS connection logs no new TLS line, so the remembered-TLS log learner counts it as plaintext".into(),
            )
            .fix("smtp_tls_connection_reuse = no (the default), or learn from the TLS-RPT collector (Postfix 3.10 or later)"),
        );
    }
    out
}

fn policy_map(f: &Facts, out: &mut Vec<Finding>) {
    let (_, others) = policy_maps(&f.params);
    if f.maps.is_empty() {
        out.push(
            Finding::new(
                AREA,
                "no-policy-map",
                Level::Error,
                format!(
                    "smtp_tls_policy_maps has no socketmap entry ({}): Postfix never asks mtasts, so MTA-STS is not applied",
                    match f.params.value("smtp_tls_policy_maps") {
                        "" => "it is empty".to_string(),
                        v => format!("it is `{v}`"),
                    }
                ),
            )
            .fix("smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix (postconf -e, then postfix reload)"),
        );
        return;
    }
    if !others.is_empty() {
        out.push(Finding::new(
            AREA,
            "other-policy-maps",
            Level::Info,
            format!(
                "smtp_tls_policy_maps also has {}: Postfix uses the first map that answers, in order",
                others.join(", ")
            ),
        ));
    }
    for (map, answer) in &f.maps {
        match answer {
            Ok(reply) if reply.starts_with("PERM") => out.push(
                Finding::new(
                    AREA,
                    "policy-map-refuses",
                    Level::Error,
                    format!("{} answers `{reply}`: Postfix defers every delivery", map.spec),
                )
                .fix("check the map name against the daemon's [zones] and its log"),
            ),
            Ok(reply) => out.push(Finding::new(
                AREA,
                "policy-map",
                Level::Ok,
                format!(
                    "{} answers (a probe request got `{}`)",
                    map.spec,
                    reply.trim_end()
                ),
            )),
            Err(e) => out.push(
                Finding::new(
                    AREA,
                    "policy-map-unreachable",
                    Level::Error,
                    format!(
                        "{}: {}; Postfix defers mail while the policy map does not answer",
                        map.spec,
                        mtasts_core::errors::Chain(e)
                    ),
                )
                .fix(format!(
                    "start mtasts daemon listening on {} (systemctl enable --now mtasts-daemon.socket), or point the map at where it listens",
                    map.endpoint
                )),
            ),
        }
    }
}

fn trust_anchors(f: &Facts, out: &mut Vec<Finding>) {
    let p = &f.params;
    let capath = p.value("smtp_tls_CApath");
    let anchors = p.value("smtp_tls_trust_anchor_file");
    let system = p.yes("tls_append_default_CA");
    match &f.ca_file {
        Some((path, Ok(0))) => out.push(
            Finding::new(
                AREA,
                "ca-file-empty",
                Level::Error,
                format!(
                    "smtp_tls_CAfile = {} holds no certificate: `secure` answers (MTA-STS enforce) fail verification and defer",
                    path.display()
                ),
            )
            .fix("smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt"),
        ),
        Some((path, Ok(n))) => out.push(Finding::new(
            AREA,
            "trust-anchors",
            Level::Ok,
            format!(
                "smtp_tls_CAfile = {} ({n} certificate{}) for `secure` answers",
                path.display(),
                if *n == 1 { "" } else { "s" }
            ),
        )),
        Some((path, Err(e))) => out.push(
            Finding::new(
                AREA,
                "ca-file-unreadable",
                Level::Error,
                format!(
                    "smtp_tls_CAfile = {}: {e}: `secure` answers (MTA-STS enforce) fail verification and defer",
                    path.display()
                ),
            )
            .fix("point smtp_tls_CAfile at a readable bundle, e.g. /etc/ssl/certs/ca-certificates.crt"),
        ),
        None if !capath.is_empty() || !anchors.is_empty() || system => {
            let what = if !capath.is_empty() {
                format!("smtp_tls_CApath = {capath}")
            } else if !anchors.is_empty() {
                format!("smtp_tls_trust_anchor_file = {anchors}")
            } else {
                "tls_append_default_CA = yes".to_string()
            };
            out.push(Finding::new(
                AREA,
                "trust-anchors",
                Level::Ok,
                format!("{what} for `secure` answers"),
            ));
        }
        None => out.push(
            Finding::new(
                AREA,
                "no-trust-anchors",
                Level::Error,
                "no smtp_tls_CAfile, smtp_tls_CApath or trust anchor file: Postfix trusts no CA, so every `secure` answer (MTA-STS enforce) fails verification and defers".into(),
            )
            .fix("smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt"),
        ),
    }
}

fn dnssec(f: &Facts, out: &mut Vec<Finding>) {
    let level = f.params.value("smtp_dns_support_level");
    if !f.dane_answers {
        return;
    }
    if level != "dnssec" {
        out.push(
            Finding::new(
                AREA,
                "no-dnssec-lookups",
                Level::Warning,
                format!(
                    "smtp_dns_support_level = {}: Postfix does no DNSSEC lookups, so the daemon gives MTA-STS answers where DANE should take precedence",
                    if level.is_empty() { "(unset)" } else { level }
                ),
            )
            .fix("smtp_dns_support_level = dnssec, with a validating resolver in /etc/resolv.conf (e.g. unbound on 127.0.0.1)"),
        );
        return;
    }
    out.push(Finding::new(
        AREA,
        "dnssec-lookups",
        Level::Ok,
        "smtp_dns_support_level = dnssec".into(),
    ));
    match &f.resolver {
        Some((_, DnssecStatus::Secure)) => {}
        Some((probe, DnssecStatus::Insecure)) => out.push(
            Finding::new(
                AREA,
                "resolver-not-validating",
                Level::Warning,
                format!(
                    "the resolver Postfix uses answered {probe} without the AD bit: it does not validate, so DANE never applies"
                ),
            )
            .fix("run a validating resolver (unbound) on loopback and list it first in /etc/resolv.conf"),
        ),
        Some((probe, status)) => out.push(
            Finding::new(
                AREA,
                "resolver-failing",
                Level::Error,
                format!("the resolver Postfix uses gave no usable answer for {probe} ({status})"),
            )
            .fix("check /etc/resolv.conf and the resolver's log"),
        ),
        None => {}
    }
}

fn tlsrpt(f: &Facts, version: Option<Version>, out: &mut Vec<Finding>) {
    let p = &f.params;
    let Some(v) = version else {
        return;
    };
    if v < Version::TLSRPT {
        if f.tlsrpt_forced {
            out.push(
                Finding::new(
                    AREA,
                    "tlsrpt-attributes-too-new",
                    Level::Warning,
                    format!("a daemon zone sets tlsrpt = true, but Postfix {v} rejects the TLSRPT attributes (3.10 or later): the daemon leaves them out"),
                )
                .fix("remove tlsrpt = true, or upgrade Postfix"),
            );
        }
        if let Some(c) = &f.collector {
            out.push(Finding::new(
                AREA,
                "tlsrpt-not-supported",
                Level::Info,
                format!(
                    "a collector runs at {}, but Postfix {v} sends no TLSRPT results (3.10 or later); only the daemon's failed fetches are reported (tlsrpt_socket)",
                    c.display()
                ),
            ));
        }
        return;
    }
    if !p.yes("smtp_tlsrpt_enable") {
        if let Some(c) = &f.collector {
            out.push(
                Finding::new(
                    AREA,
                    "tlsrpt-disabled",
                    Level::Warning,
                    format!(
                        "a collector runs at {}, but smtp_tlsrpt_enable = no: Postfix {v} sends it nothing",
                        c.display()
                    ),
                )
                .fix(format!(
                    "smtp_tlsrpt_enable = yes and smtp_tlsrpt_socket_name = {}",
                    c.display()
                )),
            );
        }
        return;
    }
    match &f.tlsrpt_socket {
        Some((path, Ok(()))) => out.push(Finding::new(
            AREA,
            "tlsrpt-socket",
            Level::Ok,
            format!("smtp_tlsrpt_socket_name: {} takes datagrams", path.display()),
        )),
        Some((path, Err(e))) => out.push(
            Finding::new(
                AREA,
                "tlsrpt-socket-missing",
                Level::Error,
                format!(
                    "smtp_tlsrpt_enable = yes, but {}: {}: every TLS result is lost",
                    path.display(),
                    mtasts_core::errors::Chain(e)
                ),
            )
            .fix("start the collector (systemctl enable --now mtasts-tlsrpt-collect) with --socket at that path; a chrooted smtp(8) resolves relative names under queue_directory"),
        ),
        None => out.push(
            Finding::new(
                AREA,
                "tlsrpt-socket-unset",
                Level::Error,
                "smtp_tlsrpt_enable = yes, but smtp_tlsrpt_socket_name is empty".into(),
            )
            .fix("smtp_tlsrpt_socket_name = /run/mtasts-tlsrpt/tlsrpt.sock"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        let params = Params::from_pairs(pairs.iter().copied());
        let maps = policy_maps(&params)
            .0
            .into_iter()
            .map(|m| (m, Ok("NOTFOUND ".to_string())))
            .collect();
        Facts {
            params,
            maps,
            ca_file: None,
            dane_answers: true,
            tlsrpt_forced: false,
            resolver: None,
            tlsrpt_socket: None,
            collector: None,
            remembering: false,
        }
    }

    fn codes(f: &Facts) -> Vec<&'static str> {
        findings(f).iter().map(|f| f.code).collect()
    }

    #[test]
    fn policy_map_entries_parse_in_their_forms() {
        let p = Params::from_pairs([
            (
                "smtp_tls_policy_maps",
                "hash:/etc/postfix/tls_policy, proxy:socketmap:inet:127.0.0.1:8461:postfix socketmap:unix:private/mtasts:corp",
            ),
            ("queue_directory", "/var/spool/postfix"),
        ]);
        let (maps, others) = policy_maps(&p);
        assert_eq!(others, ["hash:/etc/postfix/tls_policy"]);
        assert_eq!(maps[0].endpoint, Endpoint::Tcp("127.0.0.1:8461".into()));
        assert_eq!(maps[0].name, "postfix");
        assert_eq!(
            maps[1].endpoint,
            Endpoint::Unix("/var/spool/postfix/private/mtasts".into())
        );
        assert_eq!(maps[1].name, "corp");
    }

    #[test]
    fn tlsrpt_rules_follow_the_postfix_version() {
        let mut f = facts(&[
            ("mail_version", "3.10.2"),
            ("smtp_tlsrpt_enable", "yes"),
            ("tls_append_default_CA", "yes"),
        ]);
        f.tlsrpt_socket = Some((
            "/run/x.sock".into(),
            Err(ProbeError::Connect(
                "unix:/run/x.sock".into(),
                std::io::ErrorKind::NotFound.into(),
            )),
        ));
        assert!(codes(&f).contains(&"tlsrpt-socket-missing"));
        f.tlsrpt_socket = Some(("/run/x.sock".into(), Ok(())));
        assert!(codes(&f).contains(&"tlsrpt-socket"));
        let mut f = facts(&[("mail_version", "3.10.2"), ("smtp_tlsrpt_enable", "no")]);
        f.collector = Some("/run/mtasts-tlsrpt/tlsrpt.sock".into());
        assert!(codes(&f).contains(&"tlsrpt-disabled"));
        let mut f = facts(&[("mail_version", "3.7.11")]);
        f.collector = Some("/run/mtasts-tlsrpt/tlsrpt.sock".into());
        f.tlsrpt_forced = true;
        let c = codes(&f);
        assert!(c.contains(&"tlsrpt-not-supported") && c.contains(&"tlsrpt-attributes-too-new"));
    }

    #[test]
    fn trust_anchor_and_dnssec_rules() {
        let f = facts(&[("smtp_dns_support_level", "may")]);
        let c = codes(&f);
        assert!(c.contains(&"no-policy-map"), "{c:?}");
        assert!(c.contains(&"no-trust-anchors") && c.contains(&"no-dnssec-lookups"));
        let mut f = facts(&[
            ("smtp_tls_CApath", "/etc/ssl/certs"),
            ("smtp_dns_support_level", "dnssec"),
        ]);
        f.resolver = Some((".".into(), DnssecStatus::Insecure));
        let c = codes(&f);
        assert!(c.contains(&"trust-anchors") && c.contains(&"resolver-not-validating"));
        f.dane_answers = false;
        assert!(!codes(&f).contains(&"resolver-not-validating"));
        let mut f = facts(&[("smtp_tls_connection_reuse", "yes")]);
        assert!(!codes(&f).contains(&"tls-connection-reuse"));
        f.remembering = true;
        assert!(codes(&f).contains(&"tls-connection-reuse"));
    }
}
