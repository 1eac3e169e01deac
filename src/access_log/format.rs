//! Formats one [`LogEntry`] as an nginx-combined line or a JSON line, appending to a buffer.
//!
//! Every byte that came from a client is bounded (see the `*_BYTES_MAX` limits) and escaped,
//! so a request can neither forge a second log line nor make one grow without limit.
//! Formatting writes straight into the worker's buffer through a [`Line`] cursor: no
//! allocation and no capacity checks per field.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::LogEntry;
use super::time::{Clock, put_digits};

/// Longest request target, user agent or referer copied into a line; the rest is cut.
pub const FIELD_BYTES_MAX: usize = 2048;
/// Longest method copied into a line: real methods are a few letters.
pub const METHOD_BYTES_MAX: usize = 32;
/// Longest protocol version copied into a line (`HTTP/1.1` is 8).
pub const VERSION_BYTES_MAX: usize = 16;
/// Longest request id copied into a line; ids from clients may be anything.
pub const REQUEST_ID_BYTES_MAX: usize = 128;
/// Longest route or cluster name copied into a line (they come from the config).
pub const NAME_BYTES_MAX: usize = 256;

/// Bytes of a line outside the escaped fields: addresses, time, numbers, keys, quotes.
/// Generous: the largest fixed part (JSON, IPv6 addresses, 20-digit numbers) is ~420, and
/// an L4 line's fields (a reason label of at most 16 bytes, a backend, a number) ~90 more.
const LINE_FIXED_BYTES_MAX: usize = 640;
/// Most bytes one input byte becomes: `\u00HH` in JSON (`\xHH` in combined is 4).
const ESCAPE_GROWTH_MAX: usize = 6;
/// The most any one line can take, whatever the client sent.
pub(crate) const LINE_BYTES_MAX: usize = LINE_FIXED_BYTES_MAX
    + ESCAPE_GROWTH_MAX
        * (METHOD_BYTES_MAX
            + VERSION_BYTES_MAX
            + 3 * FIELD_BYTES_MAX
            + REQUEST_ID_BYTES_MAX
            + 2 * NAME_BYTES_MAX);

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Bytes that are enough for `entry`'s line in either format (checked before writing).
pub(crate) fn line_bytes_bound(entry: &LogEntry<'_>) -> usize {
    let optional = |value: Option<&[u8]>| value.map_or(0, |bytes| bytes.len().min(FIELD_BYTES_MAX));
    let escaped = entry.method.len().min(METHOD_BYTES_MAX)
        + entry.version.len().min(VERSION_BYTES_MAX)
        + entry.target.len().min(FIELD_BYTES_MAX)
        + optional(entry.user_agent)
        + optional(entry.referer)
        + entry.request_id.len().min(REQUEST_ID_BYTES_MAX)
        + entry.route.len().min(NAME_BYTES_MAX)
        + entry.cluster.map_or(0, |name| name.len().min(NAME_BYTES_MAX))
        + entry.consumer.map_or(0, |name| name.len().min(NAME_BYTES_MAX));
    // `,"consumer":` is not among the fixed bytes: it is written only with a consumer.
    let consumer_key = if entry.consumer.is_some() { 16 } else { 0 };
    LINE_FIXED_BYTES_MAX + consumer_key + ESCAPE_GROWTH_MAX * escaped
}

/// Writes `entry` in nginx "combined" format, extended with timings and the request id:
///
/// `$remote_addr - $consumer [$time_local] "$request" $status $body_bytes_sent "$http_referer"
/// "$http_user_agent" rt=$request_time urt=$upstream_response_time rid=$request_id`
pub(crate) fn write_combined(line: &mut Line<'_>, clock: &mut Clock, entry: &LogEntry<'_>) {
    line.ip(entry.client.ip());
    line.put(b" - ");
    match entry.consumer.filter(|consumer| !consumer.is_empty()) {
        Some(consumer) => line.escaped_nginx(bound(consumer.as_bytes(), NAME_BYTES_MAX)),
        None => line.put(b"-"),
    }
    line.put(b" [");
    line.put(clock.combined(entry.time));
    line.put(b"] \"");
    if entry.method.is_empty() && entry.target.is_empty() {
        // nginx logs an unparsable request line as "-" too.
        line.put(b"-");
    } else {
        line.escaped_nginx(bound(entry.method, METHOD_BYTES_MAX));
        line.put(b" ");
        line.escaped_nginx(bound(entry.target, FIELD_BYTES_MAX));
        line.put(b" ");
        line.escaped_nginx(bound(entry.version, VERSION_BYTES_MAX));
    }
    line.put(b"\" ");
    line.number(u64::from(entry.status));
    line.put(b" ");
    line.number(entry.bytes_sent);
    line.put(b" \"");
    line.optional_nginx(entry.referer);
    line.put(b"\" \"");
    line.optional_nginx(entry.user_agent);
    line.put(b"\" rt=");
    line.thousandths(millis(entry.duration));
    line.put(b" urt=");
    match entry.upstream_time {
        Some(time) => line.thousandths(millis(time)),
        None => line.put(b"-"),
    }
    line.put(b" rid=");
    if entry.request_id.is_empty() {
        line.put(b"-");
    } else {
        line.escaped_nginx(bound(entry.request_id, REQUEST_ID_BYTES_MAX));
    }
    if let Some(l4) = entry.l4 {
        // The reason is already the protocol field; the backend and the bytes it was sent
        // are not in the request-shaped part.
        line.put(b" up=");
        match entry.upstream {
            Some(addr) => line.socket_addr(addr),
            None => line.put(b"-"),
        }
        line.put(b" in=");
        line.number(l4.bytes_received);
    }
    line.put(b"\n");
}

