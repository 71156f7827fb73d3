//! The policy file (RFC 8461 §3.2): parsing by the ABNF, with every problem reported by line,
//! key and rule, and a canonical rendering.

use std::collections::HashSet;
use std::fmt;

use crate::domain::DomainError;
use crate::mx::{MxPattern, MxPatternError};
use crate::txt::is_ext_name;

/// The largest `max_age` the RFC allows (one year); larger values are clamped (POL-08).
pub const MAX_MAX_AGE: u64 = 31_557_600;
/// The body size limit senders apply (FETCH-08); the parser itself accepts any length.
pub const MAX_POLICY_BYTES: usize = 65_536;
const MAX_AGE_DIGITS: usize = 10;
const BOM: &str = "\u{feff}";

/// The policy mode (POL-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Deliver only to matching MX hosts over valid TLS.
    Enforce,
    /// Deliver anyway, report failures.
    Testing,
    /// No policy: the domain withdrew it.
    None,
}

impl Mode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Testing => "testing",
            Self::None => "none",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "enforce" => Some(Self::Enforce),
            "testing" => Some(Self::Testing),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `enforce`, `testing` or `none`.
    pub mode: Mode,
    /// Seconds, already clamped to [`MAX_MAX_AGE`].
    pub max_age: u64,
    /// Patterns in file order, duplicates kept as written. (Boxed slices: a cached policy
    /// carries no spare capacity.)
    pub mx: Box<[MxPattern]>,
    /// What few policies have, behind one pointer that is null for most: every cached
    /// policy carries this field.
    rare: Option<Box<Rare>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rare {
    unmatchable: Box<[String]>,
    extensions: Box<[(String, String)]>,
}

impl Policy {
    /// `mx` values that are valid RFC 5321 domains but can never match an MX host name (the
    /// last label all digits: `1.2.3.4`, `*.1.2.3.4`, `mail.123`), lower case, in file order.
    /// Kept so the policy stays what was published: a policy whose only patterns are these
    /// matches no MX (mail is deferred), rather than being invalid (which would fail open).
    pub fn unmatchable(&self) -> &[String] {
        self.rare.as_ref().map_or(&[], |r| &r.unmatchable)
    }

    /// Extension fields (first occurrence of each name), ignored by senders (POL-05).
    pub fn extensions(&self) -> &[(String, String)] {
        self.rare.as_ref().map_or(&[], |r| &r.extensions)
    }

    /// Parses a policy body. Warnings are returned beside a valid policy; an invalid policy
    /// gives every problem found, in line order.
    pub fn parse(text: &str) -> Result<Parsed, PolicyErrors> {
        parse(text)
    }

    /// Parses a fetched body: it must be UTF-8 (FETCH-12).
    pub fn parse_bytes(body: &[u8]) -> Result<Parsed, PolicyErrors> {
        match std::str::from_utf8(body) {
            Ok(text) => parse(text),
            Err(e) => {
                let line = 1 + body[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                Err(PolicyErrors(vec![PolicyError {
                    line,
                    key: None,
                    rule: PolicyRule::InvalidUtf8,
                }]))
            }
        }
    }

    /// Canonical text, LF line ends: version, mode, each mx, max_age, extensions.
    pub fn render(&self) -> String {
        self.lines().iter().fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
    }

    /// The canonical lines without terminators, as TLS-RPT's `policy-string` lists them (JSON-06).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::with_capacity(
            3 + self.mx.len() + self.unmatchable().len() + self.extensions().len(),
        );
        lines.push("version: STSv1".to_string());
        lines.push(format!("mode: {}", self.mode));
        lines.extend(self.mx.iter().map(|p| format!("mx: {p}")));
        lines.extend(self.unmatchable().iter().map(|u| format!("mx: {u}")));
        lines.push(format!("max_age: {}", self.max_age));
        lines.extend(self.extensions().iter().map(|(k, v)| format!("{k}: {v}")));
        lines
    }
}

/// A valid policy plus what was tolerated on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The policy.
    pub policy: Policy,
    /// What was tolerated on the way.
    pub warnings: Vec<PolicyWarning>,
}

/// One problem: where, which key, which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {rule}", key.as_ref().map(|k| format!(", key `{k}`")).unwrap_or_default())]
pub struct PolicyError {
    /// 1-based line number; 0 for problems of the policy as a whole.
    pub line: usize,
    /// The key of that line, if it had one.
    pub key: Option<String>,
    /// The rule it breaks.
    pub rule: PolicyRule,
}

