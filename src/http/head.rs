//! Request and response heads: httparse (strict default config) finds the lines, we decide.
//!
//! Takes the bytes at the start of a connection's buffer; hands on a [`RequestHead`] or
//! [`ResponseHead`] of [`Span`]s and one [`HeaderLine`] per header in the caller's `Vec`.
//! Bare LF: a request head whose lines do not all end in CRLF is rejected (400). RFC 9112 §2.2
//! lets a recipient accept a bare LF, but the proxy forwards header lines as they came, and a
//! backend that does not split on a bare LF would read `X: a\nTransfer-Encoding: chunked` as
//! one header: the two would disagree on the framing, which is request smuggling. Response
//! heads from backends may use bare LF (httparse accepts it) and spans are right either way.
//! Framing follows RFC 9112 §6 and rejects each ambiguity that could let a client smuggle a
//! request past the proxy.

use std::mem::MaybeUninit;

use super::Span;
use super::authority::Authority;
use super::target::parse_target;

/// Limits on one head, from config.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// The longest head accepted, leading empty lines and the final blank line included.
    pub header_bytes_max: u32,
    /// At most [`HEADERS_COUNT_CEILING`]; a larger value acts as the ceiling.
    pub headers_count_max: u16,
    /// The longest request target accepted.
    pub uri_bytes_max: u32,
}

impl HeadLimits {
    pub const DEFAULT: Self =
        Self { header_bytes_max: 16384, headers_count_max: 100, uri_bytes_max: 8192 };
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The most header lines a head may have, whatever the config says: the parser's scratch
/// array lives on the stack (512 x 32 bytes), so no parse allocates.
pub const HEADERS_COUNT_CEILING: u16 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// What a header is, for the proxy's decisions. Decided by case-insensitive name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Cookie,
    Other,
}

impl HeaderKind {
    /// Classifies a header name by its length, then one case-insensitive comparison: no
    /// lowercased copy is made.
    pub fn of(name: &[u8]) -> Self {
        let is = |known: &[u8]| eq_lowercase(name, known);
        match name.len() {
            2 if is(b"te") => Self::Te,
            4 if is(b"host") => Self::Host,
            6 if is(b"cookie") => Self::Cookie,
            6 if is(b"expect") => Self::Expect,
            7 if is(b"trailer") => Self::Trailer,
            7 if is(b"upgrade") => Self::Upgrade,
            10 if is(b"connection") => Self::Connection,
            10 if is(b"keep-alive") => Self::KeepAlive,
            14 if is(b"content-length") => Self::ContentLength,
            15 if is(b"x-forwarded-for") => Self::XForwardedFor,
            16 if is(b"proxy-connection") => Self::ProxyConnection,
            16 if is(b"x-forwarded-host") => Self::XForwardedHost,
            17 if is(b"transfer-encoding") => Self::TransferEncoding,
            17 if is(b"x-forwarded-proto") => Self::XForwardedProto,
            _ => Self::Other,
        }
    }

    /// RFC 9110 §7.6.1 and RFC 9112 §6.1: fields that describe one connection, not the message.
    pub fn is_hop_by_hop(self) -> bool {
        match self {
            Self::Connection
            | Self::KeepAlive
            | Self::ProxyConnection
            | Self::Te
            | Self::Trailer
            | Self::TransferEncoding
            | Self::Upgrade => true,
            Self::Host
            | Self::ContentLength
            | Self::Expect
            | Self::XForwardedFor
            | Self::XForwardedProto
            | Self::XForwardedHost
            | Self::Cookie
            | Self::Other => false,
        }
    }

    /// Whether naming this field in `Connection` makes it hop-by-hop. Not for Host and
    /// Content-Length: dropping them would change the target or the framing that the
    /// backend sees, which is how a client smuggles a request.
    fn may_be_listed_in_connection(self) -> bool {
        !matches!(self, Self::Host | Self::ContentLength)
    }
}

