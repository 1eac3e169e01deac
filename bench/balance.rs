//! Cost of one pick for every balance policy, on clusters of 3, 100 and 1,000 backends whose
//! candidates look like a busy worker's: mixed weights, loads, latencies and one backend down.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringway::balance::{Balancer, Candidate, Policy, hash_key};
use std::hint::black_box;

const SIZES: [usize; 3] = [3, 100, 1000];

const POLICIES: [(&str, Policy); 8] = [
    ("round_robin", Policy::RoundRobin),
    ("random", Policy::Random),
    ("p2c", Policy::P2c),
    ("ip_hash", Policy::IpHash),
    ("hash", Policy::Hash { bounded_load: None }),
    ("hash_bounded", Policy::Hash { bounded_load: Some(0.25) }),
    ("least_connections", Policy::LeastConnections),
    ("least_response_time", Policy::LeastResponseTime),
];

/// Backend names as they appear in config: `10.0.x.y:8080`.
fn names(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("10.0.{}.{}:8080", index / 250, index % 250 + 1)).collect()
}

/// Configured weights: mostly 1, every fifth backend 2 and every tenth 5.
fn weights(count: usize) -> Vec<u32> {
    (0..count)
        .map(|index| match index % 10 {
            0 => 5,
            5 => 2,
            _ => 1,
        })
        .collect()
}

/// Candidates of a loaded cluster: a few exchanges in flight here and on other workers,
/// latencies between 1 and 4 ms, and backend 1 down (weight 0).
fn candidates(weights: &[u32]) -> Vec<Candidate> {
    (0..weights.len())
        .map(|index| {
            let spread = u32::try_from(index % 7).unwrap_or(0);
            Candidate {
                weight: if index == 1 { 0 } else { weights[index] },
                in_flight: spread,
                in_flight_others: 3 * spread + 2,
                latency_ewma_ns: 1e6 + f64::from(spread) * 5e5,
            }
        })
        .collect()
}

fn select(c: &mut Criterion) {
    let mut group = c.benchmark_group("balance_select");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let names = names(size);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let weights = weights(size);
        let candidates = candidates(&weights);
        // Client addresses cycle through 256 keys, as distinct clients would.
        let keys: Vec<u64> = (0..=255u8).map(|last| hash_key(&[192, 168, 7, last])).collect();
        for (label, policy) in POLICIES {
            let mut balancer = Balancer::new(policy, &names, &weights, 0x5EED);
            let mut next = 0usize;
            group.bench_with_input(BenchmarkId::new(label, size), &candidates, |b, candidates| {
                b.iter(|| {
                    next = (next + 1) & 255;
                    balancer.select(black_box(candidates), black_box(keys[next]))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
