//! The store of one worker: primary key -> the stored variants of that URI, bounded in
//! bytes and evicting by S3-FIFO (`quick_cache`'s unsync cache, no locks: the worker owns
//! it). Entries are `Rc`, so an answer holds its entry while a purge or update goes on.

use super::entry::Entry;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter, unsync::Cache};
use std::rc::Rc;

/// Stored variants of one URI at most (RFC 9111 §4.1 secondary keys); a new one past
/// this replaces the oldest.
pub const VARIANTS_MAX: usize = 8;

/// The variants stored under one primary key.
pub type Variants = Vec<Rc<Entry>>;

/// Weighs a slot by the bytes of its key and entries.
#[derive(Debug, Clone, Copy)]
struct ByteWeighter;

impl Weighter<Box<[u8]>, Variants> for ByteWeighter {
    fn weight(&self, key: &Box<[u8]>, variants: &Variants) -> u64 {
        let bytes: usize = variants.iter().map(|entry| entry.weight()).sum();
        (key.len() + bytes) as u64
    }
}

/// Counts the entries evicted by one insert.
#[derive(Debug, Clone, Copy, Default)]
struct CountEvictions;

/// One insert's evictions: the key it inserts (whose old value it replaces, which is no
/// eviction) and the entries evicted to make room.
#[derive(Debug, Default)]
struct Evictions {
    inserting: Box<[u8]>,
    count: u64,
}

impl Lifecycle<Box<[u8]>, Variants> for CountEvictions {
    type RequestState = Evictions;

    fn on_evict(&self, evictions: &mut Evictions, key: Box<[u8]>, variants: Variants) {
        if key != evictions.inserting {
            evictions.count += variants.len() as u64;
        }
    }
}

/// The byte-weighed S3-FIFO cache under a store.
type Slots = Cache<Box<[u8]>, Variants, ByteWeighter, DefaultHashBuilder, CountEvictions>;

/// One worker's stored responses.
pub struct Store {
    cache: Option<Slots>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("bytes", &self.bytes()).field("keys", &self.len()).finish()
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    pub stored: bool,
    pub evicted: u64,
}

impl Store {
    /// A store holding at most `memory_bytes` (none when 0).
    pub fn new(memory_bytes: u64) -> Self {
        let cache = (memory_bytes > 0).then(|| {
            // Sized for entries of ~8 KiB on average; the table grows past it if need be.
            let items =
                usize::try_from(memory_bytes / 8192).unwrap_or(usize::MAX).clamp(16, 1 << 20);
            Cache::with(
                items,
                memory_bytes,
                ByteWeighter,
                DefaultHashBuilder::default(),
                CountEvictions,
            )
        });
        Self { cache }
    }

    /// The variants stored under `key`, marking them used.
    pub fn get(&self, key: &[u8]) -> Option<&Variants> {
        self.cache.as_ref()?.get(key)
    }

    /// Stores `entry` under `key`, replacing the variant `same_variant` says is the same.
    pub fn insert(
        &mut self,
        key: &[u8],
        entry: Rc<Entry>,
        same_variant: impl Fn(&Entry) -> bool,
    ) -> Inserted {
        let Some(cache) = self.cache.as_mut() else { return Inserted::default() };
        if (entry.weight() + key.len()) as u64 > cache.capacity() {
            return Inserted::default();
        }
        let mut variants: Variants = cache
            .peek(key)
            .map(|variants| {
                variants.iter().filter(|stored| !same_variant(stored)).cloned().collect()
            })
            .unwrap_or_default();
        if variants.len() >= VARIANTS_MAX {
            variants.remove(0);
        }
        variants.push(entry);
        let mut evictions = Evictions { inserting: key.into(), count: 0 };
        cache.insert_with_lifecycle(key.into(), variants, &mut evictions);
        Inserted { stored: cache.contains_key(key), evicted: evictions.count }
    }

    /// Drops every variant under `key`; how many were dropped.
    pub fn remove(&mut self, key: &[u8]) -> usize {
        let Some(cache) = self.cache.as_mut() else { return 0 };
        cache.remove(key).map_or(0, |(_, variants)| variants.len())
    }

