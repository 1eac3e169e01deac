//! External (forward) authentication with the semantics of nginx `auth_request`: a
//! subrequest to an auth service carrying the named request headers; a 2xx allows and
//! the named response headers go to the upstream; a 401 or 403 goes back to the client
//! with the service's `WWW-Authenticate`; anything else, garbage, or no answer within the
//! timeout (200 ms by default) fails closed with the configured status (500 or 503).
//!
//! Each check is one connection (`Connection: close`), bounded in bytes and time; answers
//! may be kept per worker for a short ttl, keyed by the headers sent along.

use super::rules::{Identity, MethodKind};
use super::{Reason, Refusal};
use crate::cache::entry::push_line;
use crate::http::{HeadLimits, HeaderLine, Parsed, find_header, parse_response_head};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The longest auth service response head read.
const RESPONSE_HEAD_BYTES_MAX: u32 = 16 * 1024;

/// A route's auth service, validated.
#[derive(Debug)]
pub struct ExternalMethod {
    pub addr: SocketAddr,
    pub host: Box<str>,
    pub method: Box<str>,
    pub path: Box<str>,
    /// Lowercase names of the request headers sent along (and the cache key).
    pub request_headers: Vec<Box<[u8]>>,
    /// Lowercase names of the response headers copied to the upstream request.
    pub copy_headers: Vec<Box<[u8]>>,
    /// The response header naming the consumer, lowercase.
    pub consumer_header: Option<Box<[u8]>>,
    pub timeout: Duration,
    /// 500 or 503: what a failed check answers.
    pub failure_status: u16,
    /// Zero: answers are not kept.
    pub cache_ttl: Duration,
    pub cache_entries_max: usize,
}

/// What the auth service said, as a verdict.
pub type Verdict = Result<Rc<Identity>, Refusal>;

impl ExternalMethod {
    /// The subrequest's head for a request (`method`, `target`, its headers in `buf`).
    pub fn subrequest(
        &self,
        (method, target): (&[u8], &[u8]),
        (buf, headers): (&[u8], &[HeaderLine]),
        client: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let line = format!("{} {} HTTP/1.1\r\nHost: {}\r\n", self.method, self.path, self.host);
        out.extend_from_slice(line.as_bytes());
        for (name, value) in [
            (&b"X-Forwarded-Method"[..], method),
            (b"X-Forwarded-Uri", target),
            (b"X-Forwarded-For", client),
        ] {
            push_line(&mut out, name, value);
        }
        for header in headers {
            let name = header.name.of(buf);
            if self.request_headers.iter().any(|sent| sent.eq_ignore_ascii_case(name)) {
                push_line(&mut out, name, header.value.of(buf));
            }
        }
        out.extend_from_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
        out
    }

    /// The cache key of a request: the values of the headers sent along.
    pub fn cache_key(&self, (buf, headers): (&[u8], &[HeaderLine])) -> Box<[u8]> {
        let mut key = Vec::new();
        for name in &self.request_headers {
            key.extend_from_slice(find_header(buf, headers, name).unwrap_or_default());
            key.push(0);
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key);
        digest.as_ref().into()
    }

    /// Asks the auth service; every failure is the configured failure status.
    pub async fn check(&self, subrequest: Vec<u8>) -> Verdict {
        let asked = crate::deadline::timeout(self.timeout, self.ask(subrequest)).await;
        let failed = Refusal::new(Reason::Unavailable, Some(MethodKind::External));
        let failed = Refusal { status: self.failure_status, ..failed };
        match asked {
            Ok(Some((status, head, lines))) => {
                self.verdict(status, &head, &lines).unwrap_or(Err(failed))
            }
            Ok(None) | Err(_) => Err(failed),
        }
    }

    /// Sends the subrequest and reads the response head: its status, bytes and lines.
    async fn ask(&self, subrequest: Vec<u8>) -> Option<(u16, Vec<u8>, Vec<HeaderLine>)> {
        let host = self.host.as_ref();
        let mut stream =
            crate::upstream::connect(self.addr, host, None, self.timeout).await.ok()?;
        let (written, _) = stream.write_all(subrequest).await;
        written.ok()?;
        let limits =
            HeadLimits { header_bytes_max: RESPONSE_HEAD_BYTES_MAX, ..HeadLimits::DEFAULT };
        let mut buf = Vec::with_capacity(1024);
        let mut lines = Vec::new();
        loop {
            match parse_response_head(&buf, &limits, &mut lines) {
                Ok(Parsed::Complete(head)) => return Some((head.status, buf, lines)),
                Ok(Parsed::Partial) => {}
                Err(_) => return None,
            }
            if buf.len() == buf.capacity() {
                buf.reserve(buf.len());
            }
            let filled = buf.len();
            let (read, slice) = stream.read(buf.slice_mut(filled..)).await;
            buf = slice.into_inner();
            if read.ok()? == 0 {
                return None;
            }
        }
    }

