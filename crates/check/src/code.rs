//! Finding codes: stable machine names for what `check` (and `lint`, for policy findings)
//! reports. The strings are documented in README.md and never change meaning.

use std::fmt;

use mtasts_core::advice::Advice;

macro_rules! codes {
    ($($variant:ident => $text:literal,)*) => {
        /// What a finding is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $(#[doc = concat!("`", $text, "`")] $variant,)*
        }

        impl Code {
            /// Every code, for documentation and tests.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The stable string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    TxtOk => "txt-ok",
    TxtExtension => "txt-extension",
    TxtMissing => "txt-missing",
    TxtMultiple => "txt-multiple",
    TxtInvalid => "txt-invalid",
    DnsError => "dns-error",
    Timeout => "timeout",
    PolicyOk => "policy-ok",
    PolicyTolerated => "policy-tolerated",
    PolicyInvalid => "policy-invalid",
    PolicyCert => "policy-cert",
    FetchError => "fetch-error",
    WebpkiInvalid => "webpki-invalid",
    MaxAgeZero => "max-age-zero",
    MaxAgeShort => "max-age-short",
    TestingMode => "testing-mode",
    WildcardWithoutBase => "wildcard-without-base",
    BroadWildcard => "broad-wildcard",
    DuplicateMx => "duplicate-mx",
    ModeNone => "mode-none",
    MxNone => "mx-none",
    MxCovered => "mx-covered",
    MxNotCovered => "mx-not-covered",
    PatternUnused => "pattern-unused",
    MxNoAddress => "mx-no-address",
    SmtpSkipped => "smtp-skipped",
    SmtpUnreachable => "smtp-unreachable",
    StarttlsMissing => "starttls-missing",
    StarttlsRefused => "starttls-refused",
    StarttlsInjection => "starttls-injection",
    TlsFailed => "tls-failed",
    TlsOk => "tls-ok",
    CertInvalid => "cert-invalid",
    CertExpiring => "cert-expiring",
    CaNotWebPki => "ca-not-web-pki",
    SniOnly => "sni-only",
    NoSniOk => "no-sni-ok",
    NoSniProbeFailed => "no-sni-probe-failed",
    DnssecBogus => "dnssec-bogus",
    DnssecUnknown => "dnssec-unknown",
    TlsaUnused => "tlsa-unused",
    TlsaUnusable => "tlsa-unusable",
    TlsaMatch => "tlsa-match",
    TlsaMismatch => "tlsa-mismatch",
    TlsaUnchecked => "tlsa-unchecked",
    TlsaInsecure => "tlsa-insecure",
    NoDane => "no-dane",
    ValidatedInProcess => "dnssec-validated-in-process",
    TlsrptOk => "tlsrpt-ok",
    TlsrptInvalid => "tlsrpt-invalid",
    TlsrptMissing => "tlsrpt-missing",
}

impl From<&Advice> for Code {
    fn from(a: &Advice) -> Self {
        match a {
            Advice::MaxAgeZero => Self::MaxAgeZero,
            Advice::ShortMaxAge(_) => Self::MaxAgeShort,
            Advice::TestingMode => Self::TestingMode,
            Advice::WildcardWithoutBase(_) => Self::WildcardWithoutBase,
            Advice::BroadWildcard(_) => Self::BroadWildcard,
            Advice::DuplicatePattern(_) => Self::DuplicateMx,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_advice_codes_agree() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{c}"
            );
        }
        for a in [
            Advice::MaxAgeZero,
            Advice::ShortMaxAge(1),
            Advice::TestingMode,
            Advice::WildcardWithoutBase("x".into()),
            Advice::BroadWildcard("x".into()),
            Advice::DuplicatePattern("x".into()),
        ] {
            assert_eq!(Code::from(&a).as_str(), a.code());
        }
    }
}
