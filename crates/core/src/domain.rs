//! Domain names in the one form every comparison, cache key and URL uses:
//! A-labels, ASCII lowercase, no trailing root dot (checklist `norm()`, DOM-05).

use compact_str::CompactString;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest domain name in presentation form without the root dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a usable host or domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("empty name")]
    /// The empty name.
    Empty,
    #[error("`{0}` is an IP address literal; MTA-STS applies to domain names only (RFC 8461 §3.4)")]
    /// An IP address, not a domain name.
    IpLiteral(String),
    #[error("`{name}` has an empty label (two dots in a row, or a leading dot)")]
    /// A label is empty (`a..b`).
    EmptyLabel {
        /// The name as given.
        name: String,
    },
    #[error("label `{label}` in `{name}` is longer than 63 octets")]
    /// A label is longer than 63 bytes.
    LabelTooLong {
        /// The name as given.
        name: String,
        /// The label.
        label: String,
    },
    #[error("`{name}` is longer than 253 octets")]
    /// The name is longer than 253 bytes.
    NameTooLong {
        /// The name as given.
        name: String,
    },
    #[error(
        "label `{label}` in `{name}` is not LDH: only letters, digits and `-`, not starting or ending with `-` (RFC 5321 Domain)"
    )]
    /// A label has characters other than letters, digits and inner hyphens.
    NotLdh {
        /// The name as given.
        name: String,
        /// The label.
        label: String,
    },
    #[error("`{name}` is not a valid internationalised domain name (IDNA/UTS-46)")]
    /// An internationalised name that does not convert to A-labels.
    InvalidIdn {
        /// The name as given.
        name: String,
    },
    #[error(
        "`{name}` contains a U-label; write it as A-labels (`{suggestion}`) as RFC 8461 §3.2 requires"
    )]
    /// A U-label where only A-labels are allowed.
    ULabel {
        /// The name as given.
        name: String,
        /// Its A-label form.
        suggestion: String,
    },
    #[error("`{name}` has an all-numeric top-level label")]
    /// The top-level label is all digits.
    NumericTld {
        /// The name as given.
        name: String,
    },
}

/// A normalised domain name: A-labels, lowercase, no trailing dot. Names of up to 24 bytes
/// (most) are held inline: parsing a Postfix key and caching a name allocate nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(CompactString);

impl DomainName {
    /// Normalises a host or domain name as found in DNS data, configuration or a Postfix key.
    /// U-labels are converted to A-labels; one trailing root dot is removed; IP literals are refused.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        reject_ip_literal(trimmed)?;
        let ascii = if trimmed.is_ascii() {
            let mut lower = CompactString::from(trimmed);
            lower.make_ascii_lowercase();
            lower
        } else {
            idna::domain_to_ascii_strict(trimmed)
                .map(CompactString::from)
                .map_err(|_| DomainError::InvalidIdn {
                    name: trimmed.to_string(),
                })?
        };
        check_ldh(&ascii)?;
        check_a_labels(&ascii)?;
        Ok(Self(ascii))
    }

    /// Parses a name that must already be written in A-labels (policy `mx` values).
    /// Upper case is accepted and folded; a U-label is an error naming the A-label form.
    pub fn parse_a_label(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if !trimmed.is_ascii() {
            let suggestion = idna::domain_to_ascii_strict(trimmed)
                .unwrap_or_else(|_| "no valid A-label form".to_string());
            return Err(DomainError::ULabel {
                name: trimmed.to_string(),
                suggestion,
            });
        }
        Self::parse(input)
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, left to right.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// The name with its left-most label removed, if it has more than one label.
    pub fn parent(&self) -> Option<&str> {
        self.0.split_once('.').map(|(_, rest)| rest)
    }

    /// `_mta-sts.<domain>`, the discovery name (TXT-01).
    pub fn mta_sts_txt_name(&self) -> String {
        format!("_mta-sts.{}", self.0)
    }

    /// `mta-sts.<domain>`, the policy host (FETCH-01).
    pub fn policy_host(&self) -> String {
        format!("mta-sts.{}", self.0)
    }

    /// The policy URL (FETCH-01).
    pub fn policy_url(&self) -> String {
        format!("https://mta-sts.{}/.well-known/mta-sts.txt", self.0)
    }

    /// `_smtp._tls.<domain>`, the TLS-RPT record name (RFC 8460 §3).
    pub fn tlsrpt_txt_name(&self) -> String {
        format!("_smtp._tls.{}", self.0)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn reject_ip_literal(name: &str) -> Result<(), DomainError> {
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(name);
    let unprefixed = unbracketed
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("ipv6:"))
        .map_or(unbracketed, |_| &unbracketed[5..]);
    if name.starts_with('[')
        || unprefixed.parse::<Ipv4Addr>().is_ok()
        || unprefixed.parse::<Ipv6Addr>().is_ok()
    {
        return Err(DomainError::IpLiteral(name.to_string()));
    }
    Ok(())
}

pub(crate) fn check_ldh(name: &str) -> Result<(), DomainError> {
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::NameTooLong {
            name: name.to_string(),
        });
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel {
                name: name.to_string(),
            });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainError::LabelTooLong {
                name: name.to_string(),
                label: label.to_string(),
            });
        }
        let ldh = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ldh || label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::NotLdh {
                name: name.to_string(),
                label: label.to_string(),
            });
        }
        last = label;
    }
    if name.contains('.') && last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NumericTld {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Labels written as `xn--…` must decode as valid Punycode under IDNA rules.
fn check_a_labels(name: &str) -> Result<(), DomainError> {
    let has_a_label = name.split('.').any(|l| l.starts_with("xn--"));
    if has_a_label && idna::domain_to_ascii_strict(name).ok().as_deref() != Some(name) {
        return Err(DomainError::InvalidIdn {
            name: name.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_dot() {
        assert_eq!(
            DomainName::parse("MAIL.Example.COM.").map(|d| d.0.to_string()),
            Ok("mail.example.com".to_string())
        );
    }

    #[test]
    fn converts_u_labels() {
        assert_eq!(
            DomainName::parse("bücher.example").map(|d| d.0.to_string()),
            Ok("xn--bcher-kva.example".to_string())
        );
        assert!(matches!(
            DomainName::parse_a_label("bücher.example"),
            Err(DomainError::ULabel { suggestion, .. }) if suggestion == "xn--bcher-kva.example"
        ));
    }

    #[test]
    fn refuses_ip_literals_and_bad_labels() {
        for bad in [
            "192.0.2.1",
            "[192.0.2.1]",
            "[ipv6:2001:db8::1]",
            "2001:db8::1",
        ] {
            assert!(
                matches!(DomainName::parse(bad), Err(DomainError::IpLiteral(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            DomainName::parse("a..b"),
            Err(DomainError::EmptyLabel { .. })
        ));
        assert!(matches!(
            DomainName::parse("-a.b"),
            Err(DomainError::NotLdh { .. })
        ));
        assert!(matches!(
            DomainName::parse("xn--zz.example"),
            Err(DomainError::InvalidIdn { .. })
        ));
        assert_eq!(DomainName::parse("."), Err(DomainError::Empty));
    }
}
