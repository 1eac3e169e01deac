//! Properties checked on arbitrary input, shared by the cargo-fuzz targets in `fuzz/` and the
//! seed replay in `tests/it/fuzz_seeds.rs`. A panic here is a bug.
//!
//! Every check holds for any bytes: the parser never panics, never claims more bytes than it
//! was given, and a message split into two reads gives the same result as one read, because
//! that is how messages arrive on a connection.

use crate::config::{Config, ProxyProtocolVersion};
use crate::error::ProxyError;
use crate::http::{
    ChunkedDecoder, ChunkedError, ChunkedLimits, HeadLimits, HeaderLine, Method, ParseError,
    Parsed, RequestHead, ResponseHead, Span, parse_request_head, parse_response_head,
    response_framing,
};
use std::fmt::Debug;

/// Smaller than the defaults, so that short inputs reach every limit error too.
const HEAD_LIMITS: HeadLimits =
    HeadLimits { header_bytes_max: 2048, headers_count_max: 16, uri_bytes_max: 512 };

/// Smaller than the defaults, for the same reason.
const CHUNKED_LIMITS: ChunkedLimits =
    ChunkedLimits { extension_bytes_max: 64, trailer_bytes_max: 256 };

/// A request head: see `check_head`.
pub fn check_parse_request_head(data: &[u8]) {
    check_head(data, parse_request_head);
}

/// A response head: see `check_head`. Also, a complete head has a status in 100..=599, and
/// its framing can be asked for after any request method.
pub fn check_parse_response_head(data: &[u8]) {
    check_head(data, parse_response_head);
    let mut headers = Vec::new();
    if let Ok(Parsed::Complete(head)) = parse_response_head(data, &HEAD_LIMITS, &mut headers) {
        assert!((100..=599).contains(&head.status), "status {} accepted", head.status);
        for method in [Method::Get, Method::Head, Method::Connect] {
            response_framing(method, &head);
        }
    }
}

/// A chunked body, decoded in one read, in two reads split at a point the input picks, and
/// byte by byte: each decodes the same data, leaves the same bytes after the body, and is done
/// or fails alike. Every call uses at most the bytes it was given and, until the body is done,
/// all of them; the bytes after the body are left untouched.
pub fn check_decode_chunked_body(data: &[u8]) {
    let whole = decode_parts(&[data]);
    let (first, second) = data.split_at(split_point(data));
    assert_eq!(decode_parts(&[first, second]), whole, "split at {}", first.len());
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(decode_parts(&bytes), whole, "byte by byte");
}

/// A config file: `Config::parse` never panics on any text, a rejected file names at least
/// one problem, and parsing the same text twice gives the same report (what `ringway check`
/// prints, or the whole validated config).
pub fn check_config_from_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let first = config_report(&text);
    assert_eq!(config_report(&text), first, "the same text parsed twice");
}

/// What a head parser exposes to the checks.
trait Head: Clone + Debug + PartialEq {
    fn head_len(&self) -> u32;
    /// Every span of the head that indexes the buffer, besides its header lines.
    fn spans(&self) -> Vec<Span>;
}

impl Head for RequestHead {
    fn head_len(&self) -> u32 {
        self.head_len
    }

    fn spans(&self) -> Vec<Span> {
        let mut spans =
            vec![self.method_span, self.target, self.path, self.version_span, self.request_line];
        spans.push(self.origin);
        spans.extend(self.host);
        spans.extend(self.authority);
        spans.extend(self.upgrade);
        spans
    }
}

impl Head for ResponseHead {
    fn head_len(&self) -> u32 {
        self.head_len
    }

    fn spans(&self) -> Vec<Span> {
        let mut spans = vec![self.status_line];
        spans.extend(self.upgrade);
        spans
    }
}

type ParseHead<H> = fn(&[u8], &HeadLimits, &mut Vec<HeaderLine>) -> Result<Parsed<H>, ParseError>;