    /// The verdict of a response head; `None` for a status that fails closed.
    fn verdict(&self, status: u16, buf: &[u8], lines: &[HeaderLine]) -> Option<Verdict> {
        match status {
            200..=299 => {
                let consumer =
                    self.consumer_header.as_deref().and_then(|name| find_header(buf, lines, name));
                let consumer = String::from_utf8_lossy(consumer.unwrap_or_default()).into_owned();
                let copied = lines_named(buf, lines, &self.copy_headers);
                Some(Ok(Rc::new(Identity {
                    consumer: consumer.into(),
                    groups: Vec::new(),
                    claims: serde_json::Value::Null,
                    method: MethodKind::External,
                    upstream_lines: copied.into(),
                })))
            }
            401 | 403 => {
                let challenge = lines_named(buf, lines, &[b"www-authenticate"[..].into()]);
                let reason = if status == 401 { Reason::BadCredentials } else { Reason::Forbidden };
                let refusal = Refusal::new(reason, Some(MethodKind::External));
                Some(Err(Refusal { status, challenge: Some(challenge.into()), ..refusal }))
            }
            _ => None,
        }
    }
}

/// The lines of `lines` named in `names`, rewritten as `Name: value` with CRLF: a line is
/// never copied with a line ending the service chose.
fn lines_named(buf: &[u8], lines: &[HeaderLine], names: &[Box<[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        let name = line.name.of(buf);
        if names.iter().any(|wanted| wanted.eq_ignore_ascii_case(name)) {
            push_line(&mut out, name, line.value.of(buf));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request_head;

    fn method() -> ExternalMethod {
        ExternalMethod {
            addr: SocketAddr::from(([127, 0, 0, 1], 9)),
            host: "auth.internal".into(),
            method: "GET".into(),
            path: "/check".into(),
            request_headers: vec![b"authorization"[..].into(), b"cookie"[..].into()],
            copy_headers: vec![b"x-user"[..].into()],
            consumer_header: Some(b"x-user"[..].into()),
            timeout: Duration::from_millis(200),
            failure_status: 503,
            cache_ttl: Duration::ZERO,
            cache_entries_max: 10,
        }
    }

    #[test]
    fn the_subrequest_carries_the_named_headers_only() {
        let request = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\
                        X-Secret: s\r\nCookie: c=1\r\nContent-Length: 0\r\n\r\n";
        let mut lines = Vec::new();
        let Ok(Parsed::Complete(_)) = parse_request_head(request, &HeadLimits::DEFAULT, &mut lines)
        else {
            panic!("a request")
        };
        let sent = method().subrequest((b"POST", b"/a?b=1"), (request, &lines), b"10.0.0.1");
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            "GET /check HTTP/1.1\r\nHost: auth.internal\r\nX-Forwarded-Method: POST\r\n\
             X-Forwarded-Uri: /a?b=1\r\nX-Forwarded-For: 10.0.0.1\r\nAuthorization: Bearer t\r\n\
             Cookie: c=1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn statuses_map_to_verdicts() {
        let method = method();
        let head = |status: u16, extra: &str| -> (Vec<u8>, Vec<HeaderLine>) {
            let text = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\n\r\n");
            let mut lines = Vec::new();
            let parsed = parse_response_head(text.as_bytes(), &HeadLimits::DEFAULT, &mut lines);
            assert!(matches!(parsed, Ok(Parsed::Complete(_))));
            (text.into_bytes(), lines)
        };
        let (buf, lines) = head(200, "X-User: alice\r\nX-Other: o\r\n");
        let identity = method.verdict(200, &buf, &lines).unwrap().unwrap();
        assert_eq!(&*identity.consumer, "alice");
        assert_eq!(&*identity.upstream_lines, b"X-User: alice\r\n");
        let (buf, lines) = head(401, "WWW-Authenticate: Basic realm=\"x\"\r\n");
        let refusal = method.verdict(401, &buf, &lines).unwrap().unwrap_err();
        assert_eq!((refusal.status, refusal.reason), (401, Reason::BadCredentials));
        assert_eq!(
            refusal.challenge.as_deref(),
            Some(&b"WWW-Authenticate: Basic realm=\"x\"\r\n"[..])
        );
        let (buf, lines) = head(403, "");
        assert_eq!(method.verdict(403, &buf, &lines).unwrap().unwrap_err().status, 403);
        for status in [100, 301, 404, 418, 500, 502] {
            let (buf, lines) = head(status, "");
            assert!(method.verdict(status, &buf, &lines).is_none(), "{status} fails closed");
        }
    }
}
