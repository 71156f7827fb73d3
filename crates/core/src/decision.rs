//! The one decision every front end renders: what governs a delivery, from the DANE finding,
//! the MTA-STS lookup and the zone's profile (RFC 8461 §2, §3.3, §5; RFC 7672).
//!
//! Postfix replies ([`crate::postfix::render`]), JSON and `mtasts query` all start from the same
//! [`Decision`], so they cannot disagree.

use std::fmt;

use crate::cache::{CachedPolicy, NoPolicyReason, Verdict};
use crate::dane::{DaneCoverage, DaneDecision};
use crate::policy::Mode;
use crate::trust::TrustAnchors;

/// What is known about DANE for the destination when the answer is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaneFinding<'a> {
    /// DANE is not checked (off for this zone).
    Off,
    /// The check had not finished by the answer deadline.
    Pending,
    /// The check's result.
    Decided(&'a DaneDecision),
}

/// What is known about MTA-STS for the policy domain when the answer is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsFinding<'a> {
    /// The lookup had not finished by the answer deadline.
    Pending,
    /// The lookup's verdict, with the policy it applies (`Some` exactly for
    /// [`Verdict::Policy`]).
    Lookup {
        /// The lookup's verdict.
        verdict: &'a Verdict,
        /// The policy it applies, if any.
        policy: Option<&'a CachedPolicy>,
    },
}

/// The per-zone choices that change a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Profile {
    /// Enforce `testing` policies like `enforce` (postfix-mta-sts-resolver's `strict_testing`;
    /// not RFC behaviour).
    pub strict_testing: bool,
    /// Where RFC 8461 §3.3 says "deliver as without a policy" after a failure with nothing
    /// cached, defer instead.
    pub defer_on_failure: bool,
}

/// Why DANE alone governs every MX host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaneOnlyReason {
    /// Every MX host has a secure, usable TLSA RRset.
    AllHosts,
    /// Only some hosts have usable TLSA and an enforced MTA-STS policy exists: hosts without
    /// TLSA are not used rather than reached without authentication.
    PartialWithEnforcedPolicy,
}

