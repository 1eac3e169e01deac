//! A bounded least-recently-used map from `u64` keys to values, for per-key limiter state.
//!
//! Slots live in one `Vec` and link to their neighbours by index (no unsafe); a full map reuses
//! the least recently used slot, so once the `Vec` has grown to capacity no insert allocates.
//! Keys may come from an unkeyed hash of client bytes, so the index uses std's keyed SipHash.

use std::collections::HashMap;

/// End of the recency list.
const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Slot<V> {
    key: u64,
    value: V,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

/// A map of at most `capacity` keys that forgets the least recently used key to make room.
///
/// INVARIANT: `index` maps each key in `slots` to its slot; the slots form one list from
/// `newest` to `oldest` through `older` links (and back through `newer` links).
#[derive(Debug)]
pub(super) struct Lru<V> {
    index: HashMap<u64, usize>,
    slots: Vec<Slot<V>>,
    newest: usize,
    oldest: usize,
    capacity: usize,
}

impl<V> Lru<V> {
    /// An empty map for at most `capacity` keys (at least 1).
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        // Grow on demand: most limiters never see `capacity` keys.
        let initial = capacity.min(1024);
        Self {
            index: HashMap::with_capacity(initial),
            slots: Vec::with_capacity(initial),
            newest: NIL,
            oldest: NIL,
            capacity,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn is_full(&self) -> bool {
        self.slots.len() >= self.capacity
    }

    /// The slot of `key`, which becomes the most recently used.
    pub(super) fn find(&mut self, key: u64) -> Option<usize> {
        let slot = *self.index.get(&key)?;
        if self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
        Some(slot)
    }

    /// Inserts `key` (which must be absent) as the most recently used; when the map is full it
    /// takes the least recently used key's slot and returns that key and its value.
    pub(super) fn insert(&mut self, key: u64, value: V) -> (usize, Option<(u64, V)>) {
        debug_assert!(!self.index.contains_key(&key), "insert of a key already present");
        if !self.is_full() {
            let slot = self.slots.len();
            self.slots.push(Slot { key, value, newer: NIL, older: NIL });
            self.index.insert(key, slot);
            self.link_newest(slot);
            return (slot, None);
        }
        let slot = self.oldest;
        self.unlink(slot);
        let evicted_key = std::mem::replace(&mut self.slots[slot].key, key);
        let evicted_value = std::mem::replace(&mut self.slots[slot].value, value);
        self.index.remove(&evicted_key);
        self.index.insert(key, slot);
        self.link_newest(slot);
        (slot, Some((evicted_key, evicted_value)))
    }

    pub(super) fn key(&self, slot: usize) -> u64 {
        self.slots[slot].key
    }

    pub(super) fn value_mut(&mut self, slot: usize) -> &mut V {
        &mut self.slots[slot].value
    }

    /// Keys from the most to the least recently used.
    #[cfg(test)]
    pub(super) fn keys_newest_first(&self) -> Vec<u64> {
        let mut keys = Vec::with_capacity(self.slots.len());
        let mut slot = self.newest;
        while slot != NIL {
            keys.push(self.slots[slot].key);
            slot = self.slots[slot].older;
        }
        keys
    }

    fn unlink(&mut self, slot: usize) {
        let Slot { newer, older, .. } = self.slots[slot];
        match newer {
            NIL => self.newest = older,
            newer => self.slots[newer].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            older => self.slots[older].newer = newer,
        }
    }

    fn link_newest(&mut self, slot: usize) {
        self.slots[slot].newer = NIL;
        self.slots[slot].older = self.newest;
        match self.newest {
            NIL => self.oldest = slot,
            newest => self.slots[newest].newer = slot,
        }
        self.newest = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_reuses_its_slot() {
        let mut lru = Lru::new(3);
        for key in 1..=3 {
            assert_eq!(lru.insert(key, key * 10), (usize::try_from(key - 1).unwrap(), None));
        }
        assert_eq!(lru.keys_newest_first(), [3, 2, 1]);
        assert_eq!(lru.find(1), Some(0));
        assert_eq!(lru.keys_newest_first(), [1, 3, 2]);
        let (slot, evicted) = lru.insert(4, 40);
        assert_eq!((slot, evicted), (1, Some((2, 20))));
        assert_eq!(lru.find(2), None);
        assert_eq!(lru.keys_newest_first(), [4, 1, 3]);
        assert_eq!(*lru.value_mut(slot), 40);
        assert_eq!(lru.key(slot), 4);
        assert_eq!(lru.len(), 3);
        // Touching the oldest, the newest and the middle keeps one consistent list.
        lru.find(3);
        lru.find(3);
        lru.find(1);
        assert_eq!(lru.keys_newest_first(), [1, 3, 4]);
        assert_eq!(lru.insert(5, 50).1, Some((4, 40)));
        assert_eq!(lru.keys_newest_first(), [5, 1, 3]);
    }

    #[test]
    fn capacity_one_and_zero() {
        let mut lru = Lru::new(0);
        assert_eq!(lru.insert(7, ()).1, None);
        assert!(lru.is_full());
        assert_eq!(lru.insert(8, ()).1, Some((7, ())));
        assert_eq!(lru.keys_newest_first(), [8]);
        assert_eq!(lru.find(8), Some(0));
    }
}
