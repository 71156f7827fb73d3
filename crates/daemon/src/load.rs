//! Reading a configuration file: TOML, or a postfix-mta-sts-resolver YAML file (by extension),
//! then the checks serde cannot make. Every error names the file or the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mtasts_core::{DomainPattern, TrustMode};
use mtasts_resolver::trust::DEFAULT_WEB_PKI_BUNDLE;
use mtasts_resolver::{RuleError, TrustSpec, TrustTable};

use crate::config::Config;
use crate::pmsr::{self, PmsrError};
use crate::values::ListenAddr;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading {}", path.display())]
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    /// The file is not valid TOML.
    Toml {
        /// The file.
        path: PathBuf,
        #[source]
        /// The parser's error, with line and column.
        source: Box<toml::de::Error>,
    },
    #[error("{}: {field}", path.display())]
    /// A value does not fit its field.
    Field {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `default_zone.timeout`.
        field: String,
        #[source]
        /// The parser's error, with line and column.
        source: Box<toml::de::Error>,
    },
    #[error("{} (a postfix-mta-sts-resolver file)", path.display())]
    /// A postfix-mta-sts-resolver file that cannot be mapped.
    Pmsr {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: PmsrError,
    },
    #[error("{field}: {reason}")]
    /// A value parses but is not allowed.
    Invalid {
        /// The dotted field.
        field: String,
        /// The rule it breaks.
        reason: String,
    },
    #[error("trust rule `{rule}`")]
    /// A `[[trust]]` rule's anchors could not be read or used.
    Trust {
        /// The rule's name.
        rule: String,
        #[source]
        /// Why.
        source: mtasts_resolver::TrustError,
    },
}

/// How long a timeout may be: more than zero, at most `max`.
const ZONE_TIMEOUT_MAX: Duration = Duration::from_secs(99);
const DNS_TIMEOUT_MAX: Duration = Duration::from_secs(60);
const FETCH_TIMEOUT_MAX: Duration = Duration::from_secs(600);
const SHUTDOWN_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