/// True when `name` is `lower` (lowercase letters, digits and '-') but for case. Bytes are
/// OR-ed with 0x20, eight at a time: that lowers ASCII letters and keeps digits and '-'.
/// Only bytes no header name holds (control characters) could match falsely.
fn eq_lowercase(name: &[u8], lower: &[u8]) -> bool {
    const LOWER: u64 = 0x2020_2020_2020_2020;
    if name.len() != lower.len() {
        return false;
    }
    let (mut names, mut lowers) = (name.chunks_exact(8), lower.chunks_exact(8));
    for (chunk, known) in (&mut names).zip(&mut lowers) {
        let (Ok(chunk), Ok(known)) = (<[u8; 8]>::try_from(chunk), <[u8; 8]>::try_from(known))
        else {
            return false;
        };
        if u64::from_ne_bytes(chunk) | LOWER != u64::from_ne_bytes(known) {
            return false;
        }
    }
    names.remainder().iter().zip(lowers.remainder()).all(|(&byte, &known)| byte | 0x20 == known)
}

/// One header line of a head, as offsets into the buffer it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderLine {
    pub name: Span,
    /// Trimmed of leading and trailing whitespace (OWS).
    pub value: Span,
    /// The whole line with its line ending, so the proxy can copy it verbatim or skip it.
    pub line: Span,
    pub kind: HeaderKind,
    /// True for fields a proxy must not relay: Connection, Keep-Alive, Proxy-Connection, TE,
    /// Trailer, Transfer-Encoding, Upgrade, and fields named in a Connection header (except
    /// Host and Content-Length). In a response that has both Transfer-Encoding and
    /// Content-Length, the Content-Length lines too (RFC 9112 §6.3 rule 3).
    pub hop_by_hop: bool,
}

/// Framing of a message body (RFC 9112 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// The body ends when the connection does. Responses only.
    CloseDelimited,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 §9.1): `get` is [`Method::Other`].
    pub fn of(token: &[u8]) -> Self {
        match token {
            b"GET" => Self::Get,
            b"HEAD" => Self::Head,
            b"POST" => Self::Post,
            b"PUT" => Self::Put,
            b"DELETE" => Self::Delete,
            b"CONNECT" => Self::Connect,
            b"OPTIONS" => Self::Options,
            b"TRACE" => Self::Trace,
            b"PATCH" => Self::Patch,
            _ => Self::Other,
        }
    }

    /// RFC 9110 §9.2.2: GET, HEAD, PUT, DELETE, OPTIONS and TRACE.
    pub fn is_idempotent(self) -> bool {
        match self {
            Self::Get | Self::Head | Self::Put | Self::Delete | Self::Options | Self::Trace => true,
            Self::Post | Self::Connect | Self::Patch | Self::Other => false,
        }
    }
}

/// A parsed request head. Spans index the buffer given to [`parse_request_head`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    pub target: Span,
    /// The target up to its `?`, or all of it; of an absolute-form target, only the path
    /// (`/` when it is empty).
    pub path: Span,
    /// The path and query: the whole target, but of an absolute-form target what follows
    /// the authority (empty, or starting with `?`, when the path is empty).
    pub origin: Span,
    /// The authority (`host[:port]`) of an absolute-form target.
    pub authority: Option<Span>,
    pub version: Version,
    /// The `HTTP/1.x` bytes on the request line.
    pub version_span: Span,
    /// The request line with its line ending (after any empty lines that precede it).
    pub request_line: Span,
    /// Bytes of the whole head, the blank line included; the body or a pipelined request
    /// starts here.
    pub head_len: u32,
    /// The value of the Host header.
    pub host: Option<Span>,
    /// [`BodyFraming::None`], [`BodyFraming::Length`] or [`BodyFraming::Chunked`].
    pub framing: BodyFraming,
    /// HTTP/1.1: true unless Connection lists `close`. HTTP/1.0: true only when Connection
    /// lists `keep-alive` and not `close`.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1: 1.0 ignores it).
    pub expect_continue: bool,
    /// The Upgrade value, when Connection lists `upgrade` too, on HTTP/1.1 only
    /// (RFC 9110 §7.8).
    pub upgrade: Option<Span>,
    pub headers_count: u16,
}

impl RequestHead {
    /// The host the request is for: an absolute-form target's authority, else the Host
    /// value. RFC 9112 §3.2.2: a target with an authority overrides Host.
    pub fn effective_host(&self) -> Option<Span> {
        self.authority.or(self.host)
    }
}

