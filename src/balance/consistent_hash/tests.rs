//! Stability, spread, minimal remapping and bounded loads of the consistent-hash ring.

use super::*;
use crate::balance::{Balancer, Policy};

const KEYS: u64 = 100_000;
const N: usize = 10;

fn candidate(weight: u32) -> Candidate {
    Candidate { weight, in_flight: 0, in_flight_others: 0, latency_ewma_ns: 0.0 }
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("10.1.{}.{}:8080", index / 256, index % 256)).collect()
}

fn key(index: u64) -> u64 {
    hash_key(&index.to_le_bytes())
}

/// The backend name each of `KEYS` keys maps to, for backends `names` with equal weights.
fn mapping(names: &[&str], candidates: &[Candidate], policy: Policy) -> Vec<String> {
    let mut balancer = Balancer::new(policy, names, &vec![1; names.len()], 0);
    (0..KEYS)
        .map(|index| {
            let picked = balancer.select(candidates, key(index)).unwrap();
            names[picked.0 as usize].to_owned()
        })
        .collect()
}

#[test]
fn hash_key_is_pinned() {
    // A change here remaps every client of every ring: bump it only on purpose. The FNV-1a
    // column holds the published FNV-1a 64 test vectors.
    let table: [(&[u8], u64, u64); 5] = [
        (b"", 0xCBF2_9CE4_8422_2325, 0xEFD0_1F60_BA99_2926),
        (b"a", 0xAF63_DC4C_8601_EC8C, 0x82A2_A958_A9BE_CE5B),
        (b"foobar", 0x8594_4171_F739_67E8, 0x2C22_1949_22D1_672B),
        (&[192, 168, 1, 10], 0x6DC4_18C3_2FD7_C8E2, 0x334B_5B29_AF5B_98C9),
        (b"10.0.0.1:8080", 0x8C20_5676_CB13_9B95, 0xE8C7_2115_6ED5_2B14),
    ];
    for (bytes, fnv, hash) in table {
        assert_eq!(fnv1a(FNV_OFFSET, bytes), fnv, "{bytes:?}");
        assert_eq!(hash_key(bytes), hash, "{bytes:?}");
    }
}

#[test]
fn same_key_same_backend_on_every_worker() {
    let names = names(N);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let candidates = vec![candidate(1); N];
    // Different seeds stand for different workers; the ring must not depend on them.
    let mut workers: Vec<Balancer> = (0..4)
        .map(|seed| Balancer::new(Policy::Hash { bounded_load: None }, &names, &[1; N], seed))
        .collect();
    let mut ip_hash = Balancer::new(Policy::IpHash, &names, &[1; N], 99);
    for index in 0..10_000 {
        let expected = workers[0].select(&candidates, key(index));
        for worker in &mut workers {
            assert_eq!(worker.select(&candidates, key(index)), expected);
            assert_eq!(worker.select(&candidates, key(index)), expected, "repeat");
        }
        assert_eq!(ip_hash.select(&candidates, key(index)), expected);
    }
}

#[test]
fn keys_spread_by_weight() {
    let names = names(N);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let weights: Vec<u32> = (1..=3).cycle().take(N).collect();
    let total: u32 = weights.iter().sum();
    let candidates: Vec<Candidate> = weights.iter().map(|&weight| candidate(weight)).collect();
    let mut balancer = Balancer::new(Policy::Hash { bounded_load: None }, &names, &weights, 0);
    let mut counts = [0u64; N];
    for index in 0..KEYS {
        counts[balancer.select(&candidates, key(index)).unwrap().0 as usize] += 1;
    }
    for (index, &count) in counts.iter().enumerate() {
        let expected = KEYS as f64 * f64::from(weights[index]) / f64::from(total);
        // 160 points per unit of weight: a share is within ~8 % (one sigma) of its due.
        let error = (count as f64 - expected).abs() / expected;
        assert!(error < 0.25, "backend {index}: {count} keys, {expected} due");
    }
}

#[test]
fn removing_one_of_n_remaps_about_one_nth() {
    let all = names(N);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let policy = Policy::Hash { bounded_load: None };
    let before = mapping(&all, &[candidate(1); N], policy);
    for removed in [0, 4, 9] {
        let rest: Vec<&str> = all.iter().copied().filter(|name| *name != all[removed]).collect();
        let after = mapping(&rest, &[candidate(1); N - 1], policy);
        let moved = before.iter().zip(&after).filter(|(old, new)| old != new).count();
        let moved = moved as f64 / KEYS as f64;
        let due = 1.0 / N as f64;
        assert!((0.5 * due..=1.5 * due).contains(&moved), "removed {removed}: {moved}");
        let kept = before.iter().zip(&after).filter(|(old, _)| **old != all[removed]);
        let (stayed, total) = kept.fold((0, 0), |(stayed, total), (old, new)| {
            (stayed + usize::from(old == new), total + 1)
        });
        // Ketama moves only the removed backend's keys; allow 1 % for the doubt.
        assert!(stayed as f64 >= 0.99 * total as f64, "removed {removed}: {stayed}/{total}");
    }
}

#[test]
fn an_ineligible_backends_keys_move_and_the_others_stay() {
    let names = names(N);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let policy = Policy::Hash { bounded_load: None };
    let before = mapping(&names, &[candidate(1); N], policy);
    let mut candidates = vec![candidate(1); N];
    candidates[3].weight = 0;
    let after = mapping(&names, &candidates, policy);
    let mut moved = 0;
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(new, names[3]);
        if old == names[3] {
            moved += 1;
        } else {
            assert_eq!(old, new, "a key of an eligible backend moved");
        }
    }
    let due = KEYS as f64 / N as f64;
    assert!((0.5 * due..=1.5 * due).contains(&f64::from(moved)), "{moved}");
}

