//! The request head a backend receives (pure): the client's request line in origin-form
//! and HTTP/1.1, its header lines minus hop-by-hop ones and the ones the proxy replaces,
//! plus the lines it adds: X-Forwarded-For/-Proto/-Host, Via, Host (rewritten, or the
//! authority of an absolute-form target), one plain Content-Length where the client's was
//! ambiguous, the request id, what an upgrade needs, and on a compressing route the strong
//! form of each weak If-None-Match tag.

use super::edits::HeadEdits;
use crate::config::Anonymity;
use crate::http::{BodyFraming, HeaderKind, HeaderLine, Method, RequestHead, Version};
use crate::wire::OutVec;
use std::io::Write;

/// Everything the forwarded head depends on besides the client's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    pub head: &'a RequestHead,
    pub headers: &'a [HeaderLine],
    /// The client address as text, for X-Forwarded-For.
    pub peer_text: &'a [u8],
    /// The client came over TLS.
    pub https: bool,
    /// The Host to send instead of the client's (the cluster's `host_rewrite`).
    pub host_rewrite: Option<&'a str>,
    /// A generated request id and the header that carries it.
    pub request_id: Option<(&'a [u8], &'a [u8])>,
    /// The route compresses: its clients hold weakened ETags (`W/"x"` for the backend's
    /// `"x"`), so If-None-Match gets each weak tag's strong form too, for backends that
    /// compare tags as strings.
    pub strong_if_none_match: bool,
    /// The cache revalidates a stored response: its conditional lines (RFC 9111 §4.3.1)
    /// go instead of the client's conditionals and range, or empty.
    pub revalidation: &'a [u8],
    /// A forward proxy's edits, instead of the reverse proxy's X-Forwarded-* lines.
    pub forward: Option<ForwardHead<'a>>,
    /// The route's edits (authentication and rewriting): the client's lines it drops,
    /// the lines it adds and the target it rewrites.
    pub route: Option<RouteHead<'a>>,
}

/// What a route's authentication and rewriting change in a request head.
#[derive(Debug, Clone, Copy)]
pub struct RouteHead<'a> {
    /// Lowercase names of the client's lines dropped.
    pub dropped: &'a [Box<[u8]>],
    /// Whole lines, each ending in CRLF: identity headers, then the rewrite's.
    pub lines: &'a [u8],
    /// The rewritten origin-form target (path and query), when the path is rewritten.
    pub target: Option<&'a [u8]>,
}

/// What a forward proxy changes in a request head: what the origin learns of the client
/// (its anonymity level), the header lines it drops and the ones it puts in their place.
#[derive(Debug, Clone, Copy)]
pub struct ForwardHead<'a> {
    pub anonymity: Anonymity,
    /// Lowercase names: `Proxy-Authorization`, the configured ones, and at `elite` the
    /// client's own `Via` and `Forwarded`.
    pub remove: &'a [Box<[u8]>],
    /// Whole lines, each ending in CRLF.
    pub replace: &'a [u8],
    /// The listener's response rules, applied by the response plan.
    pub response: Option<&'a std::sync::Arc<crate::config::ResponseFilter>>,
    /// The listener (its index, and its forward settings), where refusals are counted.
    pub listener: (usize, &'a crate::config::Forward),
}

/// Queues the forwarded head in `out`, whose `buf` holds the client's head at its front.
pub fn render_request_head(forwarding: &Forwarding<'_>, out: &mut OutVec) {
    out.clear();
    let target = forwarding.route.and_then(|route| route.target);
    render_request_line(forwarding.head, target, out);
    let edits = request_edits(forwarding, out);
    edits.render_lines(forwarding.headers, out);
}

/// The request line in origin-form and HTTP/1.1: upstream connections are always
/// HTTP/1.1, so they can be kept alive.
fn render_request_line(head: &RequestHead, rewritten: Option<&[u8]>, out: &mut OutVec) {
    let line = head.request_line;
    let mut from = line.start as usize;
    if let Some(target) = rewritten {
        // A rewritten target is origin-form already (`rewrite` checks it).
        out.push_buf(from, head.target.start as usize);
        out.push_extra(target);
        from = head.target.end as usize;
    } else if head.authority.is_some() {
        // RFC 9112 §3.2.2: an absolute-form target goes on in origin-form; its authority
        // becomes the Host header.
        out.push_buf(from, head.target.start as usize);
        let origin = head.origin.of(&out.buf);
        let (is_empty, has_slash) = (origin.is_empty(), origin.first() == Some(&b'/'));
        if is_empty && head.method == Method::Options {
            // RFC 9112 §3.2.4: OPTIONS with an empty path is about the whole server.
            out.push_static(b"*");
        } else if !has_slash {
            out.push_static(b"/");
        }
        out.push_buf(head.origin.start as usize, head.origin.end as usize);
        from = head.target.end as usize;
    }
    if head.version == Version::Http10 {
        out.push_buf(from, head.version_span.start as usize);
        out.push_static(b"HTTP/1.1");
        from = head.version_span.end as usize;
    }
    out.push_buf(from, line.end as usize);
}

