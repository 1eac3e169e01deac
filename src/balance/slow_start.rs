//! Slow start: a backend that just became eligible gets its configured weight step by step,
//! so a cold cache or JIT is not hit with a full share at once.

use std::time::{Duration, Instant};

/// The effective weight at `now` of a backend with configured `weight` that became eligible
/// at `since`, for a linear ramp of length `ramp`.
///
/// Rises from 1 to `weight` over `ramp`; never 0 for an eligible backend (weight > 0), so the
/// backend does get a first request. `ramp == 0` means no slow start; `weight == 0` stays 0.
pub fn slow_start_weight(weight: u32, since: Instant, now: Instant, ramp: Duration) -> u32 {
    if ramp.is_zero() {
        return weight;
    }
    let elapsed = now.saturating_duration_since(since);
    if weight == 0 || elapsed >= ramp {
        return weight;
    }
    // elapsed < ramp, so the product over ramp is below weight and fits in u32.
    let scaled = u128::from(weight) * elapsed.as_nanos() / ramp.as_nanos();
    u32::try_from(scaled).unwrap_or(weight).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_linearly_and_never_below_one() {
        let ramp = Duration::from_secs(10);
        // (weight, elapsed, expected)
        let table = [
            (100, Duration::ZERO, 1),
            (100, Duration::from_millis(10), 1),
            (100, Duration::from_secs(1), 10),
            (100, Duration::from_secs(5), 50),
            (100, Duration::from_millis(9_990), 99),
            (100, Duration::from_secs(10), 100),
            (100, Duration::from_secs(3600), 100),
            (3, Duration::from_secs(5), 1),
            (3, Duration::from_secs(7), 2),
            (1, Duration::ZERO, 1),
            (0, Duration::from_secs(5), 0),
            (u32::MAX, Duration::from_secs(5), u32::MAX / 2),
        ];
        let since = Instant::now();
        for (weight, elapsed, expected) in table {
            let effective = slow_start_weight(weight, since, since + elapsed, ramp);
            assert_eq!(effective, expected, "weight {weight} after {elapsed:?}");
        }
    }

    #[test]
    fn rises_monotonically() {
        let ramp = Duration::from_secs(30);
        let since = Instant::now();
        let mut previous = 0;
        for second in 0..=31 {
            let now = since + Duration::from_secs(second);
            let effective = slow_start_weight(40, since, now, ramp);
            assert!(effective >= previous.max(1), "second {second}");
            previous = effective;
        }
        assert_eq!(previous, 40);
    }

    #[test]
    fn zero_ramp_or_clock_going_back_is_harmless() {
        let since = Instant::now();
        assert_eq!(slow_start_weight(7, since, since, Duration::ZERO), 7);
        let before = since.checked_sub(Duration::from_secs(1)).unwrap_or(since);
        assert_eq!(slow_start_weight(7, since, before, Duration::from_secs(10)), 1);
    }
}
