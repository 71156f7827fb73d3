//! The daemon's configuration, parsed once into types: one TOML file with documented defaults
//! (see `docs/daemon.toml`); `load` also maps a postfix-mta-sts-resolver YAML file onto it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mtasts_core::CacheSettings;
use mtasts_core::postfix::{MAX_REPLY_BYTES, RenderOptions};
use mtasts_resolver::ResolverSettings;
use mtasts_store::CacheSpec;
use serde::{Deserialize, Serialize};

use crate::postfix_version::{DetectError, PostfixDnssec, PostfixVersion, Version};
use crate::values::{ListenAddr, LogFormat, SocketMode, duration, text};

/// Everything the daemon needs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `IP:PORT` or `unix:/path`; several allowed.
    pub listen: Vec<ListenAddr>,
    /// `memory`, `sqlite:PATH` (`sqlite:` = the default path), `redis://…`, `rediss://…`.
    #[serde(with = "text")]
    pub cache: CacheSpec,
    /// DNS server `IP:PORT`; none = /etc/resolv.conf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nameserver: Option<SocketAddr>,
    /// Extra trusted CAs for policy hosts (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Validating resolver `IP:PORT` whose AD bit DANE checks trust; none = `nameserver`,
    /// else the first server of /etc/resolv.conf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dane_nameserver: Option<SocketAddr>,
    /// Prometheus metrics, health and decision view listener `IP:PORT` (none: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Time granted to open connections on SIGTERM.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Open connections at most; more are closed at once (keep it under the fd limit).
    pub max_connections: usize,
    /// A connection idle this long is closed (Postfix closes its own after 10 s).
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// The Postfix that asks: `auto` (ask `postconf`) or a version such as `3.10.5`. With
    /// Postfix ≥ 3.10 replies carry the TLSRPT attributes unless a zone sets `tlsrpt = false`.
    pub postfix_version: PostfixVersion,
    /// Whether that Postfix does DNSSEC lookups: `auto` (ask `postconf`), `yes` or `no`. Where
    /// it does not, zones answer as with `dane = false` (Postfix would defer `dane` answers).
    pub postfix_dnssec: PostfixDnssec,
    #[serde(skip_serializing_if = "UnixSocket::is_unset")]
    /// Unix socket ownership and mode.
    pub unix_socket: UnixSocket,
    /// Cache and fetch tunables.
    pub resolver: ResolverConfig,
    /// The zone for map names without a section of their own.
    pub default_zone: Zone,
    /// Map name (the last part of `socketmap:…:NAME`) → settings; unknown names use the
    /// default zone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub zones: BTreeMap<String, Zone>,
    /// Conditional trust: `[[trust]]` rules, each extra anchors for some policy domains only
    /// (first matching rule wins; see docs/conditional-trust.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust: Vec<TrustRule>,
    /// Listeners answering Exim (`${readsocket…}`, see docs/exim.md): `IP:PORT` or
    /// `unix:/path`; none: off.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exim_listen: Vec<ListenAddr>,
    /// The TLS-RPT collector's datagram socket (`mtasts tlsrpt collect --socket`): each
    /// failed policy fetch is sent there as a session result (none: not reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlsrpt_socket: Option<PathBuf>,
    /// Remembered TLS: the rule, exemptions, how often the memory is read again.
    pub remember: RememberConfig,
}

/// `[remember]`: when a domain is remembered to do TLS (docs/remembered-tls.md).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RememberConfig {
    /// TLS deliveries needed, with no plaintext one among them.
    pub min_deliveries: u64,
    /// Time from the first to the last of them.
    #[serde(with = "duration")]
    pub min_span: Duration,
    /// Forgotten this long after the last TLS delivery.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Domains never required to use TLS, whatever was remembered (and their subdomains).
    pub exempt: Vec<String>,
    /// How often the daemon reads the memories the learners wrote.
    #[serde(with = "duration")]
    pub reload_interval: Duration,
}

impl Default for RememberConfig {
    fn default() -> Self {
        let rule = mtasts_core::remember::Rule::default();
        Self {
            min_deliveries: rule.min_deliveries,
            min_span: Duration::from_secs(rule.min_span),
            max_age: Duration::from_secs(rule.max_age),
            exempt: Vec::new(),
            reload_interval: Duration::from_secs(30),
        }
    }
}

impl RememberConfig {
    /// The core rule.
    pub fn rule(&self) -> mtasts_core::remember::Rule {
        mtasts_core::remember::Rule {
            min_deliveries: self.min_deliveries,
            min_span: self.min_span.as_secs(),
            max_age: self.max_age.as_secs(),
        }
    }

