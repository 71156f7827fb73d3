//! The rules for `serve`: every site's certificate valid for a while yet, and the TXT id each
//! domain publishes equal to the id of the policy served (else senders keep the old policy).

use crate::{Finding, Level};

const AREA: &str = "serve";
/// Under this much time left a certificate is a warning, as in `check`: ACME renews at two
/// thirds of the lifetime (30 days left of 90), so less means renewal has been failing.
use mtasts_check::report::EXPIRY_WARNING;

/// One site as doctor saw it.
#[derive(Debug, Clone)]
pub struct SiteFacts {
    /// The policy domain.
    pub domain: String,
    /// The id of the policy served.
    pub served_id: String,
    /// The ids in `_mta-sts.<domain>` TXT records (`Err`: the lookup failed).
    pub published: Result<Vec<String>, String>,
    /// `not_after` (seconds since the epoch) of the certificate for `mta-sts.<domain>`;
    /// `None`: no certificate covers it.
    pub cert_not_after: Option<i64>,
}

/// The findings for `sites` at `now` (seconds since the epoch); `certs` says whether
/// certificates are served here at all (false behind a TLS-terminating proxy).
pub fn findings(sites: &[SiteFacts], certs: bool, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sites {
        let host = format!("mta-sts.{}", s.domain);
        match &s.published {
            Ok(ids) if ids.is_empty() => out.push(
                Finding::new(
                    AREA,
                    "txt-missing",
                    Level::Warning,
                    format!("{}: no _mta-sts TXT record, so senders never fetch the policy served", s.domain),
                )
                .fix(format!("_mta-sts.{}. IN TXT \"v=STSv1; id={};\" (mtasts serve records)", s.domain, s.served_id)),
            ),
            Ok(ids) if ids.len() > 1 => out.push(
                Finding::new(
                    AREA,
                    "txt-several",
                    Level::Error,
                    format!("{}: {} STSv1 TXT records; senders treat that as no policy (RFC 8461 §3.1)", s.domain, ids.len()),
                )
                .fix("publish exactly one"),
            ),
            Ok(ids) if ids[0] != s.served_id => out.push(
                Finding::new(
                    AREA,
                    "txt-id-stale",
                    Level::Error,
                    format!(
                        "{}: the TXT record says id={}, the policy served has id={}: senders with the old policy cached keep it until its max_age",
                        s.domain, ids[0], s.served_id
                    ),
                )
                .fix(format!("_mta-sts.{}. IN TXT \"v=STSv1; id={};\"", s.domain, s.served_id)),
            ),
            Ok(_) => out.push(Finding::new(
                AREA,
                "txt-id",
                Level::Ok,
                format!("{}: TXT id={} is the served policy's", s.domain, s.served_id),
            )),
            Err(e) => out.push(Finding::new(
                AREA,
                "txt-lookup-failed",
                Level::Warning,
                format!("{}: the _mta-sts TXT lookup failed: {e}", s.domain),
            )),
        }
        if !certs {
            continue;
        }
        match s.cert_not_after {
            None => out.push(
                Finding::new(
                    AREA,
                    "cert-missing",
                    Level::Error,
                    format!("{host}: no certificate covers it; senders fail the policy fetch"),
                )
                .fix("add its certificate to --certs, or let ACME order it (--acme-directory)"),
            ),
            Some(t) if t <= now => out.push(
                Finding::new(
                    AREA,
                    "cert-expired",
                    Level::Error,
                    format!("{host}: the certificate expired {} days ago; senders fail the policy fetch", (now - t) / 86_400),
                )
                .fix("renew it (with ACME: see serve's log for why orders fail)"),
            ),
            Some(t) if t - now < EXPIRY_WARNING => out.push(
                Finding::new(
                    AREA,
                    "cert-expiring",
                    Level::Warning,
                    format!("{host}: the certificate expires in {} days", (t - now) / 86_400),
                )
                .fix("renew it now (with ACME: renewal should have happened; see serve's log)"),
            ),
            Some(t) => out.push(Finding::new(
                AREA,
                "cert",
                Level::Ok,
                format!("{host}: certificate valid for {} more days", (t - now) / 86_400),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(published: Result<Vec<String>, String>, not_after: Option<i64>) -> SiteFacts {
        SiteFacts {
            domain: "example.net".into(),
            served_id: "abc".into(),
            published,
            cert_not_after: not_after,
        }
    }

    fn codes(s: SiteFacts) -> Vec<&'static str> {
        findings(&[s], true, 1_000_000_000)
            .iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn ids_and_expiry_at_their_edges() {
        let now = 1_000_000_000;
        let day = 86_400;
        assert_eq!(
            codes(site(Ok(vec!["abc".into()]), Some(now + 14 * day))),
            ["txt-id", "cert"]
        );
        assert_eq!(
            codes(site(Ok(vec!["old".into()]), Some(now + 14 * day - 1))),
            ["txt-id-stale", "cert-expiring"]
        );
        assert_eq!(
            codes(site(Ok(vec![]), Some(now))),
            ["txt-missing", "cert-expired"]
        );
        assert_eq!(
            codes(site(Ok(vec!["a".into(), "b".into()]), None)),
            ["txt-several", "cert-missing"]
        );
        assert_eq!(
            codes(site(Err("timeout".into()), Some(now + 1))),
            ["txt-lookup-failed", "cert-expiring"]
        );
        let behind_proxy = findings(&[site(Ok(vec!["abc".into()]), None)], false, now);
        assert_eq!(behind_proxy.len(), 1);
    }
}
