//! Peak-EWMA of response latency (Finagle, linkerd): a slow sample counts at once, a fast one
//! only slowly, so a backend that just got slow stops getting traffic right away.
//!
//! Kept per backend per worker; fed by the caller with each exchange's latency and `now`.

use std::time::{Duration, Instant};

/// Peak-EWMA of latency, in nanoseconds; 0.0 until the first sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakEwma {
    value_ns: f64,
    /// When the last sample arrived; `None` before the first.
    updated: Option<Instant>,
}

impl PeakEwma {
    /// Folds in one latency sample taken at `now`.
    ///
    /// A sample above the current value replaces it at once (the peak). Otherwise the value
    /// moves toward the sample, keeping `exp(-elapsed / decay)` of itself, where `elapsed` is
    /// the time since the previous sample and `decay` the time constant (e.g. 10 s).
    /// Negative and non-finite samples are ignored: they come from clock trouble.
    pub fn observe(&mut self, sample_ns: f64, now: Instant, decay: Duration) {
        if !sample_ns.is_finite() || sample_ns < 0.0 {
            return;
        }
        let Some(updated) = self.updated else {
            self.value_ns = sample_ns;
            self.updated = Some(now);
            return;
        };
        if sample_ns > self.value_ns {
            self.value_ns = sample_ns;
        } else {
            let kept = kept_fraction(now.saturating_duration_since(updated), decay);
            self.value_ns = self.value_ns * kept + sample_ns * (1.0 - kept);
        }
        // A sample stamped earlier than the last (out of order) must not move time back.
        self.updated = Some(now.max(updated));
    }

    /// The current value in nanoseconds; 0.0 when no sample arrived yet.
    pub fn value_ns(&self) -> f64 {
        self.value_ns
    }

    /// The value decayed toward 0 for the time since the last sample, as linkerd reads it.
    ///
    /// A backend that P2C stops picking gets no new samples; reading through this lets its
    /// old peak fade, so it is tried again instead of being shunned forever.
    pub fn decayed_ns(&self, now: Instant, decay: Duration) -> f64 {
        let Some(updated) = self.updated else { return 0.0 };
        self.value_ns * kept_fraction(now.saturating_duration_since(updated), decay)
    }
}

/// `exp(-elapsed / decay)`; a zero `decay` keeps nothing once any time has passed.
fn kept_fraction(elapsed: Duration, decay: Duration) -> f64 {
    if decay.is_zero() {
        return if elapsed.is_zero() { 1.0 } else { 0.0 };
    }
    (-elapsed.as_secs_f64() / decay.as_secs_f64()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: Duration = Duration::from_secs(10);

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn first_sample_is_the_value() {
        let mut ewma = PeakEwma::default();
        assert_eq!(ewma.value_ns(), 0.0);
        ewma.observe(5e6, Instant::now(), DECAY);
        assert_eq!(ewma.value_ns(), 5e6);
    }

    #[test]
    fn peak_jumps_up_at_once() {
        let start = Instant::now();
        let mut ewma = PeakEwma::default();
        ewma.observe(1e6, start, DECAY);
        ewma.observe(50e6, start + Duration::from_millis(1), DECAY);
        assert_eq!(ewma.value_ns(), 50e6);
    }

    #[test]
    fn lower_samples_decay_the_value_with_elapsed_time() {
        // (elapsed since the 10 ms value, expected after one 1 ms sample)
        let table = [
            (Duration::ZERO, 10e6),
            (DECAY, 1e6 + 9e6 * (-1.0f64).exp()),
            (DECAY * 2, 1e6 + 9e6 * (-2.0f64).exp()),
            (Duration::from_secs(1000), 1e6),
        ];
        for (elapsed, expected) in table {
            let start = Instant::now();
            let mut ewma = PeakEwma::default();
            ewma.observe(10e6, start, DECAY);
            ewma.observe(1e6, start + elapsed, DECAY);
            assert!(close(ewma.value_ns(), expected), "{elapsed:?}: {}", ewma.value_ns());
        }
    }

    #[test]
    fn repeated_low_samples_converge_to_them() {
        let start = Instant::now();
        let mut ewma = PeakEwma::default();
        ewma.observe(100e6, start, DECAY);
        let mut previous = ewma.value_ns();
        for second in 1..=60 {
            ewma.observe(2e6, start + Duration::from_secs(second), DECAY);
            assert!(ewma.value_ns() < previous);
            previous = ewma.value_ns();
        }
        assert!(close(ewma.value_ns(), 2e6 + 98e6 * (-6.0f64).exp()));
    }

    #[test]
    fn bad_samples_and_odd_clocks_are_harmless() {
        let start = Instant::now();
        let mut ewma = PeakEwma::default();
        ewma.observe(3e6, start, DECAY);
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            ewma.observe(bad, start, DECAY);
        }
        assert_eq!(ewma.value_ns(), 3e6);
        // Out of order: an earlier timestamp counts as no time passed.
        ewma.observe(1e6, start.checked_sub(Duration::from_secs(1)).unwrap_or(start), DECAY);
        assert_eq!(ewma.value_ns(), 3e6);
        ewma.observe(1e6, start + Duration::from_secs(1), Duration::ZERO);
        assert_eq!(ewma.value_ns(), 1e6);
    }

    #[test]
    fn reads_decay_toward_zero_without_samples() {
        let start = Instant::now();
        let mut ewma = PeakEwma::default();
        assert_eq!(ewma.decayed_ns(start, DECAY), 0.0);
        ewma.observe(8e6, start, DECAY);
        assert_eq!(ewma.decayed_ns(start, DECAY), 8e6);
        assert!(close(ewma.decayed_ns(start + DECAY, DECAY), 8e6 * (-1.0f64).exp()));
        assert_eq!(ewma.value_ns(), 8e6);
    }
}
