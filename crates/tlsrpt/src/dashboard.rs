//! The dashboard's figures and pages: built from stored reports by pure functions, rendered
//! on the server as one HTML page with inline SVG and CSS, no script and no external asset.
//! Every string that came from a report is escaped (RCV-02: report content is untrusted).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mtasts_core::UnixTime;
use mtasts_core::report::{
    DaySessions, DomainSummary, SummaryKey, UtcDay, add_daily, parse_report, summarize,
};

use crate::store::ReportRow;

/// Recent reports listed per domain.
pub const RECENT_REPORTS: usize = 20;
/// MX hosts listed per domain, most failures first.
pub const WORST_MX: usize = 10;

/// One domain's part of the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainView {
    /// Totals over the window.
    pub summary: DomainSummary,
    /// Sessions per UTC day, oldest first.
    pub days: Vec<(UtcDay, DaySessions)>,
    /// The newest reports first, at most [`RECENT_REPORTS`].
    pub recent: Vec<RecentReport>,
}

impl DomainView {
    /// Failed sessions in percent of all (0 with no sessions).
    pub fn failure_rate(&self) -> f64 {
        rate(self.summary.successful, self.summary.failed)
    }

    /// MX hosts by failed sessions, most first, at most [`WORST_MX`].
    pub fn worst_mx(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .summary
            .failures_by_mx
            .iter()
            .map(|(mx, n)| (mx.as_str(), *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(WORST_MX);
        v
    }
}

fn rate(successful: u64, failed: u64) -> f64 {
    let total = successful.saturating_add(failed);
    if total == 0 {
        0.0
    } else {
        failed as f64 * 100.0 / total as f64
    }
}

/// A report as listed: who sent it, for when, what it counted for the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentReport {
    /// The store's row id (the raw JSON is at `/report/<id>`).
    pub id: i64,
    /// `organization-name`.
    pub organization: String,
    /// `report-id`.
    pub report_id: String,
    /// Start of its range.
    pub start: UnixTime,
    /// When it arrived.
    pub received_at: UnixTime,
    /// Successful sessions it counts for this domain and type.
    pub successful: u64,
    /// Failed sessions it counts for this domain and type.
    pub failed: u64,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dashboard {
    /// Per (policy domain, policy type).
    pub domains: BTreeMap<SummaryKey, DomainView>,
    /// Messages kept aside (not counted).
    pub ignored: u64,
    /// Reports in the window.
    pub reports: u64,
    /// The UTC day it was built (the chart's last bar).
    pub today: UtcDay,
}

/// Builds the figures from `rows` (the reports of the window, oldest first) at `now`.
pub fn build(rows: &[ReportRow], ignored: u64, now: UnixTime) -> Dashboard {
    let mut totals = BTreeMap::new();
    let mut days = BTreeMap::new();
    let mut recent: BTreeMap<SummaryKey, Vec<RecentReport>> = BTreeMap::new();
    let mut reports = 0;
    for row in rows {
        // Stored reports parsed when stored; one that no longer does is left out.
        let Ok(parsed) = parse_report(&row.raw) else {
            continue;
        };
        reports += 1;
        let report = &parsed.report;
        summarize(report, &mut totals);
        add_daily(report, &mut days);
        let mut counted: BTreeMap<SummaryKey, (u64, u64)> = BTreeMap::new();
        for p in &report.policies {
            let c = counted
                .entry((p.policy_domain.clone(), p.policy_type.as_str().to_string()))
                .or_default();
            c.0 = c.0.saturating_add(p.successful);
            c.1 = c.1.saturating_add(p.failed);
        }
        for (key, (successful, failed)) in counted {
            recent.entry(key).or_default().push(RecentReport {
                id: row.id,
                organization: report.organization.clone(),
                report_id: report.report_id.clone(),
                start: report.start,
                received_at: row.received_at,
                successful,
                failed,
            });
        }
    }
    let mut domains: BTreeMap<SummaryKey, DomainView> = totals
        .into_iter()
        .map(|(k, summary)| {
            (
                k,
                DomainView {
                    summary,
                    ..DomainView::default()
                },
            )
        })
        .collect();
    for ((key, day), sessions) in days {
        if let Some(v) = domains.get_mut(&key) {
            v.days.push((day, sessions));
        }
    }
    for (key, mut list) in recent {
        if let Some(v) = domains.get_mut(&key) {
            list.reverse();
            list.truncate(RECENT_REPORTS);
            v.recent = list;
        }
    }
    Dashboard {
        domains,
        ignored,
        reports,
        today: now / 86_400,
    }
}

/// `s` safe inside HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD` of a UTC day.
pub fn day_text(day: UtcDay) -> String {
    date_text(day.saturating_mul(86_400))
}

fn date_text(t: UnixTime) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or_else(|| "?".into(), |d| d.date().to_string())
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b71c1c}.ok{color:#1b5e20}
.legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}";

/// The page: every domain, or only `only` (a policy domain).
pub fn render(d: &Dashboard, only: Option<&str>, window_days: u64, token: Option<&str>) -> String {
    let link = |path: &str| match token {
        Some(t) => format!("{path}?token={}", escape(&url_encode(t))),
        None => path.to_string(),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>TLS reports — mtasts</title><style>{STYLE}</style></head><body>\
<h1>TLS reports (RFC 8460), last {window_days} days</h1>\
<p><span id=\"reports\" data-value=\"{}\">{}</span> report(s) in the window; \
<span id=\"ignored\" data-value=\"{}\">{}</span> message(s) kept aside, not counted (no valid DKIM signature or no usable report). \
<a href=\"{}\">all domains</a></p>",
        d.reports,
        d.reports,
        d.ignored,
        d.ignored,
        link("/")
    );
    if d.domains.is_empty() {
        h.push_str("<p>No reports yet.</p>");
    }
    h.push_str("<table><tr><th>policy domain</th><th>type</th><th>successful</th><th>failed</th><th>failure rate</th><th>reports</th></tr>");
    for ((domain, kind), v) in &d.domains {
        let name = domain.as_deref().unwrap_or("(none)");
        let _ = write!(
            h,
            "<tr data-domain=\"{n}\" data-type=\"{t}\"><td><a href=\"#{n}-{t}\">{n}</a></td><td>{t}</td>\
<td class=\"n\" data-field=\"successful\">{}</td><td class=\"n bad\" data-field=\"failed\">{}</td>\
<td class=\"n\" data-field=\"rate\">{:.1}%</td><td class=\"n\" data-field=\"reports\">{}</td></tr>",
            v.summary.successful,
            v.summary.failed,
            v.failure_rate(),
            v.summary.reports,
            n = escape(name),
            t = escape(kind),
        );
    }
    h.push_str("</table>");
    for ((domain, kind), v) in &d.domains {
        let name = domain.as_deref().unwrap_or("(none)");
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let first = d.today.saturating_sub(window_days.saturating_sub(1));
        section(&mut h, name, kind, v, (first, d.today), &link);
    }
    h.push_str("</body></html>");
    h
}

fn section(
    h: &mut String,
    name: &str,
    kind: &str,
    v: &DomainView,
    span: (UtcDay, UtcDay),
    link: &dyn Fn(&str) -> String,
) {
    let (n, t) = (escape(name), escape(kind));
    let _ = write!(
        h,
        "<section id=\"{n}-{t}\" data-domain=\"{n}\" data-type=\"{t}\"><h2>{n} ({t})</h2>\
<p><span class=\"ok\">{} successful</span>, <span class=\"bad\">{} failed</span> ({:.1}%), {} report(s) from {}.</p>",
        v.summary.successful,
        v.summary.failed,
        v.failure_rate(),
        v.summary.reports,
        escape(
            &v.summary
                .organizations
                .iter()
                .map(|(o, k)| format!("{} ({k})", if o.is_empty() { "(unnamed)" } else { o }))
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    chart(h, &v.days, span);
    h.push_str("<h3>Sessions per day (UTC)</h3><table class=\"days\"><tr><th>day</th><th>successful</th><th>failed</th></tr>");
    for (day, s) in &v.days {
        let _ = write!(
            h,
            "<tr data-day=\"{d}\"><td>{d}</td><td class=\"n\" data-field=\"successful\">{}</td><td class=\"n bad\" data-field=\"failed\">{}</td></tr>",
            s.successful,
            s.failed,
            d = day_text(*day)
        );
    }
    h.push_str("</table><h3>Failures by result type</h3><table class=\"types\">");
    if v.summary.failures_by_type.is_empty() {
        h.push_str("<tr><td>none reported</td></tr>");
    }
    for (kind, count) in &v.summary.failures_by_type {
        let _ = write!(
            h,
            "<tr data-result-type=\"{k}\"><td>{k}</td><td class=\"n\">{count}</td></tr>",
            k = escape(kind)
        );
    }
    h.push_str("</table><h3>MX hosts with the most failures</h3><table class=\"mx\">");
    let worst = v.worst_mx();
    if worst.is_empty() {
        h.push_str("<tr><td>none reported</td></tr>");
    }
    for (mx, count) in worst {
        let _ = write!(
            h,
            "<tr data-mx=\"{m}\"><td>{m}</td><td class=\"n\">{count}</td></tr>",
            m = escape(mx)
        );
    }
    h.push_str("</table><h3>Recent reports</h3><table class=\"recent\"><tr><th>day</th><th>organisation</th><th>report-id</th><th>successful</th><th>failed</th><th>received</th><th></th></tr>");
    for r in &v.recent {
        let _ = write!(
            h,
            "<tr data-report-id=\"{id}\"><td>{}</td><td>{}</td><td>{id}</td><td class=\"n\">{}</td><td class=\"n bad\">{}</td><td>{}</td><td><a href=\"{}\">raw JSON</a></td></tr>",
            date_text(r.start),
            escape(&r.organization),
            r.successful,
            r.failed,
            date_text(r.received_at),
            link(&format!("/report/{}", r.id)),
            id = escape(&r.report_id),
        );
    }
    h.push_str("</table></section>");
}

/// Stacked bars per day of `span` (first, last; a day without reports has no bar, so a gap
/// shows): successful (green) under failed (red), scaled to the busiest day.
fn chart(h: &mut String, days: &[(UtcDay, DaySessions)], span: (UtcDay, UtcDay)) {
    let (first, last) = (span.0.min(days.first().map_or(span.0, |d| d.0)), span.1);
    let by_day: BTreeMap<UtcDay, DaySessions> = days.iter().copied().collect();
    let days: Vec<(UtcDay, DaySessions)> = (first..=last)
        .map(|d| (d, by_day.get(&d).copied().unwrap_or_default()))
        .collect();
    const W: usize = 14;
    const HEIGHT: u64 = 120;
    let max = days
        .iter()
        .map(|(_, s)| s.successful.saturating_add(s.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let width = days.len().clamp(1, 400) * W;
    let _ = write!(
        h,
        "<svg class=\"chart\" role=\"img\" aria-label=\"sessions per day\" width=\"{width}\" height=\"{HEIGHT}\" viewBox=\"0 0 {width} {HEIGHT}\">"
    );
    for (i, (day, s)) in days.iter().take(400).enumerate() {
        let scale = |n: u64| n.saturating_mul(HEIGHT) / max;
        let (ok, bad) = (scale(s.successful), scale(s.failed));
        let x = i * W;
        let _ = write!(
            h,
            "<g><title>{}: {} successful, {} failed</title>\
<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{ok}\" fill=\"#43a047\"/>\
<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{bad}\" fill=\"#e53935\"/></g>",
            day_text(*day),
            s.successful,
            s.failed,
            HEIGHT - ok,
            W - 2,
            HEIGHT - ok - bad,
            W - 2,
        );
    }
    h.push_str("</svg><div class=\"legend\"><span style=\"background:#43a047\"></span>successful<span style=\"background:#e53935\"></span>failed</div>");
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, json: &str) -> ReportRow {
        ReportRow {
            id,
            organization: String::new(),
            report_id: String::new(),
            received_at: 1_796_083_200,
            source: "test".into(),
            raw: json.as_bytes().to_vec(),
        }
    }

    const HOSTILE: &str = r#"{"organization-name":"<script>alert(1)</script>","report-id":"x\"><img src=x>","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"},
"policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":3,"total-failure-session-count":1},
"failure-details":[{"result-type":"<b>bold</b>","receiving-mx-hostname":"mx.example.com","failed-session-count":1}]}]}"#;

