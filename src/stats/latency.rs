//! One latency distribution: an hdr histogram in microseconds plus the exact sum.
//!
//! Recording never fails and never panics: values above [`LATENCY_HIGHEST_US`] are clamped
//! to it. The histogram has fixed bounds, so merging two of them never needs to resize.

use hdrhistogram::Histogram;
use std::time::Duration;

/// Lowest discernible latency: 1 µs.
const LATENCY_LOWEST_US: u64 = 1;
/// Highest recorded latency: one hour. Longer exchanges count as one hour.
pub(super) const LATENCY_HIGHEST_US: u64 = 3_600 * 1_000_000;
/// Two significant figures: every value is kept within 1/128 (0.78 %) of itself.
const LATENCY_SIGNIFICANT_FIGURES: u8 = 2;

/// Bytes of counts in one histogram with the bounds above: 25 power-of-two buckets of 128
/// sub-buckets (plus one half bucket) of `u64` counts, 3,328 counts x 8 bytes = 26,624 bytes.
/// A test checks this number, so a change of bounds shows up here.
pub(super) const LATENCY_HISTOGRAM_BYTES: usize = 26_624;

/// Prometheus bucket bounds, in µs: 0.5 ms to 10 s.
pub(super) const BUCKET_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The same bounds as Prometheus writes them, in seconds.
pub(super) const BUCKET_BOUNDS_LABELS: [&str; 14] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10",
];

/// A latency distribution in microseconds.
#[derive(Debug, Clone)]
pub(super) struct Latency {
    histogram: Histogram<u64>,
    /// Exact sum of the recorded values in µs (unclamped), for Prometheus' `_sum`.
    sum_us: u64,
}

impl Latency {
    /// An empty distribution; allocates [`LATENCY_HISTOGRAM_BYTES`].
    pub(super) fn new() -> Self {
        let histogram = Histogram::new_with_bounds(
            LATENCY_LOWEST_US,
            LATENCY_HIGHEST_US,
            LATENCY_SIGNIFICANT_FIGURES,
        )
        // The bounds are constants that hdrhistogram accepts; a test builds one.
        .expect("constant histogram bounds are valid");
        Self { histogram, sum_us: 0 }
    }

    /// Records one exchange's `duration`, clamped to one hour in the histogram.
    pub(super) fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros);
        self.sum_us = self.sum_us.saturating_add(micros);
    }

    /// Adds `other`'s values to this distribution.
    pub(super) fn merge(&mut self, other: &Self) {
        if self.histogram.add(&other.histogram).is_err() {
            // Unreachable while every histogram has the same bounds; if that ever changes,
            // clamp value by value instead of losing the counts.
            for bin in other.histogram.iter_recorded() {
                self.histogram.saturating_record_n(bin.value_iterated_to(), bin.count_at_value());
            }
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// Values recorded.
    pub(super) fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Exact sum of the recorded values, in µs.
    pub(super) fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// The value at `quantile` (0.0 to 1.0) in milliseconds; 0.0 when empty.
    ///
    /// hdr answers with the highest value equivalent to the true one, so this reads up to
    /// 0.78 % high, never low.
    pub(super) fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        // Exact: values are at most 3.6e9 µs, far below 2^53.
        let micros = self.histogram.value_at_quantile(quantile) as f64;
        micros / 1_000.0
    }

    /// Cumulative counts of values at or below each of [`BUCKET_BOUNDS_US`].
    ///
    /// hdr keeps a bin of equivalent values, not each value, so a bin is counted under the
    /// first bound at or above the bin's lowest value. A value equal to a bound is therefore
    /// always under that bound, and a value up to 0.78 % above a bound may be counted under
    /// it too (at 2.5 ms the bin is 2,496..=2,511 µs, so 2,505 µs counts as <= 2.5 ms).
    pub(super) fn cumulative_buckets(&self) -> [u64; 14] {
        let mut buckets = [0_u64; 14];
        for bin in self.histogram.iter_recorded() {
            let lowest = self.histogram.lowest_equivalent(bin.value_iterated_to());
            if let Some(index) = BUCKET_BOUNDS_US.iter().position(|&bound| lowest <= bound) {
                buckets[index] += bin.count_at_value();
            }
        }
        for index in 1..buckets.len() {
            buckets[index] += buckets[index - 1];
        }
        buckets
    }

    /// Bytes this histogram's counts take.
    #[cfg(test)]
    pub(super) fn histogram_bytes(&self) -> usize {
        self.histogram.distinct_values() * std::mem::size_of::<u64>()
    }
}
