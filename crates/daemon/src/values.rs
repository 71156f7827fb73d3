//! The typed values of the daemon's configuration, each parsed once where its text is read:
//! listen addresses, socket modes, log formats, and durations (`"4s"` or a number of seconds).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a configuration value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("`{0}` is neither IP:PORT nor unix:/path")]
    /// Neither `IP:PORT` nor `unix:/path`.
    Listen(String),
    #[error("`unix:` needs a socket path (an empty one would be an abstract socket)")]
    /// `unix:` without a path.
    EmptyUnixPath,
    #[error("`{0}` is not an octal mode such as \"0660\"")]
    /// Not an octal mode.
    Mode(String),
    #[error("`{0}`: expected `text` or `json`")]
    /// Neither `text` nor `json`.
    LogFormat(String),
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket path (`unix:/path`).
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.strip_prefix("unix:") {
            Some("") => Err(ValueError::EmptyUnixPath),
            Some(path) => Ok(Self::Unix(PathBuf::from(path))),
            None => s
                .parse()
                .map(Self::Tcp)
                .map_err(|_| ValueError::Listen(s.to_string())),
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => a.fmt(f),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A unix socket's permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketMode(pub u32);

impl FromStr for SocketMode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Self)
            .ok_or_else(|| ValueError::Mode(s.to_string()))
    }
}

impl std::fmt::Display for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(ValueError::LogFormat(other.to_string())),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Serde through `FromStr` and `Display`: the value is written as its text.
pub mod text {
    use super::*;

    /// Writes the value as its text.
    pub fn serialize<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Reads the value from its text.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! text_serde {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                text::serialize(self, s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                text::deserialize(d)
            }
        }
    )*};
}

text_serde!(ListenAddr, SocketMode, LogFormat);

/// Durations as humantime text (`"4s"`, `"1m 30s"`, `"250ms"`) or a number of seconds
/// (integer or fraction, as older files have them); written back as humantime text.
pub mod duration {
    use super::*;

    /// Writes the duration as humantime text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    /// Reads humantime text or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Visitor)
    }

    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration such as \"4s\" or \"1m 30s\", or a number of seconds")
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("{v} s: a duration cannot be negative")))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(v).map_err(|_| {
                let shown = if v.abs() >= 1e9 {
                    format!("{v:e}")
                } else {
                    format!("{v}")
                };
                E::custom(format!("{shown} is not a usable number of seconds"))
            })
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            humantime::parse_duration(v).map_err(|e| E::custom(format!("`{v}`: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct D {
        #[serde(with = "duration")]
        d: Duration,
    }

    fn d(toml_text: &str) -> Result<Duration, String> {
        toml::from_str::<D>(toml_text)
            .map(|v| v.d)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_from_text_and_numbers() {
        assert_eq!(d("d = \"4s\""), Ok(Duration::from_secs(4)));
        assert_eq!(d("d = \"1m 30s\""), Ok(Duration::from_secs(90)));
        assert_eq!(d("d = \"250ms\""), Ok(Duration::from_millis(250)));
        assert_eq!(d("d = 4"), Ok(Duration::from_secs(4)));
        assert_eq!(d("d = 0.5"), Ok(Duration::from_millis(500)));
        assert!(d("d = -1").is_err_and(|e| e.contains("negative")));
        assert!(d("d = 1e300").is_err_and(|e| e.contains("not a usable number")));
        assert!(d("d = \"soon\"").is_err_and(|e| e.contains("`soon`")));
        let text = toml::to_string(&D {
            d: Duration::from_millis(1500),
        })
        .unwrap_or_default();
        assert_eq!(text.trim(), "d = \"1s 500ms\"");
    }

    #[test]
    fn listen_addresses_modes_and_formats() {
        assert_eq!(
            "127.0.0.1:8461".parse(),
            Ok(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8461))))
        );
        assert_eq!(
            "unix:/run/s.sock".parse(),
            Ok(ListenAddr::Unix("/run/s.sock".into()))
        );
        assert_eq!(
            "unix:".parse::<ListenAddr>(),
            Err(ValueError::EmptyUnixPath)
        );
        assert!("localhost:25".parse::<ListenAddr>().is_err());
        assert_eq!("0660".parse(), Ok(SocketMode(0o660)));
        assert_eq!(SocketMode(0o660).to_string(), "0660");
        assert!("0999".parse::<SocketMode>().is_err());
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