    /// Whether `domain` (or a parent of it) is exempt.
    pub fn exempt(&self, domain: &str) -> bool {
        self.exempt.iter().any(|e| {
            let e = e.trim_end_matches('.').to_ascii_lowercase();
            domain == e
                || domain
                    .strip_suffix(e.as_str())
                    .is_some_and(|p| p.ends_with('.'))
        })
    }
}

/// One `[[trust]]` rule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrustRule {
    /// A name for logs, `mtasts query` and the bundle file.
    pub name: String,
    /// Policy domains: `example.com`, or `*.example.com` for every name below it.
    pub domains: Vec<String>,
    /// `only` (the anchors replace the web PKI for these domains) or `additional`.
    #[serde(default = "default_trust_mode")]
    pub mode: String,
    /// PEM files of CA certificates.
    pub anchors: Vec<PathBuf>,
    /// With `additional`: where to write the bundle Postfix reads (`tafile=`): the web PKI
    /// bundle followed by the anchors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postfix_bundle: Option<PathBuf>,
    /// With `additional`: the web PKI as Postfix should see it (default: Debian's bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_pki_bundle: Option<PathBuf>,
}

fn default_trust_mode() -> String {
    "only".into()
}

/// postfix-tlspol's map name for answers without TLSRPT attributes.
pub const TLSPOL_QUERY: &str = "QUERY";
/// postfix-tlspol's map name for answers with TLSRPT attributes (Postfix ≥ 3.10).
pub const TLSPOL_QUERY_WITH_TLSRPT: &str = "QUERYwithTLSRPT";

/// Ownership and mode of unix sockets.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct UnixSocket {
    /// Octal mode as a string, e.g. "0660" (default: 0666, whatever the umask).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<SocketMode>,
    /// User name or uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group name or gid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl UnixSocket {
    /// Nothing set: the defaults apply.
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

/// Cache and fetch tunables.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ResolverConfig {
    /// With a policy cached, re-check the TXT id at most this often.
    #[serde(with = "duration")]
    pub txt_grace: Duration,
    /// Reuse a negative result for this long.
    #[serde(with = "duration")]
    pub negative_ttl: Duration,
    /// After a failed fetch of an id, wait this long before fetching that id again.
    #[serde(with = "duration")]
    pub fetch_backoff: Duration,
    /// Refresh a cached policy this long after its fetch (or at half its max_age if sooner).
    #[serde(with = "duration")]
    pub refresh_interval: Duration,
    /// Proactive refresh in the background.
    pub refresh: bool,
    /// How often the refresher looks for due policies.
    #[serde(with = "duration")]
    pub refresh_tick: Duration,
    /// How many policies it refreshes at once.
    pub refresh_concurrency: usize,
    /// Domains with a policy held in the memory tier (as many negative results besides, in
    /// their own bound).
    pub memory_capacity: usize,
    /// Per DNS query.
    #[serde(with = "duration")]
    pub dns_timeout: Duration,
    /// Per policy fetch, in total.
    #[serde(with = "duration")]
    pub fetch_timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        let c = CacheSettings::default();
        let r = ResolverSettings::default();
        Self {
            txt_grace: Duration::from_secs(c.txt_grace),
            negative_ttl: Duration::from_secs(c.negative_ttl),
            fetch_backoff: Duration::from_secs(c.fetch_backoff),
            refresh_interval: Duration::from_secs(c.refresh_interval),
            refresh: r.refresh,
            refresh_tick: r.refresh_tick,
            refresh_concurrency: r.refresh_concurrency,
            memory_capacity: r.memory_capacity,
            dns_timeout: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(60),
        }
    }
}

/// What a map name answers like.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Zone {
    /// Enforce `testing` policies (postfix-mta-sts-resolver's option; not RFC behaviour).
    pub strict_testing: bool,
    /// Add the Postfix ≥ 3.10 TLSRPT attributes (and exact MX-pattern enforcement ≥ 3.10.5).
    /// Unset: on exactly when [`Config::postfix_version`] is known to be ≥ 3.10. Never sent
    /// to a Postfix known to be older, which rejects them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlsrpt: Option<bool>,
    /// Add `servername=hostname` so Postfix sends SNI (Postfix ≥ 3.4). On by default.
    pub require_sni: bool,
    /// Answer deadline: after it, answer from what is known and keep fetching in the
    /// background.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// With no cached policy, a DNS failure or failed fetch answers `TEMP` (defer) instead of
    /// `NOTFOUND` (deliver without MTA-STS, as RFC 8461 §3.3 says).
    pub defer_on_failure: bool,
    /// Check DANE first: DNSSEC-validated TLSA for the MX hosts answers `dane-only`/`dane`
    /// instead of an MTA-STS `secure` policy (RFC 8461 §2: DANE takes precedence).
    pub dane: bool,
    /// Remembered TLS where neither DANE nor MTA-STS applies: `off`, `report` (log and count
    /// what would be required) or `enforce` (Postfix `encrypt`, Exim `mode="encrypt"`).
    pub remember_tls: mtasts_core::decision::RememberMode,
}

