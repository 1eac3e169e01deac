//! UTC wall-clock formatting for log lines, without a date crate.
//!
//! [`Clock`] keeps the current second already formatted, so a worker pays for the calendar
//! arithmetic once per second, not once per line.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds of 9999-12-31T23:59:59Z: later times are clamped so the year keeps four digits.
const SECS_MAX: u64 = 253_402_300_799;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Length of `22/Nov/2026:14:01:18 +0000` (nginx `$time_local` in UTC).
pub(crate) const COMBINED_LEN: usize = 26;
/// Length of `2026-11-22T14:01:18` (RFC 3339 without fraction and zone).
pub(crate) const ISO_LEN: usize = 19;

/// A calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: u64,
    pub(crate) month: u64,
    pub(crate) day: u64,
    pub(crate) hour: u64,
    pub(crate) minute: u64,
    pub(crate) second: u64,
}

impl Civil {
    /// Converts seconds since the Unix epoch, clamped to year 9999.
    pub(crate) fn from_unix(secs: u64) -> Self {
        let secs = secs.min(SECS_MAX);
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = secs % 86_400;
        Civil {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
        }
    }
}

/// Howard Hinnant's `civil_from_days` for days since 1970-01-01, restricted to days >= 0
/// so every step stays in unsigned arithmetic. Returns (year, month 1..=12, day 1..=31).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Splits a wall-clock time into whole seconds and milliseconds since the epoch.
///
/// Times before 1970 (a clock set wrong) are logged as the epoch rather than refused.
pub(crate) fn split_unix(time: SystemTime) -> (u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.subsec_millis())
}

/// A worker's cache of the current second in both log formats.
#[derive(Debug)]
pub(crate) struct Clock {
    /// INVARIANT: `combined` and `iso` hold the formatting of exactly this second.
    secs: u64,
    combined: [u8; COMBINED_LEN],
    iso: [u8; ISO_LEN],
}

impl Clock {
    pub(crate) fn new() -> Self {
        let mut clock = Clock { secs: 0, combined: [0; COMBINED_LEN], iso: [0; ISO_LEN] };
        clock.format(0);
        clock
    }

    /// Returns `time` as `22/Nov/2026:14:01:18 +0000`.
    pub(crate) fn combined(&mut self, time: SystemTime) -> &[u8; COMBINED_LEN] {
        self.update(split_unix(time).0);
        &self.combined
    }

    /// Returns `time` as `2026-11-22T14:01:18` and its milliseconds.
    pub(crate) fn iso(&mut self, time: SystemTime) -> (&[u8; ISO_LEN], u32) {
        let (secs, millis) = split_unix(time);
        self.update(secs);
        (&self.iso, millis)
    }

    fn update(&mut self, secs: u64) {
        if secs != self.secs {
            self.format(secs);
        }
    }

    fn format(&mut self, secs: u64) {
        let civil = Civil::from_unix(secs);
        let month = MONTHS[usize::try_from(civil.month - 1).unwrap_or_default() % 12];
        let c = &mut self.combined;
        put_digits(&mut c[0..2], civil.day);
        c[2] = b'/';
        c[3..6].copy_from_slice(month);
        c[6] = b'/';
        put_digits(&mut c[7..11], civil.year);
        c[11] = b':';
        put_digits(&mut c[12..14], civil.hour);
        c[14] = b':';
        put_digits(&mut c[15..17], civil.minute);
        c[17] = b':';
        put_digits(&mut c[18..20], civil.second);
        c[20..].copy_from_slice(b" +0000");

        let i = &mut self.iso;
        put_digits(&mut i[0..4], civil.year);
        i[4] = b'-';
        put_digits(&mut i[5..7], civil.month);
        i[7] = b'-';
        put_digits(&mut i[8..10], civil.day);
        i[10] = b'T';
        put_digits(&mut i[11..13], civil.hour);
        i[13] = b':';
        put_digits(&mut i[14..16], civil.minute);
        i[16] = b':';
        put_digits(&mut i[17..19], civil.second);
        self.secs = secs;
    }
}

/// Writes `value` as zero-padded decimal filling `out` exactly (high digits beyond are cut).
pub(crate) fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + digit(value);
        value /= 10;
    }
}

/// The last decimal digit of `value`.
fn digit(value: u64) -> u8 {
    // `% 10` is below 10, so the conversion cannot fail.
    u8::try_from(value % 10).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    #[test]
    fn civil_known_dates() {
        let cases = [
            (0, (1970, 1, 1, 0, 0, 0)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (1_709_251_199, (2024, 2, 29, 23, 59, 59)),
            (1_795_356_078, (2026, 11, 22, 14, 1, 18)),
            (4_107_542_400, (2100, 3, 1, 0, 0, 0)),
            (u64::MAX, (9999, 12, 31, 23, 59, 59)),
        ];
        for (secs, (year, month, day, hour, minute, second)) in cases {
            let want = Civil { year, month, day, hour, minute, second };
            assert_eq!(Civil::from_unix(secs), want, "secs {secs}");
        }
    }

    #[test]
    fn civil_agrees_with_day_count_over_centuries() {
        // Walk day by day from 1970 to 2400 and check the date advances like a calendar.
        let mut previous = civil_from_days(0);
        for days in 1..(430 * 366) {
            let next = civil_from_days(days);
            let (y, m, d) = previous;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len =
                [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
                    [usize::try_from(m - 1).unwrap()];
            let want = if d < month_len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(next, want, "day {days}");
            previous = next;
        }
    }

    #[test]
    fn clock_formats_and_caches() {
        let mut clock = Clock::new();
        assert_eq!(clock.combined(at(1_795_356_078, 123)), b"22/Nov/2026:14:01:18 +0000");
        let (iso, millis) = clock.iso(at(1_795_356_078, 123));
        assert_eq!((&iso[..], millis), (&b"2026-11-22T14:01:18"[..], 123));
        assert_eq!(clock.combined(at(1_795_356_079, 0)), b"22/Nov/2026:14:01:19 +0000");
        assert_eq!(
            clock.combined(UNIX_EPOCH - Duration::from_secs(5)),
            b"01/Jan/1970:00:00:00 +0000"
        );
    }
}
