//! Picks one backend of a cluster for each request.
//!
//! Input: one [`Candidate`] per backend (effective weight, loads, latency), built by the caller
//! from worker-owned state, plus a hash key for the hash policies. Output: a [`BackendId`], or
//! `None` when no backend is eligible (weight 0). Balancers are per worker and share nothing,
//! so two workers may pick the same backend at the same moment; that is by design.

mod consistent_hash;
mod least_connections;
mod peak_ewma;
mod random;
mod round_robin;
mod slow_start;

pub use crate::config::BackendId;
pub use consistent_hash::hash_key;
pub use peak_ewma::PeakEwma;
pub use round_robin::RoundRobin;
pub use slow_start::slow_start_weight;

use consistent_hash::Ring;
use random::Rng;

/// The factor between configured weights and candidate weights: slow start can then ramp
/// a backend of weight 1 through 100 steps instead of jumping from 1 to 1. Every policy
/// compares weights only as ratios, so the factor changes no pick.
pub const WEIGHT_SCALE: u32 = 100;

/// What the balancer knows about one backend at pick time, built by the caller per pick from
/// worker-owned state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Effective weight: configured weight scaled by slow start; 0 means not eligible
    /// (unhealthy, ejected, draining or disabled).
    pub weight: u32,
    /// Exchanges in flight to this backend from this worker (exact, current).
    pub in_flight: u32,
    /// In-flight exchanges of the other workers, from the last periodic snapshot (may be
    /// stale by <= 100 ms).
    pub in_flight_others: u32,
    /// Peak-EWMA of response latency in nanoseconds as kept by this worker; 0.0 when unknown.
    pub latency_ewma_ns: f64,
}

impl Candidate {
    /// Exchanges in flight to this backend from all workers, as far as this worker knows.
    fn load(&self) -> u64 {
        u64::from(self.in_flight) + u64::from(self.in_flight_others)
    }
}

/// How a cluster spreads its exchanges over its backends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Smooth weighted round robin (nginx's interleaving).
    RoundRobin,
    /// Weighted random.
    Random,
    /// Power of two random choices: two weighted random candidates, the one with the lower
    /// `(in_flight + in_flight_others) / weight` wins.
    P2c,
    /// Consistent hash of the client address (the caller passes `hash_key(ip bytes)`).
    IpHash,
    /// Consistent hash of a caller-provided key. `bounded_load = Some(epsilon)` caps every
    /// backend at `ceil((1 + epsilon) * its weight share of the load)`, this request counted;
    /// a key whose backend is at its cap walks on along the ring.
    Hash {
        /// Epsilon of consistent hashing with bounded loads; `None` for plain consistent hash.
        bounded_load: Option<f64>,
    },
    /// Minimises `(in_flight + in_flight_others + 1) / weight`; ties rotate so equal backends
    /// share the load.
    LeastConnections,
    /// Power of two random choices on peak-EWMA latency:
    /// `max(latency_ewma_ns, floor) * (in_flight + 1) / weight`.
    LeastResponseTime,
}

/// Per-worker, per-cluster balancer state. No locks, no atomics.
#[derive(Debug, Clone)]
pub struct Balancer {
    policy: Policy,
    round_robin: RoundRobin,
    /// Empty unless the policy hashes: 160 points per unit of weight cost memory.
    ring: Ring,
    rng: Rng,
    /// Where the least-connections scan starts: one past the previous pick, so ties rotate.
    cursor: usize,
}

impl Balancer {
    /// A balancer for the backends called `names` (their addresses as written in config, in
    /// [`BackendId`] order) with configured `weights`.
    ///
    /// The consistent-hash ring is built from names and weights only, so every worker and
    /// every restart builds the same ring. `seed` seeds the RNG; the caller mixes the worker
    /// id in so that workers do not make the same random choices in lockstep.
    pub fn new(policy: Policy, names: &[&str], weights: &[u32], seed: u64) -> Self {
        debug_assert_eq!(names.len(), weights.len(), "one weight per backend name");
        let ring = match policy {
            Policy::IpHash | Policy::Hash { .. } => Ring::new(names, weights),
            _ => Ring::default(),
        };
        // Callers pass candidate weights scaled by WEIGHT_SCALE; a bound that is too high
        // only costs rejected draws, one that is too low would bias them.
        let weight_max = weights.iter().copied().max().unwrap_or(1).saturating_mul(WEIGHT_SCALE);
        Self {
            policy,
            round_robin: RoundRobin::new(names.len()),
            ring,
            rng: Rng::new(seed, weight_max),
            cursor: 0,
        }
    }