/// Writes `entry` as one JSON object on one line (JSON Lines).
pub(crate) fn write_json(line: &mut Line<'_>, clock: &mut Clock, entry: &LogEntry<'_>) {
    let (iso, millis_of_second) = clock.iso(entry.time);
    line.put(b"{\"time\":\"");
    line.put(iso);
    line.put(b".");
    line.padded(u64::from(millis_of_second), 3);
    line.put(b"Z\",\"client\":\"");
    line.socket_addr(entry.client);
    line.put(b"\",\"method\":");
    line.json(bound(entry.method, METHOD_BYTES_MAX));
    line.put(b",\"path\":");
    line.json(bound(entry.target, FIELD_BYTES_MAX));
    line.put(b",\"status\":");
    line.number(u64::from(entry.status));
    line.put(b",\"bytes\":");
    line.number(entry.bytes_sent);
    line.put(b",\"duration_ms\":");
    line.thousandths(micros(entry.duration));
    line.put(b",\"upstream\":");
    match entry.upstream {
        Some(addr) => {
            line.put(b"\"");
            line.socket_addr(addr);
            line.put(b"\"");
        }
        None => line.put(b"null"),
    }
    line.put(b",\"upstream_ms\":");
    match entry.upstream_time {
        Some(time) => line.thousandths(micros(time)),
        None => line.put(b"null"),
    }
    line.put(b",\"route\":");
    line.json(bound(entry.route.as_bytes(), NAME_BYTES_MAX));
    // Only on authenticated routes, as user_agent and referer only when sent.
    if let Some(consumer) = entry.consumer {
        line.put(b",\"consumer\":");
        line.json(bound(consumer.as_bytes(), NAME_BYTES_MAX));
    }
    line.put(b",\"cluster\":");
    match entry.cluster {
        Some(name) => line.json(bound(name.as_bytes(), NAME_BYTES_MAX)),
        None => line.put(b"null"),
    }
    line.put(b",\"request_id\":");
    line.json(bound(entry.request_id, REQUEST_ID_BYTES_MAX));
    line.put(b",\"user_agent\":");
    match entry.user_agent {
        Some(bytes) => line.json(bound(bytes, FIELD_BYTES_MAX)),
        None => line.put(b"null"),
    }
    if let Some(l4) = entry.l4 {
        line.put(b",\"reason\":\"");
        line.put(l4.reason.as_bytes());
        line.put(b"\",\"bytes_received\":");
        line.number(l4.bytes_received);
    }
    line.put(b"}\n");
}

/// Cuts `bytes` to at most `max`, backing off (at most 3 bytes) so that a UTF-8 character
/// is not split in two: the line then ends on whole characters when the input was UTF-8.
pub(crate) fn bound(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut cut = max;
    // A continuation byte (0b10xx_xxxx) at the cut means a character straddles it.
    while cut > 0 && max - cut < 3 && bytes[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    if bytes[cut] & 0xC0 == 0x80 {
        // Not UTF-8 at all: cutting anywhere is as good as anywhere else.
        cut = max;
    }
    &bytes[..cut]
}

/// Printable ASCII that needs no escaping in either format.
fn is_plain(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\'
}

/// Whether no byte needs escaping. Folds without an early exit so that the compiler
/// vectorises it: fields are short and usually clean, so scanning all of one is cheap.
fn all_plain(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |bad, &byte| bad | u8::from(!is_plain(byte))) == 0
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A cursor writing one line into a slice that [`line_bytes_bound`] said is large enough.
///
/// Writes past the end are dropped instead of panicking, so a wrong bound costs a cut
/// line, never a worker. Writing into a pre-sized slice avoids a capacity check and a
/// possible reallocation per field, which `Vec::extend_from_slice` would pay.
#[derive(Debug)]
pub(crate) struct Line<'b> {
    out: &'b mut [u8],
    /// INVARIANT: `len <= out.len()`.
    len: usize,
}

