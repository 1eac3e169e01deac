//! A stored response: its status, the header lines a client gets (the origin's, less
//! those that describe one connection or one message), its decoded body, and the facts
//! the policy reads, computed once when stored or updated by a 304 (RFC 9111 §3.2).

use super::control::Directives;
use super::policy::{self, Exchanged, HeadFacts, RouteRules};
use bytes::Bytes;

/// Bytes an entry costs beyond its head, body and key: its own struct, the store's slot
/// and the allocator's rounding, so the byte bound holds for many small entries too.
pub const ENTRY_OVERHEAD_BYTES: usize = 320;

/// Fields never stored (RFC 9111 §3.1 and framing): the stored body is decoded, its
/// length is the body's, and `Age` is computed at each answer.
const NOT_STORED: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"transfer-encoding",
    b"upgrade",
    b"proxy-authenticate",
    b"proxy-authentication-info",
    b"content-length",
    b"age",
    b"set-cookie",
    b"cache-status",
];

/// True when a field of this name is stored.
pub fn is_stored_field(name: &[u8]) -> bool {
    !NOT_STORED.iter().any(|field| field.eq_ignore_ascii_case(name))
}

/// The `(name, value)` lines of a stored head (`Name: value` CRLF, as [`Entry::head`]).
pub fn lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
    head.split(|&byte| byte == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&byte| byte == b':')?;
        Some((&line[..colon], line[colon + 1..].trim_ascii()))
    })
}

/// One stored response.
#[derive(Debug, Clone)]
pub struct Entry {
    pub status: u16,
    /// Header lines, each `Name: value` CRLF.
    pub head: Box<[u8]>,
    pub body: Bytes,
    /// The request header values this response varies on (lowercase name, normalized
    /// value or `None` when the request had none), for secondary keys (RFC 9111 §4.1).
    pub vary: crate::cache::key::VaryKey,
    pub directives: Directives,
    pub exchanged: Exchanged,
    /// Milliseconds (RFC 9111 §4.2.3).
    pub corrected_initial_age: u64,
    /// Seconds (RFC 9111 §4.2.1).
    pub lifetime: u64,
    pub etag: Option<Box<[u8]>>,
    pub last_modified: Option<Box<[u8]>>,
    /// `Date`, or the response time, in seconds: for If-Modified-Since without
    /// Last-Modified (RFC 9111 §4.3.2).
    pub date: u64,
}

impl Entry {
    /// An entry from a stored head, its body and the request's varying values.
    pub fn new(
        (status, head): (u16, Box<[u8]>),
        body: Bytes,
        vary: crate::cache::key::VaryKey,
        exchanged: Exchanged,
        rules: &RouteRules,
    ) -> Self {
        let facts = HeadFacts::read(status, lines(&head));
        let lifetime = policy::freshness_lifetime(&facts, rules, exchanged.response_time);
        let corrected_initial_age = policy::corrected_initial_age(&facts, exchanged);
        let date = facts.date.unwrap_or(exchanged.response_time / 1000);
        let last_modified = lines(&head)
            .find(|(name, _)| name.eq_ignore_ascii_case(b"last-modified"))
            .map(|(_, value)| value.into());
        Self {
            status,
            directives: facts.directives,
            etag: facts.etag.map(Into::into),
            last_modified,
            date,
            lifetime,
            corrected_initial_age,
            exchanged,
            vary,
            body,
            head,
        }
    }

    /// The current age in seconds at `now` (ms).
    pub fn age(&self, now: u64) -> u64 {
        policy::current_age(self.corrected_initial_age, self.exchanged.response_time, now)
    }

    /// Bytes this entry holds, for the store's bound.
    pub fn weight(&self) -> usize {
        let vary: usize = self
            .vary
            .iter()
            .map(|(name, value)| name.len() + value.as_ref().map_or(0, |value| value.len()))
            .sum();
        ENTRY_OVERHEAD_BYTES + self.head.len() + self.body.len() + vary
    }

    /// RFC 9111 §3.2 and §4.3.4: this entry with the fields of a 304's head (its stored
    /// fields, as lines) replacing its own of the same names, and the 304's times.
    pub fn updated(&self, not_modified: &[u8], exchanged: Exchanged, rules: &RouteRules) -> Self {
        let replaced =
            |name: &[u8]| lines(not_modified).any(|(new, _)| new.eq_ignore_ascii_case(name));
        let mut head = Vec::with_capacity(self.head.len() + not_modified.len());
        // Content-Encoding says how the stored bytes are coded, and a 304 does not recode
        // them: it is the one field kept (§3.2 allows it "to assure integrity").
        let coding = |name: &[u8]| name.eq_ignore_ascii_case(b"content-encoding");
        for (name, value) in lines(&self.head) {
            if coding(name) || !replaced(name) {
                push_line(&mut head, name, value);
            }
        }
        for (name, value) in lines(not_modified).filter(|(name, _)| !coding(name)) {
            push_line(&mut head, name, value);
        }
        Self::new(
            (self.status, head.into()),
            self.body.clone(),
            self.vary.clone(),
            exchanged,
            rules,
        )
    }