/// Why no transport-security policy applies (deliver as the MTA would by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoPolicy<'a> {
    /// No usable `_mta-sts` record (RFC 8461 §3.1, §3.2).
    NoRecord,
    /// The policy in force has `mode: none` (RFC 8461 §5).
    ModeNone(&'a CachedPolicy),
    /// DNS or the fetch failed and nothing valid is cached (RFC 8461 §3.3).
    Failure(&'a NoPolicyReason),
    /// The MTA-STS lookup had not finished by the deadline; it goes on in the background.
    StsPending,
    /// The DANE check had not finished by the deadline and no policy is known.
    DanePending,
}

/// Why delivery is deferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Defer<'a> {
    /// DNSSEC validation failed on the DANE path: never downgrade (RFC 7672 §2.1.1).
    DaneFailed(&'a str),
    /// DNS gave no answer on the DANE path, no earlier verdict is known and no enforced
    /// policy is cached.
    DaneUnavailable(&'a str),
    /// The DANE check had not finished by the deadline while a policy exists (or the zone
    /// defers on failure): answering the policy could switch the MTA's DANE off.
    DanePending,
    /// The MTA-STS lookup had not finished by the deadline (zone defers on failure).
    StsPending,
    /// DNS or the fetch failed with nothing cached, and the zone defers on failure.
    StsFailure(&'a Verdict),
    /// The resolver deferred (its own reason).
    Resolver(&'a str),
    /// The verdict applies a policy the lookup did not return (a bug; never deliver weaker).
    PolicyMissing,
}

/// What governs one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<'a> {
    /// Mandatory DANE for every MX host (Postfix `dane-only`).
    DaneOnly(DaneOnlyReason),
    /// DANE with RFC 7672's per-host fallbacks (Postfix `dane`).
    Dane(DaneCoverage),
    /// Enforce the MTA-STS policy: only MX hosts matching its patterns, over TLS with a
    /// PKIX-valid certificate for the MX name. `strict` when a `testing` policy is enforced by
    /// the zone's `strict_testing`.
    Enforce {
        /// The policy to enforce.
        policy: &'a CachedPolicy,
        /// A `testing` policy enforced by the zone's `strict_testing`.
        strict: bool,
        /// The conditional trust configured for the domain: its MX certificates are verified
        /// with these anchors (and the policy host was).
        trust: Option<&'a TrustAnchors>,
    },
    /// A `testing` policy: deliver as without, report failures (RFC 8461 §5).
    Testing(&'a CachedPolicy),
    /// No policy applies.
    NoPolicy(NoPolicy<'a>),
    /// Defer delivery.
    Defer(Defer<'a>),
    /// No DANE or MTA-STS policy applies, but the domain is remembered to do TLS
    /// (`remember_tls = enforce`, see [`with_remembered`]): TLS required, certificate not
    /// checked (Postfix `encrypt`).
    RememberedTls {
        /// Until when, without another TLS delivery.
        until: crate::cache::UnixTime,
    },
}

/// A zone's `remember_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RememberMode {
    /// Remembered TLS is not consulted.
    #[default]
    Off,
    /// Answers unchanged; what would have been required is logged and counted.
    Report,
    /// Remembered domains without a DANE or MTA-STS policy get TLS required.
    Enforce,
}

/// What remembered TLS did to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RememberOutcome {
    /// Nothing: off, not remembered, or another policy governs.
    Untouched,
    /// TLS is required (`enforce`).
    Required,
    /// TLS would have been required (`report`).
    WouldRequire,
}

/// Applies remembered TLS to `decision`: only where no DANE or MTA-STS policy governs and
/// nothing is pending (a pending DANE check must not be overridden by a weaker `encrypt`).
/// `state` is the domain's memory now (`None`: never seen, or exempt).
pub fn with_remembered<'a>(
    decision: Decision<'a>,
    mode: RememberMode,
    state: Option<crate::remember::State>,
) -> (Decision<'a>, RememberOutcome) {
    let eligible = matches!(
        decision,
        Decision::NoPolicy(NoPolicy::NoRecord | NoPolicy::ModeNone(_) | NoPolicy::Failure(_))
    );
    let until = match state {
        Some(crate::remember::State::Remembered { until, .. }) if eligible => until,
        _ => return (decision, RememberOutcome::Untouched),
    };
    match mode {
        RememberMode::Off => (decision, RememberOutcome::Untouched),
        RememberMode::Report => (decision, RememberOutcome::WouldRequire),
        RememberMode::Enforce => (Decision::RememberedTls { until }, RememberOutcome::Required),
    }
}

/// The decision for one delivery: DANE first (RFC 8461 §2), then MTA-STS, then the profile.
/// No conditional trust: see [`decide_with_trust`].
pub fn decide<'a>(dane: DaneFinding<'a>, sts: StsFinding<'a>, profile: Profile) -> Decision<'a> {
    decide_with_trust(dane, sts, profile, None)
}

/// [`decide`] for a domain with conditional trust configured (`trust`): an enforced policy
/// carries it. DANE still comes first: its TLSA records, not the anchors, authenticate.
pub fn decide_with_trust<'a>(
    dane: DaneFinding<'a>,
    sts: StsFinding<'a>,
    profile: Profile,
    trust: Option<&'a TrustAnchors>,
) -> Decision<'a> {
    let policy = match sts {
        StsFinding::Lookup { policy, .. } => policy,
        StsFinding::Pending => None,
    };
    let enforced = policy.is_some_and(|p| match p.policy.mode {
        Mode::Enforce => true,
        Mode::Testing => profile.strict_testing,
        Mode::None => false,
    });
    match dane {
        DaneFinding::Decided(DaneDecision::DaneOnly) => {
            return Decision::DaneOnly(DaneOnlyReason::AllHosts);
        }
        DaneFinding::Decided(DaneDecision::Dane(DaneCoverage::Partial)) if enforced => {
            return Decision::DaneOnly(DaneOnlyReason::PartialWithEnforcedPolicy);
        }
        // The reachable hosts have no usable TLSA: `dane` would give them only opportunistic
        // TLS, weaker than the enforced policy, and Postfix cannot mix the two per host.
        DaneFinding::Decided(DaneDecision::Dane(DaneCoverage::SomeUnreachable)) if enforced => {
            return Decision::Defer(Defer::DaneFailed(
                "the TLSA records of some MX hosts fail DNSSEC validation, the others have none usable, and the MTA-STS policy is enforced",
            ));
        }
        // Without usable TLSA anywhere, `dane-only` would make every host fail: DANE's own
        // fallback (mandatory encryption) is what RFC 7672 prescribes.
        DaneFinding::Decided(DaneDecision::Dane(coverage)) => return Decision::Dane(*coverage),
        DaneFinding::Decided(DaneDecision::TempFail(why)) => {
            return Decision::Defer(Defer::DaneFailed(why));
        }
        // DNS is down and no earlier DANE verdict is known (the caller falls back to one when
        // it has it): an enforced MTA-STS policy still applies, as strong as it was; with
        // nothing to go on, defer.
        DaneFinding::Decided(DaneDecision::Unavailable(why)) => {
            if !enforced {
                return Decision::Defer(Defer::DaneUnavailable(why));
            }
        }
        DaneFinding::Pending => {
            return if policy.is_some() || profile.defer_on_failure {
                Decision::Defer(Defer::DanePending)
            } else {
                Decision::NoPolicy(NoPolicy::DanePending)
            };
        }
        DaneFinding::Decided(DaneDecision::NotApplicable(_)) | DaneFinding::Off => {}
    }
    let StsFinding::Lookup { verdict, policy } = sts else {
        return if profile.defer_on_failure {
            Decision::Defer(Defer::StsPending)
        } else {
            Decision::NoPolicy(NoPolicy::StsPending)
        };
    };
    match (verdict, policy) {
        (Verdict::Policy(_), Some(p)) => match p.policy.mode {
            Mode::Enforce => Decision::Enforce {
                policy: p,
                strict: false,
                trust,
            },
            Mode::Testing if profile.strict_testing => Decision::Enforce {
                policy: p,
                strict: true,
                trust,
            },
            Mode::Testing => Decision::Testing(p),
            Mode::None => Decision::NoPolicy(NoPolicy::ModeNone(p)),
        },
        (Verdict::Policy(_), None) => Decision::Defer(Defer::PolicyMissing),
        (Verdict::NoPolicy(NoPolicyReason::NoRecord(_)), _) => {
            Decision::NoPolicy(NoPolicy::NoRecord)
        }
        (Verdict::NoPolicy(_), _) if profile.defer_on_failure => {
            Decision::Defer(Defer::StsFailure(verdict))
        }
        (Verdict::NoPolicy(reason), _) => Decision::NoPolicy(NoPolicy::Failure(reason)),
        (Verdict::Defer(why), _) => Decision::Defer(Defer::Resolver(why)),
    }
}

impl Decision<'_> {
    /// A stable short name: `dane-only`, `dane`, `enforce`, `testing`, `none` or `defer`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DaneOnly(_) => "dane-only",
            Self::Dane(_) => "dane",
            Self::Enforce { .. } => "enforce",
            Self::Testing(_) => "testing",
            Self::NoPolicy(_) => "none",
            Self::Defer(_) => "defer",
            Self::RememberedTls { .. } => "remembered-tls",
        }
    }

    /// The MTA-STS policy the decision applies or reports, if any.
    pub fn policy(&self) -> Option<&CachedPolicy> {
        match self {
            Self::Enforce { policy, .. } | Self::Testing(policy) => Some(policy),
            Self::NoPolicy(NoPolicy::ModeNone(p)) => Some(p),
            _ => None,
        }
    }

    /// The conditional trust the decision applies, if any.
    pub fn trust(&self) -> Option<&TrustAnchors> {
        match self {
            Self::Enforce { trust, .. } => *trust,
            _ => None,
        }
    }

    /// The answer was given at the deadline while a lookup went on.
    pub fn hit_deadline(&self) -> bool {
        matches!(
            self,
            Self::NoPolicy(NoPolicy::StsPending | NoPolicy::DanePending)
                | Self::Defer(Defer::StsPending | Defer::DanePending)
        )
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DaneOnly(DaneOnlyReason::AllHosts) => {
                f.write_str("DANE governs: every MX host has usable DNSSEC-signed TLSA records")
            }
            Self::DaneOnly(DaneOnlyReason::PartialWithEnforcedPolicy) => f.write_str(
                "DANE governs: only some MX hosts have usable TLSA and the MTA-STS policy is \
                 enforced, so hosts without TLSA are not used",
            ),
            Self::Dane(DaneCoverage::Partial) => f.write_str(
                "DANE governs: some MX hosts have usable TLSA (RFC 7672 fallbacks for the others)",
            ),
            Self::Dane(DaneCoverage::UnusableOnly) => f.write_str(
                "DANE governs: TLSA records exist but none is usable (mandatory encryption, RFC 7672)",
            ),
            Self::Dane(DaneCoverage::SomeUnreachable) => f.write_str(
                "DANE governs: hosts whose TLSA fails DNSSEC validation are skipped (RFC 7672 §2.1.1), the others get DANE's fallbacks",
            ),
            Self::Enforce { strict: false, .. } => f.write_str("MTA-STS policy enforced"),
            Self::Enforce { strict: true, .. } => {
                f.write_str("MTA-STS testing policy enforced (strict_testing)")
            }
            Self::Testing(_) => f.write_str("MTA-STS testing policy: deliver as without, report"),
            Self::NoPolicy(NoPolicy::NoRecord) => f.write_str("no policy: no usable _mta-sts record"),
            Self::NoPolicy(NoPolicy::ModeNone(_)) => f.write_str("no policy: mode none"),
            Self::NoPolicy(NoPolicy::Failure(reason)) => {
                // The same words as the verdict's.
                fmt::Display::fmt(&Verdict::NoPolicy((*reason).clone()), f)
            }
            Self::NoPolicy(NoPolicy::StsPending) => {
                f.write_str("no policy yet: the MTA-STS lookup goes on in the background")
            }
            Self::NoPolicy(NoPolicy::DanePending) => {
                f.write_str("no policy yet: the DANE check goes on in the background")
            }
            Self::Defer(Defer::DaneFailed(why)) => write!(f, "defer: DANE check failed: {why}"),
            Self::Defer(Defer::DaneUnavailable(why)) => {
                write!(f, "defer: DANE unknown and DNS unavailable: {why}")
            }
            Self::Defer(Defer::DanePending) => f.write_str("defer: DANE check still in progress"),
            Self::Defer(Defer::StsPending) => {
                f.write_str("defer: MTA-STS lookup still in progress")
            }
            Self::Defer(Defer::StsFailure(v)) => write!(f, "defer: {v}"),
            Self::Defer(Defer::Resolver(why)) => write!(f, "defer: {why}"),
            Self::Defer(Defer::PolicyMissing) => {
                f.write_str("defer: internal error: the policy in force is missing")
            }
            Self::RememberedTls { until } => write!(
                f,
                "no DANE or MTA-STS policy, but TLS is remembered for this domain: TLS required (until {until}, unless a TLS delivery extends it)"
            ),
        }
    }
}