/// A head parser never panics; a complete head lies within the input and the head limit, and
/// is found again when the parser is handed exactly its bytes. A prefix of the input (the
/// first of two reads) is `Partial`, the same head, or an error when the whole is one, with
/// the same status unless a limit tripped first; then parsing the whole, into the same header
/// `Vec`, gives what one read gave.
fn check_head<H: Head>(data: &[u8], parse: ParseHead<H>) {
    let mut headers = Vec::new();
    let whole = parse(data, &HEAD_LIMITS, &mut headers);
    let mut splits = vec![split_point(data), data.len() / 2, data.len().saturating_sub(1)];
    // Just after the start line's first two spaces, where a read that ends switches the
    // parser from one token to the next.
    let spaces = data.iter().enumerate().filter(|&(_, &byte)| byte == b' ').take(2);
    splits.extend(spaces.map(|(index, _)| index + 1));
    if let Ok(Parsed::Complete(head)) = &whole {
        let head_len = head.head_len() as usize;
        check_within_head(head, &headers, data.len());
        let mut exact_headers = Vec::new();
        let exact = parse(&data[..head_len], &HEAD_LIMITS, &mut exact_headers);
        assert_eq!(exact, whole, "parsing exactly the head's {head_len} bytes");
        assert_eq!(exact_headers, headers, "parsing exactly the head's {head_len} bytes");
        splits.push(head_len - 1);
    }
    for split in splits.into_iter().filter(|&split| split < data.len()) {
        let mut reused = Vec::new();
        let first = parse(&data[..split], &HEAD_LIMITS, &mut reused);
        match (&first, &whole) {
            (Ok(Parsed::Partial), Ok(Parsed::Complete(head))) => {
                assert!(split < head.head_len() as usize, "Partial at {split}, past the head");
            }
            (Ok(Parsed::Partial), Ok(Parsed::Partial) | Err(_)) => {}
            (Ok(Parsed::Complete(_)), _) => assert_eq!(first, whole, "prefix of {split} bytes"),
            (Err(prefix), _) => {
                let whole_status = whole.as_ref().err().map(|error| error_status(*error));
                // A limit is enforced on the bytes so far, so a head both too long and
                // malformed may get either answer; any other error is met again.
                let is_limit = matches!(
                    prefix,
                    ParseError::HeadTooLarge { .. } | ParseError::UriTooLong { .. }
                );
                let expected = if is_limit { whole_status } else { Some(error_status(*prefix)) };
                assert!(
                    whole_status.is_some() && whole_status == expected,
                    "prefix of {split} bytes: {prefix:?}, whole: {whole:?}"
                );
            }
        }
        let second = parse(data, &HEAD_LIMITS, &mut reused);
        assert_eq!(second, whole, "after a first read of {split} bytes");
        if matches!(whole, Ok(Parsed::Complete(_))) {
            assert_eq!(reused, headers, "after a first read of {split} bytes");
        }
    }
}

/// Every span of a complete head is well-formed and ends within the head, and the head ends
/// within the input and the head limit.
fn check_within_head<H: Head>(head: &H, headers: &[HeaderLine], data_len: usize) {
    let head_len = head.head_len();
    assert!(0 < head_len && head_len as usize <= data_len, "head_len {head_len} of {data_len}");
    assert!(head_len <= HEAD_LIMITS.header_bytes_max, "head_len {head_len} over the limit");
    assert!(headers.len() <= usize::from(HEAD_LIMITS.headers_count_max), "too many headers");
    let within = |span: Span| span.start <= span.end && span.end <= head_len;
    for span in head.spans() {
        assert!(within(span), "{span:?} outside a head of {head_len} bytes: {head:?}");
    }
    for line in headers {
        let inside = |part: Span| line.line.start <= part.start && part.end <= line.line.end;
        assert!(within(line.line), "{line:?} outside a head of {head_len} bytes");
        assert!(within(line.name) && inside(line.name), "{line:?}: name outside its line");
        assert!(within(line.value) && inside(line.value), "{line:?}: value outside its line");
    }
}

