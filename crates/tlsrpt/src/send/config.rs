//! `send`'s configuration (a TOML file), parsed once into types: who reports, how mail is
//! submitted and signed, how HTTPS reports are posted, the schedule.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtasts_core::delivery::Schedule;
use serde::Deserialize;

/// Why the configuration is unusable.
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
    #[error("{}: not a valid sending configuration", path.display())]
    /// Not TOML, or a field of the wrong form (the source names it and its line).
    Syntax {
        /// The file.
        path: PathBuf,
        #[source]
        /// What toml said.
        source: toml::de::Error,
    },
    #[error("`{field}` = {value:?}: {rule}")]
    /// A field whose value breaks a rule.
    Field {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The rule.
        rule: &'static str,
    },
    #[error("reading the DKIM key {}", path.display())]
    /// The DKIM key file could not be read.
    DkimKeyRead {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error(
        "the DKIM key {} is neither an RSA nor an Ed25519 private key in PEM (PKCS#8, or PKCS#1 for RSA)",
        path.display()
    )]
    /// The DKIM key is not a key mail-auth can sign with.
    DkimKey {
        /// The file.
        path: PathBuf,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    organization: String,
    contact: String,
    submitter: Option<String>,
    max_delay: Option<String>,
    retry_for: Option<String>,
    mail: Option<RawMail>,
    dkim: Option<RawDkim>,
    #[serde(default)]
    https: RawHttps,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    server: String,
    #[serde(default = "starttls")]
    tls: String,
    server_name: Option<String>,
    from: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timeout: Option<String>,
}

fn starttls() -> String {
    "starttls".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    domain: Option<String>,
    selector: String,
    key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttps {
    timeout: Option<String>,
    ca_file: Option<PathBuf>,
    retry_without_validation: Option<bool>,
}

/// How the connection to the submission server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// None: only to a server on loopback.
    None,
}

/// The submission server report mail goes through.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Where it listens.
    pub server: SocketAddr,
    /// The name its certificate is verified against.
    pub server_name: String,
    /// How the connection is protected.
    pub tls: MailTls,
    /// The envelope and `From:` address.
    pub from: String,
    /// SMTP AUTH (user, password), if any.
    pub credentials: Option<(String, String)>,
    /// Further CAs to trust for the submission server.
    pub ca_file: Option<PathBuf>,
    /// Bound on one submission.
    pub timeout: Duration,
}

/// The key report mail is signed with (MAIL-04), read from its file.
#[derive(Debug, Clone)]
pub struct DkimConfig {
    /// `d=`: the reporting domain.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// The key file (PEM).
    pub key_file: PathBuf,
    /// The key, PEM as read.
    pub key_pem: String,
}

/// How reports are posted to `https:` URIs.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Bound on one POST (connect, TLS, request, answer).
    pub timeout: Duration,
    /// Further CAs to trust.
    pub ca_file: Option<PathBuf>,
    /// HTTP-03: after a certificate error, post once more without validating (logged).
    pub retry_without_validation: bool,
}

/// The whole sending configuration.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// `organization-name`.
    pub organization: String,
    /// `contact-info`.
    pub contact: String,
    /// The submitter domain (MAIL-02: the domain of `contact`, unless given).
    pub submitter: String,
    /// When reports are built and retried.
    pub schedule: Schedule,
    /// Mail delivery, if configured (else `mailto:` URIs fail and are retried).
    pub mail: Option<MailConfig>,
    /// DKIM signing; required with `[mail]`.
    pub dkim: Option<DkimConfig>,
    /// HTTPS delivery.
    pub https: HttpsConfig,
}

fn duration(
    field: &'static str,
    text: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(default),
        Some(t) => humantime::parse_duration(t).map_err(|_| ConfigError::Field {
            field,
            value: t.into(),
            rule: "a duration such as 30s, 4h or 1d",
        }),
    }
}

fn domain_of(field: &'static str, address: &str) -> Result<String, ConfigError> {
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
            Ok(domain.to_ascii_lowercase())
        }
        _ => Err(ConfigError::Field {
            field,
            value: address.into(),
            rule: "an email address (local@domain)",
        }),
    }
}

