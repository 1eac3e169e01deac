//! How far per-worker least connections strays from a global least-connections choice.
//!
//! A seeded simulation in virtual time: requests arrive at random workers (as
//! SO_REUSEPORT spreads them), each worker knows its own in-flight counts exactly and the
//! other workers' from a snapshot taken every sync interval, as `LoadBoard` does. An oracle
//! that sees every worker's counts at once makes the global choice. For each pick we note
//! the chosen backend's true in-flight count minus the smallest one (the excess), and the
//! time-averaged spread (largest minus smallest in-flight count across backends).
//!
//! At the high rate, arrivals average 16,000 requests/s (1.6 per tick) over all workers.

use crate::support::rng::Rng;
use ringway::balance::{Balancer, Candidate, Policy};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const BACKENDS: usize = 4;
const WORKERS: usize = 2;
/// Virtual time step, in microseconds.
const TICK_US: u64 = 100;
/// Simulated time: 10 s.
const DURATION_US: u64 = 10_000_000;
/// Mean service time: 20 ms, so about 320 exchanges are in flight.
const SERVICE_MEAN_US: f64 = 20_000.0;

/// Mean excess per pick and mean spread over time.
#[derive(Debug, Clone, Copy)]
struct Result {
    excess_mean: f64,
    excess_max: u32,
    spread_mean: f64,
}

/// How one simulated run is set up.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// Snapshot interval; 0 is the global oracle, `u64::MAX` never shares counts.
    sync_us: u64,
    /// Other workers' snapshot counts are divided by this, rounded, as `LoadBoard` does
    /// (it uses 2 x workers; 1 is undamped).
    others_divisor: u32,
    /// Share of requests that arrive at worker 0.
    share0: f64,
    arrivals_per_tick: f64,
}

/// What `worker` knows at a pick: its own counts exactly, the others' as last seen.
fn candidates(
    setup: &Setup,
    worker: usize,
    in_flight: &[[u32; BACKENDS]; WORKERS],
    seen: &[[u32; BACKENDS]; WORKERS],
) -> Vec<Candidate> {
    let divisor = setup.others_divisor;
    (0..BACKENDS)
        .map(|backend| {
            let others: u32 = (0..WORKERS)
                .filter(|&other| other != worker)
                .map(|other| seen[other][backend])
                .sum();
            Candidate {
                weight: 1,
                in_flight: in_flight[worker][backend],
                in_flight_others: (others + divisor / 2) / divisor,
                latency_ewma_ns: 0.0,
            }
        })
        .collect()
}

/// An exponentially distributed service time, at least one microsecond.
#[expect(clippy::cast_possible_truncation, reason = "service times are far below u64::MAX us")]
fn service_time_us(rng: &mut Rng) -> u64 {
    ((-SERVICE_MEAN_US * (1.0 - rng.unit()).ln()) as u64).max(1)
}

