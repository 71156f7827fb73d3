//! What each domain publishes so senders find its hosted policy: the `_mta-sts` TXT with the
//! derived id (RFC 8461 §3.1), the `mta-sts` host pointing here, and optionally a TLS-RPT
//! record (RFC 8460 §3). Zone-file lines or JSON.

use mtasts_core::cache::UnixTime;
use serde::Serialize;

use crate::retire::rfc3339;
use crate::sites::Site;

/// Where `mta-sts.<domain>` should point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A CNAME to this host name.
    Cname(String),
    /// Not given: the operator points it here (A/AAAA or CNAME) themselves.
    Unspecified,
}

/// One domain's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Records {
    /// The policy domain.
    pub domain: String,
    /// The policy's id.
    pub id: String,
    /// `_mta-sts.<domain>. IN TXT "v=STSv1; id=…;"`
    pub txt: String,
    /// `mta-sts.<domain>. IN CNAME …` when a target was given.
    pub host: Option<String>,
    /// `_smtp._tls.<domain>. IN TXT "v=TLSRPTv1; rua=…"` when a rua was given.
    pub tlsrpt: Option<String>,
    /// With delegated DNS: `_mta-sts.<domain>. IN CNAME _mta-sts.<domain>.<zone>.`, set once;
    /// the TXT above is then what the delegated listener answers.
    pub delegated: Option<String>,
    /// Set while the domain is being retired (RFC 8461 §8.3).
    pub retire: Option<RetireStatus>,
}

/// Where a retirement stands: the records above carry the `mode: none` policy's id until
/// `safe_after`; from then the records and the policy can be removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetireStatus {
    /// When the `mode: none` id went out (RFC 3339).
    pub since: String,
    /// From when removal is safe (RFC 3339): `since` plus the retired policy's max_age.
    pub safe_after: String,
    /// Whether that time has come.
    pub safe_now: bool,
}

/// The records of `site` at `now`; with `zone`, for delegated DNS.
pub fn records(
    site: &Site,
    target: &Target,
    rua: Option<&str>,
    zone: Option<&str>,
    now: UnixTime,
) -> Records {
    let d = &site.domain;
    Records {
        domain: d.to_string(),
        id: site.id.clone(),
        txt: format!("_mta-sts.{d}. IN TXT \"v=STSv1; id={};\"", site.id),
        host: match target {
            Target::Cname(t) => Some(format!(
                "mta-sts.{d}. IN CNAME {}.",
                t.trim_end_matches('.')
            )),
            Target::Unspecified => None,
        },
        tlsrpt: rua.map(|r| format!("_smtp._tls.{d}. IN TXT \"v=TLSRPTv1; rua={r}\"")),
        delegated: zone.map(|z| {
            format!(
                "_mta-sts.{d}. IN CNAME _mta-sts.{d}.{}.",
                z.trim_end_matches('.')
            )
        }),
        retire: site.retiring.map(|r| RetireStatus {
            since: rfc3339(r.since),
            safe_after: rfc3339(r.safe_after()),
            safe_now: r.complete(now),
        }),
    }
}
