//! The answer Exim reads (`${readsocket…}` into a router variable, fields taken with
//! `${extract{NAME}{…}}`): one line of `name="value"` fields rendered from the same
//! [`Decision`] the Postfix reply comes from.
//!
//! Exim has no MTA-STS client and cannot match MX names against a policy's patterns
//! (RFC 8461 §4.1), so for `enforce` the answer carries the MX hosts the policy allows, in MX
//! preference order; the router routes only to them, the transport requires TLS, sends SNI
//! and verifies the certificate for the host's name.
//!
//! Fields: `mode` (`enforce`, `testing`, `none`, `dane`, `defer`), `domain`, `hosts` (enforce:
//! the allowed MX hosts, `:`-separated), `id` (the policy id, where a policy applies),
//! `ca` (enforce with conditional trust: the PEM files to verify with, `:`-separated),
//! `dane` (mode `dane`: `required` when every MX host has usable TLSA, `encrypt` when TLSA
//! exists but none is usable — RFC 7672 §3.1's mandatory encryption —, `try` otherwise: hosts
//! without usable TLSA get DANE's fallbacks, hosts whose TLSA is bogus are skipped by Exim),
//! `reason` (for logs and deferrals), and for a deferral that is a reportable failure
//! `failure` and `failure_code` (the RFC 8460 result type and reason code).

use crate::DomainName;
use crate::dane::DaneCoverage;
use crate::decision::Decision;
use crate::mx::host_matches_any;

/// One MX record: preference and exchange.
pub type MxRecord = (u16, String);

/// The MX hosts of `mx` that `decision`'s enforced policy allows, in preference order (ties
/// in the order given), each once. Without MX records the domain itself is the one host
/// (RFC 5321 §5.1's implicit MX).
pub fn allowed_hosts(domain: &DomainName, decision: &Decision<'_>, mx: &[MxRecord]) -> Vec<String> {
    let Decision::Enforce { policy, .. } = decision else {
        return Vec::new();
    };
    let implicit = [(0, domain.as_str().to_string())];
    let mx = if mx.is_empty() { &implicit[..] } else { mx };
    let mut sorted: Vec<&MxRecord> = mx.iter().collect();
    sorted.sort_by_key(|(pref, _)| *pref);
    let mut out: Vec<String> = Vec::with_capacity(sorted.len());
    for (_, host) in sorted {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let Ok(name) = DomainName::parse(&host) else {
            continue;
        };
        if host_matches_any(&policy.policy.mx, &name) && !out.contains(&host) {
            out.push(host);
        }
    }
    out
}

fn field(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // One line, printable: Exim reads up to the end of the answer.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An answer of `fields` as given (for answers that come from no decision: a key that names
/// no domain, an MX lookup that failed), quoted like [`render`]'s.
pub fn line(fields: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(96);
    for (name, value) in fields {
        field(&mut out, name, value);
    }
    out
}

/// The answer line (no line end) for `decision` about `domain`; `mx` is the domain's MX
/// RRset, used only when the decision enforces a policy.
pub fn render(domain: &DomainName, decision: &Decision<'_>, mx: &[MxRecord]) -> String {
    let mut out = String::with_capacity(160);
    let reason = decision.to_string();
    match decision {
        Decision::Enforce { policy, trust, .. } => {
            let hosts = allowed_hosts(domain, decision, mx);
            if hosts.is_empty() {
                field(&mut out, "mode", "defer");
                field(&mut out, "domain", domain.as_str());
                field(&mut out, "id", policy.id.as_ref());
                field(
                    &mut out,
                    "reason",
                    &format!("MTA-STS: no MX host of {domain} matches the enforced policy"),
                );
                // For TLS-RPT: RFC 8460 has no result type of its own for this; the
                // checklist's decision (as mox) is validation-failure with this reason code.
                field(&mut out, "failure", "validation-failure");
                field(&mut out, "failure_code", "mtasts-policy-mx-mismatch");
                return out;
            }
            field(&mut out, "mode", "enforce");
            field(&mut out, "domain", domain.as_str());
            field(&mut out, "hosts", &hosts.join(":"));
            field(&mut out, "id", policy.id.as_ref());
            if let Some(t) = trust {
                field(&mut out, "ca", &t.anchor_files.join(":"));
            }
        }
        Decision::Testing(policy) => {
            field(&mut out, "mode", "testing");
            field(&mut out, "domain", domain.as_str());
            field(&mut out, "id", policy.id.as_ref());
        }
        Decision::DaneOnly(_) => {
            field(&mut out, "mode", "dane");
            field(&mut out, "domain", domain.as_str());
            field(&mut out, "dane", "required");
        }
        Decision::Dane(coverage) => {
            field(&mut out, "mode", "dane");
            field(&mut out, "domain", domain.as_str());
            let dane = match coverage {
                DaneCoverage::UnusableOnly => "encrypt",
                DaneCoverage::Partial | DaneCoverage::SomeUnreachable => "try",
            };
            field(&mut out, "dane", dane);
        }
        Decision::NoPolicy(_) => {
            field(&mut out, "mode", "none");
            field(&mut out, "domain", domain.as_str());
        }
        Decision::Defer(_) => {
            field(&mut out, "mode", "defer");
            field(&mut out, "domain", domain.as_str());
        }
        Decision::RememberedTls { .. } => {
            field(&mut out, "mode", "encrypt");
            field(&mut out, "domain", domain.as_str());
        }
    }
    field(&mut out, "reason", &reason);
    out
}