    /// Picks a backend among `candidates` (index = [`BackendId`], one per name given to
    /// [`Balancer::new`]) with weight > 0, or `None` when none is eligible.
    ///
    /// `key` is read by [`Policy::IpHash`] and [`Policy::Hash`] only. Cost per pick: O(n)
    /// for round robin and least connections; expected O(1) for random, P2C and least
    /// response time (a bounded number of draws, then one O(n) scan); O(log points) plus a
    /// short walk for hash, O(n) more with bounded load. Nothing loops without a bound.
    pub fn select(&mut self, candidates: &[Candidate], key: u64) -> Option<BackendId> {
        let index = match self.policy {
            Policy::RoundRobin => self.round_robin.select_index(candidates),
            Policy::Random => self.rng.sample(candidates),
            Policy::P2c => self.rng.select_p2c(candidates),
            Policy::IpHash => self.ring.select(candidates, key, None),
            Policy::Hash { bounded_load } => self.ring.select(candidates, key, bounded_load),
            Policy::LeastConnections => least_connections::select(candidates, &mut self.cursor),
            Policy::LeastResponseTime => self.rng.select_least_response_time(candidates),
        }?;
        u32::try_from(index).ok().map(BackendId)
    }

    /// The policy this balancer was built with.
    pub fn policy(&self) -> Policy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_POLICIES: [Policy; 8] = [
        Policy::RoundRobin,
        Policy::Random,
        Policy::P2c,
        Policy::IpHash,
        Policy::Hash { bounded_load: None },
        Policy::Hash { bounded_load: Some(0.25) },
        Policy::LeastConnections,
        Policy::LeastResponseTime,
    ];

    const NAMES: [&str; 4] = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];

    fn candidate(weight: u32) -> Candidate {
        Candidate { weight, in_flight: 0, in_flight_others: 0, latency_ewma_ns: 0.0 }
    }

    #[test]
    fn no_eligible_candidate_gives_none_for_every_policy() {
        for policy in ALL_POLICIES {
            let mut balancer = Balancer::new(policy, &NAMES, &[1, 2, 3, 4], 7);
            assert_eq!(balancer.policy(), policy);
            let down = [candidate(0); 4];
            for key in 0..=255u8 {
                assert_eq!(balancer.select(&down, hash_key(&[key])), None, "{policy:?}");
            }
            assert_eq!(balancer.select(&[], 42), None, "{policy:?} on an empty slice");
        }
    }

    #[test]
    fn empty_cluster_gives_none_for_every_policy() {
        for policy in ALL_POLICIES {
            let mut balancer = Balancer::new(policy, &[], &[], 7);
            assert_eq!(balancer.select(&[], 42), None, "{policy:?}");
        }
    }

    #[test]
    fn only_the_eligible_backend_is_picked_by_every_policy() {
        for policy in ALL_POLICIES {
            for eligible in 0..4u32 {
                let mut balancer = Balancer::new(policy, &NAMES, &[1; 4], 3);
                let mut candidates = [candidate(0); 4];
                candidates[eligible as usize].weight = 1;
                for key in 0..500u64 {
                    let picked = balancer.select(&candidates, hash_key(&key.to_le_bytes()));
                    assert_eq!(picked, Some(BackendId(eligible)), "{policy:?}");
                }
            }
        }
    }

    #[test]
    fn more_candidates_than_names_is_not_a_panic() {
        // The caller promises one candidate per name; a mismatch must degrade, not crash.
        for policy in ALL_POLICIES {
            let mut balancer = Balancer::new(policy, &NAMES[..2], &[1, 1], 3);
            let candidates = [candidate(1); 4];
            for key in 0..100u64 {
                let picked = balancer.select(&candidates, key);
                assert!(picked.is_some_and(|id| id.0 < 4), "{policy:?}");
            }
            assert_eq!(balancer.select(&[candidate(0)], 1), None, "{policy:?}");
        }
    }
}