/// All problems of an invalid policy, in line order (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl std::error::Error for PolicyErrors {}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("invalid policy"),
            [one] => write!(f, "invalid policy: {one}"),
            [first, rest @ ..] => write!(
                f,
                "invalid policy: {first} (and {} more problem{})",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

impl PolicyErrors {
    /// The problems.
    pub fn iter(&self) -> impl Iterator<Item = &PolicyError> {
        self.0.iter()
    }
}

/// The rule a policy line broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRule {
    #[error("bare CR is not a line end; use LF or CRLF (POL-01)")]
    /// A CR not followed by LF.
    BareCr,
    #[error("invalid UTF-8 (FETCH-12: the policy is UTF-8 text)")]
    /// The body is not UTF-8.
    InvalidUtf8,
    #[error("control character U+{0:04X} is not allowed (POL-10)")]
    /// A control character (its code point).
    ControlChar(u32),
    #[error("line has no `:` (POL-02: key \":\" *WSP value)")]
    /// A line without `:`.
    MissingColon,
    #[error("line starts with whitespace (POL-02)")]
    /// Whitespace before the key.
    LeadingWhitespace,
    #[error("whitespace before `:` (POL-02)")]
    /// Whitespace between the key and the colon.
    WhitespaceBeforeColon,
    #[error("invalid key (POL-05: a letter/digit, then up to 31 letters, digits, `_`, `-`, `.`)")]
    /// A key with characters the grammar does not allow.
    BadKey,
    #[error("tab inside the value (POL-05: values are visible characters and spaces)")]
    /// A tab between the value's characters (the grammar allows only spaces there).
    TabInValue,
    #[error("empty value (POL-05: values have at least one visible character)")]
    /// A key with no value.
    EmptyValue,
    #[error("version must be exactly `STSv1`, found `{0}` (POL-03)")]
    /// `version` is not `STSv1`.
    BadVersion(String),
    #[error("mode must be `enforce`, `testing` or `none` (case-sensitive), found `{0}` (POL-03)")]
    /// `mode` is not `enforce`, `testing` or `none`.
    BadMode(String),
    #[error("max_age must be 1 to 10 ASCII digits with nothing else, found `{0}` (POL-08)")]
    /// `max_age` is not a number of seconds in range.
    BadMaxAge(String),
    #[error("{0}")]
    /// An `mx` value that is not a pattern.
    BadMx(MxPatternError),
    #[error("required field `{0}` is missing (POL-03)")]
    /// A required key is missing.
    MissingField(&'static str),
    #[error("mode `{0}` needs at least one `mx` line (POL-03, POL-12)")]
    /// No `mx` line although the mode needs one.
    MissingMx(Mode),
}

impl PolicyRule {
    /// The checklist item this rule enforces.
    pub fn checklist_id(&self) -> &'static str {
        match self {
            Self::BareCr => "POL-01",
            Self::MissingColon | Self::LeadingWhitespace | Self::WhitespaceBeforeColon => "POL-02",
            Self::BadVersion(_) | Self::BadMode(_) | Self::MissingField(_) | Self::MissingMx(_) => {
                "POL-03"
            }
            Self::BadKey | Self::EmptyValue | Self::TabInValue => "POL-05",
            Self::BadMx(_) => "POL-07",
            Self::BadMaxAge(_) => "POL-08",
            Self::ControlChar(_) => "POL-10",
            Self::InvalidUtf8 => "FETCH-12",
        }
    }
}

