//! Bounded in-memory store: sharded LRU maps (see `slab_lru`: no allocation per entry
//! beyond the state itself), so concurrent lookups rarely share a lock.
//! Domains with a policy and domains without one (negative results) live in separate LRUs
//! with separate bounds, so a flood of lookups of names without MTA-STS can never evict a
//! cached policy. Each shard keeps a due-time index of its policies, so the refresher finds
//! what is due without walking every entry under the shard's lock.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use mtasts_core::{DomainName, DomainState, UnixTime};

use crate::slab_lru::{Node, SlabLru};
use crate::{EntryMeta, Store, StoreError};

const SHARDS: usize = 16;

/// No refresh time: a plain integer keeps the node small.
const NEVER: UnixTime = UnixTime::MAX;

fn refresh_at(node: &Node) -> Option<UnixTime> {
    (node.refresh_at != NEVER).then_some(node.refresh_at)
}

/// Node index bits of a due-index key; a shard holds at most this many policies.
const INDEX_BITS: u32 = 24;
const MAX_PER_SHARD: usize = (1 << INDEX_BITS) - 1;
/// Refresh times past this (the year 36812) are kept as this.
const MAX_DUE_AT: UnixTime = (1 << (64 - INDEX_BITS)) - 1;

/// A due-index key: the refresh time above the node index, so keys sort by time and the
/// index holds 8 bytes per policy.
fn due_key(at: UnixTime, i: u32) -> u64 {
    (at.min(MAX_DUE_AT) << INDEX_BITS) | u64::from(i)
}

fn due_parts(key: u64) -> (UnixTime, u32) {
    let mask = (1u64 << INDEX_BITS) - 1;
    (
        key >> INDEX_BITS,
        u32::try_from(key & mask).unwrap_or(u32::MAX),
    )
}

/// One shard: the two tiers, and when each policy is due for refresh (by node index, which
/// stays put while the policy is held).
struct Shard {
    policies: SlabLru,
    negatives: SlabLru,
    due: BTreeSet<u64>,
}

impl Shard {
    /// Removes `domain` from both tiers and the index.
    fn remove(&mut self, hash: u64, domain: &DomainName) {
        if let Some((i, node)) = self.policies.remove(hash, domain) {
            self.unindex(i, &node);
            return;
        }
        self.negatives.remove(hash, domain);
    }

    fn unindex(&mut self, i: u32, node: &Node) {
        if let Some(at) = refresh_at(node) {
            self.due.remove(&due_key(at, i));
        }
    }

    fn insert<S: BuildHasher>(&mut self, hash: u64, node: Node, hasher: &S) {
        if node.state.policy.is_some() {
            let at = refresh_at(&node);
            // At the bound, the least recently used policy goes, and leaves the index.
            let (i, evicted) = self.policies.push(hash, node, hasher);
            if let Some(old) = evicted {
                self.unindex(i, &old);
            }
            if let Some(at) = at {
                self.due.insert(due_key(at, i));
            }
        } else {
            self.negatives.push(hash, node, hasher);
        }
    }

    /// One hash probe when the domain has a policy (the common hot case).
    fn get_state(&mut self, hash: u64, domain: &DomainName) -> Option<Arc<DomainState>> {
        if let Some(n) = self.policies.get(hash, domain) {
            return Some(n.state.clone());
        }
        self.negatives.get(hash, domain).map(|n| n.state.clone())
    }

    fn due_names(&self, now: UnixTime, skip: usize, take: usize) -> Vec<(UnixTime, DomainName)> {
        self.due
            .iter()
            .map(|&key| due_parts(key))
            .take_while(|&(at, _)| at <= now.min(MAX_DUE_AT))
            .skip(skip)
            .take(take)
            .filter_map(|(at, i)| self.policies.at(i).map(|n| (at, n.name.clone())))
            .collect()
    }
}

