//! Response cache counters per route (hits, misses, stale answers, revalidations, 304s,
//! bypasses, stores, evictions, bytes stored) and each worker's store size. Rendered for
//! `/metrics` and the dashboard's JSON.

use super::worker::slot;
use super::{StatsLayout, WorkerStats};
use crate::config::RouteId;
use serde::Serialize;

/// The counters of one route's cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheCounts {
    /// Answered from the store (fresh or stale).
    pub hits: u64,
    /// Went to the origin with nothing stored to answer or revalidate.
    pub misses: u64,
    /// Of the hits, answered stale (max-stale, stale-while-revalidate, stale-if-error).
    pub stale: u64,
    /// Went to the origin to revalidate a stored response.
    pub revalidations: u64,
    /// 304s the cache answered a client's conditional with.
    pub not_modified: u64,
    /// Requests on a caching route the cache did not take part in (other methods, bodies).
    pub bypasses: u64,
    pub stores: u64,
    pub evictions: u64,
    /// Head and body bytes of the responses stored.
    pub bytes_stored: u64,
}

/// One thing the cache did, for [`WorkerStats::cache_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit,
    StaleHit,
    Miss,
    Revalidation,
    NotModified,
    Bypass,
    Stored { bytes: u64, evicted: u64 },
}

impl CacheCounts {
    pub(super) fn add(&mut self, other: &Self) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.stale += other.stale;
        self.revalidations += other.revalidations;
        self.not_modified += other.not_modified;
        self.bypasses += other.bypasses;
        self.stores += other.stores;
        self.evictions += other.evictions;
        self.bytes_stored += other.bytes_stored;
    }

    fn apply(&mut self, event: CacheEvent) {
        match event {
            CacheEvent::Hit => self.hits += 1,
            CacheEvent::StaleHit => {
                self.hits += 1;
                self.stale += 1;
            }
            CacheEvent::Miss => self.misses += 1,
            CacheEvent::Revalidation => self.revalidations += 1,
            CacheEvent::NotModified => self.not_modified += 1,
            CacheEvent::Bypass => self.bypasses += 1,
            CacheEvent::Stored { bytes, evicted } => {
                self.stores += 1;
                self.bytes_stored += bytes;
                self.evictions += evicted;
            }
        }
    }
}

/// A worker's store: bytes and keys held, as of its last snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreGauge {
    pub bytes: u64,
    pub keys: u64,
}

impl WorkerStats {
    /// Counts one cache event on `route`.
    pub fn cache_event(&mut self, route: RouteId, event: CacheEvent) {
        if let Some(stats) = slot(&mut self.routes, route.index()) {
            stats.cache.apply(event);
        }
    }

    /// Sets the store's size, before a snapshot.
    pub fn set_cache_store(&mut self, gauge: StoreGauge) {
        self.cache_store = gauge;
    }

    /// This worker's cache counters over all routes.
    pub(super) fn cache_total(&self) -> CacheCounts {
        let mut total = CacheCounts::default();
        for route in &self.routes {
            total.add(&route.cache);
        }
        total
    }
}

/// Reads one counter.
type CountFn = fn(&CacheCounts) -> u64;
/// Reads one store gauge.
type GaugeFn = fn(&StoreGauge) -> u64;

/// The counter families, per route and per worker.
const FAMILIES: [(&str, &str, CountFn); 9] = [
    ("hits", "Requests answered from the cache.", |counts| counts.hits),
    ("misses", "Requests the cache sent to the origin with nothing stored.", |counts| {
        counts.misses
    }),
    ("stale", "Of the hits, answers from a stale stored response.", |counts| counts.stale),
    ("revalidations", "Stored responses revalidated with the origin.", |counts| {
        counts.revalidations
    }),
    ("not_modified", "304s the cache answered conditional requests with.", |counts| {
        counts.not_modified
    }),
    ("bypasses", "Requests on caching routes the cache did not take part in.", |counts| {
        counts.bypasses
    }),
    ("stores", "Responses stored.", |counts| counts.stores),
    ("evictions", "Stored responses evicted for room.", |counts| counts.evictions),
    ("stored_bytes", "Head and body bytes of the responses stored.", |counts| counts.bytes_stored),
];

/// Writes the cache families in Prometheus text format: per route, then per worker, then
/// each worker's store size.
pub(super) fn render_prometheus(
    layout: &StatsLayout,
    (total, workers): (&WorkerStats, &[Option<WorkerStats>]),
    (family, sample): (super::compression::FamilyFn, super::compression::SampleFn),
    out: &mut String,
) {
    for (key, help, value) in FAMILIES {
        let name = format!("ringway_cache_{key}_total");
        family(out, &name, "counter", help);
        for (label, stats) in layout.routes.iter().zip(&total.routes) {
            sample(out, &name, &[("route", label.name.as_str())], value(&stats.cache));
        }
        let name = format!("ringway_worker_cache_{key}_total");
        family(out, &name, "counter", help);
        for (index, stats) in workers.iter().enumerate() {
            let worker = index.to_string();
            let count = stats.as_ref().map_or(0, |stats| value(&stats.cache_total()));
            sample(out, &name, &[("worker", &worker)], count);
        }
    }
    let gauges: [(&str, &str, GaugeFn); 2] = [
        ("ringway_worker_cache_bytes", "Bytes each worker's cache store holds.", |gauge| {
            gauge.bytes
        }),
        ("ringway_worker_cache_keys", "Keys each worker's cache store holds.", |gauge| gauge.keys),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for (index, stats) in workers.iter().enumerate() {
            let worker = index.to_string();
            let gauge = stats.as_ref().map_or(0, |stats| value(&stats.cache_store));
            sample(out, name, &[("worker", &worker)], gauge);
        }
    }
}

/// The CACHE object of a route or a worker in `/stats`.
pub(super) fn to_json(counts: &CacheCounts, store: Option<&StoreGauge>) -> serde_json::Value {
    let mut value = serde_json::json!(counts);
    let lookups = counts.hits + counts.misses + counts.revalidations;
    if let Some(map) = value.as_object_mut() {
        let ratio = if lookups == 0 { 0.0 } else { counts.hits as f64 / lookups as f64 };
        map.insert("hit_ratio".to_owned(), ratio.into());
        if let Some(store) = store {
            map.insert("store_bytes".to_owned(), store.bytes.into());
            map.insert("store_keys".to_owned(), store.keys.into());
        }
    }
    value
}