impl Config {
    /// Reads a TOML config, or a postfix-mta-sts-resolver YAML one (`.yml`/`.yaml`). Returns
    /// the config and warnings about options that were not carried over.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        let (config, warnings) = if is_yaml {
            pmsr::from_yaml(&text).map_err(|source| ConfigError::Pmsr {
                path: path.to_path_buf(),
                source,
            })?
        } else {
            (from_toml(path, &text)?, Vec::new())
        };
        config.validate()?;
        Ok((config, warnings))
    }

    /// Checks what the types cannot: at least one listener, timeouts in range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(invalid("listen", "at least one listener is needed"));
        }
        if let Some(ListenAddr::Unix(p)) = self
            .listen
            .iter()
            .find(|l| matches!(l, ListenAddr::Unix(p) if p.file_name().is_none()))
        {
            return Err(invalid(
                "listen",
                format!("unix:{} names a directory, not a socket", p.display()),
            ));
        }
        for (name, z) in self.named_zones() {
            in_range(&format!("{name}.timeout"), z.timeout, ZONE_TIMEOUT_MAX)?;
            if z.remember_tls != mtasts_core::decision::RememberMode::Off {
                if !z.dane {
                    return Err(invalid(
                        &format!("{name}.remember_tls"),
                        "needs dane = true in the zone: an `encrypt` answer given without the DANE check would override Postfix's own DANE",
                    ));
                }
                if self.cache == mtasts_store::CacheSpec::Memory {
                    return Err(invalid(
                        &format!("{name}.remember_tls"),
                        "needs a cache that keeps the memory (sqlite:PATH or redis://…), not memory",
                    ));
                }
            }
        }
        for (i, e) in self.remember.exempt.iter().enumerate() {
            if mtasts_core::DomainName::parse(e).is_err() {
                return Err(invalid(
                    &format!("remember.exempt[{i}]"),
                    format!("`{e}` is not a domain"),
                ));
            }
        }
        if self.remember.min_deliveries == 0 {
            return Err(invalid("remember.min_deliveries", "at least 1"));
        }
        if self.remember.max_age.is_zero() || self.remember.reload_interval.is_zero() {
            return Err(invalid(
                "remember",
                "max_age and reload_interval must be more than 0",
            ));
        }
        in_range(
            "resolver.dns_timeout",
            self.resolver.dns_timeout,
            DNS_TIMEOUT_MAX,
        )?;
        in_range(
            "resolver.fetch_timeout",
            self.resolver.fetch_timeout,
            FETCH_TIMEOUT_MAX,
        )?;
        in_range(
            "shutdown_timeout",
            self.shutdown_timeout,
            SHUTDOWN_TIMEOUT_MAX,
        )?;
        in_range("idle_timeout", self.idle_timeout, SHUTDOWN_TIMEOUT_MAX)?;
        if self.max_connections == 0 {
            return Err(invalid(
                "max_connections",
                "at least one connection is needed",
            ));
        }
        self.trust_specs()?;
        Ok(())
    }

    /// The `[[trust]]` rules as the resolver takes them, each checked: known mode, valid
    /// domain patterns, at least one anchor, file names Postfix can take in `tafile=`.
    pub fn trust_specs(&self) -> Result<Vec<TrustSpec>, ConfigError> {
        let mut names = std::collections::HashSet::new();
        self.trust
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let field = |f: &str| format!("trust[{i}] ({}).{f}", rule.name);
                if rule.name.is_empty()
                    || !rule
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(invalid(
                        &field("name"),
                        "a name of letters, digits, `-`, `_` and `.` is needed",
                    ));
                }
                if !names.insert(rule.name.as_str()) {
                    return Err(invalid(&field("name"), "two rules have this name"));
                }
                let mode = match rule.mode.as_str() {
                    "only" => TrustMode::Only,
                    "additional" => TrustMode::Additional,
                    other => {
                        return Err(invalid(
                            &field("mode"),
                            format!("`{other}`: `only` or `additional`"),
                        ));
                    }
                };
                if rule.domains.is_empty() {
                    return Err(invalid(&field("domains"), "at least one domain is needed"));
                }
                let domains = rule
                    .domains
                    .iter()
                    .map(|d| {
                        DomainPattern::parse(d).map_err(|e| {
                            invalid(&field("domains"), format!("`{d}`: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if rule.anchors.is_empty() {
                    return Err(invalid(&field("anchors"), "at least one PEM file is needed"));
                }
                // Postfix splits `tafile=` at commas and white space.
                let postfix_safe = |p: &Path| {
                    let s = p.to_string_lossy();
                    p.is_absolute() && !s.contains(|c: char| c == ',' || c.is_whitespace())
                };
                if let Some(bad) = rule.anchors.iter().find(|p| !postfix_safe(p)) {
                    return Err(invalid(
                        &field("anchors"),
                        format!(
                            "{}: an absolute path without commas or white space is needed (Postfix reads it from tafile=)",
                            bad.display()
                        ),
                    ));
                }
                match (&rule.postfix_bundle, mode) {
                    (None, TrustMode::Additional) => {
                        return Err(invalid(
                            &field("postfix_bundle"),
                            "mode \"additional\" needs a file to write Postfix's bundle to (tafile= replaces Postfix's CA file, so the bundle holds the web PKI and the anchors)",
                        ));
                    }
                    (Some(p), _) if !postfix_safe(p) => {
                        return Err(invalid(
                            &field("postfix_bundle"),
                            format!(
                                "{}: an absolute path without commas or white space is needed",
                                p.display()
                            ),
                        ));
                    }
                    _ => {}
                }
                Ok(TrustSpec {
                    name: rule.name.clone(),
                    domains,
                    mode,
                    anchors: rule.anchors.clone(),
                    postfix_bundle: rule.postfix_bundle.clone(),
                    web_pki_bundle: rule
                        .web_pki_bundle
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(DEFAULT_WEB_PKI_BUNDLE)),
                })
            })
            .collect()
    }

    /// Reads the anchors of every `[[trust]]` rule (and writes Postfix's bundles).
    pub fn trust_table(&self) -> Result<TrustTable, ConfigError> {
        let specs = self.trust_specs()?;
        TrustTable::build(&specs, self.ca_file.as_deref())
            .map_err(|RuleError { rule, source }| ConfigError::Trust { rule, source })
    }
}