/// A legal-but-tolerated or legal-but-ignored part of a policy (POL-04, POL-08, POL-09).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWarning {
    /// 1-based line; 0 for the policy as a whole.
    pub line: usize,
    /// The key of that line, if it had one.
    pub key: Option<String>,
    /// What was tolerated.
    pub kind: WarningKind,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(k) = &self.key {
            write!(f, ", key `{k}`")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// What was tolerated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarningKind {
    #[error("leading byte-order mark ignored (POL-09)")]
    /// A byte-order mark before the first line.
    Bom,
    #[error("empty line ignored (POL-09)")]
    /// An empty line.
    EmptyLine,
    #[error("trailing `.` on mx value removed (POL-09)")]
    /// An `mx` value with a trailing dot.
    MxTrailingDot,
    #[error("duplicate `{0}` ignored; the first occurrence is used (POL-04)")]
    /// A repeated key whose later value is ignored.
    DuplicateIgnored(String),
    #[error("max_age {0} is above the RFC maximum; clamped to 31557600 (POL-08)")]
    /// A `max_age` above the maximum, clamped to it.
    MaxAgeClamped(u64),
    #[error("unknown key ignored (POL-05)")]
    /// A key the RFC does not define (ignored).
    UnknownKey,
    #[error(
        "`mx: {0}` can never match an MX host name (its last label is all digits, like an IP address); kept, matching nothing (POL-07)"
    )]
    /// An `mx` value the grammar allows that no host name can match.
    MxNeverMatches(String),
}

impl WarningKind {
    /// The checklist item this warning refers to.
    pub fn checklist_id(&self) -> &'static str {
        match self {
            Self::Bom | Self::EmptyLine | Self::MxTrailingDot => "POL-09",
            Self::DuplicateIgnored(_) => "POL-04",
            Self::MaxAgeClamped(_) => "POL-08",
            Self::UnknownKey => "POL-05",
            Self::MxNeverMatches(_) => "POL-07",
        }
    }
}

struct Builder {
    version: bool,
    mode: Option<Mode>,
    max_age: Option<u64>,
    mx: Vec<MxPattern>,
    unmatchable: Vec<String>,
    extensions: Vec<(String, String)>,
    errors: Vec<PolicyError>,
    warnings: Vec<PolicyWarning>,
    /// Keys already seen, whether or not their value was valid (POL-04: first wins).
    seen: HashSet<String>,
}

fn parse(text: &str) -> Result<Parsed, PolicyErrors> {
    let mut b = Builder {
        version: false,
        mode: None,
        max_age: None,
        mx: Vec::new(),
        unmatchable: Vec::new(),
        extensions: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        seen: HashSet::new(),
    };
    let body = match text.strip_prefix(BOM) {
        Some(rest) => {
            b.warn(1, None, WarningKind::Bom);
            rest
        }
        None => text,
    };
    let body = body.strip_suffix('\n').unwrap_or(body);
    for (index, raw) in body.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        b.line(line_no, line);
    }
    if !b.version && !b.seen.contains("version") {
        b.error(0, Some("version"), PolicyRule::MissingField("version"));
    }
    let mode = b.mode;
    if mode.is_none() && !b.seen.contains("mode") {
        b.error(0, Some("mode"), PolicyRule::MissingField("mode"));
    }
    if b.max_age.is_none() && !b.seen.contains("max_age") {
        b.error(0, Some("max_age"), PolicyRule::MissingField("max_age"));
    }
    if let Some(m) = mode
        && m != Mode::None
        && b.mx.is_empty()
        && !b.seen.contains("mx")
    {
        b.error(0, Some("mx"), PolicyRule::MissingMx(m));
    }
    match (b.errors.is_empty(), mode, b.max_age) {
        (true, Some(mode), Some(max_age)) => Ok(Parsed {
            policy: Policy {
                mode,
                max_age,
                mx: b.mx.into_boxed_slice(),
                rare: (!b.unmatchable.is_empty() || !b.extensions.is_empty()).then(|| {
                    Box::new(Rare {
                        unmatchable: b.unmatchable.into_boxed_slice(),
                        extensions: b.extensions.into_boxed_slice(),
                    })
                }),
            },
            warnings: b.warnings,
        }),
        _ => {
            b.errors
                .sort_by_key(|e| if e.line == 0 { usize::MAX } else { e.line });
            Err(PolicyErrors(b.errors))
        }
    }
}

impl Builder {
    fn error(&mut self, line: usize, key: Option<&str>, rule: PolicyRule) {
        self.errors.push(PolicyError {
            line,
            key: key.map(str::to_string),
            rule,
        });
    }

    fn warn(&mut self, line: usize, key: Option<&str>, kind: WarningKind) {
        self.warnings.push(PolicyWarning {
            line,
            key: key.map(str::to_string),
            kind,
        });
    }

