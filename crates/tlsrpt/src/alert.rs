//! When a domain's failure rate is worth waking someone: a rule (threshold over a window, a
//! minimum of sessions so three failures of four do not page anyone), what changed since the
//! last look (an alert fires once, and says when it is over), and the message sent.

use std::collections::{BTreeMap, BTreeSet};

use mtasts_core::report::{DomainSummary, SummaryKey};
use serde::Serialize;

/// When to alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRule {
    /// Failed sessions, in percent of all, at or above which an alert fires.
    pub threshold_percent: f64,
    /// Fewer sessions in the window than this never fire (and end a firing alert).
    pub min_sessions: u64,
    /// The window, in seconds (for the message).
    pub window_seconds: u64,
}

/// Firing or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The rate is at or over the threshold.
    Firing,
    /// It was, and is no longer.
    Resolved,
}

/// What is sent to the command (as JSON on stdin and `MTASTS_ALERT_*` variables) or the
/// webhook (the JSON body).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Firing or resolved.
    pub state: AlertState,
    /// The policy domain (empty: reports that named none).
    pub policy_domain: String,
    /// The policy type.
    pub policy_type: String,
    /// Failed sessions in percent of all, over the window.
    pub failure_rate: f64,
    /// Successful sessions over the window.
    pub successful: u64,
    /// Failed sessions over the window.
    pub failed: u64,
    /// Failed sessions by result type.
    pub failures_by_type: BTreeMap<String, u64>,
    /// The rule's threshold.
    pub threshold_percent: f64,
    /// The rule's window.
    pub window_seconds: u64,
}

impl Alert {
    /// The (domain, type) key as the store keeps alert state.
    pub fn key(&self) -> (String, String) {
        (self.policy_domain.clone(), self.policy_type.clone())
    }
}

/// The alerts to send now: newly over the threshold (firing), or firing before and no longer
/// (resolved). `firing` holds the (domain, type) keys firing at the last look.
pub fn evaluate(
    rule: &AlertRule,
    totals: &BTreeMap<SummaryKey, DomainSummary>,
    firing: &BTreeSet<(String, String)>,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for ((domain, kind), s) in totals {
        let key = (domain.clone().unwrap_or_default(), kind.clone());
        let sessions = s.successful.saturating_add(s.failed);
        let rate = if sessions == 0 {
            0.0
        } else {
            s.failed as f64 * 100.0 / sessions as f64
        };
        let over = sessions >= rule.min_sessions && sessions > 0 && rate >= rule.threshold_percent;
        let was = firing.contains(&key);
        seen.insert(key.clone());
        let state = match (over, was) {
            (true, false) => AlertState::Firing,
            (false, true) => AlertState::Resolved,
            _ => continue,
        };
        out.push(Alert {
            state,
            policy_domain: key.0,
            policy_type: key.1,
            failure_rate: rate,
            successful: s.successful,
            failed: s.failed,
            failures_by_type: s.failures_by_type.clone(),
            threshold_percent: rule.threshold_percent,
            window_seconds: rule.window_seconds,
        });
    }
    // Firing before, and no reports in the window at all now: over too.
    for (domain, kind) in firing.iter().filter(|k| !seen.contains(*k)) {
        out.push(Alert {
            state: AlertState::Resolved,
            policy_domain: domain.clone(),
            policy_type: kind.clone(),
            failure_rate: 0.0,
            successful: 0,
            failed: 0,
            failures_by_type: BTreeMap::new(),
            threshold_percent: rule.threshold_percent,
            window_seconds: rule.window_seconds,
        });
    }
    out
}

/// A threshold such as `5%` or `5` (percent), more than 0 and at most 100.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let n: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage (e.g. 5%)"))?;
    if n > 0.0 && n <= 100.0 {
        Ok(n)
    } else {
        Err(format!(
            "{text}: a threshold is more than 0% and at most 100%"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(entries: &[(&str, u64, u64)]) -> BTreeMap<SummaryKey, DomainSummary> {
        entries
            .iter()
            .map(|(d, ok, failed)| {
                (
                    (Some(d.to_string()), "sts".to_string()),
                    DomainSummary {
                        successful: *ok,
                        failed: *failed,
                        ..DomainSummary::default()
                    },
                )
            })
            .collect()
    }

    const RULE: AlertRule = AlertRule {
        threshold_percent: 5.0,
        min_sessions: 100,
        window_seconds: 86_400,
    };

    fn key(d: &str) -> (String, String) {
        (d.to_string(), "sts".to_string())
    }

    #[test]
    fn fires_once_over_the_threshold_and_resolves_below_it() {
        let t = totals(&[
            ("bad.example", 90, 10),
            ("fine.example", 99, 1),
            ("tiny.example", 1, 3),
        ]);
        let a = evaluate(&RULE, &t, &BTreeSet::new());
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].state, AlertState::Firing);
        assert_eq!(a[0].policy_domain, "bad.example");
        assert!((a[0].failure_rate - 10.0).abs() < 1e-9);
        // Still over: nothing new.
        let firing = BTreeSet::from([key("bad.example")]);
        assert!(evaluate(&RULE, &t, &firing).is_empty());
        // Exactly at the threshold fires; below it resolves.
        let at = totals(&[("bad.example", 95, 5)]);
        assert!(evaluate(&RULE, &at, &firing).is_empty());
        let below = totals(&[("bad.example", 96, 4)]);
        let a = evaluate(&RULE, &below, &firing);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].state, AlertState::Resolved);
        // No reports at all any more: resolved too.
        let a = evaluate(&RULE, &BTreeMap::new(), &firing);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].state, AlertState::Resolved);
    }

    #[test]
    fn thresholds_parse_as_percent() {
        assert_eq!(parse_percent("5%"), Ok(5.0));
        assert_eq!(parse_percent("0.5"), Ok(0.5));
        assert!(parse_percent("0").is_err());
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("lots").is_err());
    }
}
