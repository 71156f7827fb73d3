//! Conditional trust for policy hosts: each rule's anchors in a TLS configuration of their
//! own, used for the rule's domains only. The anchors never enter the trust every other
//! domain is verified with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use mtasts_core::{DomainName, DomainPattern, TrustAnchors, TrustMode, TrustRules};
use rustls::ClientConfig;
use rustls::client::WebPkiServerVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};

use crate::fetch::{
    TrustError, client_config_with, client_config_with_verifier, provider, read_pem, root_store,
};
use crate::pinned::PinnedVerifier;

/// One configured rule, as read from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustSpec {
    /// The rule's name (logs, `mtasts query`, the bundle's file name).
    pub name: String,
    /// The policy domains it covers.
    pub domains: Vec<DomainPattern>,
    /// Only these anchors, or these as well as the web PKI.
    pub mode: TrustMode,
    /// PEM files of CA certificates.
    pub anchors: Vec<PathBuf>,
    /// In [`TrustMode::Additional`], the file to write the bundle Postfix reads (`tafile=`):
    /// `web_pki_bundle` followed by the anchors.
    pub postfix_bundle: Option<PathBuf>,
    /// In [`TrustMode::Additional`], the web PKI as Postfix is to see it (normally
    /// [`DEFAULT_WEB_PKI_BUNDLE`]).
    pub web_pki_bundle: PathBuf,
}

/// A rule that could not be set up, and why.
#[derive(Debug, thiserror::Error)]
#[error("trust rule `{rule}`")]
pub struct RuleError {
    /// The rule's name.
    pub rule: String,
    /// Why.
    #[source]
    pub source: TrustError,
}

/// Where the rule's web PKI certificates come from for Postfix in [`TrustMode::Additional`].
pub const DEFAULT_WEB_PKI_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A rule ready for use: what decisions show, and the TLS configuration for its policy hosts.
#[derive(Debug)]
pub struct DomainTrust {
    /// What the decision carries.
    pub anchors: Arc<TrustAnchors>,
    /// Verifies the rule's policy hosts.
    pub tls: Arc<ClientConfig>,
}

/// Every rule, first match wins.
#[derive(Debug, Default)]
pub struct TrustTable {
    rules: TrustRules<DomainTrust>,
}

impl TrustTable {
    /// Reads every rule's anchors and builds its TLS configuration. `extra_ca_file` (the
    /// daemon's `ca_file`) stays part of the web PKI in [`TrustMode::Additional`].
    pub fn build(specs: &[TrustSpec], extra_ca_file: Option<&Path>) -> Result<Self, RuleError> {
        let mut rules = TrustRules::new();
        for spec in specs {
            let trust = Self::rule(spec, extra_ca_file).map_err(|source| RuleError {
                rule: spec.name.clone(),
                source,
            })?;
            rules.push(spec.domains.clone(), trust);
        }
        Ok(Self { rules })
    }

    fn rule(spec: &TrustSpec, extra_ca_file: Option<&Path>) -> Result<DomainTrust, TrustError> {
        let mut roots = match spec.mode {
            TrustMode::Only => rustls::RootCertStore::empty(),
            TrustMode::Additional => root_store(extra_ca_file)?,
        };
        let mut pins: Vec<Vec<u8>> = Vec::new();
        for path in &spec.anchors {
            let (certs, keys) = read_anchors(path)?;
            for der in certs {
                roots.add(der).map_err(|source| TrustError::Rejected {
                    path: path.clone(),
                    source,
                })?;
            }
            pins.extend(keys);
        }
        let tls = if pins.is_empty() {
            client_config_with(roots)?
        } else {
            let provider = provider();
            let chains = if roots.is_empty() {
                None
            } else {
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(TrustError::Verifier)?,
                )
            };
            let verifier =
                PinnedVerifier::new(chains, pins, provider.signature_verification_algorithms);
            client_config_with_verifier(Arc::new(verifier))?
        };
        let anchor_files: Vec<String> = spec
            .anchors
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let postfix_tafile = match (spec.mode, &spec.postfix_bundle) {
            (TrustMode::Only, _) => anchor_files.clone(),
            (TrustMode::Additional, Some(bundle)) => {
                write_bundle(bundle, &spec.web_pki_bundle, &spec.anchors)?;
                vec![bundle.display().to_string()]
            }
            (TrustMode::Additional, None) => {
                return Err(TrustError::NoBundle {
                    rule: spec.name.clone(),
                });
            }
        };
        Ok(DomainTrust {
            anchors: Arc::new(TrustAnchors {
                name: spec.name.clone(),
                mode: spec.mode,
                anchor_files,
                postfix_tafile,
            }),
            tls,
        })
    }

    /// The rule for `domain`, if one covers it.
    pub fn find(&self, domain: &DomainName) -> Option<&DomainTrust> {
        self.rules.find(domain)
    }

    /// Whether no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The CA certificates and the pinned public keys (SubjectPublicKeyInfo DER) of one anchor
/// file; at least one of either.
fn read_anchors(path: &Path) -> Result<(Vec<CertificateDer<'static>>, Vec<Vec<u8>>), TrustError> {
    let certs = read_pem::<CertificateDer<'static>>(path)?;
    let keys: Vec<Vec<u8>> = read_pem::<SubjectPublicKeyInfoDer<'static>>(path)?
        .iter()
        .map(|k| k.as_ref().to_vec())
        .collect();
    if certs.is_empty() && keys.is_empty() {
        return Err(TrustError::NoAnchors {
            path: path.to_path_buf(),
        });
    }
    Ok((certs, keys))
}

/// Writes `web_pki` then the anchors to `bundle`, through a temporary file renamed into place,
/// so Postfix never reads half a bundle.
fn write_bundle(bundle: &Path, web_pki: &Path, anchors: &[PathBuf]) -> Result<(), TrustError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TrustError::ReadFile {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut text = read(web_pki)?;
    // The web PKI file must itself be certificates, or Postfix would trust nothing.
    if CertificateDer::pem_slice_iter(&text).next().is_none() {
        return Err(TrustError::Empty {
            path: web_pki.to_path_buf(),
        });
    }
    for a in anchors {
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend(read(a)?);
    }
    let write = |source| TrustError::WriteBundle {
        path: bundle.to_path_buf(),
        source,
    };
    let tmp = bundle.with_extension("pem.tmp");
    std::fs::write(&tmp, &text).map_err(write)?;
    std::fs::rename(&tmp, bundle).map_err(write)
}

/// The table in force, replaced on a configuration reload; shared by the fetcher and the
/// daemon's decisions so both always apply the same rules.
#[derive(Debug, Clone, Default)]
pub struct TrustHandle(Arc<RwLock<Arc<TrustTable>>>);

impl TrustHandle {
    /// A handle holding `table`.
    pub fn new(table: TrustTable) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(table))))
    }

    /// The table in force.
    pub fn get(&self) -> Arc<TrustTable> {
        match self.0.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts `table` in force.
    pub fn set(&self, table: Arc<TrustTable>) {
        match self.0.write() {
            Ok(mut t) => *t = table,
            Err(p) => *p.into_inner() = table,
        }
    }
}