/// A parsed response head. Spans index the buffer given to [`parse_response_head`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version: Version,
    /// The status line with its line ending.
    pub status_line: Span,
    pub head_len: u32,
    /// From the headers alone; [`response_framing`] applies the request method and status.
    pub framing: BodyFraming,
    /// Per version and Connection, as for requests; false when the framing is ambiguous
    /// (Transfer-Encoding with Content-Length, or in HTTP/1.0). Do not reuse the connection
    /// when [`response_framing`] says [`BodyFraming::CloseDelimited`] either.
    pub keep_alive: bool,
    /// The Upgrade value, when Connection lists `upgrade` too.
    pub upgrade: Option<Span>,
    pub headers_count: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    Complete(T),
    /// More bytes are needed; parse the whole buffer again once they have arrived.
    Partial,
}

/// Why a head was rejected. Each variant maps to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("head longer than {bytes_max} bytes")]
    HeadTooLarge { bytes_max: u32 },
    #[error("more than {count_max} header lines")]
    TooManyHeaders { count_max: u16 },
    #[error("request target longer than {bytes_max} bytes")]
    UriTooLong { bytes_max: u32 },
    #[error("HTTP version other than 1.0 and 1.1")]
    UnsupportedVersion,
    #[error("transfer coding other than chunked")]
    UnsupportedTransferCoding,
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthAndTransferEncoding,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("malformed head: {0}")]
    Malformed(MalformedKind),
}

// Parse results travel the hot path; keep the error as small as a `u64`.
const _: () = assert!(size_of::<ParseError>() <= 8);

/// Where a malformed head went wrong: httparse's errors, and the rules we add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKind {
    /// Also obs-fold and whitespace before the colon, which httparse rejects as names.
    #[error("invalid header name")]
    HeaderName,
    /// Also NUL or a bare CR inside a value.
    #[error("invalid header value")]
    HeaderValue,
    #[error("invalid line ending")]
    NewLine,
    #[error("invalid status line")]
    Status,
    #[error("invalid token on the request line")]
    Token,
    #[error("invalid HTTP version")]
    Version,
    /// RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    /// RFC 9112 §6.3: a request whose final transfer coding is not chunked has no length.
    #[error("Transfer-Encoding whose final coding is not chunked")]
    TransferEncodingNotChunked,
    /// A line of a request head ended in LF without CR; see the module doc.
    #[error("bare LF line ending in a request head")]
    BareLineFeed,
    /// RFC 9112 §3.2.4: `*` is the target of OPTIONS only.
    #[error("asterisk-form target on a method other than OPTIONS")]
    AsteriskForm,
    /// An absolute-form target whose scheme is not `http` or `https`.
    #[error("request target scheme other than http and https")]
    TargetScheme,
    /// A target in no form RFC 9112 §3.2 allows for its method: not origin-form, an
    /// absolute-form target without a host or with userinfo, CONNECT without `host:port`.
    #[error("request target in no form allowed for its method")]
    TargetForm,
    /// RFC 9112 §3.2: a Host value that is not `host [":" port]` (see
    /// [`super::authority`]) gets a 400, as nginx answers "invalid host header". An empty
    /// value is allowed (a target without an authority).
    #[error("invalid Host value")]
    Host,
}

impl ParseError {
    fn from_httparse(error: httparse::Error, count_max: u16) -> Self {
        let kind = match error {
            httparse::Error::TooManyHeaders => return Self::TooManyHeaders { count_max },
            httparse::Error::HeaderName => MalformedKind::HeaderName,
            httparse::Error::HeaderValue => MalformedKind::HeaderValue,
            httparse::Error::NewLine => MalformedKind::NewLine,
            httparse::Error::Status => MalformedKind::Status,
            httparse::Error::Token => MalformedKind::Token,
            httparse::Error::Version => MalformedKind::Version,
        };
        Self::Malformed(kind)
    }
}

