//! The JSON shape of one explained decision: what `mtasts query --json` prints and
//! `GET /v1/decision/<domain>` returns.

use std::time::{Duration, UNIX_EPOCH};

use mtasts_core::UnixTime;
use mtasts_core::cache::{NoPolicyReason, Source, Verdict};
use mtasts_core::dane::DaneDecision;
use mtasts_core::errors::Chain;
use mtasts_resolver::Origin;
use serde::Serialize;

use crate::server::Explanation;

/// One explained decision.
#[derive(Debug, Serialize)]
pub struct DecisionReport {
    /// The policy domain.
    pub domain: String,
    /// The MTA-STS verdict class: `policy`, `none` or `temporary-failure`.
    pub decision: &'static str,
    /// `cached`, `fetched`, `no-record`, `dns-failure`, `fetch-failed` or `deferred`.
    pub reason_code: &'static str,
    /// The MTA-STS verdict in words.
    pub reason: String,
    /// `cache` or `network`.
    pub source: &'static str,
    /// The policy in force, if any.
    pub policy: Option<PolicyReport>,
    /// What Postfix is told for this map name: the daemon's answer, byte for byte.
    pub postfix: String,
    /// The fetch error of this lookup, if it fetched and failed.
    pub error: Option<ErrorReport>,
    /// What was done, step by step.
    pub steps: Vec<String>,
    /// The DANE check (`null` when the zone does not check DANE).
    pub dane: Option<DaneReport>,
    /// The decision for the zone, DANE and MTA-STS together.
    pub zone: ZoneDecision,
    /// The conditional trust configured for the domain (`null`: none, the web PKI alone).
    pub trust: Option<TrustReport>,
    /// Remembered TLS for the domain (`null`: off in this zone and nothing remembered).
    pub remembered_tls: Option<RememberedReport>,
}

/// Where the domain stands for remembered TLS, and what the zone does with it.
#[derive(Debug, Serialize)]
pub struct RememberedReport {
    /// The zone's `remember_tls`: `off`, `report` or `enforce`.
    pub mode: mtasts_core::decision::RememberMode,
    /// Exempt by `remember.exempt`.
    pub exempt: bool,
    /// The memory's state (`null`: never seen).
    pub state: Option<mtasts_core::remember::State>,
    /// Why the answer is what it is, in words.
    pub reason: String,
}

/// The conditional trust rule covering the domain.
#[derive(Debug, Serialize)]
pub struct TrustReport {
    /// The rule's name.
    pub rule: String,
    /// `only` (the anchors replace the web PKI) or `additional`.
    pub mode: &'static str,
    /// The anchor files.
    pub anchors: Vec<String>,
    /// What Postfix's `tafile=` names.
    pub postfix_tafile: Vec<String>,
    /// Whether the decision applies it (an enforced MTA-STS policy; DANE and no-policy
    /// decisions do not use it).
    pub applied: bool,
}

/// The policy in force.
#[derive(Debug, Serialize)]
pub struct PolicyReport {
    /// The TXT id it was fetched under.
    pub id: String,
    /// `enforce`, `testing` or `none`.
    pub mode: String,
    /// The `mx` patterns.
    pub mx: Vec<String>,
    /// Seconds.
    pub max_age: u64,
    /// When it was fetched (RFC 3339).
    pub fetched_at: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The policy, canonical form.
    pub text: String,
}

/// The fetch error of the lookup.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    /// The checklist id of the rule that failed.
    pub rule: &'static str,
    /// The TLS-RPT result type.
    pub result_type: &'static str,
    /// The error and its causes.
    pub message: String,
}

