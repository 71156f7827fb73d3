//! Answers for Postfix's `smtp_tls_policy_maps` (socketmap payloads, without the netstring),
//! as pure functions (checklist §16).

use std::collections::HashSet;
use std::fmt;

use crate::decision::{Decision, Defer};
use crate::domain::DomainName;
use crate::policy::{Mode, Policy};

/// Postfix's default `socketmap_max_reply_size` (PFX-14).
pub const MAX_REPLY_BYTES: usize = 100_000;

/// How to render for one map name (a daemon "zone").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Enforce `testing` policies as if they were `enforce` (postfix-mta-sts-resolver's "strict").
    pub strict_testing: bool,
    /// Add the Postfix ≥ 3.10 TLSRPT attributes; Postfix ≤ 3.9 rejects them (PFX-31).
    pub tlsrpt: bool,
    /// Add `servername=hostname` so Postfix sends SNI (Postfix ≥ 3.4 understands it).
    pub sni: bool,
    /// The reply limit, normally [`MAX_REPLY_BYTES`].
    pub max_reply: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            strict_testing: false,
            tlsrpt: false,
            sni: true,
            max_reply: MAX_REPLY_BYTES,
        }
    }
}

/// A socketmap reply (PFX-12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Found: the policy text for Postfix.
    Ok(String),
    /// No policy: Postfix applies its defaults.
    NotFound,
    /// Temporary failure: Postfix defers.
    Temp(String),
    /// The lookup timed out: Postfix defers.
    Timeout(String),
    /// Permanent failure of the request itself.
    Perm(String),
}

impl Reply {
    /// The payload as Postfix reads it: status word, one space, data.
    pub fn payload(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok(data) => write!(f, "OK {data}"),
            Self::NotFound => f.write_str("NOTFOUND "),
            Self::Temp(reason) => write!(f, "TEMP {}", one_line(reason)),
            Self::Timeout(reason) => write!(f, "TIMEOUT {}", one_line(reason)),
            Self::Perm(reason) => write!(f, "PERM {}", one_line(reason)),
        }
    }
}

fn one_line(reason: &str) -> String {
    reason.replace(['\r', '\n'], " ")
}

/// What had to be left out to keep a reply within the size limit (PFX-14, PFX-33). The caller
/// logs it: leaving out the TLSRPT attributes turns off Postfix's exact MX-name check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Omission {
    /// The `policy_string` attributes (reporting detail only).
    PolicyStrings,
    /// All TLSRPT attributes: Postfix falls back to its `match=` checking.
    TlsrptAttributes,
}

/// The reply for a policy in force for `domain` (PFX-30, PFX-33): `enforce` (and `testing`
/// when strict) → `OK secure …`; otherwise `NOTFOUND`.
pub fn policy_reply(domain: &DomainName, policy: &Policy, opts: &RenderOptions) -> Reply {
    policy_reply_with_omission(domain, policy, opts).0
}

/// [`policy_reply`], also saying what was left out to fit the size limit.
pub fn policy_reply_with_omission(
    domain: &DomainName,
    policy: &Policy,
    opts: &RenderOptions,
) -> (Reply, Option<Omission>) {
    let enforced = match policy.mode {
        Mode::Enforce => true,
        Mode::Testing => opts.strict_testing,
        Mode::None => false,
    };
    if !enforced {
        return (Reply::NotFound, None);
    }
    if policy.mx.is_empty() {
        return (no_acceptable_mx(domain), None);
    }
    match render_secure(domain, policy, opts) {
        Some((data, omitted)) => (Reply::Ok(data), omitted),
        None => (too_large(domain, opts), None),
    }
}

/// The Postfix reply for a [`Decision`] about `domain` (PFX-30, PFX-33), and what had to be
/// left out to fit the size limit. The decision already applied `strict_testing`.
pub fn render(
    domain: &DomainName,
    decision: &Decision<'_>,
    opts: &RenderOptions,
) -> (Reply, Option<Omission>) {
    match decision {
        Decision::DaneOnly(_) => (Reply::Ok("dane-only".into()), None),
        Decision::Dane(_) => (Reply::Ok("dane".into()), None),
        Decision::Enforce { policy, .. } if policy.policy.mx.is_empty() => {
            (no_acceptable_mx(domain), None)
        }
        Decision::Enforce { policy, trust, .. } => {
            let tafile = trust.map(|t| t.postfix_tafile.as_slice()).unwrap_or(&[]);
            match render_secure_with(domain, &policy.policy, tafile, opts) {
                Some((data, omitted)) => (Reply::Ok(data), omitted),
                None => (too_large(domain, opts), None),
            }
        }
        Decision::Testing(_) | Decision::NoPolicy(_) => (Reply::NotFound, None),
        Decision::Defer(why) => (Reply::Temp(defer_reason(domain, why)), None),
        // TLS required, any certificate: what was observed was TLS, not a verified name.
        Decision::RememberedTls { .. } if opts.sni => {
            (Reply::Ok("encrypt servername=hostname".into()), None)
        }
        Decision::RememberedTls { .. } => (Reply::Ok("encrypt".into()), None),
    }
}