/// Parses a request head from the start of `buf`.
///
/// Header lines are written into `headers`, which is cleared first; reuse one `Vec` across
/// requests and no parse allocates after warm-up. After an error its contents are
/// unspecified. At most `header_bytes_max` bytes of `buf` are looked at, so a caller that
/// appends and retries is bounded.
pub fn parse_request_head(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<HeaderLine>,
) -> Result<Parsed<RequestHead>, ParseError> {
    headers.clear();
    let window = head_window(buf, limits);
    let count_max = headers_count_max(limits);
    let mut slots = [const { MaybeUninit::uninit() }; HEADERS_COUNT_CEILING as usize];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(window, &mut slots[..count_max.into()]) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) => {
            return request_partial(&request, window, buf.len(), limits);
        }
        Err(httparse::Error::Version) => {
            check_request_version(window, &request)?;
            return request_partial(&request, window, buf.len(), limits);
        }
        Err(error) => return Err(ParseError::from_httparse(error, count_max)),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        unreachable!("httparse fills in the request line before the head is complete")
    };
    if target.len() > limits.uri_bytes_max as usize {
        return Err(ParseError::UriTooLong { bytes_max: limits.uri_bytes_max });
    }
    if has_bare_line_feed(&window[..head_len]) {
        return Err(ParseError::Malformed(MalformedKind::BareLineFeed));
    }
    let method_kind = Method::of(method.as_bytes());
    let target = span_of(window, target.as_bytes());
    let parts = parse_target(window, target, method_kind).map_err(ParseError::Malformed)?;
    let lines = HeadLines::collect(window, head_len, request.headers, headers);
    let version = version_of(minor);
    let fields = &lines.fields;
    if fields.host_duplicate {
        return Err(ParseError::DuplicateHost);
    }
    if version == Version::Http11 && fields.host.is_none() {
        return Err(ParseError::MissingHost);
    }
    if let Some(host) = fields.host.map(|host| host.of(window)) {
        if !host.is_empty() && Authority::parse(host).is_err() {
            return Err(ParseError::Malformed(MalformedKind::Host));
        }
    }
    let framing = fields.request_framing(version)?;
    let method_span = span_of(window, method.as_bytes());
    let version_start = target.end as usize + 1; // One SP: httparse's strict request line.
    let is_http11 = version == Version::Http11;
    Ok(Parsed::Complete(RequestHead {
        method: method_kind,
        method_span,
        target,
        path: parts.path,
        origin: parts.origin,
        authority: parts.authority,
        version,
        version_span: span(version_start, version_start + b"HTTP/1.1".len()),
        request_line: span(method_span.start as usize, lines.first_line_end),
        head_len: lines.head_len,
        host: fields.host,
        framing,
        keep_alive: fields.keep_alive(version),
        expect_continue: is_http11 && fields.expect_continue,
        upgrade: fields.upgrade_if_listed().filter(|_| is_http11),
        headers_count: lines.headers_count,
    }))
}

/// Parses a response head from the start of `buf`; see [`parse_request_head`].
pub fn parse_response_head(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<HeaderLine>,
) -> Result<Parsed<ResponseHead>, ParseError> {
    headers.clear();
    let window = head_window(buf, limits);
    let count_max = headers_count_max(limits);
    let mut slots = [const { MaybeUninit::uninit() }; HEADERS_COUNT_CEILING as usize];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        window,
        &mut slots[..count_max.into()],
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) => return head_partial(buf.len(), limits),
        Err(httparse::Error::Version) => {
            let line_start = leading_empty_lines_len(window);
            check_other_version(&window[line_start..], b" ")?;
            return head_partial(buf.len(), limits);
        }
        Err(error) => return Err(ParseError::from_httparse(error, count_max)),
    };
    let (Some(minor), Some(status)) = (response.version, response.code) else {
        unreachable!("httparse fills in the status line before the head is complete")
    };
    // RFC 9110 §15: a status code is 100 to 599; httparse takes any three digits.
    if !(100..=599).contains(&status) {
        return Err(ParseError::Malformed(MalformedKind::Status));
    }
    let lines = HeadLines::collect(window, head_len, response.headers, headers);
    let version = version_of(minor);
    let (framing, ambiguous) = lines.fields.response_framing(version)?;
    if ambiguous {
        // RFC 9112 §6.3 rule 3: an intermediary removes Content-Length before relaying.
        for line in headers.iter_mut().filter(|line| line.kind == HeaderKind::ContentLength) {
            line.hop_by_hop = true;
        }
    }
    let fields = &lines.fields;
    Ok(Parsed::Complete(ResponseHead {
        status,
        version,
        status_line: span(leading_empty_lines_len(window), lines.first_line_end),
        head_len: lines.head_len,
        framing,
        keep_alive: fields.keep_alive(version) && !ambiguous,
        upgrade: fields.upgrade_if_listed(),
        headers_count: lines.headers_count,
    }))
}

