//! `mtasts doctor`: looks at the local setup — Postfix's parameters, Exim's configuration, the
//! daemon's configuration, listeners, cache and DNS view, and `serve`'s sites and
//! certificates — and says what to fix.
//!
//! The rules are pure functions over what was gathered (`postfix::findings` over the
//! parameters and probe outcomes, `exim::findings` over the configuration text, `serve::…`
//! over the sites, certificates and published ids); `gather` does the I/O.

pub mod exim;
pub mod gather;
pub mod postconf;
pub mod postfix;
pub mod probe;
pub mod serve;

use serde::Serialize;

/// How bad a finding is: `check`'s levels, so the exit status means the same.
pub use mtasts_check::report::Level;

/// The tag printed before a finding.
fn tag(level: Level) -> &'static str {
    match level {
        Level::Ok => "ok",
        Level::Info => "info",
        Level::Warning => "warn",
        Level::Error => "ERROR",
    }
}

/// One thing doctor looked at and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `postfix`, `exim`, `daemon`, `dns`, `serve`.
    pub area: &'static str,
    /// Stable machine code, e.g. `policy-map-unreachable`.
    pub code: &'static str,
    /// How bad it is.
    pub level: Level,
    /// What was seen.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding without a fix.
    pub fn new(area: &'static str, code: &'static str, level: Level, message: String) -> Self {
        Self {
            area,
            code,
            level,
            message,
            fix: None,
        }
    }

    /// The same, with what to do.
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Everything doctor found, in the order it looked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
    /// Whether some check could not be run at all (exit status 3 when nothing is worse).
    pub incomplete: bool,
}

impl Report {
    /// A check that could not run: a warning, and exit status 3 unless something is worse.
    pub fn could_not_run(&mut self, area: &'static str, code: &'static str, message: String) {
        self.incomplete = true;
        self.findings
            .push(Finding::new(area, code, Level::Warning, message));
    }

    /// The worst level found.
    pub fn worst(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Ok)
    }

    /// 0 all ok, 1 warnings only, 2 errors, 3 could not run (and nothing worse than warnings).
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Level::Error => 2,
            _ if self.incomplete => 3,
            Level::Warning => 1,
            Level::Ok | Level::Info => 0,
        }
    }

    /// Text for people: a line per finding, its fix indented below.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!(
                "[{:>5}] {:<7} {:<28} {}\n",
                tag(f.level),
                f.area,
                f.code,
                f.message
            ));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("{:>46}fix: {fix}\n", ""));
            }
        }
        let count = |l| self.findings.iter().filter(|f| f.level == l).count();
        out.push_str(&format!(
            "{} errors, {} warnings{}\n",
            count(Level::Error),
            count(Level::Warning),
            if self.incomplete {
                "; some checks could not run"
            } else {
                ""
            }
        ));
        out
    }
}
