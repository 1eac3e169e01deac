//! Random choices: weighted random, power of two choices (P2C) on load, and P2C on peak-EWMA
//! latency (least response time).
//!
//! Weighted draws are rejection samples against the largest weight seen, so a pick costs
//! expected O(1) draws; after [`SAMPLE_TRIES`] rejected draws one O(n) scan decides, which
//! keeps the distribution exactly weighted and the cost bounded.

use super::Candidate;
use std::cmp::Ordering;

/// Rejection-sampling draws before falling back to one O(n) weighted scan.
///
/// With every backend eligible and equal weights the first draw is accepted; with half the
/// backends ineligible 16 draws all fail with probability 2^-16.
const SAMPLE_TRIES: u32 = 16;

/// Latency that an unknown (0.0) or faster EWMA counts as in least response time, in ns.
///
/// A new backend scores as a 100 µs one, so it gets tried; P2C only offers it in about 2/n
/// of the picks, so it does not get a herd before its first response arrives. Differences
/// below 100 µs are noise next to the (in_flight + 1) factor.
pub(super) const LATENCY_FLOOR_NS: f64 = 100_000.0;

/// splitmix64: tiny, fast, and passes BigCrush; no dependency and no shared state.
#[derive(Debug, Clone)]
pub(super) struct Rng {
    state: u64,
    /// The largest candidate weight seen: the rejection-sampling bound.
    weight_max: u32,
}

impl Rng {
    /// A generator seeded with `seed`; `weight_max` is the largest configured weight.
    pub(super) fn new(seed: u64, weight_max: u32) -> Self {
        Self { state: seed, weight_max: weight_max.max(1) }
    }

    /// The next 64 random bits (splitmix64, Steele, Lea and Flood 2014).
    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..bound` (Lemire's multiply-shift; bias below 2^-32 for our
    /// bounds, which is far under what the shares tests can see). `bound` must be > 0.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A uniform index into a slice of `len` > 0 elements.
    fn index(&mut self, len: usize) -> usize {
        // usize -> u64 -> usize round-trips: the result is below `len`.
        let len = len as u64;
        usize::try_from(self.below(len)).unwrap_or(0)
    }

    /// A candidate drawn with probability proportional to its weight, or `None` when no
    /// candidate has weight > 0.
    pub(super) fn sample(&mut self, candidates: &[Candidate]) -> Option<usize> {
        self.sample_excluding(candidates, None)
    }

    /// [`Rng::sample`] as if candidate `excluded` had weight 0.
    fn sample_excluding(
        &mut self,
        candidates: &[Candidate],
        excluded: Option<usize>,
    ) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        for _ in 0..SAMPLE_TRIES {
            let index = self.index(candidates.len());
            let weight = candidates[index].weight;
            if Some(index) == excluded || weight == 0 {
                continue;
            }
            if weight >= self.weight_max {
                // A weight above the bound (one the caller raised) is accepted outright and
                // becomes the bound: a small, transient bias instead of a wrong one.
                self.weight_max = weight;
                return Some(index);
            }
            if self.below(u64::from(self.weight_max)) < u64::from(weight) {
                return Some(index);
            }
        }
        self.sample_scan(candidates, excluded)
    }

    /// Weighted draw by one pass over the prefix sums; also resets the rejection bound to
    /// the largest weight now present, so the next picks go back to O(1).
    fn sample_scan(&mut self, candidates: &[Candidate], excluded: Option<usize>) -> Option<usize> {
        let weight_of = |index: usize, candidate: &Candidate| {
            if Some(index) == excluded { 0 } else { candidate.weight }
        };
        let mut total = 0u64;
        let mut max = 1u32;
        for (index, candidate) in candidates.iter().enumerate() {
            total += u64::from(weight_of(index, candidate));
            // The bound covers the excluded candidate too: it is excluded from this draw only.
            max = max.max(candidate.weight);
        }
        if total == 0 {
            return None;
        }
        self.weight_max = max;
        let mut target = self.below(total);
        for (index, candidate) in candidates.iter().enumerate() {
            let weight = u64::from(weight_of(index, candidate));
            if target < weight {
                return Some(index);
            }
            target -= weight;
        }
        None
    }

    /// Two distinct weighted draws: the first from all candidates, the second from the rest;
    /// the second is `None` when only one candidate is eligible.
    fn sample_two(&mut self, candidates: &[Candidate]) -> Option<(usize, Option<usize>)> {
        let first = self.sample(candidates)?;
        Some((first, self.sample_excluding(candidates, Some(first))))
    }

    /// P2C on load: of two weighted draws, the one with the lower
    /// `(in_flight + in_flight_others) / weight`; a tie keeps the first draw, so equal
    /// loads give exact weight shares.
    pub(super) fn select_p2c(&mut self, candidates: &[Candidate]) -> Option<usize> {
        let (first, second) = self.sample_two(candidates)?;
        let Some(second) = second else { return Some(first) };
        let (a, b) = (&candidates[first], &candidates[second]);
        // Cross-multiplied to stay in integers: load < 2^33 and weight < 2^32 fit in u128.
        let a_cost = u128::from(a.load()) * u128::from(b.weight);
        let b_cost = u128::from(b.load()) * u128::from(a.weight);
        Some(if b_cost < a_cost { second } else { first })
    }

    /// P2C on peak-EWMA latency: of two weighted draws, the lower
    /// `max(latency_ewma_ns, floor) * (in_flight + 1) / weight`; a tie keeps the first.
    pub(super) fn select_least_response_time(&mut self, candidates: &[Candidate]) -> Option<usize> {
        let (first, second) = self.sample_two(candidates)?;
        let Some(second) = second else { return Some(first) };
        let order = response_time_score(&candidates[second])
            .partial_cmp(&response_time_score(&candidates[first]));
        Some(if order == Some(Ordering::Less) { second } else { first })
    }
}

/// Expected wait at this backend: latency (floored, unknown counts as the floor) times the
/// exchanges it would then have from this worker, per unit of weight.
pub(super) fn response_time_score(candidate: &Candidate) -> f64 {
    // f64::max ignores NaN, so a NaN EWMA also counts as the floor.
    let latency = candidate.latency_ewma_ns.max(LATENCY_FLOOR_NS);
    latency * (f64::from(candidate.in_flight) + 1.0) / f64::from(candidate.weight.max(1))
}

#[cfg(test)]
mod tests;
