//! Migration: a postfix-mta-sts-resolver `mta-sts-daemon.yml` mapped onto our [`Config`], so
//! switching changes nothing in Postfix. Options we cannot carry over are named in warnings.

use serde_yaml::Value;

use crate::config::{Config, Zone};

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

fn zone(v: &Value, name: &str, warnings: &mut Vec<String>) -> Zone {
    let mut z = Zone::default();
    for key in keys(v) {
        let val = get(v, &key);
        match key.as_str() {
            "strict_testing" => z.strict_testing = val.and_then(Value::as_bool).unwrap_or(false),
            "require_sni" => z.require_sni = val.and_then(Value::as_bool).unwrap_or(true),
            "timeout" => z.timeout = val.and_then(as_f64).unwrap_or(4.0),
            // pmsr never checks DANE; mtasts does unless told otherwise.
            other => warnings.push(format!("{name}.{other}: not supported, ignored")),
        }
    }
    z
}

/// Maps the YAML text; returns the config and the warnings.
pub fn from_yaml(text: &str) -> Result<(Config, Vec<String>), String> {
    let root: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if !root.is_mapping() && !root.is_null() {
        return Err("expected a YAML mapping at the top level".into());
    }
    let mut c = Config {
        cache: "memory".into(),
        ..Config::default()
    };
    let mut warnings = Vec::new();
    let host = get(&root, "host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1");
    let port = get(&root, "port").and_then(Value::as_u64).unwrap_or(8461);
    c.listen = match get(&root, "path").and_then(Value::as_str) {
        Some(path) => vec![format!("unix:{path}")],
        None if host.contains(':') => vec![format!("[{host}]:{port}")],
        None => vec![format!("{host}:{port}")],
    };
    if let Some(mode) = get(&root, "mode") {
        // PyYAML (which pmsr uses) reads `0666` as octal 438; a YAML 1.2 reader sees 666.
        // Either way the mode meant is 0o666: digits 0-7 are taken as written.
        c.unix_socket.mode = match mode {
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
    }
    for key in keys(&root) {
        let v = get(&root, &key).unwrap_or(&Value::Null);
        match key.as_str() {
            "host" | "port" | "path" | "mode" => {}
            "reuse_port" => warnings.push(
                "reuse_port: not needed (one process serves all connections), ignored".into(),
            ),
            "shutdown_timeout" => c.shutdown_timeout = as_f64(v).unwrap_or(20.0),
            "cache_grace" => c.resolver.txt_grace = as_f64(v).map_or(60, |g| g.max(0.0) as u64),
            "cache" => {
                let kind = get(v, "type").and_then(Value::as_str).unwrap_or("internal");
                let opts = get(v, "options").cloned().unwrap_or(Value::Null);
                match kind {
                    "internal" => {
                        c.cache = "memory".into();
                        if let Some(size) = get(&opts, "cache_size").and_then(Value::as_u64) {
                            c.resolver.memory_capacity =
                                usize::try_from(size).unwrap_or(usize::MAX);
                        }
                    }
                    "sqlite" => match get(&opts, "filename").and_then(Value::as_str) {
                        Some(f) => c.cache = format!("sqlite:{f}"),
                        None => {
                            return Err(
                                "cache.options.filename is required for the sqlite cache".into()
                            );
                        }
                    },
                    "redis" => match get(&opts, "url")
                        .or_else(|| get(&opts, "address"))
                        .and_then(Value::as_str)
                    {
                        Some(url) => c.cache = url.to_string(),
                        None => {
                            return Err("cache.options.url is required for the redis cache".into());
                        }
                    },
                    other => {
                        return Err(format!(
                            "cache.type `{other}` has no equivalent; use memory, sqlite or redis"
                        ));
                    }
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
                    c.resolver.refresh_interval = i;
                }
                if get(v, "grace_ratio").is_some() {
                    warnings.push("proactive_policy_fetching.grace_ratio: refreshes are scheduled per policy (after refresh_interval or half its max_age), ignored".into());
                }
            }
            "default_zone" => c.default_zone = zone(v, "default_zone", &mut warnings),
            "zones" => {
                for name in keys(v) {
                    let z = zone(
                        get(v, &name).unwrap_or(&Value::Null),
                        &format!("zones.{name}"),
                        &mut warnings,
                    );
                    c.zones.insert(name, z);
                }
            }
            other => warnings.push(format!("{other}: unknown option, ignored")),
        }
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok((c, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_documented_example() {
        let yaml = "host: 127.0.0.1\nport: 8461\nreuse_port: true\nshutdown_timeout: 20\nproactive_policy_fetching:\n  enabled: true\n  interval: 86400\n  concurrency_limit: 100\n  grace_ratio: 2\ncache:\n  type: internal\n  options:\n    cache_size: 10000\ndefault_zone:\n  strict_testing: false\n  timeout: 4\nzones:\n  myzone:\n    strict_testing: true\n    timeout: 4\n";
        let (c, warnings) = from_yaml(yaml).expect("maps");
        assert_eq!(c.listen, vec!["127.0.0.1:8461".to_string()]);
        assert_eq!(c.cache, "memory");
        assert_eq!(c.resolver.memory_capacity, 10_000);
        assert!(c.resolver.refresh);
        assert_eq!(c.resolver.refresh_concurrency, 100);
        assert!(c.zones["myzone"].strict_testing);
        assert!(c.default_zone.require_sni);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn maps_unix_socket_sqlite_and_redis() {
        let (c, _) = from_yaml("path: /run/mta-sts.sock\nmode: 0666\ncache:\n  type: sqlite\n  options:\n    filename: /var/lib/mta-sts/cache.db\n").expect("maps");
        assert_eq!(c.listen, vec!["unix:/run/mta-sts.sock".to_string()]);
        assert_eq!(
            c.unix_socket.mode.as_deref(),
            Some("0666"),
            "kept as written"
        );
        assert_eq!(c.cache, "sqlite:/var/lib/mta-sts/cache.db");
        let (c, _) = from_yaml("cache:\n  type: redis\n  options:\n    url: redis://127.0.0.1/0\n")
            .expect("maps");
        assert_eq!(c.cache, "redis://127.0.0.1/0");
        assert!(from_yaml("cache:\n  type: postgres\n").is_err());
        assert!(from_yaml("cache:\n  type: sqlite\n").is_err());
    }
}
