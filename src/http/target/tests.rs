//! Table tests for request-target forms, through the whole head parser: the parts each form
//! yields, the host the request is for, and the targets rejected per method.

use crate::http::{
    HeadLimits, MalformedKind, ParseError, Parsed, RequestHead, Span, parse_request_head,
};

fn parse(input: &[u8]) -> Result<Parsed<RequestHead>, ParseError> {
    parse_request_head(input, &HeadLimits::DEFAULT, &mut Vec::new())
}

fn text(span: Option<Span>, input: &[u8]) -> Option<&[u8]> {
    span.map(|span| span.of(input))
}

#[test]
fn target_forms_and_their_parts() {
    // (request line, path, origin, authority, effective host); Host is `h` throughout.
    type Case = (&'static [u8], &'static [u8], &'static [u8], Option<&'static [u8]>, &'static [u8]);
    let cases: [Case; 14] = [
        (b"GET /a?q HTTP/1.1", b"/a", b"/a?q", None, b"h"),
        (b"GET / HTTP/1.1", b"/", b"/", None, b"h"),
        (
            b"GET http://admin.internal/a?q HTTP/1.1",
            b"/a",
            b"/a?q",
            Some(b"admin.internal"),
            b"admin.internal",
        ),
        (
            b"GET HTTPS://A.example:8443/ HTTP/1.1",
            b"/",
            b"/",
            Some(b"A.example:8443"),
            b"A.example:8443",
        ),
        (b"GET hTtP://a HTTP/1.1", b"/", b"", Some(b"a"), b"a"),
        (b"GET http://a?q=1 HTTP/1.1", b"/", b"?q=1", Some(b"a"), b"a"),
        (b"GET http://a/b/c?d/e?f HTTP/1.1", b"/b/c", b"/b/c?d/e?f", Some(b"a"), b"a"),
        (b"GET http://[::1]:80/x HTTP/1.1", b"/x", b"/x", Some(b"[::1]:80"), b"[::1]:80"),
        (b"GET http://a:/x HTTP/1.1", b"/x", b"/x", Some(b"a:"), b"a:"),
        (b"GET http://a-1.b_c~d/ HTTP/1.1", b"/", b"/", Some(b"a-1.b_c~d"), b"a-1.b_c~d"),
        (b"OPTIONS * HTTP/1.1", b"*", b"*", None, b"h"),
        (b"OPTIONS http://a HTTP/1.1", b"/", b"", Some(b"a"), b"a"),
        (b"CONNECT a.example:443 HTTP/1.1", b"a.example:443", b"a.example:443", None, b"h"),
        (b"CONNECT [::1]:443 HTTP/1.1", b"[::1]:443", b"[::1]:443", None, b"h"),
    ];
    for (line, path, origin, authority, host) in cases {
        let input = [line, b"\r\nHost: h\r\n\r\n"].concat();
        let Ok(Parsed::Complete(head)) = parse(&input) else {
            panic!("input: {}: {:?}", input.escape_ascii(), parse(&input));
        };
        let name = input.escape_ascii();
        assert_eq!(head.path.of(&input), path, "path of {name}");
        assert_eq!(head.origin.of(&input), origin, "origin of {name}");
        assert_eq!(text(head.authority, &input), authority, "authority of {name}");
        assert_eq!(text(head.effective_host(), &input), Some(host), "host of {name}");
        assert_eq!(text(head.host, &input), Some(&b"h"[..]), "Host of {name}");
    }
}

#[test]
fn rejects_targets_in_no_allowed_form() {
    let cases: [(&[u8], MalformedKind); 26] = [
        (b"GET * HTTP/1.1", MalformedKind::AsteriskForm),
        (b"POST * HTTP/1.1", MalformedKind::AsteriskForm),
        (b"HEAD * HTTP/1.1", MalformedKind::AsteriskForm),
        (b"CONNECT * HTTP/1.1", MalformedKind::TargetForm),
        (b"OPTIONS ** HTTP/1.1", MalformedKind::TargetForm),
        (b"GET ftp://a/x HTTP/1.1", MalformedKind::TargetScheme),
        (b"GET ws://a/x HTTP/1.1", MalformedKind::TargetScheme),
        (b"GET urn:isbn:1 HTTP/1.1", MalformedKind::TargetScheme),
        (b"GET httpx://a/ HTTP/1.1", MalformedKind::TargetScheme),
        (b"GET http:/a HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http:a HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http:///a HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://?q HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://user@a/ HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://admin%2einternal/ HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://[::1%25lo]/ HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://a:8x/ HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://a:65536/ HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://[v1.fe]/ HTTP/1.1", MalformedKind::TargetForm),
        (b"CONNECT a.example: HTTP/1.1", MalformedKind::TargetForm),
        (b"GET http://[::1/ HTTP/1.1", MalformedKind::TargetForm),
        (b"GET a.example:443 HTTP/1.1", MalformedKind::TargetScheme),
        (b"GET 1.2.3.4:80 HTTP/1.1", MalformedKind::TargetForm),
        (b"GET a HTTP/1.1", MalformedKind::TargetForm),
        (b"CONNECT a.example HTTP/1.1", MalformedKind::TargetForm),
        (b"CONNECT /a HTTP/1.1", MalformedKind::TargetForm),
    ];
    for (line, kind) in cases {
        let input = [line, b"\r\nHost: h\r\n\r\n"].concat();
        let result = parse(&input);
        assert_eq!(result, Err(ParseError::Malformed(kind)), "input: {}", input.escape_ascii());
    }
}