/// The edits of a forwarded request; the lines it adds are written into `out.extra`.
fn request_edits<'e>(forwarding: &Forwarding<'e>, out: &mut OutVec) -> HeadEdits<'e> {
    if let Some(forward) = forwarding.forward {
        return forward_edits(forwarding, forward, out);
    }
    let Forwarding { head, headers, .. } = *forwarding;
    let mut edits = HeadEdits::default();
    for replaced in [
        HeaderKind::XForwardedFor,
        HeaderKind::XForwardedProto,
        HeaderKind::XForwardedHost,
        HeaderKind::Expect,
    ] {
        edits.drop_kind(replaced);
    }
    let start = framing_edits((head, headers), true, &mut edits, out);
    let OutVec { buf, extra, .. } = out;
    let host: Option<&[u8]> = match (forwarding.host_rewrite, head.authority) {
        (Some(host), _) => Some(host.as_bytes()),
        (None, Some(authority)) => Some(authority.of(buf)),
        (None, None) => None,
    };
    if let Some(host) = host {
        edits.drop_kind(HeaderKind::Host);
        add_line(extra, b"Host", host);
    }
    add_forwarded_for(headers, buf, forwarding.peer_text, extra);
    extra.extend_from_slice(if forwarding.https {
        b"\r\nX-Forwarded-Proto: https\r\n"
    } else {
        b"\r\nX-Forwarded-Proto: http\r\n"
    });
    if let Some(host) = head.effective_host() {
        add_line(extra, b"X-Forwarded-Host", host.of(buf));
    }
    if let Some((name, id)) = forwarding.request_id {
        add_line(extra, name, id);
    }
    if let Some(route) = forwarding.route {
        edits.drop_lowercase_names(route.dropped);
        extra.extend_from_slice(route.lines);
    }
    if let Some(upgrade) = head.upgrade {
        add_line(extra, b"Upgrade", upgrade.of(buf));
    }
    if !forwarding.revalidation.is_empty() {
        // The stored response's validators ask; the client's own are answered from the
        // entry once it is fresh again, and a range from the whole body.
        edits.drop_names(CACHE_REPLACED);
        extra.extend_from_slice(forwarding.revalidation);
    } else if forwarding.strong_if_none_match && add_strong_tags(headers, buf, extra) {
        edits.drop_names(IF_NONE_MATCH);
    }
    edits.add_extra(start..extra.len());
    edits
}

const IF_NONE_MATCH: &[&[u8]] = &[b"if-none-match"];
const CACHE_REPLACED: &[&[u8]] = &[
    b"if-none-match",
    b"if-modified-since",
    b"if-match",
    b"if-unmodified-since",
    b"if-range",
    b"range",
];

/// The edits of a request through a forward proxy: the Host of the absolute-form target,
/// `Via` and `X-Forwarded-For` as its anonymity level says, and its header lists.
fn forward_edits<'e>(
    forwarding: &Forwarding<'e>,
    forward: ForwardHead<'e>,
    out: &mut OutVec,
) -> HeadEdits<'e> {
    let Forwarding { head, headers, .. } = *forwarding;
    let mut edits = HeadEdits::default();
    edits.drop_kind(HeaderKind::XForwardedFor);
    edits.drop_kind(HeaderKind::Expect);
    edits.drop_lowercase_names(forward.remove);
    let via = forward.anonymity != Anonymity::Elite;
    let start = framing_edits((head, headers), via, &mut edits, out);
    let OutVec { buf, extra, .. } = out;
    if let Some(authority) = head.authority {
        edits.drop_kind(HeaderKind::Host);
        add_line(extra, b"Host", authority.of(buf));
    }
    if forward.anonymity == Anonymity::Transparent {
        add_forwarded_for(headers, buf, forwarding.peer_text, extra);
        extra.extend_from_slice(b"\r\n");
    }
    extra.extend_from_slice(forward.replace);
    if let Some(upgrade) = head.upgrade {
        add_line(extra, b"Upgrade", upgrade.of(buf));
    }
    edits.add_extra(start..extra.len());
    edits
}

