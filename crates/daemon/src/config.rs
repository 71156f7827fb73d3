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
}

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
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Zone {
    /// Enforce `testing` policies (postfix-mta-sts-resolver's option; not RFC behaviour).
    pub strict_testing: bool,
    /// Add the Postfix ≥ 3.10 TLSRPT attributes (and exact MX-pattern enforcement ≥ 3.10.5).
    pub tlsrpt: bool,
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
            tlsrpt: false,
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

    /// Rendering options for core.
    pub fn render_options(&self) -> RenderOptions {
        RenderOptions {
            strict_testing: self.strict_testing,
            tlsrpt: self.tlsrpt,
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

    /// The zone for a map name.
    pub fn zone(&self, map: &str) -> &Zone {
        self.zones.get(map).unwrap_or(&self.default_zone)
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
                defer_on_dns_failure: false,
            },
            memory_capacity: r.memory_capacity,
            refresh: r.refresh,
            refresh_tick: Duration::from_secs(r.refresh_tick.max(1)),
            refresh_concurrency: r.refresh_concurrency.max(1),
            ..ResolverSettings::default()
        }
    }
}
