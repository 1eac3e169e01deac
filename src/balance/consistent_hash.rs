//! Consistent hashing: a ketama-style ring of points per backend, built from the backends'
//! names and configured weights only, so every worker and every restart builds the same ring.
//!
//! Ketama rather than Maglev: an ineligible backend (unhealthy, draining, slow-started to 0)
//! is skipped by walking on along the ring, and only its keys move, with no table to rebuild
//! per worker on every health change. The walk is also what bounded loads need.

use super::Candidate;

/// Ring points per unit of configured weight (ketama's 160): keeps a backend's share of the
/// keys within about 1/sqrt(160) = 8 % of its weight share.
const POINTS_PER_WEIGHT: u64 = 160;

/// Upper bound on the ring's points before the per-backend minimum: 1,000 backends of
/// weight 1 fit unscaled; larger totals scale every backend down alike (4 MiB of ring at most
/// with 1,000 backends: 16 bytes a point).
const RING_POINTS_MAX: u64 = 160_000;

/// Points a backend with weight > 0 keeps however hard the ring is scaled down.
const POINTS_PER_BACKEND_MIN: u64 = 16;

/// Ring points walked before checking, in O(n), whether any candidate is eligible at all: a
/// cluster that is entirely down then costs O(n) per pick, not a walk of the whole ring.
const QUICK_WALK_POINTS: usize = 64;

/// FNV-1a 64 offset basis and prime (IETF draft-eastlake-fnv).
const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// The stable 64-bit hash used for hash keys (client IP bytes, header and cookie values,
/// paths) and for ring points: FNV-1a 64, then murmur3's 64-bit finalizer (`fmix64`).
///
/// Both are fixed, byte-at-a-time algorithms with published constants, so the value is the
/// same on every worker, run, machine and endianness (std's `DefaultHasher` promises none of
/// that). FNV-1a alone mixes the last bytes poorly into the high bits, which decide where a
/// key lands on the ring; the finalizer gives full avalanche. Not DoS-resistant: a client
/// that can choose its key can choose its backend, which it can mostly do anyway.
pub fn hash_key(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(FNV_OFFSET, bytes))
}

/// FNV-1a 64 continued from `state` over `bytes`.
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME))
}

/// murmur3's 64-bit finalizer: every input bit flips each output bit with probability ~1/2.
fn fmix64(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    hash ^ (hash >> 33)
}

