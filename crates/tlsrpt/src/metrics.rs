//! Prometheus text for the report store: reports and messages kept aside, sessions per
//! policy domain by result. Read from the store at each scrape, so reports taken in by any
//! process (HTTPS, mail pipes, imports) count.

use std::fmt::Write as _;

use crate::store::Totals;

/// A label value with `\`, `"` and newlines escaped (the text format's rules).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(totals: &[Totals], reports: u64, ignored: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP mtasts_tlsrpt_reports_total TLS reports stored (each organisation's report-id once).\n\
# TYPE mtasts_tlsrpt_reports_total counter\nmtasts_tlsrpt_reports_total {reports}"
    );
    let _ = writeln!(
        out,
        "# HELP mtasts_tlsrpt_ignored_messages_total Report messages kept aside: no valid DKIM signature of the reporting domain, or no usable report.\n\
# TYPE mtasts_tlsrpt_ignored_messages_total counter\nmtasts_tlsrpt_ignored_messages_total {ignored}"
    );
    out.push_str(
        "# HELP mtasts_tlsrpt_sessions_total Sessions the stored reports count, by policy domain, policy type and result.\n\
# TYPE mtasts_tlsrpt_sessions_total counter\n",
    );
    for t in totals {
        let (d, k) = (
            label(t.policy_domain.as_deref().unwrap_or("")),
            label(&t.policy_type),
        );
        let _ = writeln!(
            out,
            "mtasts_tlsrpt_sessions_total{{policy_domain=\"{d}\",policy_type=\"{k}\",result=\"successful\"}} {}",
            t.successful
        );
        let _ = writeln!(
            out,
            "mtasts_tlsrpt_sessions_total{{policy_domain=\"{d}\",policy_type=\"{k}\",result=\"failed\"}} {}",
            t.failed
        );
    }
    out.push_str(
        "# HELP mtasts_tlsrpt_domain_reports_total Stored reports that mention the policy domain and type.\n\
# TYPE mtasts_tlsrpt_domain_reports_total counter\n",
    );
    for t in totals {
        let _ = writeln!(
            out,
            "mtasts_tlsrpt_domain_reports_total{{policy_domain=\"{}\",policy_type=\"{}\"}} {}",
            label(t.policy_domain.as_deref().unwrap_or("")),
            label(&t.policy_type),
            t.reports
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_every_series_is_declared() {
        let text = render(
            &[Totals {
                policy_domain: Some("ex\"am\\ple.com".into()),
                policy_type: "sts".into(),
                successful: 9,
                failed: 1,
                reports: 2,
            }],
            2,
            1,
        );
        assert!(text.contains(
            "mtasts_tlsrpt_sessions_total{policy_domain=\"ex\\\"am\\\\ple.com\",policy_type=\"sts\",result=\"failed\"} 1"
        ));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            assert!(
                text.contains(&format!("# TYPE {name} counter")),
                "{name} undeclared"
            );
        }
    }
}
