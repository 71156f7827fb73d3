//! Certificates from a directory of PEM files (each a chain, leaf first, then its key),
//! indexed by the DNS names of each leaf, wildcards included, and chosen by SNI: a handshake
//! without SNI, or for a name no certificate covers, gets no certificate (the handshake fails
//! with an alert) — never an unrelated one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a file gives no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("{}: {reason}", path.display())]
    /// Unreadable, no chain, no key, a key that does not fit, no DNS name.
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The certificates by name (lower case; `*.example.com` for wildcards).
#[derive(Debug, Default)]
pub struct Certs {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// Each name's leaf expiry (seconds since the epoch), for metrics and `records`.
    pub not_after: HashMap<String, i64>,
    /// Each name's leaf start of validity (seconds since the epoch), for ACME renewal.
    pub not_before: HashMap<String, i64>,
    /// Files not taken, and why.
    pub problems: Vec<CertError>,
}

impl Certs {
    /// Reads every `*.pem` in `dir`. Fails only when `dir` itself cannot be read. When two
    /// files cover the same name, the one whose leaf expires later wins.
    pub fn load_dir(dir: &Path) -> std::io::Result<Self> {
        Self::load_dirs(&[dir])
    }

    /// [`Certs::load_dir`] over several directories (e.g. the operator's and ACME's).
    pub fn load_dirs(dirs: &[&Path]) -> std::io::Result<Self> {
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            files.extend(
                std::fs::read_dir(dir)?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "pem") && p.is_file()),
            );
        }
        files.sort();
        let provider = rustls::crypto::ring::default_provider();
        let mut certs = Self::default();
        for path in files {
            match load_file(&path, &provider) {
                Ok((key, names, (not_before, not_after))) => {
                    let key = Arc::new(key);
                    for name in names {
                        let later = certs.not_after.get(&name).is_none_or(|t| not_after > *t);
                        if later {
                            certs.by_name.insert(name.clone(), key.clone());
                            certs.not_before.insert(name.clone(), not_before);
                            certs.not_after.insert(name, not_after);
                        }
                    }
                }
                Err(e) => certs.problems.push(e),
            }
        }
        Ok(certs)
    }

    /// The certificate for `name`: an exact name, else a wildcard one label up.
    pub fn for_name(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.by_name.get(&name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.by_name.get(&format!("*.{parent}"))
        })
    }

    /// The validity (not before, not after; Unix seconds) of the certificate for `name`.
    pub fn validity(&self, name: &str) -> Option<(u64, u64)> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let key = if self.by_name.contains_key(&name) {
            name
        } else {
            let (_, parent) = name.split_once('.')?;
            format!("*.{parent}")
        };
        let secs = |t: i64| u64::try_from(t).unwrap_or(0);
        Some((
            secs(*self.not_before.get(&key)?),
            secs(*self.not_after.get(&key)?),
        ))
    }

    /// Whether some certificate covers `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.for_name(name).is_some()
    }

    /// How many names are covered.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

type Loaded = (CertifiedKey, Vec<String>, (i64, i64));

fn load_file(path: &Path, provider: &rustls::crypto::CryptoProvider) -> Result<Loaded, CertError> {
    let bad = |reason: String| CertError::File {
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| bad(format!("reading certificates: {e}")))?;
    let leaf = chain.first().ok_or_else(|| {
        bad("no certificate (a file is the chain, leaf first, then the key)".into())
    })?;
    let key =
        PrivateKeyDer::from_pem_file(path).map_err(|e| bad(format!("no private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad(format!("unusable private key: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| bad(format!("unreadable leaf certificate: {e}")))?;
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => {
                        Some(n.trim_end_matches('.').to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Err(bad(
            "the leaf certificate has no DNS name (subjectAltName)".into()
        ));
    }
    let not_after = cert.validity().not_after.timestamp();
    let not_before = cert.validity().not_before.timestamp();
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| bad(format!("the key is not the leaf certificate's: {e}")))?;
    Ok((certified, names, (not_before, not_after)))
}

/// rustls' view: the certificate for the SNI name, or none (counted).
#[derive(Debug)]
pub struct BySni {
    /// The certificates now loaded.
    pub certs: Arc<std::sync::RwLock<Arc<Certs>>>,
    /// Where a handshake without a certificate is counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// TLS-ALPN-01 certificates under validation.
    pub challenges: Arc<crate::acme::Challenges>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A CA validating TLS-ALPN-01 offers only `acme-tls/1` (RFC 8737 §3): it gets the
        // challenge certificate, or nothing; never the site's own.
        if hello
            .alpn()
            .is_some_and(|mut p| p.any(|p| p == crate::acme::ACME_TLS_ALPN))
        {
            return hello
                .server_name()
                .and_then(|name| self.challenges.get(name));
        }
        let certs = match self.certs.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let found = hello
            .server_name()
            .and_then(|name| certs.for_name(name).cloned());
        if found.is_none() {
            self.metrics.unknown_name();
        }
        found
    }
}
