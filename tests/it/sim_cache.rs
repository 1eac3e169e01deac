//! What a cache per worker costs against one cache shared by all workers.
//!
//! ringway keeps its response cache per worker (shared-nothing): a hot object is stored
//! once per worker, and each worker fetches it from the origin once per freshness
//! lifetime. This seeded simulation puts a number on that. Requests for a catalog of
//! objects follow a Zipf law (web request popularity, Breslau et al. 1999) and arrive at
//! a random worker, as `SO_REUSEPORT` spreads connections. Every object is fresh for
//! `TTL_S` after its fetch. Each setup counts origin fetches (misses and refreshes) and the
//! bytes held at the end:
//!
//! - **shared**: one cache of `workers x memory` bytes that every worker uses;
//! - **per worker**: `workers` caches of `memory` bytes each, as ringway does with
//!   `cache.memory_bytes` (the same memory in all).
//!
//! The caches evict least recently used first: the comparison is between layouts, so both
//! sides get the same policy. `README.md` quotes the table this prints.

use crate::support::rng::Rng;
use std::collections::{BTreeMap, HashMap};

/// Objects the origin serves.
const CATALOG: usize = 100_000;
/// Zipf exponent: web request popularity measures between 0.6 and 1.0.
const ZIPF_S: f64 = 0.9;
/// Requests per second across all workers, and the simulated time.
const RATE: u64 = 5_000;
const DURATION_S: u64 = 120;
/// Freshness lifetime of every object (max-age).
const TTL_S: u64 = 60;
/// Cache memory per worker: 64 MiB, where the catalog (about 1.6 GiB) does not fit, and
/// 2 GiB, where it does and only freshness makes workers fetch.
const MEMORY_PER_WORKER: [u64; 2] = [64 << 20, 2 << 30];
/// Median object size 8 KiB (log-normal, sigma 1.2, so the mean is about 17 KiB), at most
/// the 1 MiB a cache stores by default.
const SIZE_MEDIAN: f64 = 8192.0;
const SIZE_SIGMA: f64 = 1.2;
const SIZE_MAX: u64 = 1 << 20;

/// One cache: least recently used first, bounded in bytes.
struct Lru {
    capacity: u64,
    used: u64,
    /// key -> (size, fresh until (ms), last use stamp)
    entries: HashMap<u32, (u64, u64, u64)>,
    /// last use stamp -> key
    order: BTreeMap<u64, u32>,
    stamp: u64,
}

impl Lru {
    fn new(capacity: u64) -> Self {
        Self { capacity, used: 0, entries: HashMap::new(), order: BTreeMap::new(), stamp: 0 }
    }

    /// Serves `key` at `now_ms`; returns true when the origin had to be asked.
    fn request(&mut self, key: u32, size: u64, now_ms: u64) -> bool {
        self.stamp += 1;
        if let Some(entry) = self.entries.get_mut(&key) {
            self.order.remove(&entry.2);
            entry.2 = self.stamp;
            self.order.insert(self.stamp, key);
            if now_ms < entry.1 {
                return false;
            }
            // Stale: fetched again, fresh for another lifetime.
            entry.1 = now_ms + TTL_S * 1000;
            return true;
        }
        if size > self.capacity {
            return true;
        }
        while self.used + size > self.capacity {
            let (_, victim) = self.order.pop_first().expect("a full cache holds entries");
            let (victim_size, _, _) = self.entries.remove(&victim).expect("ordered entries exist");
            self.used -= victim_size;
        }
        self.used += size;
        self.entries.insert(key, (size, now_ms + TTL_S * 1000, self.stamp));
        self.order.insert(self.stamp, key);
        true
    }
}

/// The catalog: cumulative Zipf weights, and each object's size.
struct Catalog {
    cumulative: Vec<f64>,
    sizes: Vec<u64>,
}

