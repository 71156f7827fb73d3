//! A server certificate verifier for conditional trust with pinned end-entity keys: a chain to
//! one of the rule's CA certificates passes as usual; otherwise a leaf whose public key is one
//! of the pinned keys passes if it is for the host's name (as Postfix treats trust-anchor public
//! keys: not subject to expiry, any issuer).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// CA anchors (if any) plus pinned SubjectPublicKeyInfo DER encodings.
#[derive(Debug)]
pub struct PinnedVerifier {
    roots: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<Vec<u8>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    /// `roots` verifies chains (`None`: pinned keys only); `pins` are SPKI DER encodings.
    pub fn new(
        roots: Option<Arc<WebPkiServerVerifier>>,
        pins: Vec<Vec<u8>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self {
            roots,
            pins,
            algorithms,
        }
    }

    fn pinned(
        &self,
        leaf: &CertificateDer<'_>,
        name: &ServerName<'_>,
    ) -> Result<(), rustls::Error> {
        let spki = x509_parser::parse_x509_certificate(leaf)
            .map(|(_, c)| c.tbs_certificate.subject_pki.raw.to_vec())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if !self.pins.contains(&spki) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        }
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        cert.verify_is_valid_for_subject_name(name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let by_roots = match &self.roots {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        match by_roots {
            Ok(v) => Ok(v),
            // A pinned key decides for its own certificate; otherwise the chain's error stands.
            Err(chain_error) => match self.pinned(end_entity, server_name) {
                Ok(()) => Ok(ServerCertVerified::assertion()),
                Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                    Err(chain_error)
                }
                Err(pin_error) => Err(pin_error),
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (CertificateDer<'static>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let params =
            rcgen::CertificateParams::new(vec![name.to_string()]).unwrap_or_else(|e| panic!("{e}"));
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        (
            cert.der().clone(),
            rcgen::PublicKeyData::subject_public_key_info(&key),
        )
    }

    fn verify(v: &PinnedVerifier, cert: &CertificateDer<'_>, name: &str) -> Result<(), String> {
        let name = ServerName::try_from(name.to_string()).unwrap_or_else(|e| panic!("{e}"));
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_pinned_key_passes_for_its_names_only() {
        let (cert, spki) = self_signed("mta-sts.pinned.test");
        let (other, _) = self_signed("mta-sts.pinned.test");
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let v = PinnedVerifier::new(None, vec![spki], algorithms);
        assert_eq!(verify(&v, &cert, "mta-sts.pinned.test"), Ok(()));
        // The same key for another name: refused.
        let wrong = verify(&v, &cert, "mta-sts.other.test").expect_err("wrong name");
        assert!(wrong.contains("NotValidForName"), "{wrong}");
        // Another key for the pinned name: refused as of an unknown issuer.
        let unpinned = verify(&v, &other, "mta-sts.pinned.test").expect_err("unpinned key");
        assert!(unpinned.contains("UnknownIssuer"), "{unpinned}");
    }
}
