//! Token-bucket math, the LRU bound, the exchange, and the global-rate simulations.

use super::*;

const KEY: u64 = 0x5eed;

fn limit(rate_per_second: f64, burst: u32) -> RateLimit {
    RateLimit { rate_per_second, burst }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[test]
fn burst_then_refill_then_retry_after() {
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit(10.0, 3), 16, 1);
    for _ in 0..3 {
        assert_eq!(limiter.check(KEY, start), Ok(()));
    }
    // Empty: one token takes 1/10 s.
    assert_eq!(limiter.check(KEY, start), Err(ms(100)));
    assert_eq!(limiter.check(KEY, start + ms(40)), Err(ms(60)));
    // Waiting exactly the reported time is enough.
    assert_eq!(limiter.check(KEY, start + ms(100)), Ok(()));
    assert_eq!(limiter.check(KEY, start + ms(100)), Err(ms(100)));
    // Refill stops at the burst however long the key idles.
    let later = start + Duration::from_secs(3600);
    for _ in 0..3 {
        assert_eq!(limiter.check(KEY, later), Ok(()));
    }
    assert!(limiter.check(KEY, later).is_err());
    // Keys are independent.
    assert_eq!(limiter.check(KEY + 1, later), Ok(()));
}

#[test]
fn steady_client_gets_the_rate() {
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit(50.0, 5), 16, 1);
    // 1000 requests per second for 10 s: 5 from the burst, then 50 per second.
    let admitted =
        (0..10_000u32).filter(|&i| limiter.check(KEY, start + ms(u64::from(i))).is_ok()).count();
    assert!((500..=506).contains(&admitted), "{admitted}");
}

#[test]
fn clock_going_backwards_adds_nothing() {
    let start = Instant::now() + Duration::from_secs(10);
    let mut limiter = RateLimiter::new(limit(1.0, 1), 4, 1);
    assert_eq!(limiter.check(KEY, start), Ok(()));
    assert_eq!(limiter.check(KEY, start - Duration::from_secs(5)), Err(Duration::from_secs(1)));
    assert_eq!(limiter.check(KEY, start + ms(500)), Err(ms(500)));
}

#[test]
fn absorbed_takes_create_debt_and_the_wait_grows() {
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit(10.0, 5), 16, 2);
    limiter.absorb(&[(KEY, 3), (KEY, 4)], start);
    // 5 - 7 = -2 tokens: 3 tokens short of one, 0.3 s.
    assert_eq!(limiter.check(KEY, start), Err(ms(300)));
    assert_eq!(limiter.check(KEY, start + ms(300)), Ok(()));
    // The debt is capped at the other workers' burst plus one second at the rate: 1 × 15.
    limiter.absorb(&[(KEY, 1_000_000)], start + ms(300));
    assert_eq!(limiter.check(KEY, start + ms(300)), Err(ms(1600)));
}

#[test]
fn bucket_refills_above_burst_by_the_others_recent_takes() {
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit(10.0, 2), 16, 2);
    let takes = |limiter: &mut RateLimiter, at: Duration| {
        (0..20).take_while(|_| limiter.check(KEY, start + at).is_ok()).count()
    };
    // The others took 3: charged now (2 - 3 = -1), and expected again before the next absorb,
    // so the bucket may hold burst + 3.
    limiter.absorb(&[(KEY, 3)], start);
    assert_eq!(takes(&mut limiter, Duration::from_secs(1)), 5);
    // One absorb without their takes: the estimate is the larger of the last two intervals.
    limiter.absorb(&[], start + Duration::from_secs(1));
    assert_eq!(takes(&mut limiter, Duration::from_secs(2)), 5);
    // Two without: back to the plain burst.
    limiter.absorb(&[], start + Duration::from_secs(2));
    assert_eq!(takes(&mut limiter, Duration::from_secs(3)), 2);
}

#[test]
fn wait_is_capped_and_survives_bad_rates() {
    assert_eq!(wait_for(2.0, 1e-9), RETRY_AFTER_MAX);
    assert_eq!(wait_for(1.0, 0.0), RETRY_AFTER_MAX);
    assert_eq!(wait_for(1.0, f64::NAN), RETRY_AFTER_MAX);
    assert_eq!(wait_for(1.0, -1.0), RETRY_AFTER_MAX);
    assert_eq!(wait_for(1.0, 4.0), ms(250));
    let mut frozen = RateLimiter::new(limit(0.0, 1), 4, 1);
    let start = Instant::now();
    assert_eq!(frozen.check(KEY, start), Ok(()));
    assert_eq!(frozen.check(KEY, start + Duration::from_secs(10)), Err(RETRY_AFTER_MAX));
}