/// The ring: points sorted clockwise, each owned by one backend.
#[derive(Debug, Clone, Default)]
pub(super) struct Ring {
    /// INVARIANT: sorted by (point, backend), so lookups can binary search and equal points
    /// (a hash collision) resolve the same way everywhere.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring for `names` with configured `weights` (zipped; extra entries of
    /// either are ignored).
    ///
    /// Point `j` of a backend is `hash_key(name ++ [0] ++ (j as u32).to_le_bytes())`, so the
    /// ring depends on nothing but the config text.
    pub(super) fn new(names: &[&str], weights: &[u32]) -> Self {
        let total_weight: u64 = weights.iter().map(|&weight| u64::from(weight)).sum();
        let mut points = Vec::new();
        for (index, (name, &weight)) in names.iter().zip(weights).enumerate() {
            let Ok(backend) = u32::try_from(index) else { break };
            let name_state = fnv1a(FNV_OFFSET, name.as_bytes());
            let name_state = fnv1a(name_state, &[0]);
            let count = points_for(weight, total_weight);
            for point in 0..u32::try_from(count).unwrap_or(u32::MAX) {
                points.push((fmix64(fnv1a(name_state, &point.to_le_bytes())), backend));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// Number of points on the ring.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.points.len()
    }

    /// The backend for `key`: the owner of the first point at or after `key` (wrapping) that
    /// is eligible and, with `bounded_load = Some(epsilon)`, below its cap.
    ///
    /// O(log points) to find the start, then a walk that is short unless most backends are
    /// ineligible or full; bounded loads add one O(n) pass to total the loads. Falls back to
    /// ignoring the cap, then to the first eligible candidate, so it returns `Some` whenever
    /// any candidate is eligible.
    pub(super) fn select(
        &self,
        candidates: &[Candidate],
        key: u64,
        bounded_load: Option<f64>,
    ) -> Option<usize> {
        let eligible = |index: usize| candidates.get(index).is_some_and(|c| c.weight > 0);
        let bound = match bounded_load {
            // `None` from the bound means nothing is eligible.
            Some(epsilon) => Some(LoadBound::new(candidates, epsilon)?),
            None => None,
        };
        let admits = |index: usize| {
            eligible(index) && bound.as_ref().is_none_or(|bound| bound.admits(&candidates[index]))
        };
        let start = self.points.partition_point(|&(point, _)| point < key);
        if let Some(index) = self.walk(start, QUICK_WALK_POINTS, admits) {
            return Some(index);
        }
        if !candidates.iter().any(|candidate| candidate.weight > 0) {
            return None;
        }
        self.walk(start, self.points.len(), admits)
            // Rounding in the cap, or the admitted backends have no points.
            .or_else(|| self.walk(start, self.points.len(), eligible))
            .or_else(|| candidates.iter().position(|candidate| candidate.weight > 0))
    }

    /// The backend of the first of at most `limit` points from `start` (wrapping) that
    /// `accept` takes.
    fn walk(&self, start: usize, limit: usize, accept: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.points.len();
        let start = if len == 0 { 0 } else { start % len };
        let clockwise = self.points[start..].iter().chain(&self.points[..start]);
        clockwise.take(limit).map(|&(_, backend)| backend as usize).find(|&index| accept(index))
    }
}

/// Points on the ring for a backend of `weight` in a cluster of `total_weight`.
fn points_for(weight: u32, total_weight: u64) -> u64 {
    let weight = u64::from(weight);
    if weight == 0 {
        return 0;
    }
    if total_weight.saturating_mul(POINTS_PER_WEIGHT) <= RING_POINTS_MAX {
        return weight * POINTS_PER_WEIGHT;
    }
    // Scale every backend alike so the ring stays near RING_POINTS_MAX; weight <= total, so
    // the share is at most RING_POINTS_MAX.
    (weight * RING_POINTS_MAX / total_weight).max(POINTS_PER_BACKEND_MIN)
}

/// The caps of consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018),
/// weighted: backend `i` may hold `ceil((1 + epsilon) * L * w_i / W)` exchanges, where `L` is
/// the eligible backends' load with this request and `W` their total weight.
///
/// With equal weights this is `ceil((1 + epsilon) * average load)`. Some eligible backend is
/// always below its cap: their loads sum to `L - 1 < L`.
#[derive(Debug)]
struct LoadBound {
    /// `(1 + epsilon) * L / W`: the cap per unit of weight.
    cap_per_weight: f64,
}

impl LoadBound {
    /// The caps for `candidates`, or `None` when none is eligible. A negative or NaN
    /// `epsilon` counts as 0, the tightest bound.
    fn new(candidates: &[Candidate], epsilon: f64) -> Option<Self> {
        let eligible = candidates.iter().filter(|candidate| candidate.weight > 0);
        let (load, weight) = eligible.fold((1u64, 0u64), |(load, weight), candidate| {
            (load + candidate.load(), weight + u64::from(candidate.weight))
        });
        if weight == 0 {
            return None;
        }
        let epsilon = if epsilon > 0.0 { epsilon } else { 0.0 };
        // u64 -> f64 rounds above 2^53 exchanges, far beyond any real load.
        Some(Self { cap_per_weight: (1.0 + epsilon) * load as f64 / weight as f64 })
    }

    /// The cap of a backend of this weight.
    fn cap(&self, weight: u32) -> f64 {
        (self.cap_per_weight * f64::from(weight)).ceil()
    }

    /// Whether one more exchange keeps `candidate` within its cap.
    fn admits(&self, candidate: &Candidate) -> bool {
        (candidate.load() + 1) as f64 <= self.cap(candidate.weight)
    }
}

#[cfg(test)]
mod tests;