impl SendConfig {
    /// Reads and checks `path` (and the files it names: DKIM key, password).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|source| ConfigError::Syntax {
            path: path.to_path_buf(),
            source,
        })?;
        let contact = raw.contact.trim_start_matches("mailto:").to_string();
        let contact_domain = domain_of("contact", &contact)?;
        let submitter = raw
            .submitter
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or(contact_domain);
        let defaults = Schedule::default();
        let schedule = Schedule {
            max_delay: duration(
                "max_delay",
                raw.max_delay.as_deref(),
                Duration::from_secs(defaults.max_delay),
            )?
            .as_secs(),
            retry_for: duration(
                "retry_for",
                raw.retry_for.as_deref(),
                Duration::from_secs(defaults.retry_for),
            )?
            .as_secs(),
            ..defaults
        };
        let mail = raw.mail.map(|m| mail_config(m, &contact)).transpose()?;
        let dkim = match raw.dkim {
            Some(d) => {
                let key_pem = std::fs::read_to_string(&d.key_file).map_err(|source| {
                    ConfigError::DkimKeyRead {
                        path: d.key_file.clone(),
                        source,
                    }
                })?;
                let config = DkimConfig {
                    domain: d.domain.unwrap_or_else(|| submitter.clone()),
                    selector: d.selector,
                    key_file: d.key_file,
                    key_pem,
                };
                super::mail::SigningKey::from_config(&config)?;
                Some(config)
            }
            None => None,
        };
        if mail.is_some() && dkim.is_none() {
            return Err(ConfigError::Field {
                field: "dkim",
                value: String::new(),
                rule: "report mail must be DKIM-signed (RFC 8460 §3, MAIL-04): add a [dkim] section",
            });
        }
        let https = HttpsConfig {
            timeout: duration(
                "https.timeout",
                raw.https.timeout.as_deref(),
                Duration::from_secs(60),
            )?,
            ca_file: raw.https.ca_file,
            retry_without_validation: raw.https.retry_without_validation.unwrap_or(true),
        };
        Ok(Self {
            organization: raw.organization,
            contact,
            submitter,
            schedule,
            mail,
            dkim,
            https,
        })
    }
}

fn mail_config(m: RawMail, contact: &str) -> Result<MailConfig, ConfigError> {
    let server: SocketAddr = m.server.parse().map_err(|_| ConfigError::Field {
        field: "mail.server",
        value: m.server.clone(),
        rule: "an address and port, e.g. 192.0.2.25:587 or [2001:db8::25]:587",
    })?;
    let tls = match m.tls.as_str() {
        "starttls" => MailTls::StartTls,
        "tls" => MailTls::Implicit,
        "none" if server.ip().is_loopback() => MailTls::None,
        other => {
            return Err(ConfigError::Field {
                field: "mail.tls",
                value: other.into(),
                rule: "starttls, tls, or none (none only for a server on loopback)",
            });
        }
    };
    let server_name = match (m.server_name, tls) {
        (Some(n), _) => n,
        (None, MailTls::None) => server.ip().to_string(),
        (None, _) => {
            return Err(ConfigError::Field {
                field: "mail.server_name",
                value: String::new(),
                rule: "the name the submission server's certificate is verified against is required with TLS",
            });
        }
    };
    let from = m.from.unwrap_or_else(|| contact.to_string());
    domain_of("mail.from", &from)?;
    let credentials = match (m.username, m.password_file) {
        (None, None) => None,
        (Some(user), Some(file)) => {
            let password = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            Some((user, password.trim_end_matches(['\r', '\n']).to_string()))
        }
        (Some(user), None) => {
            return Err(ConfigError::Field {
                field: "mail.password_file",
                value: user,
                rule: "a username needs a password_file",
            });
        }
        (None, Some(file)) => {
            return Err(ConfigError::Field {
                field: "mail.username",
                value: file.display().to_string(),
                rule: "a password_file needs a username",
            });
        }
    };
    Ok(MailConfig {
        server,
        server_name,
        tls,
        from,
        credentials,
        ca_file: m.ca_file,
        timeout: duration(
            "mail.timeout",
            m.timeout.as_deref(),
            Duration::from_secs(60),
        )?,
    })
}