/// Writes one If-None-Match line with every tag of the request's lines plus the strong form
/// of each weak one, when there is a weak one; true when it wrote it. RFC 9110 §13.1.2
/// compares If-None-Match tags weakly, so `W/"x"` and `"x"` match the same: adding the
/// strong form changes nothing for a backend that follows it.
fn add_strong_tags(headers: &[HeaderLine], buf: &[u8], extra: &mut Vec<u8>) -> bool {
    let values = || {
        headers
            .iter()
            .filter(|line| line.name.of(buf).eq_ignore_ascii_case(b"if-none-match"))
            .map(|line| line.value.of(buf))
    };
    let tags =
        || values().flat_map(|value| value.split(|&byte| byte == b',')).map(<[u8]>::trim_ascii);
    if !tags().any(|tag| tag.starts_with(b"W/")) {
        return false;
    }
    extra.extend_from_slice(b"If-None-Match: ");
    let mut first = true;
    let strong = tags().filter_map(|tag| tag.strip_prefix(b"W/"));
    for tag in tags().filter(|tag| !tag.is_empty()).chain(strong) {
        if !first {
            extra.extend_from_slice(b", ");
        }
        first = false;
        extra.extend_from_slice(tag);
    }
    extra.extend_from_slice(b"\r\n");
    true
}

/// The edits every forwarded head gets: its framing lines, `Via` when `via`, an upgrade's
/// `Connection` line, and one plain Content-Length where the client's was ambiguous.
/// Returns where the lines it wrote into `out.extra` start.
fn framing_edits(
    (head, headers): (&RequestHead, &[HeaderLine]),
    via: bool,
    edits: &mut HeadEdits<'_>,
    out: &mut OutVec,
) -> usize {
    if head.framing == BodyFraming::Chunked {
        edits.add_static(b"Transfer-Encoding: chunked\r\n");
    }
    if via {
        edits.add_static(match head.version {
            Version::Http10 => b"Via: 1.0 ringway\r\n",
            Version::Http11 => b"Via: 1.1 ringway\r\n",
        });
    }
    if head.upgrade.is_some() {
        edits.add_static(b"Connection: upgrade\r\n");
    }
    let OutVec { buf, extra, .. } = out;
    let start = extra.len();
    if content_length_needs_normalizing(head, headers, buf) {
        edits.drop_kind(HeaderKind::ContentLength);
        if let BodyFraming::Length(length) = head.framing {
            // Writing into a Vec cannot fail.
            let _ = write!(extra, "Content-Length: {length}\r\n");
        }
    }
    start
}

/// Appends `X-Forwarded-For: ` with the client's chain and `peer_text`, without a CRLF.
fn add_forwarded_for(headers: &[HeaderLine], buf: &[u8], peer_text: &[u8], extra: &mut Vec<u8>) {
    extra.extend_from_slice(b"X-Forwarded-For: ");
    for header in headers.iter().filter(|header| header.kind == HeaderKind::XForwardedFor) {
        extra.extend_from_slice(header.value.of(buf));
        extra.extend_from_slice(b", ");
    }
    extra.extend_from_slice(peer_text);
}

/// Appends `name: value` and CRLF.
fn add_line(extra: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    extra.extend_from_slice(name);
    extra.extend_from_slice(b": ");
    extra.extend_from_slice(value);
    extra.extend_from_slice(b"\r\n");
}