impl<'b> Line<'b> {
    pub(crate) fn new(out: &'b mut [u8]) -> Self {
        Line { out, len: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(slot) = self.out.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        }
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) {
        if let Some(slot) = self.out.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// Escapes like nginx's `escape=default`: `"`, `\`, control bytes and bytes >= 0x7f
    /// become `\xHH`, so the line stays one line of printable ASCII.
    fn escaped_nginx(&mut self, bytes: &[u8]) {
        if all_plain(bytes) {
            return self.put(bytes);
        }
        for &byte in bytes {
            if is_plain(byte) {
                self.put_byte(byte);
            } else {
                let (high, low) = (usize::from(byte >> 4), usize::from(byte & 0xF));
                self.put(&[b'\\', b'x', HEX_UPPER[high], HEX_UPPER[low]]);
            }
        }
    }

    /// A client field in combined format: `-` when absent or empty, as nginx writes it.
    fn optional_nginx(&mut self, value: Option<&[u8]>) {
        match value {
            Some(bytes) if !bytes.is_empty() => self.escaped_nginx(bound(bytes, FIELD_BYTES_MAX)),
            _ => self.put(b"-"),
        }
    }

    /// `bytes` as a quoted JSON string. Bytes that are not UTF-8 become U+FFFD, as
    /// `String::from_utf8_lossy` would do, but without allocating.
    fn json(&mut self, bytes: &[u8]) {
        self.put(b"\"");
        if all_plain(bytes) {
            // The usual case (ASCII paths, agents, ids) skips UTF-8 validation and escaping.
            self.put(bytes);
        } else {
            for chunk in bytes.utf8_chunks() {
                self.json_escaped(chunk.valid());
                if !chunk.invalid().is_empty() {
                    self.put("\u{FFFD}".as_bytes());
                }
            }
        }
        self.put(b"\"");
    }

    /// Escapes valid UTF-8 for the inside of a JSON string (RFC 8259 §7).
    fn json_escaped(&mut self, text: &str) {
        for &byte in text.as_bytes() {
            match byte {
                b'"' => self.put(b"\\\""),
                b'\\' => self.put(b"\\\\"),
                b'\n' => self.put(b"\\n"),
                b'\r' => self.put(b"\\r"),
                b'\t' => self.put(b"\\t"),
                0..=0x1F => {
                    let (high, low) = (usize::from(byte >> 4), usize::from(byte & 0xF));
                    self.put(&[b'\\', b'u', b'0', b'0', HEX_LOWER[high], HEX_LOWER[low]]);
                }
                _ => self.put_byte(byte),
            }
        }
    }

    /// `value` in decimal.
    pub(crate) fn number(&mut self, value: u64) {
        if value < 10 {
            // Status digits, octets and seconds are often one digit: skip the loop.
            return self.put_byte(b'0' + u8::try_from(value).unwrap_or_default());
        }
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut rest = value;
        while rest > 0 {
            start -= 1;
            digits[start] = b'0' + u8::try_from(rest % 10).unwrap_or_default();
            rest /= 10;
        }
        self.put(&digits[start..]);
    }

    /// `value` in decimal, zero-padded to `width` (at most 20) digits.
    fn padded(&mut self, value: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let width = width.min(digits.len());
        put_digits(&mut digits[..width], value);
        self.put(&digits[..width]);
    }

    /// `value / 1000` with three decimals: `12345` becomes `12.345`.
    pub(crate) fn thousandths(&mut self, value: u64) {
        self.number(value / 1000);
        self.put_byte(b'.');
        self.padded(value % 1000, 3);
    }

    /// An address as nginx's `$remote_addr` writes it: the IP alone, with IPv4-mapped IPv6
    /// addresses (from dual-stack listeners) shown as plain IPv4.
    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.ipv4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.ipv4(v4.octets()),
                None => self.ipv6(&v6),
            },
        }
    }

    fn socket_addr(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(v4) => self.ipv4(v4.ip().octets()),
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => self.ipv4(v4.octets()),
                None => {
                    self.put_byte(b'[');
                    self.ipv6(v6.ip());
                    self.put_byte(b']');
                }
            },
        }
        self.put_byte(b':');
        self.number(u64::from(addr.port()));
    }

    fn ipv4(&mut self, octets: [u8; 4]) {
        self.number(u64::from(octets[0]));
        for octet in &octets[1..] {
            self.put_byte(b'.');
            self.number(u64::from(*octet));
        }
    }

    /// IPv6 text form has rules (zero compression, RFC 5952) that std already implements.
    fn ipv6(&mut self, ip: &Ipv6Addr) {
        use std::io::Write as _;
        // The longest form, `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`, is 45 bytes.
        let mut text = std::io::Cursor::new([0u8; 48]);
        if write!(text, "{ip}").is_ok() {
            let len = usize::try_from(text.position()).unwrap_or_default();
            self.put(&text.get_ref()[..len]);
        }
    }
}