#[test]
fn bounded_load_without_load_is_plain_consistent_hash() {
    let names = names(N);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let candidates = [candidate(1); N];
    let plain = mapping(&names, &candidates, Policy::Hash { bounded_load: None });
    let bounded = mapping(&names, &candidates, Policy::Hash { bounded_load: Some(0.25) });
    assert_eq!(plain, bounded);
}

/// Feeds `picks` skewed keys through a bounded-load balancer, adding each pick to its
/// backend's load and finishing one exchange every third pick, and checks every pick
/// against its cap. Returns the final in-flight counts.
fn run_bounded(epsilon: f64, weights: &[u32], picks: u64) -> Vec<u32> {
    let names = names(weights.len());
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let policy = Policy::Hash { bounded_load: Some(epsilon) };
    let mut balancer = Balancer::new(policy, &names, weights, 0);
    let mut candidates: Vec<Candidate> = weights.iter().map(|&weight| candidate(weight)).collect();
    let mut finisher = Rng::new(7);
    for pick in 0..picks {
        // Skewed: 70 % of the requests carry one of three hot keys.
        let key = match pick % 10 {
            0..=4 => key(1),
            5 => key(2),
            6 => key(3),
            _ => key(1_000 + pick),
        };
        let load: u64 = candidates.iter().map(Candidate::load).sum::<u64>() + 1;
        let weight_total: u32 = weights.iter().sum();
        let index = balancer.select(&candidates, key).unwrap().0 as usize;
        let due = load as f64 * f64::from(weights[index]) / f64::from(weight_total);
        let cap = ((1.0 + epsilon) * due).ceil();
        candidates[index].in_flight += 1;
        assert!(f64::from(candidates[index].in_flight) <= cap, "pick {pick}: over {cap}");
        if pick % 3 == 2 {
            let busy: Vec<usize> =
                (0..candidates.len()).filter(|&i| candidates[i].in_flight > 0).collect();
            let done = busy[finisher.index(busy.len())];
            candidates[done].in_flight -= 1;
        }
    }
    candidates.iter().map(|candidate| candidate.in_flight).collect()
}

#[test]
fn bounded_load_caps_every_backend_under_skewed_keys() {
    for epsilon in [0.0, 0.25, 1.0] {
        run_bounded(epsilon, &[1; N], 20_000);
    }
    // Weighted caps: a weight-3 backend may hold three times as much.
    let loads = run_bounded(0.25, &[3, 1, 1, 1, 2, 2], 20_000);
    assert!(loads[0] > loads[1], "{loads:?}");
}

#[test]
fn bounded_load_counts_other_workers_and_walks_on() {
    let names = names(3);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let policy = Policy::Hash { bounded_load: Some(0.0) };
    let mut balancer = Balancer::new(policy, &names, &[1; 3], 0);
    let idle = [candidate(1); 3];
    let home = balancer.select(&idle, key(5)).unwrap().0 as usize;
    let mut busy = idle;
    busy[home].in_flight_others = 10;
    let picked = balancer.select(&busy, key(5)).unwrap().0 as usize;
    assert_ne!(picked, home);
    // Odd epsilons are clamped instead of disabling the bound or panicking.
    for epsilon in [f64::NAN, -3.0] {
        let policy = Policy::Hash { bounded_load: Some(epsilon) };
        let mut balancer = Balancer::new(policy, &names, &[1; 3], 0);
        assert_ne!(balancer.select(&busy, key(5)).unwrap().0 as usize, home);
    }
}

#[test]
fn ring_size_scales_with_weight_and_stays_bounded() {
    let many = names(1000);
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    // (names, weights, expected points)
    let table: [(&[&str], Vec<u32>, usize); 5] = [
        (&many[..3], vec![1, 1, 1], 480),
        (&many[..3], vec![1, 2, 0], 480),
        (&many, vec![1; 1000], 160_000),
        (&many, vec![100; 1000], 160_000),
        // One heavy backend: the light ones keep their minimum.
        (&many, [vec![100_000], vec![1; 999]].concat(), 100_000 * 160_000 / 100_999 + 999 * 16),
    ];
    for (names, weights, expected) in table {
        let total: u32 = weights.iter().sum();
        assert_eq!(Ring::new(names, &weights).len(), expected, "{} weighing {total}", names.len());
    }
}

#[test]
fn ring_lookup_wraps_and_survives_odd_inputs() {
    let ring = Ring::new(&["a", "b"], &[1, 1]);
    let candidates = [candidate(1), candidate(1)];
    for key in [0, u64::MAX, u64::MAX - 1, 1 << 63] {
        assert!(ring.select(&candidates, key, None).is_some());
    }
    // Candidates without ring points are still reachable; an empty ring is not a panic.
    let empty = Ring::default();
    assert_eq!(empty.select(&candidates, 9, None), Some(0));
    assert_eq!(empty.select(&candidates, 9, Some(0.5)), Some(0));
    assert_eq!(empty.select(&[], 9, None), None);
    assert_eq!(ring.select(&[candidate(0), candidate(0), candidate(4)], 9, None), Some(2));
}

/// splitmix64 for the test's own randomness (which exchange finishes).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn index(&mut self, len: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        usize::try_from(fmix64(self.0) % len as u64).unwrap()
    }
}
