//! Migration: a postfix-mta-sts-resolver `mta-sts-daemon.yml` mapped onto our [`Config`], so
//! switching changes nothing in Postfix. Options we cannot carry over are named in warnings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mtasts_store::CacheSpec;
use serde_yaml::Value;

use crate::config::{Config, Zone};
use crate::values::{ListenAddr, SocketMode};

/// Why a postfix-mta-sts-resolver file cannot be mapped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PmsrError {
    #[error("not YAML")]
    /// The file is not YAML.
    Yaml(#[source] serde_yaml::Error),
    #[error("expected a YAML mapping at the top level")]
    /// The top level is not a mapping.
    NotAMapping,
    #[error("{0} is required for the {1} cache")]
    /// A required option is missing (the option, the cache type).
    Missing(&'static str, &'static str),
    #[error("cache.type `{0}` has no equivalent; use memory, sqlite or redis")]
    /// A cache type mtasts does not have.
    UnsupportedCache(String),
    #[error("host `{0}` is not an IP address (mtasts listens on addresses, not names)")]
    /// `host` is not an IP address.
    Host(String),
    #[error("{field}: {value} is not a number of seconds")]
    /// A number of seconds that is not one.
    Seconds {
        /// The option.
        field: String,
        /// The value as written.
        value: String,
    },
    #[error("mode: {0} is not an octal mode")]
    /// A socket mode that is not octal.
    Mode(String),
}

/// A number of seconds from YAML.
fn seconds(v: Option<&Value>, field: &str, default: Duration) -> Result<Duration, PmsrError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(v) => as_f64(v)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| PmsrError::Seconds {
                field: field.to_string(),
                value: format!("{v:?}"),
            }),
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(Value::String(key.to_string()))
}

fn as_f64(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_i64().map(|i| i as f64))
}

fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn zone(v: &Value, name: &str, warnings: &mut Vec<String>) -> Result<Zone, PmsrError> {
    let mut z = Zone::default();
    for key in keys(v) {
        let val = get(v, &key);
        match key.as_str() {
            "strict_testing" => z.strict_testing = val.and_then(Value::as_bool).unwrap_or(false),
            "require_sni" => z.require_sni = val.and_then(Value::as_bool).unwrap_or(true),
            "timeout" => z.timeout = seconds(val, &format!("{name}.timeout"), z.timeout)?,
            // pmsr never checks DANE; mtasts does unless told otherwise.
            other => warnings.push(format!("{name}.{other}: not supported, ignored")),
        }
    }
    Ok(z)
}

