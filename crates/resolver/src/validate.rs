//! DNSSEC validated by mtasts itself (hickory's validator), for hosts without a validating
//! resolver: the upstream resolver only has to pass the DNSSEC records on. This is *not* the
//! view an MTA uses — Postfix and Exim trust their resolver's AD bit — so it is for
//! diagnosis (`mtasts check --validate`), never for the daemon's answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::TokioResolver;
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::rr::{RData, RecordType};
use mtasts_core::dane::{Answer, DnssecStatus, Tlsa};

use crate::dns::{DnsError, resolver_config};
use crate::dnssec::{by_preference, chain_end, pick_cname, pick_mx, pick_tlsa};

/// Why the validator could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidatorError {
    /// The trust anchor file could not be read or holds no DNSKEY record.
    #[error("trust anchor {}: {why}", path.display())]
    TrustAnchor {
        /// The file.
        path: PathBuf,
        /// What was wrong, in words (hickory's parse error has no source chain).
        why: String,
    },
    /// The upstream resolver's configuration.
    #[error("resolver configuration")]
    Config(#[source] DnsError),
}

/// Asks `upstream` (or /etc/resolv.conf's resolver) with DO set and validates every answer
/// against the trust anchor: IANA's root keys, or the DNSKEY records of a file.
#[derive(Clone)]
pub struct Validator {
    resolver: TokioResolver,
    anchor: String,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("anchor", &self.anchor)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// A validator; `anchor` `None` is the IANA root trust anchor.
    pub fn new(
        upstream: Option<SocketAddr>,
        anchor: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, ValidatorError> {
        let (config, mut opts) = resolver_config(upstream).map_err(ValidatorError::Config)?;
        opts.validate = true;
        opts.timeout = timeout;
        opts.attempts = 2;
        // Every answer validated afresh: a check reports what DNS says now.
        opts.cache_size = 0;
        let (anchors, shown) = match anchor {
            None => (
                TrustAnchors::default(),
                "the IANA root trust anchor".to_string(),
            ),
            Some(path) => {
                let bad = |why: String| ValidatorError::TrustAnchor {
                    path: path.to_path_buf(),
                    why,
                };
                let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
                let anchors: TrustAnchors = text.parse().map_err(|e| bad(format!("{e}")))?;
                if anchors.is_empty() {
                    return Err(bad("no DNSKEY record".into()));
                }
                (anchors, path.display().to_string())
            }
        };
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .with_trust_anchor(Arc::new(anchors))
                .build();
        Ok(Self {
            resolver,
            anchor: shown,
        })
    }

    /// What the answers are validated against, for reports.
    pub fn anchor(&self) -> &str {
        &self.anchor
    }

    /// MX host names of `domain`, in preference order, with status.
    pub async fn mx(&self, domain: &str) -> Answer<String> {
        by_preference(self.lookup(domain, RecordType::MX, pick_mx).await)
    }

    /// TLSA records at `owner`, with status.
    pub async fn tlsa(&self, owner: &str) -> Answer<Tlsa> {
        self.lookup(owner, RecordType::TLSA, pick_tlsa).await
    }

    /// Where the CNAME chain at `host` ends, if its address lookup is one and validated.
    pub async fn secure_cname_target(&self, host: &str) -> Option<String> {
        chain_end(self.lookup(host, RecordType::A, pick_cname).await)
    }

    async fn lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Answer<T> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.lookup(fqdn, rtype).await {
            Ok(lookup) => {
                let records: Vec<_> = lookup.records().iter().collect();
                let status = combined(records.iter().map(|r| r.proof()));
                Answer {
                    status,
                    records: records.iter().filter_map(|r| pick(r.data())).collect(),
                }
            }
            Err(e) => {
                let status = match e.proto().map(|p| p.kind()) {
                    // A denial with its proof (NSEC/NSEC3).
                    Some(ProtoErrorKind::Nsec { proof, .. }) => status_of(*proof),
                    // A denial without DNSSEC records: an unsigned zone.
                    Some(ProtoErrorKind::NoRecordsFound { .. }) => DnssecStatus::Insecure,
                    _ => DnssecStatus::Indeterminate,
                };
                Answer {
                    status,
                    records: Vec::new(),
                }
            }
        }
    }
}

impl crate::dnssec::TlsaSource for Validator {
    fn tlsa_at(&self, owner: &str) -> impl Future<Output = Answer<Tlsa>> + Send {
        self.tlsa(owner)
    }
    fn cname_target(&self, host: &str) -> impl Future<Output = Option<String>> + Send {
        self.secure_cname_target(host)
    }
}

/// The weakest proof of an answer's records (a CNAME chain is secure only if every link is).
fn combined(proofs: impl Iterator<Item = Proof>) -> DnssecStatus {
    let mut out = DnssecStatus::Secure;
    for p in proofs {
        match status_of(p) {
            DnssecStatus::Bogus => return DnssecStatus::Bogus,
            DnssecStatus::Indeterminate => out = DnssecStatus::Indeterminate,
            DnssecStatus::Insecure if out == DnssecStatus::Secure => out = DnssecStatus::Insecure,
            _ => {}
        }
    }
    out
}

fn status_of(proof: Proof) -> DnssecStatus {
    match proof {
        Proof::Secure => DnssecStatus::Secure,
        Proof::Insecure => DnssecStatus::Insecure,
        Proof::Bogus => DnssecStatus::Bogus,
        Proof::Indeterminate => DnssecStatus::Indeterminate,
    }
}
