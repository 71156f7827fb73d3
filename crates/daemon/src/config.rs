//! The daemon's configuration: one TOML file with documented defaults (see
//! `docs/daemon.toml`), or a postfix-mta-sts-resolver YAML file mapped onto it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtasts_core::CacheSettings;
use mtasts_core::postfix::{MAX_REPLY_BYTES, RenderOptions};
use mtasts_resolver::ResolverSettings;
use serde::Deserialize;

/// Why a configuration cannot be used. Names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read { path: String, error: String },
    #[error("{path}: {error}")]
    Parse { path: String, error: String },
    #[error("{field}: {error}")]
    Invalid { field: String, error: String },
}

/// Everything the daemon needs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `IP:PORT` or `unix:/path`; several allowed.
    pub listen: Vec<String>,
    /// `memory`, `sqlite:PATH` (`sqlite:` = the default path), `redis://…`, `rediss://…`.
    pub cache: String,
    /// DNS server `IP:PORT`; none = /etc/resolv.conf.
    pub nameserver: Option<String>,
    /// Extra trusted CAs for policy hosts (PEM).
    pub ca_file: Option<PathBuf>,
    /// Validating resolver `IP:PORT` whose AD bit DANE checks trust; none = `nameserver`,
    /// else the first server of /etc/resolv.conf.
    pub dane_nameserver: Option<String>,
    pub unix_socket: UnixSocket,
    pub resolver: ResolverConfig,
    pub default_zone: Zone,
    /// Map name (the last part of `socketmap:…:NAME`) → settings; unknown names use the
    /// default zone.
    pub zones: BTreeMap<String, Zone>,
    /// Prometheus metrics listener `IP:PORT` (none: off).
    pub metrics_listen: Option<String>,
    /// `text` or `json`.
    pub log_format: String,
    /// Seconds granted to open connections on SIGTERM.
    pub shutdown_timeout: f64,
    /// The Postfix that asks: `auto` (ask `postconf`) or a version such as `3.10.5`. With
    /// Postfix ≥ 3.10 replies carry the TLSRPT attributes unless a zone sets `tlsrpt = false`.
    pub postfix_version: PostfixVersion,
}

/// A Postfix release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum PostfixVersion {
    /// Ask `postconf -dh mail_version` at start and on SIGHUP ([`Config::detect_postfix`]).
    #[default]
    Auto,
    /// `auto` found no local Postfix to ask: treated as older than 3.10 unless a zone sets
    /// `tlsrpt` itself.
    Unknown,
    /// Set, or detected.
    Known(Version),
}

impl TryFrom<String> for PostfixVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        Version::parse(&s).map(Self::Known).ok_or_else(|| {
            format!("`{s}` is neither `auto` nor a Postfix version such as `3.10.5`")
        })
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

/// Runs `postconf -dh mail_version` (compiled in, so no main.cf is needed): the local Postfix's version, or why it cannot be had.
pub fn postconf_mail_version() -> Result<Version, String> {
    let out = std::process::Command::new("postconf")
        .args(["-dh", "mail_version"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running postconf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "postconf -dh mail_version failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Version::parse(&text).ok_or_else(|| format!("postconf said `{}`, not a version", text.trim()))
}

/// postfix-tlspol's map name for answers without TLSRPT attributes.
pub const TLSPOL_QUERY: &str = "QUERY";
/// postfix-tlspol's map name for answers with TLSRPT attributes (Postfix ≥ 3.10).
pub const TLSPOL_QUERY_WITH_TLSRPT: &str = "QUERYwithTLSRPT";

/// Ownership and mode of unix sockets.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct UnixSocket {
    /// Octal mode as a string, e.g. "0660" (default: 0666 less the umask).
    pub mode: Option<String>,
    /// User name or uid.
    pub owner: Option<String>,
    /// Group name or gid.
    pub group: Option<String>,
}

/// Cache and fetch tunables.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ResolverConfig {
    pub txt_grace: u64,
    pub negative_ttl: u64,
    pub fetch_backoff: u64,
    pub refresh_interval: u64,
    pub refresh: bool,
    pub refresh_tick: u64,
    pub refresh_concurrency: usize,
    pub memory_capacity: usize,
    pub dns_timeout: f64,
    pub fetch_timeout: f64,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        let c = CacheSettings::default();
        let r = ResolverSettings::default();
        Self {
            txt_grace: c.txt_grace,
            negative_ttl: c.negative_ttl,
            fetch_backoff: c.fetch_backoff,
            refresh_interval: c.refresh_interval,
            refresh: r.refresh,
            refresh_tick: r.refresh_tick.as_secs(),
            refresh_concurrency: r.refresh_concurrency,
            memory_capacity: r.memory_capacity,
            dns_timeout: 5.0,
            fetch_timeout: 60.0,
        }
    }
}