/// Parses TOML, naming the dotted key of a value that does not fit.
fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Toml {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let source = Box::new(e.into_inner());
        if field == "." {
            ConfigError::Toml {
                path: path.to_path_buf(),
                source,
            }
        } else {
            ConfigError::Field {
                path: path.to_path_buf(),
                field,
                source,
            }
        }
    })
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn in_range(field: &str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value > max {
        return Err(invalid(
            field,
            format!(
                "{} is out of range: more than 0 and at most {}",
                humantime::format_duration(value),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let chain = |e: ConfigError| mtasts_core::errors::Chain(&e).to_string();
        let c = from_toml(Path::new("t.toml"), text).map_err(chain)?;
        c.validate().map_err(chain)?;
        Ok(c)
    }

    #[test]
    fn old_numbers_and_new_durations_both_load() {
        let old = parse("shutdown_timeout = 20.0\n[resolver]\ndns_timeout = 5.0\ntxt_grace = 60\n[default_zone]\ntimeout = 4.0\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let new = parse("shutdown_timeout = \"20s\"\n[resolver]\ndns_timeout = \"5s\"\ntxt_grace = \"1m\"\n[default_zone]\ntimeout = \"4s\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old, new);
        assert_eq!(new.default_zone.timeout, Duration::from_secs(4));
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            ("listen = [\"localhost:25\"]", "listen"),
            ("listen = [\"unix:\"]", "socket path"),
            ("listen = []", "at least one listener"),
            ("cache = \"postgres://x\"", "cache"),
            ("nameserver = \"8.8.8.8\"", "nameserver"),
            ("log_format = \"xml\"", "log_format"),
            ("[unix_socket]\nmode = \"rw\"", "octal mode"),
            ("[default_zone]\ntimeout = 0", "default_zone.timeout"),
            ("[zones.x]\ntimeout = \"5m\"", "zones.x.timeout"),
            ("[resolver]\nfetch_timeout = 1e300", "fetch_timeout"),
            ("[resolver]\ndns_timeout = \"0s\"", "resolver.dns_timeout"),
            ("postfix_version = \"three\"", "postfix_version"),
            ("colour = true", "colour"),
        ];
        for (text, needle) in cases {
            match parse(text) {
                Ok(c) => panic!("{text}: accepted as {c:?}"),
                Err(e) => assert!(e.contains(needle), "{text}: `{e}` does not name `{needle}`"),
            }
        }
    }

    #[test]
    fn the_effective_config_prints_as_toml_that_loads_back() {
        let c = parse("listen = [\"127.0.0.1:8461\", \"unix:/run/mtasts.sock\"]\ncache = \"redis://127.0.0.1/0\"\n[unix_socket]\nmode = \"0660\"\n[zones.strict]\nstrict_testing = true\ntimeout = 0.5\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let text = c.to_toml().unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("timeout = \"500ms\""), "{text}");
        assert!(text.contains("mode = \"0660\""), "{text}");
        assert!(text.contains("postfix_version = \"auto\""), "{text}");
        assert_eq!(parse(&text), Ok(c), "{text}");
    }
}

#[cfg(test)]
mod documented {
    use super::*;

    #[test]
    fn docs_daemon_toml_loads_and_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/daemon.toml");
        let (c, warnings) = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(warnings.is_empty());
        assert_eq!(
            c,
            Config::default(),
            "docs/daemon.toml must show the defaults"
        );
    }
}