/// RFC 9112 §6.3: the body framing of a response to a `method` request.
///
/// Responses to HEAD, 1xx, 204 and 304, and 2xx to CONNECT (the tunnel starts instead), have
/// no body whatever their headers say; any other response is framed as `head.framing`.
pub fn response_framing(method: Method, head: &ResponseHead) -> BodyFraming {
    let status = head.status;
    let has_no_body = method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (method == Method::Connect && (200..300).contains(&status));
    if has_no_body { BodyFraming::None } else { head.framing }
}

/// The part of `buf` a head may occupy: anything past `header_bytes_max` is never looked at.
fn head_window<'a>(buf: &'a [u8], limits: &HeadLimits) -> &'a [u8] {
    &buf[..buf.len().min(limits.header_bytes_max as usize)]
}

fn headers_count_max(limits: &HeadLimits) -> u16 {
    limits.headers_count_max.min(HEADERS_COUNT_CEILING)
}

fn version_of(minor: u8) -> Version {
    if minor == 0 { Version::Http10 } else { Version::Http11 }
}

/// A head that is not complete yet: fine unless it has already outgrown its limits.
fn head_partial<T>(buf_len: usize, limits: &HeadLimits) -> Result<Parsed<T>, ParseError> {
    if buf_len >= limits.header_bytes_max as usize {
        return Err(ParseError::HeadTooLarge { bytes_max: limits.header_bytes_max });
    }
    Ok(Parsed::Partial)
}

/// As [`head_partial`], but a target that is already longer than `uri_bytes_max`, finished
/// or not, is 414 rather than 431: so a 1 MB URI is 414.
///
/// An unfinished target is measured from where it starts, not by the buffer's length: a long
/// method or many leading empty lines must not make a read that ends mid-target 414 when the
/// same bytes in one read are a valid head (found by fuzzing: seeds `crash-split-after-*`).
fn request_partial<T>(
    request: &httparse::Request<'_, '_>,
    window: &[u8],
    buf_len: usize,
    limits: &HeadLimits,
) -> Result<Parsed<T>, ParseError> {
    let uri_bytes_max = limits.uri_bytes_max as usize;
    let too_long = match (request.method, request.path) {
        (_, Some(target)) => target.len() > uri_bytes_max,
        (Some(method), None) => {
            // One SP after the method: httparse's strict request line.
            let target_start = offset_of(window, method.as_bytes()) + method.len() + 1;
            window.len().saturating_sub(target_start) > uri_bytes_max
        }
        (None, None) => false,
    };
    if too_long {
        return Err(ParseError::UriTooLong { bytes_max: limits.uri_bytes_max });
    }
    head_partial(buf_len, limits)
}

/// httparse knows only HTTP/1.0 and HTTP/1.1. Tells a well-formed other version after the
/// target (505) from garbage (400); `Ok` means the version may yet turn out well-formed.
fn check_request_version(
    window: &[u8],
    request: &httparse::Request<'_, '_>,
) -> Result<(), ParseError> {
    let Some(target) = request.path else {
        return Err(ParseError::Malformed(MalformedKind::Version));
    };
    let version_start = offset_of(window, target.as_bytes()) + target.len() + 1;
    check_other_version(&window[version_start..], b"\r\n")
}

/// Checks `rest` against `HTTP/<digit>.<digit>` followed by one of `ends`. A complete match is
/// [`ParseError::UnsupportedVersion`], a prefix of one is `Ok`, anything else is malformed.
fn check_other_version(rest: &[u8], ends: &[u8]) -> Result<(), ParseError> {
    const SHAPE: &[u8; 8] = b"HTTP/d.d";
    for (index, &byte) in rest.iter().enumerate().take(SHAPE.len() + 1) {
        let fits = match SHAPE.get(index) {
            Some(b'd') => byte.is_ascii_digit(),
            Some(&expected) => byte == expected,
            None => ends.contains(&byte),
        };
        if !fits {
            return Err(ParseError::Malformed(MalformedKind::Version));
        }
    }
    if rest.len() > SHAPE.len() { Err(ParseError::UnsupportedVersion) } else { Ok(()) }
}