#[test]
fn validate_rejects_bad_limits() {
    assert_eq!(limit(5.0, 1).validate(), Ok(()));
    assert_eq!(limit(0.5, 10).validate(), Ok(()));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(limit(bad, 1).validate().unwrap_err().contains("positive number"));
    }
    assert_eq!(limit(1.0, 0).validate(), Err("burst must be at least 1".to_string()));
}

#[test]
fn lru_bound_holds_and_evicts_least_recently_used() {
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit(1.0, 2), 100, 2);
    for key in 0..10_000 {
        assert!(limiter.check(key, start).is_ok());
        if key % 7 == 0 {
            limiter.absorb(&[(key + 1_000_000, 1)], start);
        }
        assert!(limiter.len() <= 100);
    }
    assert_eq!(limiter.len(), 100);
    let mut small = RateLimiter::new(limit(1.0, 1), 3, 1);
    for key in [1, 2, 3] {
        assert!(small.check(key, start).is_ok());
    }
    // Key 1 is used again, so 2 is now the least recently used and is evicted by key 4.
    assert!(small.check(1, start).is_err());
    assert!(small.check(4, start).is_ok());
    assert_eq!(small.buckets.keys_newest_first(), [4, 1, 3]);
    // Evicted means forgotten: key 2 comes back with a full bucket; 3 (oldest) goes.
    assert!(small.check(2, start).is_ok());
    assert_eq!(small.buckets.keys_newest_first(), [2, 4, 1]);
    assert!(small.check(1, start).is_err(), "key 1 kept its empty bucket");
}

#[test]
fn absorb_never_evicts_a_local_key() {
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit(1.0, 5), 2, 2);
    limiter.absorb(&[(1, 1)], start);
    assert!(limiter.check(2, start).is_ok());
    limiter.absorb(&[(3, 1), (1, 2)], start);
    assert_eq!(limiter.buckets.keys_newest_first(), [1, 2]);
    // Key 1 was created by absorb at 5 - 1, then charged 2 more.
    for _ in 0..2 {
        assert!(limiter.check(1, start).is_ok());
    }
    assert!(limiter.check(1, start).is_err());
}

#[test]
fn take_usage_reports_each_key_once_then_resets() {
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit(100.0, 10), 2, 2);
    for key in [7, 7, 8, 7] {
        assert!(limiter.check(key, start).is_ok());
    }
    let mut usage = Vec::new();
    limiter.take_usage(&mut usage);
    usage.sort_unstable();
    assert_eq!(usage, [(7, 3), (8, 1)]);
    usage.clear();
    limiter.take_usage(&mut usage);
    assert!(usage.is_empty());
    // Key 9 evicts 8 after 8 took: the slot is listed once and reports 9's takes only.
    assert!(limiter.check(8, start).is_ok());
    assert!(limiter.check(7, start).is_ok());
    assert!(limiter.check(9, start).is_ok());
    assert!(limiter.check(9, start).is_ok());
    assert_eq!(limiter.taken_slots.len(), 2);
    limiter.take_usage(&mut usage);
    usage.sort_unstable();
    assert_eq!(usage, [(7, 1), (9, 2)]);
    // Denied requests are not takes.
    let mut tight = RateLimiter::new(limit(1.0, 1), 2, 2);
    for _ in 0..5 {
        let _ = tight.check(KEY, start);
    }
    usage.clear();
    tight.take_usage(&mut usage);
    assert_eq!(usage, [(KEY, 1)]);
}

#[test]
fn exchange_delivers_to_every_other_worker_and_is_bounded() {
    let exchange = RateExchange::new(3);
    exchange.publish(0, &[(1, 2), (3, 4)]);
    exchange.publish(1, &[(5, 6)]);
    exchange.publish(2, &[]);
    let mut out = Vec::new();
    exchange.collect(0, &mut out);
    assert_eq!(out, [(5, 6)]);
    out.clear();
    exchange.collect(1, &mut out);
    assert_eq!(out, [(1, 2), (3, 4)]);
    out.clear();
    exchange.collect(2, &mut out);
    assert_eq!(out, [(1, 2), (3, 4), (5, 6)]);
    out.clear();
    exchange.collect(2, &mut out);
    assert!(out.is_empty(), "collect drains the mailbox");
    // A stalled worker's mailbox holds MAILBOX_INTERVALS_MAX intervals from each other worker.
    for _ in 0..100 {
        exchange.publish(0, &[(1, 1)]);
    }
    exchange.collect(1, &mut out);
    assert_eq!(out.len(), 2 * MAILBOX_INTERVALS_MAX);
    // Out-of-range workers are harmless; one worker has nobody to tell.
    exchange.publish(9, &[(1, 1)]);
    exchange.collect(9, &mut out);
    let alone = RateExchange::new(1);
    alone.publish(0, &[(1, 1)]);
    out.clear();
    alone.collect(0, &mut out);
    assert!(out.is_empty());
}