impl Catalog {
    #[expect(clippy::cast_possible_truncation, reason = "sizes are capped at SIZE_MAX")]
    fn new() -> Self {
        let mut total = 0.0;
        let cumulative = (1..=CATALOG)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(ZIPF_S);
                total
            })
            .collect::<Vec<f64>>();
        let cumulative = cumulative.iter().map(|weight| weight / total).collect();
        let mut rng = Rng(7);
        let sizes = (0..CATALOG)
            .map(|_| {
                // Box-Muller for a standard normal draw.
                let (u, v) = (1.0 - rng.unit(), rng.unit());
                let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                ((SIZE_MEDIAN * (SIZE_SIGMA * normal).exp()) as u64).clamp(64, SIZE_MAX)
            })
            .collect();
        Self { cumulative, sizes }
    }

    #[expect(clippy::cast_possible_truncation, reason = "the catalog has fewer than 2^32 objects")]
    fn pick(&self, rng: &mut Rng) -> u32 {
        let draw = rng.unit();
        self.cumulative.partition_point(|&weight| weight < draw).min(CATALOG - 1) as u32
    }
}

/// What one layout cost over the run.
#[derive(Debug, Clone, Copy)]
struct Cost {
    fetches: u64,
    /// Bytes held at the end, all caches together.
    held: u64,
    /// Of those, bytes that are a second (or later) copy of an object another worker holds.
    duplicate: u64,
}

/// Runs the workload over `caches`; with one cache every request goes to it.
fn run(catalog: &Catalog, caches: &mut [Lru]) -> Cost {
    let (mut requests, mut workers) = (Rng(42), Rng(99));
    let mut fetches = 0;
    let total = RATE * DURATION_S;
    for index in 0..total {
        let now_ms = index * 1000 / RATE;
        let key = catalog.pick(&mut requests);
        // Drawn for every layout, so all of them see the same request sequence.
        let worker = usize::try_from(workers.next() % caches.len() as u64).expect("a few");
        let cache = if caches.len() == 1 { &mut caches[0] } else { &mut caches[worker] };
        if cache.request(key, catalog.sizes[key as usize], now_ms) {
            fetches += 1;
        }
    }
    let held = caches.iter().map(|cache| cache.used).sum();
    let mut seen = std::collections::HashSet::new();
    let unique: u64 = caches
        .iter()
        .flat_map(|cache| cache.entries.iter())
        .filter(|(key, _)| seen.insert(**key))
        .map(|(_, (size, _, _))| size)
        .sum();
    Cost { fetches, held, duplicate: held - unique }
}

/// One row of the table: the two layouts for `workers` workers of `memory` bytes each.
struct Row {
    workers: u64,
    shared: Cost,
    split: Cost,
    ratio: f64,
}

fn row(catalog: &Catalog, workers: u64, memory: u64) -> Row {
    let shared = run(catalog, &mut [Lru::new(workers * memory)]);
    let mut per_worker: Vec<Lru> = (0..workers).map(|_| Lru::new(memory)).collect();
    let split = run(catalog, &mut per_worker);
    assert!(per_worker.iter().all(|cache| cache.used <= memory), "over the bound");
    let ratio = split.fetches as f64 / shared.fetches as f64;
    let requests = (RATE * DURATION_S) as f64;
    eprintln!(
        "| {} MiB | {workers} | {} ({:.1}%) | {} ({:.1}%) | {ratio:.2} | {} | {} | {} |",
        memory >> 20,
        shared.fetches,
        100.0 * shared.fetches as f64 / requests,
        split.fetches,
        100.0 * split.fetches as f64 / requests,
        shared.held >> 20,
        split.held >> 20,
        split.duplicate >> 20,
    );
    Row { workers, shared, split, ratio }
}

/// The table in README.md.
#[test]
fn per_worker_caches_cost_origin_fetches_and_memory_against_a_shared_one() {
    let catalog = Catalog::new();
    eprintln!(
        "| memory per worker | workers | origin fetches, shared | origin fetches, per worker \
         | ratio | held MiB, shared | held MiB, per worker | of which duplicates |"
    );
    for memory in MEMORY_PER_WORKER {
        let rows: Vec<Row> = [1, 2, 8, 16].map(|workers| row(&catalog, workers, memory)).into();
        // One worker is one cache: both layouts are the same run.
        assert_eq!(rows[0].shared.fetches, rows[0].split.fetches);
        assert_eq!(rows[0].split.duplicate, 0);
        // Splitting never saves fetches, and its cost grows with the workers.
        for pair in rows.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            let workers = after.workers;
            assert!(after.split.fetches >= after.shared.fetches, "{workers} workers");
            assert!(after.ratio >= before.ratio, "{workers} workers: the ratio fell");
            assert!(after.split.duplicate > 0, "{workers} workers hold no duplicate");
        }
    }
}
