//! Text rendering of a report: one line per finding under its step, a fix under each problem,
//! colour only on a terminal.

use std::fmt::Write as _;

use crate::report::{Level, Report};

/// The report as text for people.
pub fn text(r: &Report, colour: bool) -> String {
    let paint = |level: Level, s: &str| -> String {
        if !colour {
            return s.to_string();
        }
        let code = match level {
            Level::Ok => "32",
            Level::Info => "36",
            Level::Warning => "33",
            Level::Error => "31",
        };
        format!("\u{1b}[{code}m{s}\u{1b}[0m")
    };
    let mark = |level: Level| match level {
        Level::Ok => "ok     ",
        Level::Info => "info   ",
        Level::Warning => "warning",
        Level::Error => "error  ",
    };
    let mut out = String::new();
    let _ = writeln!(out, "mtasts check {}", r.domain);
    if !r.txt.records.is_empty() {
        for rec in &r.txt.records {
            let _ = writeln!(out, "  TXT  {rec}");
        }
    }
    if let Some(p) = &r.policy {
        for line in p.text.lines() {
            let _ = writeln!(out, "  policy  {line}");
        }
    }
    let mut current = "";
    for f in &r.findings {
        if f.step != current {
            current = &f.step;
            let _ = writeln!(out, "\n[{}]", f.step);
        }
        let _ = writeln!(out, "  {} {}", paint(f.level, mark(f.level)), f.message);
        if let Some(fix) = f.fix.as_ref().filter(|_| f.level >= Level::Warning) {
            let _ = writeln!(out, "          fix: {fix}");
        }
    }
    let verdict = match r.verdict {
        Level::Ok | Level::Info => "all ok",
        Level::Warning => "warnings",
        Level::Error => "errors",
    };
    let _ = writeln!(
        out,
        "\nsummary: {} ({})",
        r.summary,
        paint(r.verdict, verdict)
    );
    out
}