/// How a client's requests are spread over workers.
#[derive(Debug, Clone, Copy)]
enum Split {
    Even,
    /// 90% on worker 0, the rest spread over the others.
    NinetyTen,
    /// A pseudo-random worker per request, as many connections hashed by SO_REUSEPORT.
    Random,
    /// All requests on one worker for this many milliseconds, then on the next: a client that
    /// moves to whichever connection is not refused yet.
    Rotating(u64),
    OneWorker,
}

/// One client sending `offered_per_second` requests for one key for `seconds` of virtual
/// time over `workers` workers that sync every 100 ms, with their ticks evenly out of phase.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    workers: usize,
    limit: RateLimit,
    offered_per_second: u32,
    seconds: u32,
    split: Split,
}

/// What a simulation measured: admitted requests per second over the whole run, and the
/// fewest and most admitted in one whole second and in 10 whole seconds, the first second
/// (which holds every worker's initial burst) left out.
#[derive(Debug)]
struct Measured {
    rate: f64,
    second_min: u32,
    second_max: u32,
    ten_seconds_min: u32,
    ten_seconds_max: u32,
}

impl Scenario {
    fn worker_for(&self, request: u32, at: Duration, random: &mut u64) -> usize {
        let workers = u32::try_from(self.workers).unwrap();
        let worker = match self.split {
            Split::Even => request % workers,
            Split::NinetyTen if request % 10 < 9 => 0,
            Split::NinetyTen => 1 + (request / 10) % (workers - 1),
            Split::Random => {
                // xorshift64: deterministic, so the measured numbers are reproducible.
                *random ^= *random << 13;
                *random ^= *random >> 7;
                *random ^= *random << 17;
                u32::try_from(*random % u64::from(workers)).unwrap()
            }
            Split::Rotating(phase_ms) => {
                let phase = u64::try_from(at.as_millis()).unwrap() / phase_ms;
                u32::try_from(phase % u64::from(workers)).unwrap()
            }
            Split::OneWorker => 0,
        };
        usize::try_from(worker).unwrap()
    }

    fn run(&self) -> Measured {
        let interval = ms(100);
        let start = Instant::now();
        let workers = u32::try_from(self.workers).unwrap();
        let mut limiters: Vec<RateLimiter> =
            (0..self.workers).map(|_| RateLimiter::new(self.limit, 1024, self.workers)).collect();
        let exchange = RateExchange::new(self.workers);
        let mut next_tick: Vec<Duration> =
            (0..workers).map(|worker| interval + interval * worker / workers).collect();
        let step = Duration::from_secs(1) / self.offered_per_second;
        let mut per_second = vec![0u32; usize::try_from(self.seconds).unwrap()];
        let (mut random, mut usage) = (0x9e37_79b9_7f4a_7c15u64, Vec::new());
        for request in 0..self.offered_per_second * self.seconds {
            let at = step * request;
            // Run every tick due before this request, earliest first.
            while let Some((worker, &due)) =
                next_tick.iter().enumerate().min_by_key(|&(_, due)| *due).filter(|t| *t.1 <= at)
            {
                usage.clear();
                limiters[worker].take_usage(&mut usage);
                exchange.publish(worker, &usage);
                usage.clear();
                exchange.collect(worker, &mut usage);
                limiters[worker].absorb(&usage, start + due);
                next_tick[worker] = due + interval;
            }
            let worker = self.worker_for(request, at, &mut random);
            if limiters[worker].check(KEY, start + at).is_ok() {
                per_second[usize::try_from(at.as_secs()).unwrap()] += 1;
            }
        }
        let admitted: u32 = per_second.iter().sum();
        let steady = &per_second[1..];
        let tens: Vec<u32> = steady.windows(10).map(|window| window.iter().sum()).collect();
        Measured {
            rate: f64::from(admitted) / f64::from(self.seconds),
            second_min: steady.iter().copied().min().unwrap_or(0),
            second_max: steady.iter().copied().max().unwrap_or(0),
            ten_seconds_min: tens.iter().copied().min().unwrap_or(0),
            ten_seconds_max: tens.iter().copied().max().unwrap_or(0),
        }
    }
}

/// Runs `scenario` and prints what it measured (`cargo test -- --nocapture` shows the table).
fn measure(scenario: Scenario) -> Measured {
    let measured = scenario.run();
    let rate = scenario.limit.rate_per_second;
    eprintln!(
        "{} workers {:?} rate {rate} burst {}: {:.2}/s ({:+.2}%), 1 s {}..{}, 10 s {}..{}",
        scenario.workers,
        scenario.split,
        scenario.limit.burst,
        measured.rate,
        (measured.rate / rate - 1.0) * 100.0,
        measured.second_min,
        measured.second_max,
        measured.ten_seconds_min,
        measured.ten_seconds_max,
    );
    measured
}