/// True when the request's length is allowed but ambiguous on the wire: several
/// Content-Length lines or a list of equal values (`5, 5`). The proxy then sends one plain
/// `Content-Length` of its own, so the backend cannot read the length another way.
///
/// A chunked body that the read phase decoded whole has `Length` framing and no
/// Content-Length line at all: it gets one too.
fn content_length_needs_normalizing(
    head: &RequestHead,
    headers: &[HeaderLine],
    buf: &[u8],
) -> bool {
    let mut lines = headers.iter().filter(|header| header.kind == HeaderKind::ContentLength);
    let Some(first) = lines.next() else {
        return matches!(head.framing, BodyFraming::Length(_));
    };
    lines.next().is_some() || !first.value.of(buf).iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadLimits, Parsed, parse_request_head};

    /// The forwarded head for `request` from 10.0.0.1 over plain HTTP.
    fn forwarded(request: &[u8], adjust: impl Fn(&mut Forwarding<'_>)) -> String {
        let mut lines = Vec::new();
        let parsed = parse_request_head(request, &HeadLimits::DEFAULT, &mut lines);
        let Ok(Parsed::Complete(head)) = parsed else { panic!("{parsed:?}") };
        let mut forwarding = Forwarding {
            head: &head,
            headers: &lines,
            peer_text: b"10.0.0.1",
            https: false,
            host_rewrite: None,
            request_id: None,
            strong_if_none_match: false,
            revalidation: b"",
            forward: None,
            route: None,
        };
        adjust(&mut forwarding);
        let mut out = OutVec::new(request.to_vec());
        render_request_head(&forwarding, &mut out);
        String::from_utf8(out.to_bytes()).expect("ascii")
    }

    #[test]
    fn kept_lines_stay_and_the_proxy_adds_its_own() {
        let head = forwarded(
            b"GET /a?b HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: x-hop\r\n\
              X-Hop: 1\r\nAccept: */*\r\n\r\n",
            |_| {},
        );
        assert_eq!(
            head,
            "GET /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nVia: 1.1 ringway\r\n\
             X-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nX-Forwarded-Proto: http\r\n\
             X-Forwarded-Host: h\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_goes_in_origin_form_with_its_authority_as_host() {
        let head = forwarded(b"GET http://a.example/x?q HTTP/1.0\r\nHost: b\r\n\r\n", |_| {});
        assert!(head.starts_with("GET /x?q HTTP/1.1\r\nVia: 1.0 ringway\r\nHost: a.example\r\n"));
        assert!(!head.contains("Host: b"), "{head}");
        let rewritten = forwarded(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n", |forwarding| {
            forwarding.host_rewrite = Some("backend.internal");
        });
        assert!(rewritten.contains("\r\nHost: backend.internal\r\n"), "{rewritten}");
        assert!(rewritten.contains("X-Forwarded-Host: b\r\n"), "{rewritten}");
    }

    #[test]
    fn ambiguous_lengths_become_one_and_chunked_stays_chunked() {
        let head =
            forwarded(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello", |_| {});
        assert!(head.contains("\r\nContent-Length: 5\r\n"), "{head}");
        assert!(!head.contains("5, 5"), "{head}");
        let chunked =
            forwarded(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", |_| {});
        assert_eq!(chunked.matches("Transfer-Encoding: chunked\r\n").count(), 1, "{chunked}");
    }

    #[test]
    fn weak_tags_get_their_strong_form_on_a_compressing_route() {
        let request = b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: W/\"a\", \"b\"\r\n\
                        If-None-Match: W/\"c\"\r\n\r\n";
        let head = forwarded(request, |forwarding| forwarding.strong_if_none_match = true);
        assert!(
            head.contains("If-None-Match: W/\"a\", \"b\", W/\"c\", \"a\", \"c\"\r\n"),
            "{head}"
        );
        assert_eq!(head.matches("If-None-Match").count(), 1, "{head}");
        let plain = forwarded(request, |_| {});
        assert_eq!(plain.matches("If-None-Match: W/").count(), 2, "{plain}");
        let strong = b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\n\r\n";
        let head = forwarded(strong, |forwarding| forwarding.strong_if_none_match = true);
        assert!(head.contains("Host: h\r\nIf-None-Match: \"a\"\r\n"), "left as it is: {head}");
    }

    #[test]
    fn a_revalidation_replaces_the_clients_conditionals() {
        let request =
            b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\nRange: bytes=0-1\r\n\r\n";
        let head = forwarded(request, |forwarding| {
            forwarding.revalidation = b"If-None-Match: \"a\"\r\n";
        });
        assert!(head.contains("If-None-Match: \"a\"\r\n"), "{head}");
        assert!(!head.contains("\"x\"") && !head.contains("Range"), "{head}");
    }

    #[test]
    fn request_id_and_upgrade_are_added() {
        let head = forwarded(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            |forwarding| forwarding.request_id = Some((b"X-Request-Id", b"abc")),
        );
        assert!(head.contains("Connection: upgrade\r\n"), "{head}");
        assert!(head.contains("X-Request-Id: abc\r\nUpgrade: websocket\r\n\r\n"), "{head}");
    }
}
