//! Smooth weighted round robin, the interleaving nginx uses: weights 5,1,1 give
//! a a b a c a a, not a a a a a b c.

use super::{BackendId, Candidate};

/// Per-worker state of one cluster's round robin.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    current: Vec<i64>,
}

impl RoundRobin {
    /// State for a cluster of `backends` backends.
    pub fn new(backends: usize) -> Self {
        Self { current: vec![0; backends] }
    }

    /// The next backend for `weights` (one per backend), or `None` when every weight is 0.
    ///
    /// Each pick raises every backend's current value by its weight, takes the largest,
    /// and lowers the chosen one by the total, so over `sum(weights)` picks each backend
    /// is chosen exactly `weight` times. A weight of 0 means not eligible: that backend
    /// is never chosen, even if it kept a high current value from before.
    pub fn select(&mut self, weights: &[u32]) -> Option<BackendId> {
        let index = self.pick(weights.iter().copied())?;
        u32::try_from(index).ok().map(BackendId)
    }

    /// [`RoundRobin::select`] over the candidates' effective weights, as an index.
    pub(super) fn select_index(&mut self, candidates: &[Candidate]) -> Option<usize> {
        self.pick(candidates.iter().map(|candidate| candidate.weight))
    }

    fn pick(&mut self, weights: impl ExactSizeIterator<Item = u32>) -> Option<usize> {
        // Wrap to the backend count: the cluster may have been rebuilt with another size.
        self.current.resize(weights.len(), 0);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (index, weight) in weights.enumerate() {
            if weight == 0 {
                continue;
            }
            let weight = i64::from(weight);
            self.current[index] += weight;
            total += weight;
            if best.is_none_or(|best| self.current[index] > self.current[best]) {
                best = Some(index);
            }
        }
        let best = best?;
        self.current[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(weights: &[u32], count: usize) -> Vec<u32> {
        let mut balancer = RoundRobin::new(weights.len());
        (0..count).map(|_| balancer.select(weights).unwrap().0).collect()
    }

    #[test]
    fn interleaves_by_weight() {
        assert_eq!(picks(&[5, 1, 1], 7), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(picks(&[1, 1], 4), [0, 1, 0, 1]);
    }

    #[test]
    fn each_backend_gets_its_weight_share() {
        let weights = [3, 2, 1, 4];
        let chosen = picks(&weights, 1000);
        for (index, weight) in weights.iter().enumerate() {
            let count = chosen.iter().filter(|&&pick| pick as usize == index).count();
            assert_eq!(count, *weight as usize * 100, "backend {index}");
        }
    }

    #[test]
    fn empty_cluster_has_no_pick() {
        assert_eq!(RoundRobin::new(0).select(&[]), None);
        assert_eq!(RoundRobin::new(3).select(&[0, 0, 0]), None);
    }

    #[test]
    fn ineligible_backend_is_skipped_and_the_rest_keep_their_shares() {
        let mut balancer = RoundRobin::new(3);
        // Backend 1 builds up a high current value, then turns ineligible.
        for _ in 0..5 {
            balancer.select(&[1, 5, 1]);
        }
        let weights = [2, 0, 1];
        let chosen: Vec<u32> = (0..300).map(|_| balancer.select(&weights).unwrap().0).collect();
        assert!(!chosen.contains(&1));
        assert_eq!(chosen.iter().filter(|&&pick| pick == 0).count(), 200);
    }
}