/// The DANE decision.
#[derive(Debug, Serialize)]
pub struct DaneReport {
    /// `dane-only`, `dane`, `not-applicable` or `temporary-failure`.
    pub decision: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// The combined decision under one zone.
#[derive(Debug, Serialize)]
pub struct ZoneDecision {
    /// The map name asked for.
    pub map: String,
    /// `dane-only`, `dane`, `enforce`, `testing`, `none` or `defer`.
    pub decision: &'static str,
    /// Why, in words.
    pub reason: String,
}

fn rfc3339(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

fn dane_report(d: &DaneDecision) -> DaneReport {
    DaneReport {
        decision: d.code(),
        reason: d.to_string(),
    }
}

impl DecisionReport {
    /// The report of `e`.
    pub fn new(e: &Explanation) -> Self {
        let l = &e.lookup;
        let decision = match &l.verdict {
            Verdict::Policy(_) => "policy",
            Verdict::NoPolicy(_) => "none",
            Verdict::Defer(_) => "temporary-failure",
        };
        let policy = l.policy().map(|p| PolicyReport {
            id: p.id.to_string(),
            mode: p.policy.mode.to_string(),
            mx: p.policy.mx.iter().map(ToString::to_string).collect(),
            max_age: p.policy.max_age,
            fetched_at: rfc3339(p.fetched_at),
            expires_at: rfc3339(p.expires_at()),
            text: p.policy.render(),
        });
        let error = l.fetch_error.as_ref().map(|e| ErrorReport {
            rule: e.rule(),
            result_type: e.failure().result_type(),
            message: Chain(e).to_string(),
        });
        let reason_code = match &l.verdict {
            Verdict::Policy(Source::Cached) => "cached",
            Verdict::Policy(Source::Fetched) => "fetched",
            Verdict::NoPolicy(NoPolicyReason::NoRecord(_)) => "no-record",
            Verdict::NoPolicy(NoPolicyReason::DnsFailure(_)) => "dns-failure",
            Verdict::NoPolicy(NoPolicyReason::FetchFailed(_)) => "fetch-failed",
            Verdict::Defer(_) => "deferred",
        };
        let combined = e.decision();
        let trust = e.trust.as_deref().map(|t| TrustReport {
            rule: t.name.clone(),
            mode: t.mode.as_str(),
            anchors: t.anchor_files.clone(),
            postfix_tafile: t.postfix_tafile.clone(),
            applied: combined.trust().is_some(),
        });
        let remembered_tls = remembered_report(e, &combined);
        Self {
            remembered_tls,
            trust,
            domain: l.domain.to_string(),
            decision,
            reason_code,
            reason: l.verdict.to_string(),
            source: match (l.origin, &l.verdict) {
                (Origin::Memory, _) | (_, Verdict::Policy(Source::Cached)) => "cache",
                _ => "network",
            },
            policy,
            postfix: e.postfix_reply().payload(),
            error,
            steps: l.steps.clone(),
            dane: e.dane.as_deref().map(dane_report),
            zone: ZoneDecision {
                map: e.map.clone(),
                decision: combined.code(),
                reason: combined.to_string(),
            },
        }
    }
}

fn remembered_report(
    e: &Explanation,
    combined: &mtasts_core::Decision<'_>,
) -> Option<RememberedReport> {
    use mtasts_core::decision::RememberMode;
    use mtasts_core::remember::State;
    let mode = e.zone.remember_tls;
    if mode == RememberMode::Off && e.remembered.is_none() {
        return None;
    }
    let reason = match (mode, e.remember_exempt, &e.remembered) {
        (_, true, _) => "exempt (remember.exempt): never required".to_string(),
        (_, _, None) => "no delivery to this domain seen yet".to_string(),
        (_, _, Some(State::Learning { deliveries, .. })) => {
            format!("learning: {deliveries} TLS deliveries in a row so far; not remembered yet")
        }
        (RememberMode::Off, _, Some(State::Remembered { .. })) => {
            "remembered, but remember_tls is off in this zone".to_string()
        }
        (_, _, Some(State::Remembered { .. })) if combined.code() == "remembered-tls" => {
            "remembered and no DANE or MTA-STS policy applies: TLS required (encrypt)".to_string()
        }
        (RememberMode::Report, _, Some(State::Remembered { .. })) => {
            "remembered; report mode: the answer is unchanged, what would be required is logged and counted".to_string()
        }
        (_, _, Some(State::Remembered { .. })) => {
            format!("remembered, but {} governs", combined.code())
        }
    };
    Some(RememberedReport {
        mode,
        exempt: e.remember_exempt,
        state: e.remembered,
        reason,
    })
}