impl Default for Zone {
    fn default() -> Self {
        Self {
            strict_testing: false,
            tlsrpt: None,
            require_sni: true,
            timeout: Duration::from_secs(4),
            defer_on_failure: false,
            dane: true,
            remember_tls: mtasts_core::decision::RememberMode::Off,
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
        self.timeout
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8461)))],
            cache: CacheSpec::Sqlite(None),
            nameserver: None,
            ca_file: None,
            dane_nameserver: None,
            metrics_listen: None,
            log_format: LogFormat::Text,
            shutdown_timeout: Duration::from_secs(20),
            max_connections: 1_000,
            idle_timeout: Duration::from_secs(30),
            postfix_version: PostfixVersion::Auto,
            postfix_dnssec: PostfixDnssec::Auto,
            unix_socket: UnixSocket::default(),
            resolver: ResolverConfig::default(),
            default_zone: Zone::default(),
            zones: BTreeMap::new(),
            trust: Vec::new(),
            exim_listen: Vec::new(),
            tlsrpt_socket: None,
            remember: RememberConfig::default(),
        }
    }
}

impl Config {
    /// Resolves `postfix_version = "auto"` with `detect` (normally
    /// [`crate::postconf_mail_version`]), and says what operators should know: detection
    /// failures, and zones whose `tlsrpt = true` an older Postfix would reject (those
    /// attributes are then not sent).
    pub fn detect_postfix(
        &mut self,
        detect: impl FnOnce() -> Result<Version, DetectError>,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if self.postfix_version == PostfixVersion::Auto {
            self.postfix_version = match detect() {
                Ok(v) => PostfixVersion::Known(v),
                Err(e) => {
                    notes.push(format!(
                        "postfix_version = \"auto\": {}; TLSRPT attributes are sent only where a zone sets tlsrpt = true (set postfix_version where Postfix runs on another host)",
                        mtasts_core::errors::Chain(&e)
                    ));
                    PostfixVersion::Unknown
                }
            };
        }
        if let PostfixVersion::Known(v) = self.postfix_version
            && v < Version::TLSRPT
        {
            for (name, z) in self.named_zones() {
                if z.tlsrpt == Some(true) {
                    notes.push(format!(
                        "{name}.tlsrpt = true, but Postfix {v} rejects the TLSRPT attributes (3.10 or later needed): not sent"
                    ));
                }
            }
        }
        notes
    }

    /// Resolves `postfix_dnssec = "auto"` with `detect` (normally
    /// [`crate::postconf_dnssec`]), and says what operators should know.
    pub fn detect_dnssec(
        &mut self,
        detect: impl FnOnce() -> Result<bool, DetectError>,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if self.postfix_dnssec == PostfixDnssec::Auto {
            self.postfix_dnssec = match detect() {
                Ok(true) => PostfixDnssec::Yes,
                Ok(false) => PostfixDnssec::No,
                Err(e) => {
                    notes.push(format!(
                        "postfix_dnssec = \"auto\": {}; DANE answers are given, which Postfix defers unless smtp_dns_support_level = dnssec (set postfix_dnssec where Postfix runs on another host)",
                        mtasts_core::errors::Chain(&e)
                    ));
                    PostfixDnssec::Unknown
                }
            };
        }
        if self.postfix_dnssec == PostfixDnssec::No && self.named_zones().any(|(_, z)| z.dane) {
            notes.push(
                "Postfix does not do DNSSEC lookups (smtp_dns_support_level is not dnssec): DANE answers are off, domains get their MTA-STS answers; set smtp_dns_support_level = dnssec in main.cf to let DANE take precedence".into(),
            );
        }
        notes
    }

    /// The default zone and every `[zones.NAME]`, with the names their settings go by.
    pub fn named_zones(&self) -> impl Iterator<Item = (String, &Zone)> {
        std::iter::once(("default_zone".to_string(), &self.default_zone))
            .chain(self.zones.iter().map(|(n, z)| (format!("zones.{n}"), z)))
    }

