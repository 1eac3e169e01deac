//! Shares, preferences and edge cases of the random policies, over many seeded picks.

use super::*;
use crate::balance::{Balancer, Policy};

const PICKS: usize = 100_000;

/// Allowed distance of an observed share from its expected share, relative to the expected
/// share: 3 % is about 3 standard deviations for a 10 % share over 100k picks.
const SHARE_TOLERANCE: f64 = 0.03;

/// For small shares 3 % is under one standard deviation, so the tolerance widens to this
/// many standard deviations of the binomial count.
const SHARE_SIGMAS: f64 = 4.0;

/// The tolerance for an expected `share` over `PICKS` picks.
fn tolerance(share: f64) -> f64 {
    let sigma = (share * (1.0 - share) / PICKS as f64).sqrt();
    (share * SHARE_TOLERANCE).max(SHARE_SIGMAS * sigma)
}

fn candidate(weight: u32, in_flight: u32) -> Candidate {
    Candidate { weight, in_flight, in_flight_others: 0, latency_ewma_ns: 0.0 }
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("10.0.0.{index}:8080")).collect()
}

/// Picks `PICKS` times with fixed candidates and returns each backend's share.
fn shares(policy: Policy, candidates: &[Candidate], seed: u64) -> Vec<f64> {
    let names = names(candidates.len());
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let weights: Vec<u32> = candidates.iter().map(|candidate| candidate.weight.max(1)).collect();
    let mut balancer = Balancer::new(policy, &names, &weights, seed);
    let mut counts = vec![0usize; candidates.len()];
    for _ in 0..PICKS {
        counts[balancer.select(candidates, 0).unwrap().0 as usize] += 1;
    }
    counts.iter().map(|&count| count as f64 / PICKS as f64).collect()
}

fn assert_weight_shares(policy: Policy, candidates: &[Candidate]) {
    let total: u32 = candidates.iter().map(|candidate| candidate.weight).sum();
    for seed in [1, 2, 3] {
        let observed = shares(policy, candidates, seed);
        for (index, candidate) in candidates.iter().enumerate() {
            let expected = f64::from(candidate.weight) / f64::from(total);
            let error = (observed[index] - expected).abs();
            assert!(
                error <= tolerance(expected),
                "{policy:?} seed {seed} backend {index}: {} vs {expected}",
                observed[index]
            );
        }
    }
}

#[test]
fn random_and_p2c_with_equal_loads_follow_the_weights() {
    let tables: [&[Candidate]; 4] = [
        &[candidate(1, 0), candidate(2, 0), candidate(3, 0), candidate(4, 0)],
        // Skewed: most draws are rejected, so the O(n) fallback scan runs often.
        &[candidate(100, 0), candidate(1, 0), candidate(1, 0), candidate(10, 0)],
        // Ineligible backends among them.
        &[candidate(0, 0), candidate(5, 0), candidate(0, 0), candidate(5, 0), candidate(2, 0)],
        // Loads proportional to weight: equal load per unit of weight ties every pair.
        &[candidate(1, 3), candidate(2, 6), candidate(3, 9), candidate(4, 12)],
    ];
    for candidates in tables {
        assert_weight_shares(Policy::Random, candidates);
        assert_weight_shares(Policy::P2c, candidates);
    }
}

#[test]
fn p2c_picks_the_less_loaded_of_two() {
    // (candidates, expected pick): with two backends both are always drawn.
    let table: [([Candidate; 2], usize); 4] = [
        ([candidate(1, 10), candidate(1, 0)], 1),
        ([candidate(1, 0), candidate(1, 10)], 0),
        // Weighted: 4 in flight on weight 4 is lighter than 2 on weight 1.
        ([candidate(4, 4), candidate(1, 2)], 0),
        ([Candidate { in_flight_others: 9, ..candidate(1, 0) }, candidate(1, 1)], 1),
    ];
    for (candidates, expected) in table {
        let mut balancer = Balancer::new(Policy::P2c, &["a", "b"], &[4, 4], 11);
        for _ in 0..1000 {
            assert_eq!(balancer.select(&candidates, 0).unwrap().0 as usize, expected);
        }
    }
}

#[test]
fn p2c_never_picks_the_most_loaded_of_three() {
    let candidates = [candidate(1, 0), candidate(1, 50), candidate(1, 1)];
    let observed = shares(Policy::P2c, &candidates, 5);
    assert_eq!(observed[1], 0.0);
    // Backend 0 wins every pair it is in: 2 of the 3 pairs.
    assert!((observed[0] - 2.0 / 3.0).abs() < 0.02, "{observed:?}");
}