/// Runs `scenario` and checks the global rate is within ±10% of the limit, over the whole run
/// and over every 10 s after the first second.
fn assert_global_rate(scenario: Scenario) -> Measured {
    let measured = measure(scenario);
    let rate = scenario.limit.rate_per_second;
    assert!((measured.rate - rate).abs() <= rate * 0.10, "{scenario:?}: {measured:?}");
    let ten_seconds = [measured.ten_seconds_min, measured.ten_seconds_max].map(f64::from);
    for admitted in ten_seconds {
        assert!((admitted - rate * 10.0).abs() <= rate, "{scenario:?}: {measured:?}");
    }
    measured
}

#[test]
fn global_rate_holds_across_two_and_four_workers() {
    for workers in [2, 4] {
        for split in [Split::Even, Split::NinetyTen, Split::Random] {
            // Rate, burst, offered: 10× the limit, and also only a little over it.
            let cases = [
                (100, 10, 1000),
                (100, 100, 1000),
                (1000, 100, 10_000),
                (10, 5, 100),
                (100, 1, 1000),
                (100, 10, 150),
            ];
            for (rate, burst, offered_per_second) in cases {
                let limit = limit(f64::from(rate), burst);
                let scenario = Scenario { workers, limit, offered_per_second, seconds: 60, split };
                assert_global_rate(scenario);
            }
        }
    }
}

#[test]
fn a_client_moving_between_workers_never_gets_more() {
    // Each phase sends everything to one worker, then moves on: the worst case for the lag.
    // It may get less (measured: down to -20% at 100 ms phases with 4 workers and burst 10,
    // -42% with burst 1) but never more than the limit plus the initial bursts.
    for workers in [2, 4] {
        for phase_ms in [10, 30, 100, 250, 1000] {
            for (rate, burst) in [(100, 10), (100, 100), (1000, 100), (10, 5), (100, 1)] {
                let limit = limit(f64::from(rate), burst);
                let split = Split::Rotating(phase_ms);
                let offered_per_second = rate * 10;
                let scenario = Scenario { workers, limit, offered_per_second, seconds: 60, split };
                let measured = measure(scenario);
                assert!(measured.rate <= f64::from(rate) * 1.03, "{scenario:?}: {measured:?}");
                assert!(measured.rate >= f64::from(rate) * 0.5, "{scenario:?}: {measured:?}");
            }
        }
    }
}

#[test]
fn a_client_under_the_limit_is_never_refused() {
    // 90% of the limit, with a burst of one sync interval's tokens (100/s × 100 ms).
    for workers in [2, 4, 8] {
        for split in [Split::Even, Split::Random] {
            let limit = limit(100.0, 10);
            let scenario = Scenario { workers, limit, offered_per_second: 90, seconds: 60, split };
            let measured = measure(scenario);
            assert!(measured.rate >= 89.9, "{scenario:?}: {measured:?}");
        }
    }
    // A burst far below one interval's tokens costs some requests (measured with 4 workers,
    // random: 96% get through at half the limit, 93% at 90%), but far fewer than without the
    // pending estimate in `Bucket::pending_at` (83% and 71%).
    let limit = limit(100.0, 1);
    let tight =
        Scenario { workers: 4, limit, offered_per_second: 50, seconds: 60, split: Split::Random };
    assert!(measure(tight).rate >= 47.0);
}

#[test]
fn one_worker_alone_gets_the_whole_rate() {
    for workers in [1, 2, 4] {
        let limit = limit(100.0, 10);
        let scenario = Scenario {
            workers,
            limit,
            offered_per_second: 1000,
            seconds: 60,
            split: Split::OneWorker,
        };
        let measured = assert_global_rate(scenario);
        // Not rate / workers: the idle workers publish nothing, so nothing is charged.
        assert!(measured.rate >= 99.0, "{workers}: {measured:?}");
    }
}

#[test]
fn without_the_exchange_the_rate_would_multiply() {
    // The problem the exchange solves: independent buckets give workers × rate.
    let start = Instant::now();
    let mut limiters: Vec<RateLimiter> =
        (0..4).map(|_| RateLimiter::new(limit(100.0, 10), 16, 4)).collect();
    let admitted = (0..60_000u32)
        .filter(|&i| {
            let worker = usize::try_from(i % 4).unwrap();
            limiters[worker].check(KEY, start + ms(u64::from(i))).is_ok()
        })
        .count();
    assert!(admitted > 23_000, "{admitted}");
}
