//! `Cache-Control` directives (RFC 9111 §5.2), of a response and of a request, read from
//! every line of the field. A directive whose value does not parse makes the whole field
//! [`Directives::malformed`]: the policy then neither stores nor reuses on its strength.

/// Delta-seconds past this are taken as this (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// The directives the cache acts on. Durations are in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    /// `no-cache`, with or without field names (a qualified one is treated as unqualified,
    /// which RFC 9111 §5.2.2.4 allows: revalidating more is always safe).
    pub no_cache: bool,
    /// `private`, qualified or not: a shared cache stores neither.
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub immutable: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// Request: `max-stale`, with its value or `u64::MAX` for any staleness.
    pub max_stale: Option<u64>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
    /// A directive the cache acts on had a value that does not parse.
    pub malformed: bool,
    /// At least one `Cache-Control` line was seen.
    pub present: bool,
}

impl Directives {
    /// Reads every `Cache-Control` value of a head; the first occurrence of a directive
    /// wins (RFC 9111 §4.2.1 allows it).
    pub fn parse<'v>(values: impl Iterator<Item = &'v [u8]>) -> Self {
        let mut directives = Self::default();
        for value in values {
            directives.add(value);
        }
        directives
    }

    /// Reads one more `Cache-Control` value.
    pub fn add(&mut self, value: &[u8]) {
        self.present = true;
        for (name, argument) in split(value) {
            self.apply(name, argument);
        }
    }

    fn apply(&mut self, name: &[u8], argument: Option<&[u8]>) {
        let seconds = |slot: &mut Option<u64>, malformed: &mut bool| {
            if slot.is_some() {
                return;
            }
            match argument.and_then(delta_seconds) {
                Some(value) => *slot = Some(value),
                None => *malformed = true,
            }
        };
        let lower = name.to_ascii_lowercase();
        match &lower[..] {
            b"max-age" => seconds(&mut self.max_age, &mut self.malformed),
            b"s-maxage" => seconds(&mut self.s_maxage, &mut self.malformed),
            b"min-fresh" => seconds(&mut self.min_fresh, &mut self.malformed),
            b"stale-while-revalidate" => {
                seconds(&mut self.stale_while_revalidate, &mut self.malformed);
            }
            b"stale-if-error" => seconds(&mut self.stale_if_error, &mut self.malformed),
            b"max-stale" if self.max_stale.is_none() => match argument {
                None => self.max_stale = Some(u64::MAX),
                Some(value) => match delta_seconds(value) {
                    Some(value) => self.max_stale = Some(value),
                    None => self.malformed = true,
                },
            },
            b"no-store" => self.no_store = true,
            b"no-cache" => self.no_cache = true,
            b"private" => self.private = true,
            b"public" => self.public = true,
            b"must-revalidate" => self.must_revalidate = true,
            b"proxy-revalidate" => self.proxy_revalidate = true,
            b"must-understand" => self.must_understand = true,
            b"immutable" => self.immutable = true,
            b"only-if-cached" => self.only_if_cached = true,
            // RFC 9111 §5.2.3: unknown directives are ignored.
            _ => {}
        }
    }
}

/// An `Age` field's value (RFC 9111 §5.1): delta-seconds. A list (`Age: 7200, 0`, two
/// caches' values joined) is read by its first member, so the response is never taken
/// for younger than a cache on its path said; anything else that does not parse is
/// ignored (`None`).
pub fn age_seconds(value: &[u8]) -> Option<u64> {
    let first = value.split(|&byte| byte == b',').next().unwrap_or(value);
    delta_seconds(first.trim_ascii())
}

/// Delta-seconds (RFC 9111 §1.2.2): digits, capped at [`DELTA_SECONDS_MAX`]. A quoted
/// value is read inside its quotes, as RFC 9111 §5.2 asks recipients to accept.
pub fn delta_seconds(value: &[u8]) -> Option<u64> {
    let value =
        value.strip_prefix(b"\"").and_then(|inner| inner.strip_suffix(b"\"")).unwrap_or(value);
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut seconds: u64 = 0;
    for digit in value {
        seconds = seconds.saturating_mul(10).saturating_add(u64::from(digit - b'0'));
    }
    Some(seconds.min(DELTA_SECONDS_MAX))
}

/// The directives of one value: `name` or `name=argument`, comma separated; commas inside
/// a quoted argument do not split.
fn split(value: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let mut quoted = false;
            let mut end = rest.len();
            for (index, &byte) in rest.iter().enumerate() {
                match byte {
                    b'"' => quoted = !quoted,
                    b',' if !quoted => {
                        end = index;
                        break;
                    }
                    _ => {}
                }
            }
            let item = rest[..end].trim_ascii();
            rest = rest.get(end + 1..).unwrap_or_default();
            if item.is_empty() {
                continue;
            }
            return Some(match item.iter().position(|&byte| byte == b'=') {
                Some(equals) => {
                    (item[..equals].trim_ascii(), Some(item[equals + 1..].trim_ascii()))
                }
                None => (item, None),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Directives {
        Directives::parse(values.iter().map(|value| value.as_bytes()))
    }

    #[test]
    fn rfc9111_5_1_age_takes_the_first_member_of_a_list() {
        assert_eq!(age_seconds(b"7200, 0"), Some(7200));
        assert_eq!(age_seconds(b" 30 "), Some(30));
        assert_eq!(age_seconds(b"0,7200"), Some(0));
        assert_eq!(age_seconds(b"abc"), None);
        assert_eq!(age_seconds(b""), None);
        assert_eq!(age_seconds(b"-5"), None);
    }

    #[test]
    fn rfc9111_5_2_directives_across_lines_and_cases() {
        let directives = parse(&["Max-Age=60, public", "s-maxage=30,  no-cache=\"a, b\""]);
        assert_eq!((directives.max_age, directives.s_maxage), (Some(60), Some(30)));
        assert!(directives.public && directives.no_cache && directives.present);
        assert!(!directives.malformed);
        assert!(!parse(&[]).present);
    }

    #[test]
    fn rfc9111_4_2_1_the_first_of_duplicate_directives_wins() {
        assert_eq!(parse(&["max-age=10, max-age=20"]).max_age, Some(10));
        assert_eq!(parse(&["max-age=10", "max-age=20"]).max_age, Some(10));
    }

    #[test]
    fn rfc9111_1_2_2_delta_seconds_bounds_and_quotes() {
        assert_eq!(parse(&["max-age=99999999999999999999"]).max_age, Some(DELTA_SECONDS_MAX));
        assert_eq!(parse(&["max-age=\"30\""]).max_age, Some(30));
        for bad in ["max-age=-1", "max-age=1.5", "max-age=", "max-age", "max-age=ten"] {
            let directives = parse(&[bad]);
            assert!(directives.malformed, "{bad}");
            assert_eq!(directives.max_age, None, "{bad}");
        }
    }

    #[test]
    fn rfc9111_5_2_1_request_directives() {
        let directives = parse(&["max-stale, min-fresh=5, only-if-cached"]);
        assert_eq!(directives.max_stale, Some(u64::MAX));
        assert_eq!(directives.min_fresh, Some(5));
        assert!(directives.only_if_cached);
        assert_eq!(parse(&["max-stale=7"]).max_stale, Some(7));
    }

    #[test]
    fn rfc9111_5_2_3_unknown_directives_are_ignored() {
        let directives = parse(&["foo=\"bar, baz\", max-age=5, ,"]);
        assert_eq!(directives.max_age, Some(5));
        assert!(!directives.malformed);
    }
}