    fn line(&mut self, n: usize, line: &str) {
        if line.is_empty() {
            self.warn(n, None, WarningKind::EmptyLine);
            return;
        }
        if line.contains('\r') {
            return self.error(n, None, PolicyRule::BareCr);
        }
        if let Some(c) = line.chars().find(|&c| c.is_control() && c != '\t') {
            return self.error(n, None, PolicyRule::ControlChar(u32::from(c)));
        }
        if line.starts_with([' ', '\t']) {
            return self.error(n, None, PolicyRule::LeadingWhitespace);
        }
        let Some((key, rest)) = line.split_once(':') else {
            return self.error(n, None, PolicyRule::MissingColon);
        };
        if key.ends_with([' ', '\t']) {
            let k = key.trim_end();
            return self.error(n, Some(k), PolicyRule::WhitespaceBeforeColon);
        }
        if !is_ext_name(key.as_bytes()) {
            return self.error(n, Some(key), PolicyRule::BadKey);
        }
        let value = rest.trim_matches([' ', '\t']);
        if value.is_empty() {
            let rule = if key == "mx" {
                PolicyRule::BadMx(MxPatternError::Empty)
            } else {
                PolicyRule::EmptyValue
            };
            return self.error(n, Some(key), rule);
        }
        if key == "mx" {
            return self.mx(n, value);
        }
        if !self.seen.insert(key.to_string()) {
            // POL-04a: an ignored duplicate's value is not checked.
            return self.warn(n, Some(key), WarningKind::DuplicateIgnored(key.to_string()));
        }
        if value.contains('\t') {
            return self.error(n, Some(key), PolicyRule::TabInValue);
        }
        match key {
            "version" if value == "STSv1" => self.version = true,
            "version" => self.error(n, Some(key), PolicyRule::BadVersion(value.to_string())),
            "mode" => match Mode::parse(value) {
                Some(m) => self.mode = Some(m),
                None => self.error(n, Some(key), PolicyRule::BadMode(value.to_string())),
            },
            "max_age" => match parse_max_age(value) {
                Some(v) if v > MAX_MAX_AGE => {
                    self.warn(n, Some(key), WarningKind::MaxAgeClamped(v));
                    self.max_age = Some(MAX_MAX_AGE);
                }
                Some(v) => self.max_age = Some(v),
                None => self.error(n, Some(key), PolicyRule::BadMaxAge(value.to_string())),
            },
            _ => {
                self.warn(n, Some(key), WarningKind::UnknownKey);
                self.extensions.push((key.to_string(), value.to_string()));
            }
        }
    }

    fn mx(&mut self, n: usize, value: &str) {
        self.seen.insert("mx".to_string());
        if value.ends_with('.') && !value.ends_with("..") && value.len() > 1 {
            self.warn(n, Some("mx"), WarningKind::MxTrailingDot);
        }
        match MxPattern::parse(value) {
            Ok(p) => self.mx.push(p),
            Err(e) if numeric_last_label(&e) && is_ldh_domain(value) => {
                let kept = value
                    .strip_suffix('.')
                    .unwrap_or(value)
                    .to_ascii_lowercase();
                self.warn(n, Some("mx"), WarningKind::MxNeverMatches(kept.clone()));
                self.unmatchable.push(kept);
            }
            Err(e) => self.error(n, Some("mx"), PolicyRule::BadMx(e)),
        }
    }
}

/// The pattern was refused only for looking like an IP address or ending in a numeric label.
fn numeric_last_label(e: &MxPatternError) -> bool {
    matches!(
        e,
        MxPatternError::Domain {
            source: DomainError::IpLiteral(_) | DomainError::NumericTld { .. },
            ..
        }
    )
}

/// RFC 5321 `Domain` (optionally after `*.`, one trailing dot tolerated, POL-09): the names'
/// LDH rules, where an all-numeric last label is allowed.
fn is_ldh_domain(value: &str) -> bool {
    let name = value.strip_suffix('.').unwrap_or(value);
    let name = name.strip_prefix("*.").unwrap_or(name);
    matches!(
        crate::domain::check_ldh(&name.to_ascii_lowercase()),
        Ok(()) | Err(DomainError::NumericTld { .. })
    )
}

/// `max_age`: 1–10 ASCII digits, leading zeros allowed (POL-08).
fn parse_max_age(value: &str) -> Option<u64> {
    if value.is_empty()
        || value.len() > MAX_AGE_DIGITS
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    value.parse().ok()
}