/// The `TEMP` text of a deferral; these words are what Postfix logs.
fn defer_reason(domain: &DomainName, why: &Defer<'_>) -> String {
    match why {
        Defer::DaneFailed(why) | Defer::DaneUnavailable(why) => {
            format!("DANE check for {domain}: {why}")
        }
        Defer::DanePending => format!("DANE check for {domain} still in progress"),
        Defer::StsPending => format!("MTA-STS lookup for {domain} still in progress"),
        Defer::StsFailure(verdict) => verdict.to_string(),
        Defer::Resolver(why) => (*why).to_string(),
        Defer::PolicyMissing => format!("internal error: policy of {domain} missing"),
    }
}

/// An enforced policy whose `mx` values can match no host name (all numeric-ending): no MX
/// is acceptable, so the mail waits (an empty `match=` would let Postfix fall back to its own
/// default matching).
fn no_acceptable_mx(domain: &DomainName) -> Reply {
    Reply::Temp(format!(
        "MTA-STS policy of {domain} has no mx pattern a host name can match; no MX is acceptable"
    ))
}

fn too_large(domain: &DomainName, opts: &RenderOptions) -> Reply {
    Reply::Temp(format!(
        "MTA-STS policy of {domain} has too many mx patterns for a {}-byte Postfix reply",
        opts.max_reply
    ))
}

/// `secure match=p1:p2 servername=hostname`, plus the TLSRPT attributes when asked. To stay
/// within the limit it leaves out the `policy_string` attributes first, then all TLSRPT
/// attributes; `None` when even the bare form does not fit (PFX-14, PFX-33). Attributes are
/// dropped whole, never cut.
pub fn render_secure(
    domain: &DomainName,
    policy: &Policy,
    opts: &RenderOptions,
) -> Option<(String, Option<Omission>)> {
    render_secure_with(domain, policy, &[], opts)
}

/// [`render_secure`] with per-destination trust anchors: `tafile=f1,f2`, which
/// Postfix uses instead of its CA file for this destination. The files are never dropped to
/// fit the limit: without them the certificate would be checked against other anchors.
pub fn render_secure_with(
    domain: &DomainName,
    policy: &Policy,
    tafile: &[String],
    opts: &RenderOptions,
) -> Option<(String, Option<Omission>)> {
    let mut unique = HashSet::with_capacity(policy.mx.len());
    let matches: Vec<String> = policy
        .mx
        .iter()
        .map(|p| p.postfix_match())
        .filter(|m| unique.insert(m.clone()))
        .collect();
    let servername = if opts.sni { " servername=hostname" } else { "" };
    let anchors = if tafile.is_empty() {
        String::new()
    } else {
        format!(" tafile={}", tafile.join(","))
    };
    let bare = format!("secure match={}{servername}{anchors}", matches.join(":"));
    let fits = |s: &str| reply_len(s) <= opts.max_reply;
    if !opts.tlsrpt {
        return fits(&bare).then_some((bare, None));
    }
    let mut attrs = format!(" policy_type=sts policy_domain={domain}");
    let mut unique = HashSet::with_capacity(policy.mx.len());
    for p in policy.mx.iter().filter(|p| unique.insert(*p)) {
        attrs.push_str(&format!(" mx_host_pattern={p}"));
    }
    let strings: String = policy
        .lines()
        .iter()
        .filter(|l| !l.contains(['{', '}']))
        .map(|l| format!(" {{ policy_string = {l} }}"))
        .collect();
    let full = format!("{bare}{attrs}{strings}");
    if fits(&full) {
        return Some((full, None));
    }
    let without_strings = format!("{bare}{attrs}");
    if fits(&without_strings) {
        return Some((without_strings, Some(Omission::PolicyStrings)));
    }
    fits(&bare).then_some((bare, Some(Omission::TlsrptAttributes)))
}

/// Length of `OK <data>`.
fn reply_len(data: &str) -> usize {
    3 + data.len()
}

/// Why a lookup key names no policy domain; each is answered `NOTFOUND`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error("empty key")]
    /// The key is empty.
    Empty,
    #[error(
        "`{0}` is a parent-domain probe; RFC 8461 §3.4 forbids parent-domain policies (PFX-02)"
    )]
    /// A key starting with `.`: Postfix asking for a parent domain.
    ParentProbe(String),
    #[error("`{0}`: {1}")]
    /// The key names no domain (an IP literal, or invalid).
    NotADomain(String, crate::domain::DomainError),
}

/// The policy domain of a Postfix lookup key (PFX-02, PFX-03): `[host]:port`, `[host]`,
/// `host:port` and `host` give `host`; case is folded, one trailing dot removed, U-labels
/// converted. Keys starting with `.` and IP literals name no policy domain.
pub fn policy_domain_from_key(key: &str) -> Result<DomainName, KeyRejection> {
    let key = key.trim();
    if key.is_empty() {
        return Err(KeyRejection::Empty);
    }
    if key.starts_with('.') {
        return Err(KeyRejection::ParentProbe(key.to_string()));
    }
    let host = match key.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(host, _port)| host),
        None => strip_port(key),
    };
    DomainName::parse(host).map_err(|e| KeyRejection::NotADomain(key.to_string(), e))
}

/// `host:port` → `host`; a bare IPv6 address (several colons) is left whole to be refused.
fn strip_port(key: &str) -> &str {
    match key.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => key,
    }
}
