//! A per-run test CA (rcgen) and the certificate kinds the fake hosts present.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;

use crate::Error;

/// What certificate a fake host presents for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    /// Issued by the test CA for the name, currently valid.
    #[default]
    Valid,
    /// Issued by the test CA for `wrong-name.invalid` only.
    WrongName,
    /// Issued by the test CA for the name, expired in 2021.
    Expired,
    /// Issued for the name by a second CA that clients are not told to trust.
    UntrustedCa,
    /// Self-signed for the name.
    SelfSigned,
    /// Issued by the test CA with the name only in the subject CN, no subjectAltName.
    CnOnly,
    /// Issued by the test CA for the name, valid now but expiring in 5 days and 12 hours.
    ExpiringSoon,
}

/// The test CA plus the untrusted second CA used for [`CertKind::UntrustedCa`].
pub struct TestCa {
    trusted: CertifiedIssuer<'static, KeyPair>,
    untrusted: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "mtasts testkit");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    params
}

impl TestCa {
    /// A fresh CA pair; keys live only in memory.
    pub fn new() -> Result<Self, Error> {
        let trusted =
            CertifiedIssuer::self_signed(ca_params("mtasts test CA"), KeyPair::generate()?)?;
        let untrusted =
            CertifiedIssuer::self_signed(ca_params("mtasts untrusted CA"), KeyPair::generate()?)?;
        Ok(Self { trusted, untrusted })
    }

    /// The trusted CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.trusted.pem()
    }

    /// The second CA's certificate, PEM: a private CA that only conditional trust makes
    /// clients accept, for the domains configured with it.
    pub fn untrusted_pem(&self) -> String {
        self.untrusted.pem()
    }

    /// The trusted CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.trusted.der().clone()
    }

    /// Writes the trusted CA certificate where clients are told to find it.
    pub fn write_pem(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.pem()).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    }

    /// A certificate of `kind` for `name`, as rustls serves it.
    pub fn issue(&self, name: &str, kind: CertKind) -> Result<Arc<CertifiedKey>, Error> {
        self.issue_with_spki(name, kind).map(|(k, _)| k)
    }

    /// A file as a web server reads it: the leaf for `names` (leaf first), the CA, then the
    /// leaf's private key, all PEM.
    pub fn issue_pem(&self, names: &[&str]) -> Result<String, Error> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("mtasts test"),
        );
        params.distinguished_name = dn;
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2099, 1, 1);
        let cert = params.signed_by(&key, &self.trusted)?;
        Ok(format!(
            "{}{}{}",
            cert.pem(),
            self.trusted.pem(),
            key.serialize_pem()
        ))
    }

    /// [`TestCa::issue`], also returning the DER SubjectPublicKeyInfo (for TLSA `x 1 x`).
    pub fn issue_with_spki(
        &self,
        name: &str,
        kind: CertKind,
    ) -> Result<(Arc<CertifiedKey>, Vec<u8>), Error> {
        let key = KeyPair::generate()?;
        let san_name = match kind {
            CertKind::WrongName => "wrong-name.invalid",
            _ => name,
        };
        let mut params = if kind == CertKind::CnOnly {
            CertificateParams::default()
        } else {
            CertificateParams::new(vec![san_name.to_string()])?
        };
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, san_name);
        params.distinguished_name = dn;
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = match kind {
            CertKind::Expired => date_time_ymd(2021, 1, 1),
            CertKind::ExpiringSoon => {
                time::OffsetDateTime::now_utc() + time::Duration::hours(5 * 24 + 12)
            }
            _ => date_time_ymd(2099, 1, 1),
        };
        let cert = match kind {
            CertKind::SelfSigned => params.self_signed(&key)?,
            CertKind::UntrustedCa => params.signed_by(&key, &self.untrusted)?,
            _ => params.signed_by(&key, &self.trusted)?,
        };
        let mut chain = vec![cert.der().clone()];
        match kind {
            CertKind::SelfSigned => {}
            CertKind::UntrustedCa => chain.push(self.untrusted.der().clone()),
            _ => chain.push(self.trusted.der().clone()),
        }
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok((
            Arc::new(CertifiedKey::new(chain, signer)),
            rcgen::PublicKeyData::subject_public_key_info(&key),
        ))
    }
}
