//! When a certificate expires: the `notAfter` of an X.509 certificate, read from its DER
//! (RFC 5280 §4.1) with a small walk over the few fields before it, for the
//! `ringway_tls_certificate_expiry_timestamp_seconds` metric.

/// One DER element: its tag, its content, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |len, &byte| len << 8 | usize::from(byte));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`, present in v2 and v3 certificates.
const VERSION: u8 = 0xa0;

/// Seconds since the Unix epoch of the certificate's `notAfter`, or `None` when `der` is
/// no certificate this walk understands.
pub fn not_after(der: &[u8]) -> Option<u64> {
    let (SEQUENCE, certificate, _) = element(der)? else { return None };
    let (SEQUENCE, tbs, _) = element(certificate)? else { return None };
    let (tag, _, mut rest) = element(tbs)?;
    if tag == VERSION {
        // The serial number follows the version.
        rest = element(rest)?.2;
    }
    // signature, issuer, then validity.
    let rest = element(rest)?.2;
    let rest = element(rest)?.2;
    let (SEQUENCE, validity, _) = element(rest)? else { return None };
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    let text = std::str::from_utf8(time).ok()?;
    let text = match tag {
        // Two-digit years: 50..99 are 19xx, 00..49 are 20xx (RFC 5280 §4.1.2.5.1).
        UTC_TIME => {
            let year: u64 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if year >= 50 { "19" } else { "20" })
        }
        GENERALIZED_TIME => text.to_owned(),
        _ => return None,
    };
    unix_seconds(&text)
}

/// `YYYYMMDDHHMMSSZ` as seconds since the epoch (times before 1970 are `None`).
fn unix_seconds(text: &str) -> Option<u64> {
    if text.len() != 15 || !text.ends_with('Z') {
        return None;
    }
    let field = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Howard Hinnant's days_from_civil, for years from 1970 on.
    let (year, month) =
        if month <= 2 { (year.checked_sub(1)?, month + 9) } else { (year, month - 3) };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params =
            rcgen::CertificateParams::new(vec!["expiry.test".to_owned()]).expect("params");
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).expect("a certificate").der().to_vec()
    }

    #[test]
    fn reads_not_after_in_utc_time_and_generalized_time() {
        // 2031-05-17T00:00:00Z: UTCTime (years before 2050).
        assert_eq!(not_after(&certificate((2031, 5, 17))), Some(1_936_742_400));
        // 2060-01-01T00:00:00Z: GeneralizedTime.
        assert_eq!(not_after(&certificate((2060, 1, 1))), Some(2_840_140_800));
        // A leap day.
        assert_eq!(not_after(&certificate((2028, 2, 29))), Some(1_835_395_200));
    }

    #[test]
    fn refuses_what_is_no_certificate() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(b"\x30\x03\x02\x01\x01"), None);
        let der = certificate((2031, 5, 17));
        assert_eq!(not_after(&der[..der.len() / 3]), None, "a truncated certificate");
        assert_eq!(unix_seconds("20311317000000Z"), None, "month 13");
        assert_eq!(unix_seconds("1969123123595 9Z"), None);
    }
}
