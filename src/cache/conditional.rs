//! What a stored response answers besides itself: a client's conditional GET or HEAD
//! (RFC 9110 §13.1.2, §13.1.3, §13.2.2, RFC 9111 §4.3.2) and a single byte range
//! (RFC 9110 §14.2, §14.4), with `If-Range` (§13.1.5).

use super::entry::{Entry, weak_tag};
use super::policy::http_date;

/// The conditional headers of a request, as values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditionals<'a> {
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
}

impl Conditionals<'_> {
    /// True when the request carries a validator of its own.
    pub fn any(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

/// True when the client's validators say it has this entry: answer 304.
///
/// If-None-Match, when present, decides alone (§13.2.2); If-Modified-Since compares with
/// Last-Modified, or the stored Date where there is none (RFC 9111 §4.3.2).
pub fn not_modified(conditionals: &Conditionals<'_>, entry: &Entry) -> bool {
    if let Some(tags) = conditionals.if_none_match {
        let tags = tags.trim_ascii();
        if tags == b"*" {
            return true;
        }
        let Some(ours) = entry.etag.as_deref() else { return false };
        return tags
            .split(|&byte| byte == b',')
            .map(<[u8]>::trim_ascii)
            .any(|tag| weak_tag(tag) == weak_tag(ours));
    }
    let Some(since) = conditionals.if_modified_since.and_then(http_date) else { return false };
    let modified = entry.last_modified.as_deref().and_then(http_date).unwrap_or(entry.date);
    modified <= since
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole body (no Range, an If-Range that does not match, several ranges or
    /// a unit other than bytes: RFC 9110 §14.2 allows ignoring it).
    Whole,
    /// 206 with these bytes, inclusive.
    Part { first: u64, last: u64 },
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// RFC 9110 §14.2: the single byte range of `conditionals` over `entry`'s body.
pub fn range(conditionals: &Conditionals<'_>, entry: &Entry) -> RangeAnswer {
    let Some(range) = conditionals.range else { return RangeAnswer::Whole };
    if let Some(validator) = conditionals.if_range {
        if !if_range_matches(validator.trim_ascii(), entry) {
            return RangeAnswer::Whole;
        }
    }
    let len = entry.body.len() as u64;
    let Some(spec) = range.trim_ascii().strip_prefix(b"bytes=") else { return RangeAnswer::Whole };
    if spec.contains(&b',') {
        return RangeAnswer::Whole;
    }
    let Some(dash) = spec.iter().position(|&byte| byte == b'-') else { return RangeAnswer::Whole };
    let (first, last) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
    let number = |digits: &[u8]| -> Option<u64> {
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    match (first.is_empty(), number(first), number(last)) {
        // `bytes=-N`: the last N bytes.
        (true, _, Some(suffix)) if suffix > 0 && len > 0 => {
            RangeAnswer::Part { first: len.saturating_sub(suffix), last: len - 1 }
        }
        (true, _, Some(_)) => RangeAnswer::Unsatisfiable,
        (false, Some(first), _) if first >= len => RangeAnswer::Unsatisfiable,
        (false, Some(first), None) if last.is_empty() => RangeAnswer::Part { first, last: len - 1 },
        (false, Some(first), Some(last)) if last >= first => {
            RangeAnswer::Part { first, last: last.min(len - 1) }
        }
        _ => RangeAnswer::Whole,
    }
}

/// RFC 9110 §13.1.5: a strong tag equal to ours, or a date equal to our Last-Modified.
fn if_range_matches(validator: &[u8], entry: &Entry) -> bool {
    if validator.starts_with(b"\"") {
        return entry.etag.as_deref().is_some_and(|ours| ours == validator);
    }
    if validator.starts_with(b"W/") {
        return false;
    }
    let date = http_date(validator);
    date.is_some() && entry.last_modified.as_deref().and_then(http_date) == date
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::{Exchanged, RouteRules};
    use bytes::Bytes;

    fn entry(head: &str) -> Entry {
        let times = Exchanged { request_time: 0, response_time: 0, age: 0 };
        let head: Box<[u8]> = head.as_bytes().into();
        Entry::new(
            (200, head),
            Bytes::from_static(b"0123456789"),
            Box::new([]),
            times,
            &RouteRules::default(),
        )
    }

    const LM: &str = "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

    #[test]
    fn rfc9110_13_1_2_if_none_match_compares_weakly() {
        let stored = entry("ETag: W/\"a\"\r\n");
        let ask = |tags: &'static str| Conditionals {
            if_none_match: Some(tags.as_bytes()),
            ..Conditionals::default()
        };
        assert!(not_modified(&ask("\"x\", \"a\""), &stored));
        assert!(not_modified(&ask("*"), &stored));
        assert!(!not_modified(&ask("\"b\""), &stored));
    }

    #[test]
    fn rfc9110_13_2_2_if_none_match_decides_before_if_modified_since() {
        let stored = entry(&format!("ETag: \"a\"\r\n{LM}"));
        let both = Conditionals {
            if_none_match: Some(b"\"b\""),
            if_modified_since: Some(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            ..Conditionals::default()
        };
        assert!(!not_modified(&both, &stored));
    }

    #[test]
    fn rfc9110_13_1_3_if_modified_since_against_last_modified_or_date() {
        let stored = entry(LM);
        let since = |date: &'static str| Conditionals {
            if_modified_since: Some(date.as_bytes()),
            ..Conditionals::default()
        };
        assert!(not_modified(&since("Sun, 06 Nov 1994 08:49:37 GMT"), &stored));
        assert!(!not_modified(&since("Sat, 05 Nov 1994 08:49:37 GMT"), &stored));
        assert!(!not_modified(&since("not a date"), &stored));
        // RFC 9111 §4.3.2: no Last-Modified, so the stored Date (here the epoch) decides.
        assert!(not_modified(&since("Sat, 05 Nov 1994 08:49:37 GMT"), &entry("")));
    }

    #[test]
    fn rfc9110_14_2_single_ranges() {
        let stored = entry("ETag: \"a\"\r\n");
        let ask = |range: &'static str| range_of(range, None, &stored);
        assert_eq!(ask("bytes=0-3"), RangeAnswer::Part { first: 0, last: 3 });
        assert_eq!(ask("bytes=7-"), RangeAnswer::Part { first: 7, last: 9 });
        assert_eq!(ask("bytes=-3"), RangeAnswer::Part { first: 7, last: 9 });
        assert_eq!(ask("bytes=5-100"), RangeAnswer::Part { first: 5, last: 9 });
        assert_eq!(ask("bytes=10-"), RangeAnswer::Unsatisfiable);
        assert_eq!(ask("bytes=0-1,3-4"), RangeAnswer::Whole);
        assert_eq!(ask("items=0-1"), RangeAnswer::Whole);
        assert_eq!(ask("bytes=3-1"), RangeAnswer::Whole);
        assert_eq!(ask("bytes=x-1"), RangeAnswer::Whole);
    }

    #[test]
    fn rfc9110_13_1_5_if_range_needs_a_strong_match() {
        let stored = entry(&format!("ETag: \"a\"\r\n{LM}"));
        assert_eq!(
            range_of("bytes=0-0", Some("\"a\""), &stored),
            RangeAnswer::Part { first: 0, last: 0 }
        );
        assert_eq!(range_of("bytes=0-0", Some("\"b\""), &stored), RangeAnswer::Whole);
        assert_eq!(range_of("bytes=0-0", Some("W/\"a\""), &stored), RangeAnswer::Whole);
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            range_of("bytes=0-0", Some(date), &stored),
            RangeAnswer::Part { first: 0, last: 0 }
        );
    }

    fn range_of(
        range: &'static str,
        if_range: Option<&'static str>,
        stored: &Entry,
    ) -> RangeAnswer {
        let conditionals = Conditionals {
            range: Some(range.as_bytes()),
            if_range: if_range.map(str::as_bytes),
            ..Conditionals::default()
        };
        super::range(&conditionals, stored)
    }
}
