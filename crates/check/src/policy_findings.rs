//! What is wrong or unwise in a policy, as findings with the same codes for `lint` and
//! `check`: every problem of an invalid policy (`policy-invalid`), each tolerated deviation
//! (`policy-tolerated`), and advice (`max-age-short`, …). Pure.

use mtasts_core::advice::policy_advice;
use mtasts_core::{DomainName, Parsed, PolicyErrors};

use crate::code::Code;
use crate::report::Level;

/// One finding about a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFinding {
    /// How bad it is.
    pub level: Level,
    /// The code `check` reports for it.
    pub code: Code,
    /// The checklist id (`POL-07`) or, for advice, the advice code.
    pub rule: &'static str,
    /// 1-based line; 0 for the policy as a whole.
    pub line: usize,
    /// The key of the line, if the finding is about one line.
    pub key: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

/// The findings of a valid policy: tolerated deviations, then advice.
pub fn valid_policy_findings(parsed: &Parsed, domain: Option<&DomainName>) -> Vec<PolicyFinding> {
    let mut out: Vec<PolicyFinding> = parsed
        .warnings
        .iter()
        .map(|w| PolicyFinding {
            level: Level::Warning,
            code: Code::PolicyTolerated,
            rule: w.kind.checklist_id(),
            line: w.line,
            key: w.key.clone(),
            message: w.kind.to_string(),
        })
        .collect();
    out.extend(
        policy_advice(&parsed.policy, domain)
            .iter()
            .map(|a| PolicyFinding {
                level: Level::Warning,
                code: Code::from(a),
                rule: a.code(),
                line: 0,
                key: None,
                message: a.to_string(),
            }),
    );
    out
}

/// The findings of an invalid policy: every problem.
pub fn invalid_policy_findings(errors: &PolicyErrors) -> Vec<PolicyFinding> {
    errors
        .iter()
        .map(|e| PolicyFinding {
            level: Level::Error,
            code: Code::PolicyInvalid,
            rule: e.rule.checklist_id(),
            line: e.line,
            key: e.key.clone(),
            message: e.rule.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtasts_core::Policy;

    #[test]
    fn tolerated_advice_and_invalid_carry_their_codes_and_rules() {
        let parsed =
            Policy::parse("version: STSv1\nmode: testing\nmx: mx.example.com.\nmax_age: 600\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let f = valid_policy_findings(&parsed, None);
        let codes: Vec<(Code, &str)> = f.iter().map(|f| (f.code, f.rule)).collect();
        assert!(
            codes.contains(&(Code::PolicyTolerated, "POL-09")),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::TestingMode, "testing-mode")),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::MaxAgeShort, "max-age-short")),
            "{codes:?}"
        );
        let Err(errors) = Policy::parse("version: STSv1\nmode: Enforce\nmax_age: x\n") else {
            panic!("invalid policy accepted");
        };
        let f = invalid_policy_findings(&errors);
        assert!(
            f.len() >= 2
                && f.iter()
                    .all(|f| f.code == Code::PolicyInvalid && f.level == Level::Error)
        );
        assert!(f.iter().any(|f| f.rule == "POL-03"), "{f:?}");
    }
}