/// Simulates one worker sending an exchange every `ARRIVAL_NS` to backends whose service
/// time equals their EWMA, and returns each backend's share of the exchanges.
fn simulate_least_response_time(latencies_ns: &[f64]) -> Vec<f64> {
    const ARRIVAL_NS: f64 = 100_000.0;
    let names = names(latencies_ns.len());
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut balancer = Balancer::new(Policy::LeastResponseTime, &names, &vec![1; names.len()], 9);
    let mut completions: Vec<Vec<f64>> = vec![Vec::new(); latencies_ns.len()];
    let mut counts = vec![0usize; latencies_ns.len()];
    for step in 0..20_000 {
        let now = step as f64 * ARRIVAL_NS;
        for pending in &mut completions {
            pending.retain(|&done| done > now);
        }
        let candidates: Vec<Candidate> = latencies_ns
            .iter()
            .zip(&completions)
            .map(|(&latency, pending)| Candidate {
                latency_ewma_ns: latency,
                ..candidate(1, u32::try_from(pending.len()).unwrap())
            })
            .collect();
        let picked = balancer.select(&candidates, 0).unwrap().0 as usize;
        counts[picked] += 1;
        completions[picked].push(now + latencies_ns[picked]);
    }
    counts.iter().map(|&count| count as f64 / 20_000.0).collect()
}

#[test]
fn least_response_time_starves_a_ten_times_slower_backend() {
    let observed = simulate_least_response_time(&[10e6, 1e6, 1e6, 1e6]);
    // A fair share would be 25 %; the slow backend should get under a third of that.
    assert!(observed[0] < 0.25 / 3.0, "{observed:?}");
    for fast in &observed[1..] {
        assert!(*fast > 0.25, "{observed:?}");
    }
}

#[test]
fn least_response_time_tries_backends_of_unknown_latency() {
    let candidates = [
        Candidate { latency_ewma_ns: 5e6, ..candidate(1, 0) },
        Candidate { latency_ewma_ns: 5e6, ..candidate(1, 0) },
        Candidate { latency_ewma_ns: 0.0, ..candidate(1, 0) },
    ];
    let observed = shares(Policy::LeastResponseTime, &candidates, 4);
    // Unknown counts as the floor, so the new backend wins every pair it is in.
    assert!((observed[2] - 2.0 / 3.0).abs() < 0.02, "{observed:?}");
}

#[test]
fn response_time_score_floors_unknown_and_scales_by_load_and_weight() {
    let base = candidate(1, 0);
    // (candidate, expected score in ns)
    let table = [
        (Candidate { latency_ewma_ns: 0.0, ..base }, LATENCY_FLOOR_NS),
        (Candidate { latency_ewma_ns: f64::NAN, ..base }, LATENCY_FLOOR_NS),
        (Candidate { latency_ewma_ns: 10.0, ..base }, LATENCY_FLOOR_NS),
        (Candidate { latency_ewma_ns: 2e6, ..base }, 2e6),
        (Candidate { latency_ewma_ns: 2e6, ..candidate(1, 3) }, 8e6),
        (Candidate { latency_ewma_ns: 2e6, ..candidate(4, 3) }, 2e6),
    ];
    for (candidate, expected) in table {
        assert_eq!(response_time_score(&candidate), expected, "{candidate:?}");
    }
}

#[test]
fn rng_is_deterministic_per_seed_and_differs_between_seeds() {
    let draw = |seed| {
        let mut rng = Rng::new(seed, 1);
        (0..8).map(|_| rng.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draw(1), draw(1));
    assert_ne!(draw(1), draw(2));
}

#[test]
fn a_weight_above_the_configured_maximum_still_gets_its_share() {
    // Configured max 1, but the caller passes 8: the bound adapts after the first sighting.
    let mut rng = Rng::new(3, 1);
    let candidates = [candidate(8, 0), candidate(2, 0)];
    let mut first = 0;
    for _ in 0..PICKS {
        first += usize::from(rng.sample(&candidates) == Some(0));
    }
    let share = first as f64 / PICKS as f64;
    assert!((share - 0.8).abs() <= tolerance(0.8), "{share}");
}

#[test]
fn sampling_nothing_eligible_is_none_and_bounded() {
    let mut rng = Rng::new(3, 100);
    assert_eq!(rng.sample(&[]), None);
    assert_eq!(rng.sample(&[candidate(0, 0); 1000]), None);
    assert_eq!(rng.select_p2c(&[candidate(0, 0); 3]), None);
    assert_eq!(rng.select_least_response_time(&[candidate(0, 0); 3]), None);
}
