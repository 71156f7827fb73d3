//! Which Postfix the daemon answers: its version decides whether the Postfix ≥ 3.10 TLSRPT
//! attributes may be sent (older Postfix rejects them and defers the mail).

/// A Postfix release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major version (3).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level (0 when not given).
    pub patch: u32,
}

impl Version {
    /// The first Postfix that understands the TLSRPT attributes (`policy_type`, …).
    pub const TLSRPT: Version = Version {
        major: 3,
        minor: 10,
        patch: 0,
    };

    /// `3.10.5`, `3.7`, or a snapshot's `3.11-20250601`: leading numeric parts.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let release = text.split(['-', ' ']).next().unwrap_or(text);
        let mut parts = release.split('.').map(str::parse::<u32>);
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = match parts.next() {
            None => 0,
            Some(p) => p.ok()?,
        };
        parts.next().is_none().then_some(Self {
            major,
            minor,
            patch,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Which Postfix the daemon answers (`postfix_version`): decides whether the TLSRPT
/// attributes may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostfixVersion {
    /// Ask `postconf -dh mail_version` at start and on SIGHUP ([`crate::Config::detect_postfix`]).
    #[default]
    Auto,
    /// `auto` found no local Postfix to ask: treated as older than 3.10 unless a zone sets
    /// `tlsrpt` itself.
    Unknown,
    /// Set, or detected.
    Known(Version),
}

/// A `postfix_version` that is neither `auto` nor a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is neither `auto` nor a Postfix version such as `3.10.5`")]
pub struct BadVersion(pub String);

impl std::str::FromStr for PostfixVersion {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, BadVersion> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        Version::parse(s)
            .map(Self::Known)
            .ok_or_else(|| BadVersion(s.to_string()))
    }
}

impl serde::Serialize for PostfixVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::values::text::serialize(self, s)
    }
}

impl<'de> serde::Deserialize<'de> for PostfixVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::values::text::deserialize(d)
    }
}

impl std::fmt::Display for PostfixVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Unknown => f.write_str("unknown"),
            Self::Known(v) => v.fmt(f),
        }
    }
}

/// Whether the Postfix that asks can do DANE (`postfix_dnssec`): with
/// `smtp_dns_support_level` other than `dnssec`, Postfix defers mail for which it is told
/// `dane` or `dane-only`, so the daemon then answers as if DANE were off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostfixDnssec {
    /// Ask `postconf -h smtp_dns_support_level` at start and on SIGHUP.
    #[default]
    Auto,
    /// `auto` could not ask (no local Postfix): DANE answers are given, with a warning.
    Unknown,
    /// Postfix does DNSSEC lookups (`smtp_dns_support_level = dnssec`).
    Yes,
    /// It does not: no DANE answers.
    No,
}

impl PostfixDnssec {
    /// Whether DANE answers may be given.
    pub fn dane_answers(self) -> bool {
        !matches!(self, Self::No)
    }
}

/// A `postfix_dnssec` other than `auto`, `yes` or `no`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not `auto`, `yes` or `no`")]
pub struct BadDnssec(pub String);

impl std::str::FromStr for PostfixDnssec {
    type Err = BadDnssec;
    fn from_str(s: &str) -> Result<Self, BadDnssec> {
        match s {
            "auto" => Ok(Self::Auto),
            "yes" => Ok(Self::Yes),
            "no" => Ok(Self::No),
            other => Err(BadDnssec(other.to_string())),
        }
    }
}

impl std::fmt::Display for PostfixDnssec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Unknown => "unknown",
            Self::Yes => "yes",
            Self::No => "no",
        })
    }
}

impl serde::Serialize for PostfixDnssec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::values::text::serialize(self, s)
    }
}

impl<'de> serde::Deserialize<'de> for PostfixDnssec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::values::text::deserialize(d)
    }
}

/// Runs `postconf -h smtp_dns_support_level`: whether the local Postfix does DNSSEC lookups.
pub fn postconf_dnssec() -> Result<bool, DetectError> {
    let out = std::process::Command::new("postconf")
        .args(["-h", "smtp_dns_support_level"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(DetectError::Run)?;
    if !out.status.success() {
        return Err(DetectError::Failed {
            command: "postconf -h smtp_dns_support_level",
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "dnssec")
}

/// Why the local Postfix's version could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    #[error("running postconf")]
    /// postconf could not be run.
    Run(#[source] std::io::Error),
    #[error("{command} failed ({status}): {stderr}")]
    /// postconf ran and failed.
    Failed {
        /// The command line that failed.
        command: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said on stderr.
        stderr: String,
    },
    #[error("postconf said `{0}`, not a version")]
    /// postconf printed something that is not a version.
    NotAVersion(String),
    #[error("{0}")]
    /// Another reason, in words (for callers with their own detection).
    Other(String),
}

/// Runs `postconf -dh mail_version` (compiled in, so no main.cf is needed): the local
/// Postfix's version, or why it cannot be had.
pub fn postconf_mail_version() -> Result<Version, DetectError> {
    let out = std::process::Command::new("postconf")
        .args(["-dh", "mail_version"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(DetectError::Run)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(DetectError::Failed {
            command: "postconf -dh mail_version",
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Version::parse(&text).ok_or_else(|| DetectError::NotAVersion(text.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn postfix_versions_parse_from_postconf_forms() {
        assert_eq!(v("3.10.5").to_string(), "3.10.5");
        assert_eq!(v("3.7").to_string(), "3.7.0");
        assert_eq!(v("3.11-20250601\n").to_string(), "3.11.0");
        assert!(v("3.9.9") < Version::TLSRPT && v("3.10.0") >= Version::TLSRPT);
        for bad in ["", "3", "three.ten", "3.10.x", "3.10.5.1"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert!("3.x".parse::<PostfixVersion>().is_err());
        let c: crate::Config = toml::from_str("postfix_version = \"3.10.5\"").unwrap_or_default();
        assert_eq!(c.postfix_version, PostfixVersion::Known(v("3.10.5")));
        assert!(toml::from_str::<crate::Config>("postfix_version = \"new\"").is_err());
    }
}