/// What a map name answers like.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Zone {
    /// Enforce `testing` policies (postfix-mta-sts-resolver's option; not RFC behaviour).
    pub strict_testing: bool,
    /// Add the Postfix ≥ 3.10 TLSRPT attributes (and exact MX-pattern enforcement ≥ 3.10.5).
    /// Unset: on exactly when [`Config::postfix_version`] is known to be ≥ 3.10. Never sent
    /// to a Postfix known to be older, which rejects them.
    pub tlsrpt: Option<bool>,
    /// Add `servername=hostname` so Postfix sends SNI (Postfix ≥ 3.4). On by default.
    pub require_sni: bool,
    /// Answer deadline in seconds: after it, answer from what is known and keep fetching in
    /// the background.
    pub timeout: f64,
    /// With no cached policy, a DNS failure or failed fetch answers `TEMP` (defer) instead of
    /// `NOTFOUND` (deliver without MTA-STS, as RFC 8461 §3.3 says).
    pub defer_on_failure: bool,
    /// Check DANE first: DNSSEC-validated TLSA for the MX hosts answers `dane-only`/`dane`
    /// instead of an MTA-STS `secure` policy (RFC 8461 §2: DANE takes precedence).
    pub dane: bool,
}

impl Default for Zone {
    fn default() -> Self {
        Self {
            strict_testing: false,
            tlsrpt: None,
            require_sni: true,
            timeout: 4.0,
            defer_on_failure: false,
            dane: true,
        }
    }
}

impl Zone {
    /// The choices that change the core decision.
    pub fn profile(&self) -> mtasts_core::Profile {
        mtasts_core::Profile {
            strict_testing: self.strict_testing,
            defer_on_failure: self.defer_on_failure,
        }
    }

    /// Whether replies carry the TLSRPT attributes for this Postfix.
    pub fn tlsrpt_for(&self, postfix: PostfixVersion) -> bool {
        match postfix {
            PostfixVersion::Known(v) if v < Version::TLSRPT => false,
            PostfixVersion::Known(_) => self.tlsrpt.unwrap_or(true),
            PostfixVersion::Auto | PostfixVersion::Unknown => self.tlsrpt.unwrap_or(false),
        }
    }

    /// Rendering options for core, for replies to `postfix`.
    pub fn render_options(&self, postfix: PostfixVersion) -> RenderOptions {
        RenderOptions {
            strict_testing: self.strict_testing,
            tlsrpt: self.tlsrpt_for(postfix),
            sni: self.require_sni,
            max_reply: MAX_REPLY_BYTES,
        }
    }

    /// The answer deadline.
    pub fn deadline(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout).unwrap_or(Duration::from_secs(4))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:8461".into()],
            cache: "sqlite:".into(),
            nameserver: None,
            ca_file: None,
            dane_nameserver: None,
            unix_socket: UnixSocket::default(),
            resolver: ResolverConfig::default(),
            default_zone: Zone::default(),
            zones: BTreeMap::new(),
            metrics_listen: None,
            log_format: "text".into(),
            shutdown_timeout: 20.0,
            postfix_version: PostfixVersion::Auto,
        }
    }
}

fn invalid(field: &str, error: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        error: error.to_string(),
    }
}