    /// True when the 304's validator names this entry (RFC 9111 §4.3.4): its strong ETag
    /// equals ours, or it has none.
    pub fn matches_304(&self, not_modified: &[u8]) -> bool {
        let etag = lines(not_modified).find(|(name, _)| name.eq_ignore_ascii_case(b"etag"));
        match (etag, &self.etag) {
            (None, _) => true,
            (Some((_, new)), Some(ours)) => weak_tag(new) == weak_tag(ours),
            (Some(_), None) => false,
        }
    }
}

/// The body of a response being stored, filled by the relay's tap as it streams to the
/// client. Past `bytes_max` it lets go of what it holds and stays empty: the response
/// streams on, unstored.
#[derive(Debug, Default)]
pub struct Fill {
    pub bytes: Vec<u8>,
    pub bytes_max: usize,
    pub overflowed: bool,
}

impl Fill {
    /// A fill for a body of at most `bytes_max` bytes; `expected` reserves room at once.
    pub fn new(bytes_max: usize, expected: Option<u64>) -> Self {
        let reserve =
            expected.and_then(|len| usize::try_from(len).ok()).unwrap_or(0).min(bytes_max);
        Self { bytes: Vec::with_capacity(reserve), bytes_max, overflowed: false }
    }

    /// Takes the next decoded bytes.
    pub fn take(&mut self, data: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.bytes.len() + data.len() > self.bytes_max {
            self.overflowed = true;
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(data);
    }
}

/// An entity tag without its weakness prefix (RFC 9110 §8.8.3.2, weak comparison).
pub fn weak_tag(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Appends `name: value` CRLF.
pub fn push_line(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: Exchanged =
        Exchanged { request_time: 1_000_000, response_time: 1_000_500, age: 0 };

    fn entry(head: &str) -> Entry {
        let head: Box<[u8]> = head.as_bytes().into();
        Entry::new(
            (200, head),
            Bytes::from_static(b"body"),
            Box::new([]),
            TIMES,
            &RouteRules::default(),
        )
    }

    #[test]
    fn rfc9111_3_1_connection_fields_and_framing_are_not_stored() {
        for name in
            ["Connection", "keep-alive", "Transfer-Encoding", "Content-Length", "Age", "Set-Cookie"]
        {
            assert!(!is_stored_field(name.as_bytes()), "{name}");
        }
        assert!(is_stored_field(b"ETag") && is_stored_field(b"Cache-Control"));
    }

    #[test]
    fn rfc9111_3_2_a_304_replaces_fields_of_the_same_name() {
        let stored = entry(
            "Cache-Control: max-age=1\r\nETag: \"a\"\r\nX-Old: 1\r\nContent-Encoding: gzip\r\n",
        );
        let later = Exchanged { request_time: 5_000_000, response_time: 5_000_000, age: 0 };
        let update = b"Cache-Control: max-age=100\r\nX-New: 2\r\nContent-Encoding: br\r\n";
        let updated = stored.updated(update, later, &RouteRules::default());
        let head = String::from_utf8(updated.head.to_vec()).expect("ascii");
        assert_eq!(
            head,
            "ETag: \"a\"\r\nX-Old: 1\r\nContent-Encoding: gzip\r\n\
             Cache-Control: max-age=100\r\nX-New: 2\r\n"
        );
        assert_eq!((updated.lifetime, updated.exchanged), (100, later));
        assert_eq!(&updated.body[..], b"body");
    }

    #[test]
    fn rfc9111_4_3_4_a_304_with_another_strong_tag_does_not_match() {
        let stored = entry("ETag: \"a\"\r\n");
        assert!(stored.matches_304(b"ETag: \"a\"\r\n"));
        assert!(stored.matches_304(b"Date: x\r\n"));
        assert!(!stored.matches_304(b"ETag: \"b\"\r\n"));
    }

    #[test]
    fn weight_counts_head_body_and_overhead() {
        let stored = entry("A: b\r\n");
        assert_eq!(stored.weight(), ENTRY_OVERHEAD_BYTES + 6 + 4);
    }
}