/// What the client is told: two errors are alike when they give the same status.
fn error_status(error: ParseError) -> u16 {
    ProxyError::BadRequest(error).status()
}

/// Decodes `parts` as consecutive reads into one buffer, carrying the unconsumed tail of each
/// into the next. Returns the data, the bytes left after the body, and whether it is done.
fn decode_parts(parts: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>, bool), ChunkedError> {
    let mut decoder = ChunkedDecoder::default();
    let (mut data, mut pending) = (Vec::new(), Vec::new());
    for part in parts {
        pending.extend_from_slice(part);
        if decoder.is_done() {
            continue;
        }
        let given = pending.clone();
        let decoded = decoder.decode_in_place(&mut pending, &CHUNKED_LIMITS)?;
        let (data_len, consumed) = (decoded.data_len, decoded.consumed);
        assert!(data_len <= consumed && consumed <= pending.len(), "{decoded:?} of {given:?}");
        assert_eq!(decoded.done, decoder.is_done());
        if decoded.done {
            assert_eq!(pending[consumed..], given[consumed..], "the bytes after the body moved");
        } else {
            assert_eq!(consumed, pending.len(), "bytes left over before the body is done");
        }
        data.extend_from_slice(&pending[..data_len]);
        pending.drain(..consumed);
    }
    if decoder.is_done() {
        let again = decoder.decode_in_place(&mut pending.clone(), &CHUNKED_LIMITS);
        assert_eq!(again.map(|decoded| (decoded.data_len, decoded.consumed)), Ok((0, 0)));
    }
    Ok((data, pending, decoder.is_done()))
}

/// What `ringway check` reports on `text`, or the whole validated config.
fn config_report(text: &str) -> String {
    match Config::parse(text) {
        Ok(config) => format!("{config:?}"),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a rejected config names no problem");
            errors.to_string()
        }
    }
}

/// Where to split the input into two reads: anywhere, chosen by the input itself (FNV-1a), so
/// the fuzzer moves the split as it mutates.
fn split_point(data: &[u8]) -> usize {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % (data.len() as u64 + 1)).expect("at most data.len(), a usize")
}

/// A PROXY protocol header (v1 or v2): never more bytes than given; a complete header
/// parses the same from exactly its bytes and with bytes after it, every shorter prefix
/// asks for more (a header split across segments must parse), and its addresses encode
/// back to a header that parses to them in both versions.
pub fn check_parse_proxy_header(data: &[u8]) {
    use crate::l4::proxy_protocol::{self, Parsed};
    let Ok(Parsed::Complete(header)) = proxy_protocol::parse(data) else { return };
    assert!(header.len > 0 && header.len <= data.len(), "len {} of {}", header.len, data.len());
    let exact = &data[..header.len];
    assert_eq!(proxy_protocol::parse(exact), Ok(Parsed::Complete(header)), "exact bytes");
    for split in [split_point(exact), header.len / 2, header.len - 1] {
        if split < header.len {
            assert_eq!(proxy_protocol::parse(&exact[..split]), Ok(Parsed::Partial), "at {split}");
        }
    }
    let (Some(source), Some(destination)) = (header.source, header.destination) else { return };
    if source.is_ipv4() != destination.is_ipv4() {
        return;
    }
    for version in [ProxyProtocolVersion::V1, ProxyProtocolVersion::V2] {
        let mut encoded = Vec::new();
        proxy_protocol::encode(version, source, destination, &mut encoded);
        let expected = proxy_protocol::ProxyHeader {
            source: Some(source),
            destination: Some(destination),
            len: encoded.len(),
        };
        let again = proxy_protocol::parse(&encoded);
        assert_eq!(again, Ok(Parsed::Complete(expected)), "{version:?} encoding");
    }
}