/// A bounded LRU cache of domain states: at most `capacity` domains with a policy, and
/// separately at most `negative_capacity` without one.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    /// Picks the shard (fast, seeded per process).
    hasher: foldhash::fast::RandomState,
    capacity: usize,
    negative_capacity: usize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .field("negative_capacity", &self.negative_capacity)
            .field("policies", &self.policies_len())
            .field("negatives", &self.negatives_len())
            .finish()
    }
}

impl MemoryStore {
    /// Holds at most `capacity` domains with a policy and as many without (at least one per
    /// shard each, at most 2^24 - 1 per shard); the least recently used of a tier go first.
    pub fn new(capacity: usize) -> Self {
        Self::with_negative_capacity(capacity, capacity)
    }

    /// As [`MemoryStore::new`], with its own bound for domains without a policy.
    pub fn with_negative_capacity(capacity: usize, negative_capacity: usize) -> Self {
        let per_shard = |n: usize| n.div_ceil(SHARDS).clamp(1, MAX_PER_SHARD);
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        policies: SlabLru::new(per_shard(capacity)),
                        negatives: SlabLru::new(per_shard(negative_capacity)),
                        due: BTreeSet::new(),
                    })
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            capacity,
            negative_capacity,
        }
    }

    /// The domain's hash and its shard. The shard comes from bits the shard's own table
    /// uses for neither its buckets nor its tags, so no shard's table is left lopsided.
    fn shard(&self, domain: &DomainName) -> (u64, &Mutex<Shard>) {
        let hash = self.hasher.hash_one(domain);
        // SHARDS is a small constant, so the index fits in usize.
        let i = usize::try_from((hash >> 32) % SHARDS as u64).unwrap_or(0);
        (hash, &self.shards[i])
    }

    /// The state of `domain` without going through the async interface (the hot path).
    pub fn get_now(&self, domain: &DomainName) -> Option<Arc<DomainState>> {
        let (hash, shard) = self.shard(domain);
        shard.lock().ok()?.get_state(hash, domain)
    }

    /// Stores without going through the async interface.
    pub fn put_now(&self, domain: &DomainName, state: Arc<DomainState>, meta: EntryMeta) {
        let (hash, shard) = self.shard(domain);
        if let Ok(mut shard) = shard.lock() {
            shard.remove(hash, domain);
            // A refresh at the end of time is never due either.
            let node = Node::new(domain.clone(), state, meta.refresh_at.unwrap_or(NEVER));
            shard.insert(hash, node, &self.hasher);
        }
    }

    fn count(&self, tier: fn(&Shard) -> usize) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| tier(&s)).unwrap_or(0))
            .sum()
    }

    /// Number of domains held.
    pub fn len(&self) -> usize {
        self.count(|s| s.policies.len() + s.negatives.len())
    }

    /// Number of domains held with a policy.
    pub fn policies_len(&self) -> usize {
        self.count(|s| s.policies.len())
    }

    /// Number of domains held without a policy (negative results).
    pub fn negatives_len(&self) -> usize {
        self.count(|s| s.negatives.len())
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
        // Each shard gives its earliest due entries up to an equal share, then shards with more
        // fill what others left: no lock is held for more than a share's worth of entries.
        let share = limit.div_ceil(SHARDS).max(1);
        let mut due: Vec<(UnixTime, DomainName)> = Vec::new();
        let mut taken = [0usize; SHARDS];
        for (i, shard) in self.shards.iter().enumerate() {
            if let Ok(shard) = shard.lock() {
                let some = shard.due_names(now, 0, share);
                taken[i] = some.len();
                due.extend(some);
            }
        }
        for (i, shard) in self.shards.iter().enumerate() {
            let room = limit.saturating_sub(due.len());
            if room == 0 {
                break;
            }
            if taken[i] < share {
                continue;
            }
            if let Ok(shard) = shard.lock() {
                due.extend(shard.due_names(now, taken[i], room));
            }
        }
        due.sort();
        due.truncate(limit);
        Ok(due.into_iter().map(|(_, d)| d).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtasts_core::{CachedPolicy, Policy};

    fn name(i: usize, kind: &str) -> DomainName {
        DomainName::parse(&format!("{kind}{i}.test")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn with_policy() -> Arc<DomainState> {
        let parsed = Policy::parse("version: STSv1\nmode: enforce\nmx: mx.test\nmax_age: 86400\n")
            .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(DomainState {
            policy: Some(CachedPolicy {
                policy: parsed.policy,
                id: "1".into(),
                fetched_at: 0,
            }),
            ..DomainState::default()
        })
    }

    #[test]
    fn a_flood_of_negatives_never_evicts_a_policy() {
        // Room for the policies even if the hash puts several in one shard.
        let m = MemoryStore::new(1_600);
        for i in 0..100 {
            m.put_now(&name(i, "p"), with_policy(), EntryMeta::default());
        }
        for i in 0..100_000 {
            m.put_now(
                &name(i, "n"),
                Arc::new(DomainState::default()),
                EntryMeta::default(),
            );
        }
        assert!(
            (0..100).all(|i| m.get_now(&name(i, "p")).is_some()),
            "a policy was evicted"
        );
        assert_eq!(m.policies_len(), 100);
        // Each tier keeps its own bound (per shard, rounded up).
        assert!(m.negatives_len() <= 1_600 + SHARDS, "{}", m.negatives_len());
        assert!(m.negatives_len() >= 1_000, "{}", m.negatives_len());
    }

    fn meta(refresh_at: Option<UnixTime>) -> EntryMeta {
        EntryMeta {
            refresh_at,
            ..EntryMeta::default()
        }
    }

    fn due_now(m: &MemoryStore, now: UnixTime, limit: usize) -> Vec<DomainName> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(m.due(now, limit))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_due_index_follows_updates_tier_moves_and_evictions() {
        // Small, so evictions happen; every change below is checked against a plain scan.
        let m = MemoryStore::new(64);
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..5_000 {
            let d = name(usize::try_from(next() % 300).unwrap_or(0), "d");
            match next() % 4 {
                0 => m.put_now(&d, Arc::new(DomainState::default()), meta(None)),
                1 => m.put_now(&d, with_policy(), meta(None)),
                _ => m.put_now(&d, with_policy(), meta(Some(next() % 1_000))),
            }
        }
        let mut expected: Vec<(UnixTime, DomainName)> = Vec::new();
        for shard in &m.shards {
            let shard = shard.lock().unwrap_or_else(|e| panic!("{e}"));
            expected.extend(
                shard
                    .policies
                    .iter()
                    .filter_map(|n| refresh_at(n).map(|at| (at, n.name.clone()))),
            );
            let indexed = shard.due.len();
            let with_time = shard
                .policies
                .iter()
                .filter(|n| refresh_at(n).is_some())
                .count();
            assert_eq!(
                indexed, with_time,
                "index holds exactly the held policies with a time"
            );
        }
        expected.sort();
        for now in [0, 250, 500, 999, 5_000] {
            let want: Vec<DomainName> = expected
                .iter()
                .filter(|(at, _)| *at <= now)
                .map(|(_, d)| d.clone())
                .collect();
            assert_eq!(due_now(&m, now, usize::MAX), want, "due at {now}");
            for limit in [1, 5, 17, 40] {
                let some = due_now(&m, now, limit);
                assert_eq!(some.len(), want.len().min(limit), "at {now}, limit {limit}");
                let unique: std::collections::HashSet<&DomainName> = some.iter().collect();
                assert_eq!(unique.len(), some.len(), "no domain twice");
                assert!(some.iter().all(|d| want.contains(d)), "only due ones");
            }
        }
    }

    #[test]
    fn a_domain_moves_between_tiers_and_is_held_once() {
        let m = MemoryStore::new(16);
        let d = name(1, "x");
        m.put_now(&d, Arc::new(DomainState::default()), EntryMeta::default());
        m.put_now(&d, with_policy(), EntryMeta::default());
        assert_eq!((m.policies_len(), m.negatives_len()), (1, 0));
        m.put_now(&d, Arc::new(DomainState::default()), EntryMeta::default());
        assert_eq!((m.policies_len(), m.negatives_len()), (0, 1));
    }
}