/// Runs the simulation.
fn simulate(setup: Setup) -> Result {
    let Setup { sync_us, share0, arrivals_per_tick, .. } = setup;
    let mut rng = Rng(42);
    let names: Vec<String> = (0..BACKENDS).map(|index| format!("b{index}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let weights = [1u32; BACKENDS];
    let mut balancers: Vec<Balancer> = (0..WORKERS)
        .map(|worker| Balancer::new(Policy::LeastConnections, &names, &weights, worker as u64))
        .collect();
    // in_flight[worker][backend]: exact; snapshot[worker][backend]: as last published.
    let mut in_flight = [[0u32; BACKENDS]; WORKERS];
    let mut snapshot = [[0u32; BACKENDS]; WORKERS];
    // Pending completions: (finish time, worker, backend).
    let mut pending: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
    let (mut picks, mut excess_sum, mut excess_max) = (0u64, 0u64, 0u32);
    let (mut spread_sum, mut ticks) = (0u64, 0u64);
    let mut now = 0;
    while now < DURATION_US {
        while let Some(&Reverse((finish, worker, backend))) = pending.peek() {
            if finish > now {
                break;
            }
            pending.pop();
            in_flight[worker][backend] -= 1;
        }
        if sync_us > 0 && sync_us != u64::MAX && now % sync_us == 0 {
            snapshot = in_flight;
        }
        for _ in 0..rng.poisson(arrivals_per_tick) {
            let worker = usize::from(rng.unit() >= share0);
            let totals: Vec<u32> =
                (0..BACKENDS).map(|b| (0..WORKERS).map(|w| in_flight[w][b]).sum()).collect();
            let seen = if sync_us == 0 { &in_flight } else { &snapshot };
            let candidates = candidates(&setup, worker, &in_flight, seen);
            let picked = balancers[worker].select(&candidates, 0).expect("all eligible");
            let backend = picked.0 as usize;
            let least = *totals.iter().min().expect("backends");
            let excess = totals[backend] - least;
            excess_sum += u64::from(excess);
            excess_max = excess_max.max(excess);
            picks += 1;
            in_flight[worker][backend] += 1;
            pending.push(Reverse((now + service_time_us(&mut rng), worker, backend)));
        }
        let totals: Vec<u32> =
            (0..BACKENDS).map(|b| (0..WORKERS).map(|w| in_flight[w][b]).sum()).collect();
        spread_sum += u64::from(
            totals.iter().max().expect("backends") - totals.iter().min().expect("backends"),
        );
        ticks += 1;
        now += TICK_US;
    }
    Result {
        excess_mean: excess_sum as f64 / picks as f64,
        excess_max,
        spread_mean: spread_sum as f64 / ticks as f64,
    }
}

/// The numbers README.md quotes. Mean in-flight per backend is about 80 at the high rate.
#[test]
fn per_worker_least_connections_stays_close_to_the_global_choice() {
    let damped = 2 * u32::try_from(WORKERS).expect("a few workers");
    let base =
        Setup { sync_us: 100_000, others_divisor: damped, share0: 0.5, arrivals_per_tick: 1.6 };
    let rows = [
        ("global oracle", Setup { sync_us: 0, others_divisor: 1, ..base }),
        ("10 ms, damped", Setup { sync_us: 10_000, ..base }),
        ("100 ms, damped", base),
        ("1 s, damped", Setup { sync_us: 1_000_000, ..base }),
        ("100 ms, undamped", Setup { others_divisor: 1, ..base }),
        ("own counts only", Setup { sync_us: u64::MAX, ..base }),
        ("100 ms, damped, 90/10 arrivals", Setup { share0: 0.9, ..base }),
        ("100 ms, damped, low rate", Setup { arrivals_per_tick: 0.04, ..base }),
    ];
    eprintln!("| snapshot | mean excess | max excess | mean spread |");
    let results: Vec<Result> = rows.iter().map(|(_, setup)| simulate(*setup)).collect();
    for ((name, _), result) in rows.iter().zip(&results) {
        eprintln!(
            "| {name} | {:.2} | {} | {:.2} |",
            result.excess_mean, result.excess_max, result.spread_mean
        );
    }
    let [global, _, at_100ms, _, undamped, own, skewed, low] = results[..] else {
        unreachable!("eight rows")
    };
    assert!(global.excess_mean < 0.01, "the oracle picks the least loaded: {global:?}");
    // With the default 100 ms sync, a pick lands on average within one in-flight exchange of
    // the least loaded backend (of ~80 each), and the spread stays within a few exchanges.
    for result in [at_100ms, skewed, low] {
        assert!(result.excess_mean < 1.0 && result.spread_mean < 3.0, "{result:?}");
    }
    // Stale counts at full weight make every worker pile onto the backend that looked least
    // loaded at the last sync: that is why the proxy damps them.
    assert!(undamped.excess_mean > 4.0 * at_100ms.excess_mean, "{undamped:?} {at_100ms:?}");
    assert!(at_100ms.excess_mean < 2.0 * own.excess_mean + 0.1, "{at_100ms:?} {own:?}");
}