/// A TLS ClientHello (TLS passthrough by SNI), under the 16 KiB cap: a complete hello is
/// found again with bytes after it, every prefix split off before its end asks for more,
/// and the server name it gives is non-empty lowercase host bytes.
pub fn check_parse_client_hello(data: &[u8]) {
    use crate::l4::intake::CLIENT_HELLO_BYTES_MAX;
    use crate::l4::sni::{Hello, parse_client_hello};
    let whole = parse_client_hello(data, CLIENT_HELLO_BYTES_MAX);
    let Ok(Hello::Complete(name)) = whole else { return };
    if let Some(name) = &name {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "an empty server name");
        assert!(!bytes.iter().any(u8::is_ascii_uppercase), "{name:?} is not lowercase");
    }
    let mut longer = data.to_vec();
    longer.extend_from_slice(b"\x17\x03\x03\x00\x01x");
    assert_eq!(parse_client_hello(&longer, CLIENT_HELLO_BYTES_MAX), whole, "bytes after it");
    // The hello's end is the end of its handshake message; a cut before any byte of the
    // input is before it only when the parse needed that byte, so only empty prefixes and
    // the first record header are certain to be short.
    for split in [0, 1, 4] {
        if split < data.len() {
            let prefix = parse_client_hello(&data[..split], CLIENT_HELLO_BYTES_MAX);
            assert_eq!(prefix, Ok(Hello::Partial), "at {split}");
        }
    }
}

/// A response head and a request's header block, as the cache reads them: the data is a
/// response head, a NUL, then request header lines. Reading the facts, deciding
/// storability, freshness, age and reuse, a 304 merge and the answer to any conditional or
/// range never panic; a range answer lies inside the body; a fresh answer has an age below
/// its lifetime.
pub fn check_cache_freshness(data: &[u8]) {
    use crate::cache::conditional::{self, Conditionals, RangeAnswer};
    use crate::cache::control::Directives;
    use crate::cache::entry::{self, Entry};
    use crate::cache::policy::{self, Exchanged, HeadFacts, RequestFacts, RouteRules};
    let split = data.iter().position(|&byte| byte == 0).unwrap_or(data.len());
    let (response, request) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let field = |name: &[u8]| {
        entry::lines(request).find(|(found, _)| found.eq_ignore_ascii_case(name)).map(|line| line.1)
    };
    let request_facts = RequestFacts {
        directives: Directives::parse(field(b"cache-control").into_iter()),
        pragma_no_cache: field(b"pragma").is_some(),
        has_authorization: field(b"authorization").is_some(),
    };
    let status = 100 + u16::from(data.first().copied().unwrap_or(0)) * 2;
    let facts = HeadFacts::read(status, entry::lines(response));
    let rules =
        RouteRules { default_ttl: data.get(1).map(|&ttl| u64::from(ttl)), store_set_cookie: false };
    let _ = policy::storable(&request_facts, &facts, &rules);
    let times = Exchanged { request_time: 1_000_000_000, response_time: 1_000_005_000, age: 7 };
    let stored = Entry::new(
        (status, response.into()),
        bytes::Bytes::from_static(b"0123456789"),
        Box::new([]),
        times,
        &rules,
    );
    let updated = stored.updated(request, times, &rules);
    let now = times.response_time + u64::from(data.get(2).copied().unwrap_or(0)) * 1000;
    let age = updated.age(now);
    let reused = policy::reuse(
        &policy::Stored { directives: updated.directives, lifetime: updated.lifetime, age },
        &request_facts,
        &policy::StaleWindows { while_revalidate: 10, if_error: 10, honor_no_cache: true },
    );
    if reused == policy::Reuse::Fresh {
        assert!(age < updated.lifetime, "fresh at age {age}, lifetime {}", updated.lifetime);
    }
    let conditionals = Conditionals {
        if_none_match: field(b"if-none-match"),
        if_modified_since: field(b"if-modified-since"),
        range: field(b"range"),
        if_range: field(b"if-range"),
    };
    let _ = conditional::not_modified(&conditionals, &updated);
    if let RangeAnswer::Part { first, last } = conditional::range(&conditionals, &updated) {
        assert!(first <= last && last < updated.body.len() as u64, "{first}-{last}");
    }
}
