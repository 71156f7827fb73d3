//! A bounded least-recently-used map from domain names to states, laid out for a million
//! entries: nodes live in one vector (no allocation per entry), the hash table holds 4-byte
//! node indices, and the recency list links indices. A node's index stays the same while it
//! is held, so other structures (the due-time index) can name an entry by it.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use mtasts_core::{DomainName, DomainState, UnixTime};

/// No node (end of the recency list).
const NIL: u32 = u32::MAX;

/// One held domain.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: DomainName,
    pub(crate) state: Arc<DomainState>,
    /// When the refresher should look at it; [`UnixTime::MAX`] for never.
    pub(crate) refresh_at: UnixTime,
    /// Towards the most recently used.
    prev: u32,
    /// Towards the least recently used.
    next: u32,
}

impl Node {
    pub(crate) fn new(name: DomainName, state: Arc<DomainState>, refresh_at: UnixTime) -> Self {
        Self {
            name,
            state,
            refresh_at,
            prev: NIL,
            next: NIL,
        }
    }
}

/// The map. Hashes are computed by the caller (once per operation, shared with shard
/// selection) with `hasher`, which must be the same for every call.
#[derive(Debug)]
pub(crate) struct SlabLru {
    table: HashTable<u32>,
    nodes: Vec<Option<Node>>,
    /// Indices of empty nodes, reused before the vector grows.
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to go at the bound.
    tail: u32,
    capacity: usize,
}

impl SlabLru {
    /// Holds at most `capacity` entries (at least one). Nothing is allocated up front.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            table: HashTable::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.clamp(1, NIL as usize - 1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    fn node(&self, i: u32) -> Option<&Node> {
        self.nodes.get(i as usize).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, i: u32) -> Option<&mut Node> {
        self.nodes.get_mut(i as usize).and_then(Option::as_mut)
    }

    /// The entry at index `i`, if held.
    pub(crate) fn at(&self, i: u32) -> Option<&Node> {
        self.node(i)
    }

    fn find(&self, hash: u64, name: &DomainName) -> Option<u32> {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&i| {
                nodes
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|n| n.name == *name)
            })
            .copied()
    }

    fn unlink(&mut self, i: u32) {
        let Some((prev, next)) = self.node(i).map(|n| (n.prev, n.next)) else {
            return;
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn link_front(&mut self, i: u32) {
        let old_head = self.head;
        if let Some(n) = self.node_mut(i) {
            n.prev = NIL;
            n.next = old_head;
        }
        match self.node_mut(old_head) {
            Some(h) => h.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    /// The entry for `name`, now the most recently used.
    pub(crate) fn get(&mut self, hash: u64, name: &DomainName) -> Option<&Node> {
        let i = self.find(hash, name)?;
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
        self.node(i)
    }

    /// Takes out the entry for `name`; its node and the index it had.
    pub(crate) fn remove(&mut self, hash: u64, name: &DomainName) -> Option<(u32, Node)> {
        let i = self.find(hash, name)?;
        if let Ok(entry) = self.table.find_entry(hash, |&x| x == i) {
            entry.remove();
        }
        self.unlink(i);
        let node = self.nodes.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some((i, node))
    }

    /// Inserts `node` (its name must not be held), as the most recently used. At the bound the
    /// least recently used entry goes first and is returned, with the index both had.
    pub(crate) fn push<S: BuildHasher>(
        &mut self,
        hash: u64,
        node: Node,
        hasher: &S,
    ) -> (u32, Option<Node>) {
        let mut evicted = None;
        let i = if self.len() >= self.capacity
            && let Some(t) = self.node(self.tail).map(|_| self.tail)
        {
            self.unlink(t);
            let old = self.nodes.get_mut(t as usize).and_then(Option::take);
            if let Some(old) = &old {
                let old_hash = hasher.hash_one(&old.name);
                if let Ok(entry) = self.table.find_entry(old_hash, |&x| x == t) {
                    entry.remove();
                }
            }
            evicted = old;
            t
        } else if let Some(f) = self.free.pop() {
            f
        } else {
            // Bounded by `capacity`, which is below u32::MAX.
            let i = u32::try_from(self.nodes.len()).unwrap_or(NIL - 1);
            self.nodes.push(None);
            i
        };
        if let Some(slot) = self.nodes.get_mut(i as usize) {
            *slot = Some(node);
        }
        self.link_front(i);
        let nodes = &self.nodes;
        self.table.insert_unique(hash, i, |&x| {
            nodes
                .get(x as usize)
                .and_then(Option::as_ref)
                .map_or(0, |n| hasher.hash_one(&n.name))
        });
        (i, evicted)
    }

    /// Every held entry, most recently used first.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Node> {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let n = self.node(at)?;
            at = n.next;
            Some(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: u64) -> DomainName {
        DomainName::parse(&format!("d{i}.test")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn state() -> Arc<DomainState> {
        Arc::new(DomainState::default())
    }

    /// Against a plain model (a vector, most recent first) over random operations, with a
    /// small bound so evictions, removals and slot reuse all happen often.
    #[test]
    fn behaves_as_a_plain_lru_list() {
        let hasher = foldhash::fast::RandomState::default();
        let cap = 8;
        let mut lru = SlabLru::new(cap);
        let mut model: Vec<u64> = Vec::new();
        let mut seed: u64 = 11;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (seed >> 33) % 20;
            let d = name(k);
            let h = hasher.hash_one(&d);
            match (seed >> 20) % 3 {
                0 => {
                    let got = lru.get(h, &d).map(|n| n.name.clone());
                    let pos = model.iter().position(|&m| m == k);
                    assert_eq!(got.is_some(), pos.is_some());
                    if let Some(p) = pos {
                        model.remove(p);
                        model.insert(0, k);
                    }
                }
                1 => {
                    let got = lru.remove(h, &d);
                    let pos = model.iter().position(|&m| m == k);
                    assert_eq!(got.is_some(), pos.is_some());
                    if let Some(p) = pos {
                        model.remove(p);
                    }
                }
                _ => {
                    if lru.get(h, &d).is_some() {
                        let pos = model.iter().position(|&m| m == k);
                        if let Some(p) = pos {
                            model.remove(p);
                            model.insert(0, k);
                        }
                        continue;
                    }
                    let (i, evicted) = lru.push(h, Node::new(d.clone(), state(), 0), &hasher);
                    assert_eq!(lru.at(i).map(|n| &n.name), Some(&d));
                    if model.len() == cap {
                        let gone = model.pop();
                        assert_eq!(evicted.map(|n| n.name), gone.map(name));
                    } else {
                        assert!(evicted.is_none());
                    }
                    model.insert(0, k);
                }
            }
            let held: Vec<DomainName> = lru.iter().map(|n| n.name.clone()).collect();
            let want: Vec<DomainName> = model.iter().map(|&k| name(k)).collect();
            assert_eq!(held, want);
            assert_eq!(lru.len(), model.len());
        }
        assert!(
            lru.nodes.len() <= cap,
            "slots are reused: {}",
            lru.nodes.len()
        );
    }
}
