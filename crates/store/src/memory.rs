//! Bounded in-memory store: sharded LRU maps, so concurrent lookups rarely share a lock.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use mtasts_core::{DomainName, DomainState, UnixTime};

use crate::{EntryMeta, Store, StoreError};

const SHARDS: usize = 16;

struct Slot {
    state: Arc<DomainState>,
    refresh_at: Option<UnixTime>,
}

/// A bounded LRU cache of domain states.
pub struct MemoryStore {
    shards: Vec<Mutex<LruCache<DomainName, Slot>>>,
    capacity: usize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl MemoryStore {
    /// Holds at most `capacity` domains (at least one per shard); the least recently used go
    /// first.
    pub fn new(capacity: usize) -> Self {
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            capacity,
        }
    }

    fn shard(&self, domain: &DomainName) -> &Mutex<LruCache<DomainName, Slot>> {
        let mut h = DefaultHasher::new();
        domain.hash(&mut h);
        // SHARDS is a small constant, so the modulo fits in usize.
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// The state of `domain` without going through the async interface (the hot path).
    pub fn get_now(&self, domain: &DomainName) -> Option<Arc<DomainState>> {
        self.shard(domain)
            .lock()
            .ok()?
            .get(domain)
            .map(|s| s.state.clone())
    }

    /// Stores without going through the async interface.
    pub fn put_now(&self, domain: &DomainName, state: Arc<DomainState>, meta: EntryMeta) {
        if let Ok(mut shard) = self.shard(domain).lock() {
            shard.put(
                domain.clone(),
                Slot {
                    state,
                    refresh_at: meta.refresh_at,
                },
            );
        }
    }

    /// Number of domains held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store for MemoryStore {
    async fn get(&self, domain: &DomainName) -> Result<Option<Arc<DomainState>>, StoreError> {
        Ok(self.get_now(domain))
    }

    async fn put(
        &self,
        domain: &DomainName,
        state: Arc<DomainState>,
        meta: EntryMeta,
    ) -> Result<(), StoreError> {
        self.put_now(domain, state, meta);
        Ok(())
    }

    async fn due(&self, now: UnixTime, limit: usize) -> Result<Vec<DomainName>, StoreError> {
        let mut due: Vec<(UnixTime, DomainName)> = Vec::new();
        for shard in &self.shards {
            if let Ok(shard) = shard.lock() {
                due.extend(shard.iter().filter_map(|(d, s)| {
                    s.refresh_at
                        .filter(|&at| at <= now)
                        .map(|at| (at, d.clone()))
                }));
            }
        }
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, d)| d).collect())
    }
}