    /// Drops the variant of `key` that `matches`; true when one was.
    pub fn remove_variant(&mut self, key: &[u8], matches: impl Fn(&Entry) -> bool) -> bool {
        let Some(cache) = self.cache.as_mut() else { return false };
        let Some(variants) = cache.peek(key) else { return false };
        let kept: Variants = variants.iter().filter(|stored| !matches(stored)).cloned().collect();
        if kept.len() == variants.len() {
            return false;
        }
        if kept.is_empty() {
            cache.remove(key);
        } else {
            cache.insert(key.into(), kept);
        }
        true
    }

    /// Drops every key that starts with `prefix`; how many variants were dropped.
    pub fn remove_prefix(&mut self, prefix: &[u8]) -> usize {
        let Some(cache) = self.cache.as_mut() else { return 0 };
        // `retain` takes a `Fn`: count first, then drop.
        let dropped = cache
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(_, variants)| variants.len())
            .sum();
        cache.retain(|key, _| !key.starts_with(prefix));
        dropped
    }

    /// Drops the entries of one URI key (all its variants and key-header values), or
    /// with `prefix` of every key that starts with it; how many entries were dropped.
    pub fn purge(&mut self, key: &[u8], prefix: bool) -> usize {
        if prefix {
            return self.remove_prefix(key);
        }
        let mut with_headers = key.to_vec();
        with_headers.push(0);
        self.remove(key) + self.remove_prefix(&with_headers)
    }

    /// Bytes held, as weighed.
    pub fn bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, Cache::weight)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::{Exchanged, RouteRules};
    use bytes::Bytes;

    fn entry(body_len: usize, tag: &str) -> Rc<Entry> {
        let head: Box<[u8]> = format!("ETag: \"{tag}\"\r\n").into_bytes().into();
        let times = Exchanged { request_time: 0, response_time: 0, age: 0 };
        let body = Bytes::from(vec![b'x'; body_len]);
        Rc::new(Entry::new((200, head), body, Box::new([]), times, &RouteRules::default()))
    }

    #[test]
    fn the_store_stays_within_its_bytes() {
        let mut store = Store::new(1 << 20);
        let mut evicted = 0;
        for index in 0..1000 {
            let inserted =
                store.insert(format!("k{index}").as_bytes(), entry(10_000, "a"), |_| true);
            evicted += inserted.evicted;
            assert!(store.bytes() <= 1 << 20, "{}", store.bytes());
        }
        assert!(evicted > 800, "{evicted}");
        assert!(!store.is_empty());
    }

    #[test]
    fn an_entry_larger_than_the_store_is_not_stored() {
        let mut store = Store::new(1000);
        assert!(!store.insert(b"k", entry(2000, "a"), |_| true).stored);
        assert!(Store::new(0).get(b"k").is_none());
    }

    #[test]
    fn variants_replace_their_own_and_purges_drop_them() {
        let mut store = Store::new(1 << 20);
        store.insert(b"http://h/a", entry(1, "a"), |_| false);
        store.insert(b"http://h/a", entry(1, "b"), |_| false);
        store.insert(b"http://h/a", entry(1, "b2"), |stored| {
            stored.etag.as_deref() == Some(b"\"b\"")
        });
        assert_eq!(store.get(b"http://h/a").map(Vec::len), Some(2));
        store.insert(b"http://h/ab", entry(1, "c"), |_| false);
        store.insert(b"http://h/b", entry(1, "c"), |_| false);
        assert!(
            store.remove_variant(b"http://h/a", |stored| stored.etag.as_deref() == Some(b"\"a\""))
        );
        assert_eq!(store.remove_prefix(b"http://h/a"), 2);
        assert_eq!(store.remove(b"http://h/b"), 1);
        assert!(store.is_empty());
        store.insert(b"http://h/k\0tenant-a", entry(1, "a"), |_| false);
        store.insert(b"http://h/k", entry(1, "a"), |_| false);
        store.insert(b"http://h/kk", entry(1, "a"), |_| false);
        assert_eq!(store.purge(b"http://h/k", false), 2, "the key with its key-header values");
        assert_eq!(store.purge(b"http://h/", true), 1);
    }
}