/// Maps the YAML text; returns the config and the warnings.
pub fn from_yaml(text: &str) -> Result<(Config, Vec<String>), PmsrError> {
    let root: Value = serde_yaml::from_str(text).map_err(PmsrError::Yaml)?;
    if !root.is_mapping() && !root.is_null() {
        return Err(PmsrError::NotAMapping);
    }
    let mut c = Config {
        cache: CacheSpec::Memory,
        ..Config::default()
    };
    let mut warnings = Vec::new();
    let host = get(&root, "host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1");
    let port = get(&root, "port").and_then(Value::as_u64).unwrap_or(8461);
    let port = u16::try_from(port).map_err(|_| PmsrError::Host(format!("{host}:{port}")))?;
    c.listen = match get(&root, "path").and_then(Value::as_str) {
        Some(path) => vec![ListenAddr::Unix(PathBuf::from(path))],
        None => {
            let ip = host
                .parse::<std::net::IpAddr>()
                .map_err(|_| PmsrError::Host(host.to_string()))?;
            vec![ListenAddr::Tcp(SocketAddr::new(ip, port))]
        }
    };
    if let Some(mode) = get(&root, "mode") {
        // PyYAML (which pmsr uses) reads `0666` as octal 438; a YAML 1.2 reader sees 666.
        // Either way the mode meant is 0o666: digits 0-7 are taken as written.
        let text = match mode {
            Value::Number(n) => n.as_u64().map(|m| {
                let decimal = m.to_string();
                if decimal.bytes().all(|b| (b'0'..=b'7').contains(&b)) && m <= 777 {
                    decimal
                } else {
                    format!("{m:o}")
                }
            }),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        c.unix_socket.mode = text
            .map(|t| t.parse::<SocketMode>().map_err(|_| PmsrError::Mode(t)))
            .transpose()?;
    }
    for key in keys(&root) {
        let v = get(&root, &key).unwrap_or(&Value::Null);
        match key.as_str() {
            "host" | "port" | "path" | "mode" => {}
            "reuse_port" => warnings.push(
                "reuse_port: not needed (one process serves all connections), ignored".into(),
            ),
            "shutdown_timeout" => {
                c.shutdown_timeout = seconds(Some(v), "shutdown_timeout", c.shutdown_timeout)?;
            }
            "cache_grace" => {
                c.resolver.txt_grace = seconds(Some(v), "cache_grace", c.resolver.txt_grace)?;
            }
            "cache" => {
                let kind = get(v, "type").and_then(Value::as_str).unwrap_or("internal");
                let opts = get(v, "options").cloned().unwrap_or(Value::Null);
                match kind {
                    "internal" => {
                        c.cache = CacheSpec::Memory;
                        if let Some(size) = get(&opts, "cache_size").and_then(Value::as_u64) {
                            c.resolver.memory_capacity =
                                usize::try_from(size).unwrap_or(usize::MAX);
                        }
                    }
                    "sqlite" => match get(&opts, "filename").and_then(Value::as_str) {
                        Some(f) => c.cache = CacheSpec::Sqlite(Some(PathBuf::from(f))),
                        None => return Err(PmsrError::Missing("cache.options.filename", "sqlite")),
                    },
                    "redis" => match get(&opts, "url")
                        .or_else(|| get(&opts, "address"))
                        .and_then(Value::as_str)
                    {
                        Some(url) => c.cache = CacheSpec::Redis(url.to_string()),
                        None => return Err(PmsrError::Missing("cache.options.url", "redis")),
                    },
                    other => return Err(PmsrError::UnsupportedCache(other.to_string())),
                }
                for k in keys(&opts) {
                    if !matches!(k.as_str(), "cache_size" | "filename" | "url" | "address") {
                        warnings.push(format!("cache.options.{k}: not supported, ignored"));
                    }
                }
            }
            "proactive_policy_fetching" => {
                c.resolver.refresh = get(v, "enabled").and_then(Value::as_bool).unwrap_or(false);
                if let Some(n) = get(v, "concurrency_limit").and_then(Value::as_u64) {
                    c.resolver.refresh_concurrency = usize::try_from(n).unwrap_or(usize::MAX);
                }
                if let Some(i) = get(v, "interval").and_then(Value::as_u64) {
                    c.resolver.refresh_interval = Duration::from_secs(i);
                }
                if get(v, "grace_ratio").is_some() {
                    warnings.push("proactive_policy_fetching.grace_ratio: refreshes are scheduled per policy (after refresh_interval or half its max_age), ignored".into());
                }
            }
            "default_zone" => c.default_zone = zone(v, "default_zone", &mut warnings)?,
            "zones" => {
                for name in keys(v) {
                    let z = zone(
                        get(v, &name).unwrap_or(&Value::Null),
                        &format!("zones.{name}"),
                        &mut warnings,
                    )?;
                    c.zones.insert(name, z);
                }
            }
            other => warnings.push(format!("{other}: unknown option, ignored")),
        }
    }
    Ok((c, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ListenAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn maps_the_documented_example() {
        let yaml = "host: 127.0.0.1\nport: 8461\nreuse_port: true\nshutdown_timeout: 20\nproactive_policy_fetching:\n  enabled: true\n  interval: 86400\n  concurrency_limit: 100\n  grace_ratio: 2\ncache:\n  type: internal\n  options:\n    cache_size: 10000\ndefault_zone:\n  strict_testing: false\n  timeout: 4\nzones:\n  myzone:\n    strict_testing: true\n    timeout: 4\n";
        let (c, warnings) = from_yaml(yaml).expect("maps");
        assert_eq!(c.listen, vec![addr("127.0.0.1:8461")]);
        assert_eq!(c.cache, CacheSpec::Memory);
        assert_eq!(c.resolver.memory_capacity, 10_000);
        assert!(c.resolver.refresh);
        assert_eq!(c.resolver.refresh_concurrency, 100);
        assert!(c.zones["myzone"].strict_testing);
        assert!(c.default_zone.require_sni);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn maps_timings_and_sni_with_values_other_than_the_defaults() {
        // Each value differs from mtasts' default, so a key read wrongly or not at all shows.
        let yaml = "shutdown_timeout: 7\ncache_grace: 45\ndefault_zone:\n  timeout: 2.5\n  require_sni: false\nzones:\n  slow:\n    timeout: 9\n    require_sni: true\n";
        let (c, warnings) = from_yaml(yaml).expect("maps");
        let d = Config::default();
        assert_ne!(d.shutdown_timeout, Duration::from_secs(7));
        assert_ne!(d.resolver.txt_grace, Duration::from_secs(45));
        assert_ne!(d.default_zone.timeout, Duration::from_millis(2500));
        assert!(d.default_zone.require_sni);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(7));
        assert_eq!(c.resolver.txt_grace, Duration::from_secs(45));
        assert_eq!(c.default_zone.timeout, Duration::from_millis(2500));
        assert!(!c.default_zone.require_sni);
        assert_eq!(c.zones["slow"].timeout, Duration::from_secs(9));
        assert!(c.zones["slow"].require_sni);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn maps_unix_socket_sqlite_and_redis() {
        let (c, _) = from_yaml("path: /run/mta-sts.sock\nmode: 0666\ncache:\n  type: sqlite\n  options:\n    filename: /var/lib/mta-sts/cache.db\n").expect("maps");
        assert_eq!(c.listen, vec![addr("unix:/run/mta-sts.sock")]);
        assert_eq!(
            c.unix_socket.mode,
            Some(SocketMode(0o666)),
            "kept as written"
        );
        assert_eq!(
            c.cache,
            "sqlite:/var/lib/mta-sts/cache.db"
                .parse()
                .unwrap_or(CacheSpec::Memory)
        );
        let (c, _) = from_yaml("cache:\n  type: redis\n  options:\n    url: redis://127.0.0.1/0\n")
            .expect("maps");
        assert_eq!(c.cache, CacheSpec::Redis("redis://127.0.0.1/0".into()));
        assert!(from_yaml("cache:\n  type: postgres\n").is_err());
        assert!(from_yaml("cache:\n  type: sqlite\n").is_err());
    }
}