/// How many bytes of empty lines precede the start line; httparse skips them (RFC 9112 §2.2).
fn leading_empty_lines_len(window: &[u8]) -> usize {
    window.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(window.len())
}

/// The header lines of a complete head, written to the caller's `Vec`, and what they said.
struct HeadLines {
    fields: Fields,
    /// Where the start line ends (its line ending included).
    first_line_end: usize,
    head_len: u32,
    headers_count: u16,
}

impl HeadLines {
    fn collect(
        window: &[u8],
        head_len: usize,
        parsed: &[httparse::Header<'_>],
        headers: &mut Vec<HeaderLine>,
    ) -> Self {
        // The blank line that ends the head is CRLF or a bare LF.
        let blank_start = if head_len >= 2 && window[head_len - 2] == b'\r' {
            head_len - 2
        } else {
            head_len - 1
        };
        let mut fields = Fields::default();
        headers.reserve(parsed.len());
        for (index, header) in parsed.iter().enumerate() {
            let name = span_of(window, header.name.as_bytes());
            // A line ends where the next one starts, whether it ended in CRLF or LF.
            let line_end = parsed
                .get(index + 1)
                .map_or(blank_start, |next| offset_of(window, next.name.as_bytes()));
            let kind = HeaderKind::of(header.name.as_bytes());
            fields.note(kind, header.value, span_of(window, header.value));
            headers.push(HeaderLine {
                name,
                value: span_of(window, header.value),
                line: span(name.start as usize, line_end),
                kind,
                hop_by_hop: kind.is_hop_by_hop(),
            });
        }
        if fields.connection_lists_other {
            mark_connection_listed(window, headers);
        }
        let first_line_end = headers.first().map_or(blank_start, |line| line.line.start as usize);
        Self {
            fields,
            first_line_end,
            head_len: span(0, head_len).end,
            headers_count: headers.len().try_into().unwrap_or(u16::MAX),
        }
    }
}

/// Marks each header named in a Connection header as hop-by-hop (RFC 9110 §7.6.1).
///
/// Costs connection tokens x header lines comparisons, both bounded by the head limits; it
/// runs only when Connection lists something beyond close, keep-alive and upgrade.
fn mark_connection_listed(window: &[u8], headers: &mut [HeaderLine]) {
    for index in 0..headers.len() {
        let connection = headers[index];
        if connection.kind != HeaderKind::Connection {
            continue;
        }
        for token in list_elements(connection.value.of(window)) {
            for line in headers.iter_mut() {
                if !line.hop_by_hop
                    && line.kind.may_be_listed_in_connection()
                    && line.name.of(window).eq_ignore_ascii_case(token)
                {
                    line.hop_by_hop = true;
                }
            }
        }
    }
}

/// What the header lines said, gathered in one pass for the framing and connection rules.
#[derive(Debug, Default)]
struct Fields {
    /// The agreed Content-Length, when every value seen so far agreed.
    content_length: Option<u64>,
    content_length_bad: bool,
    /// List elements across all Transfer-Encoding lines; zero means no Transfer-Encoding.
    transfer_codings_count: u32,
    final_coding_chunked: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    connection_lists_other: bool,
    host: Option<Span>,
    host_duplicate: bool,
    upgrade: Option<Span>,
    expect_continue: bool,
}

impl Fields {
    fn note(&mut self, kind: HeaderKind, value: &[u8], value_span: Span) {
        match kind {
            HeaderKind::ContentLength => match parse_content_length(value) {
                Some(length) if self.content_length.is_none_or(|agreed| agreed == length) => {
                    self.content_length = Some(length);
                }
                Some(_) | None => self.content_length_bad = true,
            },
            HeaderKind::TransferEncoding => {
                for coding in list_elements(value) {
                    self.transfer_codings_count = self.transfer_codings_count.saturating_add(1);
                    self.final_coding_chunked = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
            HeaderKind::Connection => self.note_connection(value),
            HeaderKind::Host => {
                self.host_duplicate |= self.host.is_some();
                self.host = self.host.or(Some(value_span));
            }
            HeaderKind::Upgrade => self.upgrade = self.upgrade.or(Some(value_span)),
            HeaderKind::Expect => {
                self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue")
            }
            HeaderKind::KeepAlive
            | HeaderKind::ProxyConnection
            | HeaderKind::Te
            | HeaderKind::Trailer
            | HeaderKind::XForwardedFor
            | HeaderKind::XForwardedProto
            | HeaderKind::XForwardedHost
            | HeaderKind::Cookie
            | HeaderKind::Other => {}
        }
    }

    fn note_connection(&mut self, value: &[u8]) {
        for token in list_elements(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.connection_close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.connection_keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.connection_upgrade = true;
            } else if !token.is_empty() {
                self.connection_lists_other = true;
            }
        }
    }

    fn has_content_length(&self) -> bool {
        self.content_length.is_some() || self.content_length_bad
    }

    fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.connection_close,
            Version::Http10 => self.connection_keep_alive && !self.connection_close,
        }
    }

