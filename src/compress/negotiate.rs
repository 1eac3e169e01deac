//! Content negotiation for response compression (RFC 9110 §12.5.3): which encoding a client
//! accepts, and whether this response may be encoded at all. Pure functions over header
//! values; an `Accept-Encoding` that does not parse counts as `identity` only.

use crate::config::{Compression, Encoding};

/// What a client's `Accept-Encoding` allows, as far as the proxy's encodings go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The q-value (in thousandths) of each encoding, in [`Encoding::ALL`] order.
    pub weights: [u16; 3],
}

impl Accepted {
    /// Nothing but identity.
    pub const IDENTITY: Self = Self { weights: [0; 3] };

    /// The encoding to use: the highest q-value wins, a tie goes to the first in
    /// `preference`; `None` when the client accepts none of them.
    pub fn choose(&self, preference: &[Encoding]) -> Option<Encoding> {
        let mut best: Option<(Encoding, u16)> = None;
        for &encoding in preference {
            let weight = self.weight(encoding);
            if weight > 0 && best.is_none_or(|(_, best)| weight > best) {
                best = Some((encoding, weight));
            }
        }
        best.map(|(encoding, _)| encoding)
    }

    /// The q-value of `encoding`, in thousandths.
    pub fn weight(&self, encoding: Encoding) -> u16 {
        self.weights[index(encoding)]
    }
}

fn index(encoding: Encoding) -> usize {
    match encoding {
        Encoding::Zstd => 0,
        Encoding::Br => 1,
        Encoding::Gzip => 2,
    }
}

/// Reads the `Accept-Encoding` values of a request (one per header line). No header means
/// identity only: RFC 9110 would allow any coding, but clients that do not ask for one
/// (scripts, health checks) rarely decode one, so no proxy assumes they do.
pub fn accepted<'a>(values: impl Iterator<Item = &'a [u8]>) -> Accepted {
    let mut explicit = [None::<u16>; 3];
    let mut star = None;
    for value in values {
        for member in value.split(|&byte| byte == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue; // RFC 9110 §5.6.1: empty list elements are ignored.
            }
            let Some((coding, weight)) = parse_member(member) else {
                return Accepted::IDENTITY;
            };
            let slot = match coding {
                b"*" => &mut star,
                coding if coding.eq_ignore_ascii_case(b"gzip") => &mut explicit[2],
                // RFC 9110 §8.4.1.3: x-gzip is gzip.
                coding if coding.eq_ignore_ascii_case(b"x-gzip") => &mut explicit[2],
                coding if coding.eq_ignore_ascii_case(b"br") => &mut explicit[1],
                coding if coding.eq_ignore_ascii_case(b"zstd") => &mut explicit[0],
                _ => continue,
            };
            *slot = Some(slot.map_or(weight, |seen: u16| seen.max(weight)));
        }
    }
    Accepted { weights: explicit.map(|weight| weight.or(star).unwrap_or(0)) }
}

/// One `coding [ ; q=value ]` member: the coding token and its weight in thousandths, or
/// `None` when it does not parse.
fn parse_member(member: &[u8]) -> Option<(&[u8], u16)> {
    let mut parts = member.split(|&byte| byte == b';');
    let coding = parts.next()?.trim_ascii();
    let is_token = |byte: &u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(byte);
    if coding.is_empty() || !coding.iter().all(is_token) {
        return None;
    }
    let mut weight = 1000;
    for parameter in parts {
        let (name, value) = split_once(parameter.trim_ascii(), b'=')?;
        if name.trim_ascii().eq_ignore_ascii_case(b"q") {
            weight = parse_qvalue(value.trim_ascii())?;
        } else {
            return None; // Accept-Encoding has no parameters but q.
        }
    }
    Some((coding, weight))
}

fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&byte| byte == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// RFC 9110 §12.4.2: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn parse_qvalue(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match split_once(text, b'.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for (position, digit) in fraction.iter().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][position];
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// What the proxy does to one response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Compress(Encoding),
    /// Decode a gzip body for a client that does not accept gzip.
    Decompress,
    Skip(SkipReason),
}

impl Decision {
    /// True when another client could get this response encoded differently, so caches
    /// must key it by Accept-Encoding (`Vary`), even when this one gets it as it is.
    pub fn varies(self) -> bool {
        match self {
            Self::Compress(_) | Self::Decompress => true,
            Self::Skip(reason) => matches!(reason, SkipReason::NotAccepted | SkipReason::Busy),
        }
    }
}