    /// The settings that differ in `new` but are fixed while the daemon runs: everything but
    /// the zones, `postfix_version` and `idle_timeout` (which a reload applies at once; new
    /// connections get the new idle timeout).
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut differs = |name, changed: bool| {
            if changed {
                out.push(name);
            }
        };
        differs("listen", self.listen != new.listen);
        differs("cache", self.cache != new.cache);
        differs("nameserver", self.nameserver != new.nameserver);
        differs("ca_file", self.ca_file != new.ca_file);
        differs(
            "dane_nameserver",
            self.dane_nameserver != new.dane_nameserver,
        );
        differs("metrics_listen", self.metrics_listen != new.metrics_listen);
        differs("tlsrpt_socket", self.tlsrpt_socket != new.tlsrpt_socket);
        differs("exim_listen", self.exim_listen != new.exim_listen);
        differs("log_format", self.log_format != new.log_format);
        differs(
            "shutdown_timeout",
            self.shutdown_timeout != new.shutdown_timeout,
        );
        differs(
            "max_connections",
            self.max_connections != new.max_connections,
        );
        differs("unix_socket", self.unix_socket != new.unix_socket);
        differs("resolver", self.resolver != new.resolver);
        // DANE checks exist only if some zone had them at start.
        let dane =
            |c: &Config| c.postfix_dnssec.dane_answers() && c.named_zones().any(|(_, z)| z.dane);
        differs("dane (first zone to turn it on)", !dane(self) && dane(new));
        out
    }

    /// Rendering options for replies under `zone`.
    pub fn render_options(&self, zone: &Zone) -> RenderOptions {
        zone.render_options(self.postfix_version)
    }

    /// The zone for a map name: a `[zones.NAME]` section; else postfix-tlspol's map names
    /// (any case), `QUERY` (no TLSRPT attributes) and `QUERYwithTLSRPT` (with them, for
    /// Postfix ≥ 3.10), as the default zone otherwise; else the default zone.
    pub fn zone(&self, map: &str) -> Zone {
        let zone = self.named_zone(map);
        // Never answer a level Postfix cannot apply.
        Zone {
            dane: zone.dane && self.postfix_dnssec.dane_answers(),
            ..zone
        }
    }

    fn named_zone(&self, map: &str) -> Zone {
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
                txt_grace: r.txt_grace.as_secs(),
                negative_ttl: r.negative_ttl.as_secs(),
                fetch_backoff: r.fetch_backoff.as_secs(),
                refresh_interval: r.refresh_interval.as_secs(),
            },
            memory_capacity: r.memory_capacity,
            refresh: r.refresh,
            refresh_tick: r.refresh_tick.max(Duration::from_secs(1)),
            refresh_concurrency: r.refresh_concurrency.max(1),
            ..ResolverSettings::default()
        }
    }

    /// The file as TOML, every setting with its value in force (`--check-config`).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s}"))
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
                timeout: Duration::from_secs(1),
                ..Zone::default()
            },
        );
        assert_eq!(c.zone("QUERY").timeout, Duration::from_secs(1));
    }

    #[test]
    fn dane_answers_only_for_a_postfix_that_does_dnssec() {
        let mut c = Config::default();
        let notes = c.detect_dnssec(|| Ok(false));
        assert_eq!(c.postfix_dnssec, PostfixDnssec::No);
        assert!(notes[0].contains("smtp_dns_support_level"), "{notes:?}");
        assert!(!c.zone("postfix").dane && !c.zone("QUERY").dane);
        let mut c = Config::default();
        assert!(c.detect_dnssec(|| Ok(true)).is_empty());
        assert!(c.zone("postfix").dane);
        let mut c = Config::default();
        let notes = c.detect_dnssec(|| Err(DetectError::Other("no postconf".into())));
        assert_eq!(c.postfix_dnssec, PostfixDnssec::Unknown);
        assert!(
            c.zone("postfix").dane,
            "unknown: DANE answers kept, with a warning"
        );
        assert!(notes[0].contains("postfix_dnssec"), "{notes:?}");
        // Stated in the file: not detected.
        let mut c: Config = toml::from_str("postfix_dnssec = \"no\"").unwrap_or_default();
        assert!(c.detect_dnssec(|| panic!("not asked")).len() == 1);
        assert!(toml::from_str::<Config>("postfix_dnssec = \"maybe\"").is_err());
    }

    #[test]
    fn a_reload_names_what_needs_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.default_zone.strict_testing = true;
        new.postfix_version = PostfixVersion::Known(v("3.10.1"));
        new.idle_timeout = Duration::from_secs(5);
        assert!(
            old.restart_needed(&new).is_empty(),
            "zones, version, idle apply at once"
        );
        new.log_format = crate::values::LogFormat::Json;
        new.resolver.dns_timeout = Duration::from_secs(2);
        new.max_connections = 10;
        assert_eq!(
            old.restart_needed(&new),
            vec!["log_format", "max_connections", "resolver"]
        );
    }

    #[test]
    fn auto_is_resolved_once_and_a_failure_is_explained() {
        let mut c = Config::default();
        let notes =
            c.detect_postfix(|| Err(DetectError::Other("running postconf: not found".into())));
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
