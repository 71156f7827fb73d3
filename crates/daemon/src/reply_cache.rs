//! Encoded replies of recent domains, kept with what they were rendered from (the domain's
//! state, its DANE decision, the verdict, the zone and the configuration generation) and
//! reused only while all of those are the same. Rendering a `secure` reply allocates several
//! strings; a hit copies one netstring into the connection's output instead.
//!
//! Bounded (sharded, least recently rendered evicted first): it holds the hot set of domains,
//! not every cached policy.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use lru::LruCache;
use mtasts_core::cache::Verdict;
use mtasts_core::dane::DaneDecision;
use mtasts_core::{DomainName, DomainState};

use crate::config::Zone;

const SHARDS: usize = 16;

/// Domains whose replies are kept (least recently asked go first).
pub const CAPACITY: usize = 65_536;

/// What a reply was rendered from. Pointers compare the shared state and DANE decision: a
/// refresh or a new DANE answer is a new allocation, so it never matches an old reply.
#[derive(Debug)]
pub struct Basis<'a> {
    /// The configuration generation (render options, Postfix version).
    pub generation: u64,
    /// The zone of the map name asked for.
    pub zone: &'a Zone,
    /// The domain's state in the memory tier.
    pub state: &'a Arc<DomainState>,
    /// The DANE decision (`None`: DANE off for the zone).
    pub dane: Option<&'a Arc<DaneDecision>>,
    /// The verdict the cache rules gave for the state now.
    pub verdict: &'a Verdict,
}

/// The reply's status word, for the answer counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `OK`.
    Ok,
    /// `NOTFOUND`.
    NotFound,
    /// `TEMP` or `TIMEOUT`.
    Temp,
    /// `PERM`.
    Perm,
}

struct Rendered {
    generation: u64,
    zone: Zone,
    state: Arc<DomainState>,
    dane: Option<Arc<DaneDecision>>,
    verdict: Verdict,
    class: Class,
    encoded: Box<[u8]>,
}

impl Rendered {
    fn matches(&self, b: &Basis<'_>) -> bool {
        self.generation == b.generation
            && Arc::ptr_eq(&self.state, b.state)
            && match (&self.dane, b.dane) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
            && self.zone == *b.zone
            && self.verdict == *b.verdict
    }
}

/// The cache. Shared by all connections.
pub struct ReplyCache {
    shards: Box<[Mutex<LruCache<DomainName, Rendered>>]>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for ReplyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyCache").finish_non_exhaustive()
    }
}

impl ReplyCache {
    /// Holds replies of at most `capacity` domains.
    pub fn new(capacity: usize) -> Self {
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, domain: &DomainName) -> &Mutex<LruCache<DomainName, Rendered>> {
        let i = usize::try_from(self.hasher.hash_one(domain) % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// Appends the encoded reply rendered from `basis`, if kept; its class.
    pub fn copy_into(
        &self,
        domain: &DomainName,
        basis: &Basis<'_>,
        out: &mut BytesMut,
    ) -> Option<Class> {
        let shard = self.shard(domain).lock().ok()?;
        // `peek`: no reordering on a hit; the least recently rendered go first.
        let r = shard.peek(domain).filter(|r| r.matches(basis))?;
        out.extend_from_slice(&r.encoded);
        Some(r.class)
    }

    /// Keeps `encoded` (one netstring) as the reply rendered from `basis`.
    pub fn keep(&self, domain: &DomainName, basis: &Basis<'_>, class: Class, encoded: &[u8]) {
        if let Ok(mut shard) = self.shard(domain).lock() {
            shard.put(
                domain.clone(),
                Rendered {
                    generation: basis.generation,
                    zone: *basis.zone,
                    state: basis.state.clone(),
                    dane: basis.dane.cloned(),
                    verdict: basis.verdict.clone(),
                    class,
                    encoded: encoded.into(),
                },
            );
        }
    }

    /// Domains with a kept reply.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtasts_core::cache::{NoPolicyReason, Source};

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).expect("domain")
    }

    #[test]
    fn a_kept_reply_is_reused_only_while_everything_it_came_from_is_the_same() {
        let cache = ReplyCache::new(16);
        let domain = d("example.test");
        let state = Arc::new(DomainState::default());
        let dane = Arc::new(DaneDecision::DaneOnly);
        let zone = Zone::default();
        let verdict = Verdict::Policy(Source::Cached);
        let basis = |generation, zone, state, dane, verdict| Basis {
            generation,
            zone,
            state,
            dane,
            verdict,
        };
        let kept = basis(1, &zone, &state, Some(&dane), &verdict);
        cache.keep(&domain, &kept, Class::Ok, b"12:OK dane-only,");
        let mut out = BytesMut::new();
        assert_eq!(cache.copy_into(&domain, &kept, &mut out), Some(Class::Ok));
        assert_eq!(&out[..], b"12:OK dane-only,");

        // Each difference is a miss, and nothing is written.
        let same_content = Arc::new(DomainState::default());
        let other_dane = Arc::new(DaneDecision::DaneOnly);
        let strict = Zone {
            strict_testing: true,
            ..zone
        };
        let no_policy = Verdict::NoPolicy(NoPolicyReason::DnsFailure("x".into()));
        let misses = [
            ("reload", basis(2, &zone, &state, Some(&dane), &verdict)),
            ("zone", basis(1, &strict, &state, Some(&dane), &verdict)),
            (
                "new state",
                basis(1, &zone, &same_content, Some(&dane), &verdict),
            ),
            (
                "new DANE decision",
                basis(1, &zone, &state, Some(&other_dane), &verdict),
            ),
            ("DANE off", basis(1, &zone, &state, None, &verdict)),
            ("verdict", basis(1, &zone, &state, Some(&dane), &no_policy)),
        ];
        for (what, b) in &misses {
            let mut out = BytesMut::new();
            assert_eq!(cache.copy_into(&domain, b, &mut out), None, "{what}");
            assert!(out.is_empty(), "{what}");
        }
        assert_eq!(cache.copy_into(&d("other.test"), &kept, &mut out), None);
    }

    #[test]
    fn bounded() {
        let cache = ReplyCache::new(32);
        let state = Arc::new(DomainState::default());
        let zone = Zone::default();
        let verdict = Verdict::Policy(Source::Cached);
        for i in 0..1000 {
            let b = Basis {
                generation: 0,
                zone: &zone,
                state: &state,
                dane: None,
                verdict: &verdict,
            };
            cache.keep(
                &d(&format!("d{i}.test")),
                &b,
                Class::NotFound,
                b"9:NOTFOUND ,",
            );
        }
        assert!(cache.len() <= 32 + SHARDS, "{}", cache.len());
    }
}