    #[test]
    fn report_content_is_escaped_never_markup() {
        let d = build(&[row(1, HOSTILE)], 0, 1_796_083_200);
        let page = render(&d, None, 30, None);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>bold"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;"));
    }

    #[test]
    fn figures_per_domain_day_and_report() {
        let d = build(
            &[row(1, HOSTILE), row(2, &HOSTILE.replace("x\\\"", "y"))],
            2,
            1_796_083_200,
        );
        let v = &d.domains[&(Some("example.com".into()), "sts".into())];
        assert_eq!((v.summary.successful, v.summary.failed), (6, 2));
        assert_eq!(v.days.len(), 1);
        assert_eq!(day_text(v.days[0].0), "2026-11-30");
        assert_eq!(v.recent.len(), 2);
        assert_eq!(v.recent[0].id, 2, "newest first");
        assert_eq!(v.worst_mx(), vec![("mx.example.com", 2)]);
        assert!((v.failure_rate() - 25.0).abs() < 1e-9);
        assert_eq!((d.reports, d.ignored), (2, 2));
        // One bar per day of the window, days without reports included (a gap shows).
        let page = render(&d, None, 30, None);
        assert_eq!(page.matches("<g><title>").count(), 30);
        assert!(page.contains("<g><title>2026-11-30: 6 successful, 2 failed</title>"));
    }

    #[test]
    fn links_carry_the_token_encoded() {
        let d = build(&[row(7, HOSTILE)], 0, 1_796_083_200);
        let page = render(&d, None, 30, Some("a b&c"));
        assert!(page.contains("/report/7?token=a%20b%26c"), "{page}");
    }
}