    fn upgrade_if_listed(&self) -> Option<Span> {
        self.upgrade.filter(|_| self.connection_upgrade)
    }

    /// RFC 9112 §6.3 for requests: every ambiguity is an error.
    fn request_framing(&self, version: Version) -> Result<BodyFraming, ParseError> {
        if self.transfer_codings_count > 0 {
            if self.has_content_length() {
                return Err(ParseError::ContentLengthAndTransferEncoding);
            }
            if version == Version::Http10 {
                return Err(ParseError::Malformed(MalformedKind::TransferEncodingInHttp10));
            }
            if !self.final_coding_chunked {
                return Err(ParseError::Malformed(MalformedKind::TransferEncodingNotChunked));
            }
            if self.transfer_codings_count == 1 {
                return Ok(BodyFraming::Chunked);
            }
            // Chunked last, after codings we do not decode (gzip, chunked): 501.
            return Err(ParseError::UnsupportedTransferCoding);
        }
        if self.content_length_bad {
            return Err(ParseError::BadContentLength);
        }
        Ok(self.content_length.map_or(BodyFraming::None, BodyFraming::Length))
    }

    /// RFC 9112 §6.3 for responses: Transfer-Encoding wins over Content-Length, a final
    /// coding other than chunked reads to close. The flag says the framing was ambiguous.
    fn response_framing(&self, version: Version) -> Result<(BodyFraming, bool), ParseError> {
        if self.transfer_codings_count > 0 {
            // RFC 9112 §6.1: in HTTP/1.0, Transfer-Encoding means the framing is faulty.
            let chunked = self.final_coding_chunked && version == Version::Http11;
            let framing = if chunked { BodyFraming::Chunked } else { BodyFraming::CloseDelimited };
            let ambiguous = self.has_content_length() || version == Version::Http10;
            return Ok((framing, ambiguous));
        }
        if self.content_length_bad {
            return Err(ParseError::BadContentLength);
        }
        Ok((self.content_length.map_or(BodyFraming::CloseDelimited, BodyFraming::Length), false))
    }
}

/// RFC 9110 §8.6: digits only; a list (or several lines) of one repeated value is that value.
/// An empty element is rejected rather than skipped: no sender needs one.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut agreed = None;
    for element in list_elements(value) {
        let length = parse_decimal(element)?;
        if agreed.is_some_and(|agreed| agreed != length) {
            return None;
        }
        agreed = Some(length);
    }
    agreed
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |value, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The elements of a comma-separated field value (RFC 9110 §5.6.1), trimmed of OWS. Empty
/// elements are yielded too; each caller decides what they mean.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_ows(b)).map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// Where `part`, a subslice of `window`, starts in it.
fn offset_of(window: &[u8], part: &[u8]) -> usize {
    let offset = part.as_ptr().addr() - window.as_ptr().addr();
    debug_assert!(offset + part.len() <= window.len(), "part is a subslice of window");
    offset
}

fn span_of(window: &[u8], part: &[u8]) -> Span {
    let start = offset_of(window, part);
    span(start, start + part.len())
}

#[expect(clippy::cast_possible_truncation, reason = "heads are at most header_bytes_max: u32")]
fn span(start: usize, end: usize) -> Span {
    debug_assert!(start <= end && end <= u32::MAX as usize, "span inside a head window");
    Span { start: start as u32, end: end as u32 }
}

/// True when a line of `head` ends in LF without a CR before it. memchr finds the LFs
/// many bytes at a time; only they are looked back from.
fn has_bare_line_feed(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|index| index == 0 || head[index - 1] != b'\r')
}
