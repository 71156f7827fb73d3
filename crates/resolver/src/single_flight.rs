//! One piece of work per key at a time: the coalescer behind cold lookups, re-checks and DANE
//! checks. Whoever enters first does the work; the others wait for it to finish and then read
//! its result from the cache, or (with [`SingleFlight::try_enter`]) do not wait at all.
//!
//! The map holds a key only while someone is inside or waiting: the last one out removes it,
//! so the map stays as small as the work in flight.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

type Gate = Arc<tokio::sync::Mutex<()>>;

/// Sharded so unrelated keys rarely meet on one lock.
const SHARDS: usize = 16;

/// Per-key mutual exclusion for async work. Cheap to clone (shared).
pub struct SingleFlight<K> {
    shards: Arc<[Mutex<HashMap<K, Gate>>; SHARDS]>,
    hasher: RandomState,
}

impl<K> Clone for SingleFlight<K> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
            hasher: self.hasher.clone(),
        }
    }
}

impl<K> std::fmt::Debug for SingleFlight<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> Default for SingleFlight<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// Held while doing the work for one key; dropping it lets the next one in.
#[must_use = "the work is exclusive only while the flight is held"]
pub struct Flight<K: Hash + Eq + Clone> {
    owner: SingleFlight<K>,
    key: K,
    // Dropped before the map is tidied (see `Drop`).
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Flight<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> SingleFlight<K> {
    /// An empty coalescer.
    pub fn new() -> Self {
        Self {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(HashMap::new()))),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, Gate>> {
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        match self.shards[i].lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn gate(&self, key: &K) -> Gate {
        self.shard(key).entry(key.clone()).or_default().clone()
    }

    /// Waits until no one else is inside for `key`, then enters.
    pub async fn enter(&self, key: &K) -> Flight<K> {
        // A waiter that is cancelled (its caller stopped waiting) still tidies up after itself;
        // declared first, so it runs after the waiting lock future has dropped its gate.
        let mut on_cancel = TidyOnDrop {
            owner: self,
            key,
            armed: true,
        };
        let guard = self.gate(key).lock_owned().await;
        on_cancel.armed = false;
        self.flight(key, guard)
    }

    /// Enters if no one is inside for `key` now; `None` if someone is (nothing is spawned or
    /// awaited, so a caller can skip work already under way).
    pub fn try_enter(&self, key: &K) -> Option<Flight<K>> {
        let guard = self.gate(key).try_lock_owned().ok();
        match guard {
            Some(g) => Some(self.flight(key, g)),
            None => {
                self.tidy(key);
                None
            }
        }
    }

    fn flight(&self, key: &K, guard: tokio::sync::OwnedMutexGuard<()>) -> Flight<K> {
        Flight {
            owner: self.clone(),
            key: key.clone(),
            guard: Some(guard),
        }
    }

    /// Removes `key` if no one holds or waits for its gate (only the map's own reference is
    /// left). Clones are taken under the shard lock, so this check cannot race with one.
    fn tidy(&self, key: &K) {
        let mut shard = self.shard(key);
        if shard.get(key).is_some_and(|g| Arc::strong_count(g) == 1) {
            shard.remove(key);
        }
    }

    /// Keys with work in flight or waited for.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no work is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct TidyOnDrop<'a, K: Hash + Eq + Clone> {
    owner: &'a SingleFlight<K>,
    key: &'a K,
    armed: bool,
}

impl<K: Hash + Eq + Clone> Drop for TidyOnDrop<'_, K> {
    fn drop(&mut self) {
        if self.armed {
            self.owner.tidy(self.key);
        }
    }
}

impl<K: Hash + Eq + Clone> Drop for Flight<K> {
    fn drop(&mut self) {
        // Release first, so a waiter's reference is all that keeps the gate.
        self.guard.take();
        self.owner.tidy(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_inside_per_key_and_the_map_empties() {
        let flights = SingleFlight::<u32>::new();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (flights, inside, most) = (flights.clone(), inside.clone(), most.clone());
            tasks.spawn(async move {
                let _f = flights.enter(&7).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty(), "{} keys left", flights.len());
    }

    #[tokio::test]
    async fn try_enter_refuses_while_held_and_other_keys_are_free() {
        let flights = SingleFlight::<&str>::new();
        let held = flights.try_enter(&"a").expect("free");
        assert!(flights.try_enter(&"a").is_none());
        assert!(flights.try_enter(&"b").is_some());
        assert_eq!(flights.len(), 1, "a refused try leaves only the holder");
        drop(held);
        assert!(flights.is_empty());
        assert!(flights.try_enter(&"a").is_some());
    }

    #[tokio::test]
    async fn a_waiter_keeps_the_gate_until_it_is_through() {
        let flights = SingleFlight::<u8>::new();
        let first = flights.enter(&1).await;
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move {
                let _f = flights.enter(&1).await;
            })
        };
        tokio::task::yield_now().await;
        drop(first);
        // (current-thread runtime: the waiter is parked on the gate, not yet through)
        assert_eq!(flights.len(), 1, "the waiter's gate stays");
        waiter.await.expect("waiter");
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_nothing_behind() {
        let flights = SingleFlight::<u8>::new();
        let first = flights.enter(&1).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(5), flights.enter(&1)).await;
        assert!(gave_up.is_err(), "the key is held");
        drop(first);
        assert!(flights.is_empty(), "{} keys left", flights.len());
    }
}