impl Config {
    /// Reads a TOML config, or a postfix-mta-sts-resolver YAML one (by extension). Returns
    /// the config and warnings about options that were not carried over.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        if is_yaml {
            return crate::pmsr::from_yaml(&text).map_err(|error| ConfigError::Parse {
                path: path.display().to_string(),
                error,
            });
        }
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        config.validate()?;
        Ok((config, Vec::new()))
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(invalid("listen", "at least one listener is needed"));
        }
        for l in &self.listen {
            if l.strip_prefix("unix:").is_none() && l.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    "listen",
                    format!("`{l}` is neither IP:PORT nor unix:/path"),
                ));
            }
        }
        for (field, ns) in [
            ("nameserver", &self.nameserver),
            ("dane_nameserver", &self.dane_nameserver),
        ] {
            if let Some(ns) = ns {
                ns.parse::<std::net::SocketAddr>()
                    .map_err(|_| invalid(field, format!("`{ns}` is not IP:PORT")))?;
            }
        }
        if let Some(m) = &self.unix_socket.mode {
            u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .map_err(|_| invalid("unix_socket.mode", format!("`{m}` is not an octal mode")))?;
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(invalid("log_format", "expected `text` or `json`"));
        }
        for (name, z) in std::iter::once(("default_zone", &self.default_zone))
            .chain(self.zones.iter().map(|(n, z)| (n.as_str(), z)))
        {
            if !(z.timeout.is_finite() && z.timeout > 0.0) {
                return Err(invalid(
                    &format!("{name}.timeout"),
                    "must be a positive number of seconds",
                ));
            }
        }
        for (field, v) in [
            ("resolver.dns_timeout", self.resolver.dns_timeout),
            ("resolver.fetch_timeout", self.resolver.fetch_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(field, "must be a positive number of seconds"));
            }
        }
        Ok(())
    }

    /// Resolves `postfix_version = "auto"` with `detect` (normally [`postconf_mail_version`]),
    /// and says what operators should know: detection failures, and zones whose `tlsrpt = true`
    /// an older Postfix would reject (those attributes are then not sent).
    pub fn detect_postfix(
        &mut self,
        detect: impl FnOnce() -> Result<Version, String>,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if self.postfix_version == PostfixVersion::Auto {
            self.postfix_version = match detect() {
                Ok(v) => PostfixVersion::Known(v),
                Err(e) => {
                    notes.push(format!(
                        "postfix_version = \"auto\": {e}; TLSRPT attributes are sent only where a zone sets tlsrpt = true (set postfix_version where Postfix runs on another host)"
                    ));
                    PostfixVersion::Unknown
                }
            };
        }
        if let PostfixVersion::Known(v) = self.postfix_version
            && v < Version::TLSRPT
        {
            for (name, z) in std::iter::once(("default_zone", &self.default_zone))
                .chain(self.zones.iter().map(|(n, z)| (n.as_str(), z)))
            {
                if z.tlsrpt == Some(true) {
                    notes.push(format!(
                        "{name}.tlsrpt = true, but Postfix {v} rejects the TLSRPT attributes (3.10 or later needed): not sent"
                    ));
                }
            }
        }
        notes
    }

    /// Rendering options for replies under `zone`.
    pub fn render_options(&self, zone: &Zone) -> RenderOptions {
        zone.render_options(self.postfix_version)
    }

    /// The zone for a map name: a `[zones.NAME]` section; else postfix-tlspol's map names
    /// (any case), `QUERY` (no TLSRPT attributes) and `QUERYwithTLSRPT` (with them, for
    /// Postfix ≥ 3.10), as the default zone otherwise; else the default zone.
    pub fn zone(&self, map: &str) -> Zone {
        if let Some(z) = self.zones.get(map) {
            return *z;
        }
        let tlsrpt = if map.eq_ignore_ascii_case(TLSPOL_QUERY) {
            Some(false)
        } else if map.eq_ignore_ascii_case(TLSPOL_QUERY_WITH_TLSRPT) {
            Some(true)
        } else {
            return self.default_zone;
        };
        Zone {
            tlsrpt,
            ..self.default_zone
        }
    }

    /// Resolver settings from this config.
    pub fn resolver_settings(&self) -> ResolverSettings {
        let r = &self.resolver;
        ResolverSettings {
            cache: CacheSettings {
                txt_grace: r.txt_grace,
                negative_ttl: r.negative_ttl,
                fetch_backoff: r.fetch_backoff,
                refresh_interval: r.refresh_interval,
            },
            memory_capacity: r.memory_capacity,
            refresh: r.refresh,
            refresh_tick: Duration::from_secs(r.refresh_tick.max(1)),
            refresh_concurrency: r.refresh_concurrency.max(1),
            ..ResolverSettings::default()
        }
    }
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
        assert!(PostfixVersion::try_from("3.x".to_string()).is_err());
        let c: Config = toml::from_str("postfix_version = \"3.10.5\"").unwrap_or_default();
        assert_eq!(c.postfix_version, PostfixVersion::Known(v("3.10.5")));
        assert!(toml::from_str::<Config>("postfix_version = \"new\"").is_err());
    }

    #[test]
    fn tlsrpt_default_follows_the_version_and_older_postfix_never_gets_it() {
        let unset = Zone::default();
        let on = Zone {
            tlsrpt: Some(true),
            ..Zone::default()
        };
        let off = Zone {
            tlsrpt: Some(false),
            ..Zone::default()
        };
        let new = PostfixVersion::Known(v("3.10.0"));
        let old = PostfixVersion::Known(v("3.9.2"));
        assert!(unset.tlsrpt_for(new) && on.tlsrpt_for(new) && !off.tlsrpt_for(new));
        assert!(!unset.tlsrpt_for(old) && !on.tlsrpt_for(old) && !off.tlsrpt_for(old));
        for unknown in [PostfixVersion::Auto, PostfixVersion::Unknown] {
            assert!(!unset.tlsrpt_for(unknown) && on.tlsrpt_for(unknown));
        }
    }

    #[test]
    fn tlspol_map_names_are_built_in_and_a_section_of_that_name_wins() {
        let mut c = Config::default();
        c.default_zone.strict_testing = true;
        let q = c.zone("query");
        assert_eq!((q.tlsrpt, q.strict_testing), (Some(false), true));
        assert_eq!(c.zone("QUERYwithTLSRPT").tlsrpt, Some(true));
        assert_eq!(c.zone("postfix"), c.default_zone);
        c.zones.insert(
            "QUERY".into(),
            Zone {
                timeout: 1.0,
                ..Zone::default()
            },
        );
        assert_eq!(c.zone("QUERY").timeout, 1.0);
    }

    #[test]
    fn auto_is_resolved_once_and_a_failure_is_explained() {
        let mut c = Config::default();
        let notes = c.detect_postfix(|| Err("running postconf: not found".into()));
        assert_eq!(c.postfix_version, PostfixVersion::Unknown);
        assert!(
            notes[0].contains("running postconf: not found"),
            "{notes:?}"
        );
        let mut c = Config {
            postfix_version: PostfixVersion::Known(v("3.8.1")),
            ..Config::default()
        };
        let notes = c.detect_postfix(|| panic!("a set version is not detected"));
        assert!(notes.is_empty());
    }
}