/// Why a response of a compressing route went as it came. Counted per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The client accepts none of the route's encodings.
    NotAccepted,
    /// HEAD, 1xx, 204, 304 or 206, or no body.
    Status,
    /// The backend encoded it already (with an encoding the client accepts, or one the
    /// proxy does not decode).
    Encoded,
    /// `Cache-Control: no-transform`.
    NoTransform,
    /// No Content-Type, or one not in the route's list.
    Type,
    /// Content-Length below the route's minimum.
    TooSmall,
    /// The worker holds as many encoders as `limits.compression_encoders_max` allows.
    Busy,
}

impl SkipReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [Self; 7] = [
        Self::NotAccepted,
        Self::Status,
        Self::Encoded,
        Self::NoTransform,
        Self::Type,
        Self::TooSmall,
        Self::Busy,
    ];

    /// The label in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAccepted => "not_accepted",
            Self::Status => "status",
            Self::Encoded => "encoded",
            Self::NoTransform => "no_transform",
            Self::Type => "type",
            Self::TooSmall => "too_small",
            Self::Busy => "busy",
        }
    }

    /// Position in [`SkipReason::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::NotAccepted => 0,
            Self::Status => 1,
            Self::Encoded => 2,
            Self::NoTransform => 3,
            Self::Type => 4,
            Self::TooSmall => 5,
            Self::Busy => 6,
        }
    }
}

/// The facts of one exchange that the decision reads, taken from both heads.
#[derive(Debug, Clone, Copy)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    /// The request was HEAD, or the response has no body for another reason.
    pub bodiless: bool,
    /// The Content-Encoding value, when there is one.
    pub content_encoding: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    /// Some Cache-Control line lists `no-transform`.
    pub no_transform: bool,
    pub content_length: Option<u64>,
    pub accepted: Accepted,
}

/// Decides what happens to a response on a route that compresses (the worker's encoder cap
/// is the caller's to check). The order of the checks picks the reason counted.
pub fn decide(policy: &Compression, facts: &ResponseFacts<'_>) -> Decision {
    let chosen = facts.accepted.choose(&policy.encodings);
    if let Some(coding) = facts.content_encoding {
        let gzip = coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip");
        let decodes = gzip
            && policy.decompress_gzip
            && facts.accepted.weight(Encoding::Gzip) == 0
            && !facts.no_transform
            && !bodiless(facts);
        return if decodes { Decision::Decompress } else { Decision::Skip(SkipReason::Encoded) };
    }
    let reason = if bodiless(facts) {
        SkipReason::Status
    } else if facts.no_transform {
        SkipReason::NoTransform
    } else if !facts.content_type.is_some_and(|value| type_listed(&policy.types, value)) {
        SkipReason::Type
    } else if facts.content_length.is_some_and(|length| length < policy.length_min_bytes) {
        SkipReason::TooSmall
    } else {
        match chosen {
            Some(encoding) => return Decision::Compress(encoding),
            None => SkipReason::NotAccepted,
        }
    };
    Decision::Skip(reason)
}

/// RFC 9110 §15.3.7: a 206 is a range of the identity body, which an encoding would break.
fn bodiless(facts: &ResponseFacts<'_>) -> bool {
    facts.bodiless || matches!(facts.status, 100..=199 | 204 | 206 | 304)
}

/// True when the media type of `content_type` (parameters aside) matches a pattern.
pub fn type_listed(patterns: &[Box<[u8]>], content_type: &[u8]) -> bool {
    let media = content_type.split(|&byte| byte == b';').next().unwrap_or_default().trim_ascii();
    patterns.iter().any(|pattern| match split_once(pattern, b'*') {
        None => media.eq_ignore_ascii_case(pattern),
        Some((prefix, suffix)) => {
            media.len() >= prefix.len() + suffix.len()
                && media[..prefix.len()].eq_ignore_ascii_case(prefix)
                && media[media.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
    })
}

/// True when a Cache-Control value lists `no-transform` (RFC 9111 §5.2).
pub fn lists_no_transform(value: &[u8]) -> bool {
    value
        .split(|&byte| byte == b',')
        .any(|directive| directive.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
}

#[cfg(test)]
mod tests;
