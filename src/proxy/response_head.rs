//! The response head: read the backend's final head (1xx interim answers go on to
//! HTTP/1.1 clients as they are), then plan what the client gets (framing, keep-alive;
//! pure and unit-tested) and render it: the backend's lines minus hop-by-hop ones, plus
//! Connection, Transfer-Encoding, the listener's HSTS and a sticky cookie.

use super::body::{self, Encoder, RelayError, RelayOptions};
use super::compression::HeadChanges;
use super::edits::HeadEdits;
use crate::config::Sticky;
use crate::error::ProxyError;
use crate::http::{
    BodyFraming, HeadLimits, HeaderKind, HeaderLine, Method, ParseError, Parsed, RequestHead,
    ResponseHead, Version, parse_response_head, response_framing,
};
use crate::tls::UpstreamStream;
use crate::upstream::peer::peek;
use crate::wire::OutVec;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use std::os::fd::AsRawFd;

/// Reads response heads from `stream` until a final one and parses its lines into `lines`.
/// Interim 1xx heads other than 100 go to `client` as they are when it speaks HTTP/1.1.
/// All the interim heads together count against `limits.header_bytes_max`, as one head
/// would: a backend cannot hold an exchange with endless 103s.
pub async fn read_final_head(
    request: &RequestHead,
    (stream, client): (&mut impl AsyncReadRent, &mut impl AsyncWriteRent),
    (mut buf, lines): (Vec<u8>, &mut Vec<HeaderLine>),
    limits: &HeadLimits,
    options: &RelayOptions,
) -> (Result<ResponseHead, ProxyError>, Vec<u8>) {
    let mut interim_bytes = 0u32;
    loop {
        match parse_response_head(&buf, limits, lines) {
            Ok(Parsed::Complete(response))
                if response.status == 101 && request.upgrade.is_none() =>
            {
                return (Err(ProxyError::UnexpectedUpgrade), buf);
            }
            Ok(Parsed::Complete(response))
                if (100..200).contains(&response.status) && response.status != 101 =>
            {
                let head_len = response.head_len as usize;
                interim_bytes = interim_bytes.saturating_add(response.head_len);
                if interim_bytes > limits.header_bytes_max {
                    let too_large = ParseError::HeadTooLarge { bytes_max: limits.header_bytes_max };
                    return (Err(ProxyError::BadResponse(too_large)), buf);
                }
                if request.version == Version::Http11 && response.status != 100 {
                    let interim = buf[..head_len].to_vec();
                    // Boxed: rare, and it would make every response head's read larger.
                    let write = Box::pin(client.write_all(interim));
                    match crate::deadline::timeout(options.write_timeout, write).await {
                        Ok((Ok(_), _)) => {}
                        Ok((Err(_), _)) | Err(_) => return (Err(ProxyError::ClientIo), buf),
                    }
                }
                buf.drain(..head_len);
                continue;
            }
            Ok(Parsed::Complete(response)) => return (Ok(response), buf),
            Ok(Parsed::Partial) => {}
            Err(error) => return (Err(ProxyError::BadResponse(error)), buf),
        }
        let (result, back) = body::read_more(stream, buf, options).await;
        buf = back;
        match result {
            Ok(0) | Err(RelayError::SourceClosed | RelayError::SourceIo) => {
                return (Err(ProxyError::UpstreamClosed), buf);
            }
            Ok(_) => {}
            Err(
                RelayError::SourceTimeout
                | RelayError::SinkTimeout
                | RelayError::SinkIo
                | RelayError::SinkAnswered
                | RelayError::TooLarge
                | RelayError::BadChunk(_)
                | RelayError::Coder(_)
                | RelayError::Filtered { .. },
            ) => return (Err(ProxyError::UpstreamTimeout), buf),
        }
    }
}

/// What a backend that spoke during an upload had to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interim {
    /// Only interim heads, now forwarded: the upload goes on.
    Consumed,
    /// Something else (a final head, an end of file): the answer, left unread.
    Answer,
}

/// Takes complete interim (1xx, not 101) heads from the front of what `stream` holds,
/// peeking first so nothing else is taken, and forwards them as [`read_final_head`]
/// does. Only a plain socket can be peeked at; from a TLS one everything is an answer.
pub async fn take_interim_heads(
    request: &RequestHead,
    (stream, client): (&mut UpstreamStream, &mut impl AsyncWriteRent),
    limits: &HeadLimits,
    timeout: std::time::Duration,
) -> Result<Interim, ProxyError> {
    let UpstreamStream::Plain(tcp) = stream else { return Ok(Interim::Answer) };
    let deadline = monoio::time::Instant::now() + timeout;
    let mut peeked = vec![0u8; limits.header_bytes_max as usize];
    let mut lines = Vec::new();
    let mut interim_bytes = 0u32;
    loop {
        let len = match peek(tcp.as_raw_fd(), &mut peeked) {
            Ok(0) => return Ok(Interim::Answer),
            Ok(len) => len,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                return Ok(Interim::Consumed);
            }
            Err(_) => return Ok(Interim::Answer),
        };
        let head_len = match parse_response_head(&peeked[..len], limits, &mut lines) {
            Ok(Parsed::Complete(head))
                if (100..200).contains(&head.status) && head.status != 101 =>
            {
                (head.head_len, head.status)
            }
            // A head still arriving: look again shortly (the socket stays readable, so
            // waiting for readiness would spin), unless it cannot fit.
            Ok(Parsed::Partial) if len < peeked.len() => {
                if monoio::time::Instant::now() >= deadline {
                    return Err(ProxyError::UpstreamTimeout);
                }
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                continue;
            }
            Ok(Parsed::Complete(_) | Parsed::Partial) | Err(_) => return Ok(Interim::Answer),
        };
        let (head_len, status) = head_len;
        interim_bytes = interim_bytes.saturating_add(head_len);
        if interim_bytes > limits.header_bytes_max {
            let too_large = ParseError::HeadTooLarge { bytes_max: limits.header_bytes_max };
            return Err(ProxyError::BadResponse(too_large));
        }
        // Takes exactly the interim head: it is all there, as the peek showed.
        let mut taken = Vec::with_capacity(head_len as usize);
        while taken.len() < head_len as usize {
            let filled = taken.len();
            let (result, back) = tcp.read(taken.slice_mut(filled..head_len as usize)).await;
            taken = back.into_inner();
            if !matches!(result, Ok(1..)) {
                return Err(ProxyError::UpstreamClosed);
            }
        }
        if request.version == Version::Http11 && status != 100 {
            let write = client.write_all(taken);
            match crate::deadline::timeout_at(deadline, write).await {
                Ok((Ok(_), _)) => {}
                Ok((Err(_), _)) | Err(_) => return Err(ProxyError::ClientIo),
            }
        }
    }
}

/// What to do with a response, decided from its head and the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePlan {
    /// How the backend frames the body (what the proxy reads).
    pub framing: BodyFraming,
    /// How the client gets it.
    pub encoder: Encoder,
    pub client_keep_alive: bool,
    pub upgrade: bool,
}

/// What besides the two heads the plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct PlanFacts {
    /// The request body went to the backend whole (false after an early answer).
    pub request_complete: bool,
    pub shutting_down: bool,
    /// The body is compressed or decompressed on the way: its length changes.
    pub coded: bool,
}

/// Plans the client's response: a chunked or close-delimited body is re-framed chunked
/// for an HTTP/1.1 client; an HTTP/1.0 client learns where such a body ends only from the
/// close; a client still sending a body the backend refused is closed after the answer.
pub fn plan_response(
    request: &RequestHead,
    response: &ResponseHead,
    facts: PlanFacts,
) -> ResponsePlan {
    let upgrade = response.status == 101;
    let framing =
        if upgrade { BodyFraming::None } else { response_framing(request.method, response) };
    let http11 = request.version == Version::Http11;
    let (encoder, reframed) = match framing {
        BodyFraming::Chunked | BodyFraming::CloseDelimited if http11 => (Encoder::Chunked, true),
        BodyFraming::Chunked | BodyFraming::CloseDelimited => (Encoder::Raw, true),
        // A coded body's length is known only at its end.
        BodyFraming::Length(_) if facts.coded && http11 => (Encoder::Chunked, true),
        BodyFraming::Length(_) if facts.coded => (Encoder::Raw, true),
        BodyFraming::None | BodyFraming::Length(_) => (Encoder::Raw, false),
    };
    let client_keep_alive = request.keep_alive
        && facts.request_complete
        && !facts.shutting_down
        && (http11 || !reframed)
        && request.method != Method::Connect;
    ResponsePlan { framing, encoder, client_keep_alive, upgrade }
}

/// The lines the proxy adds to every response of a listener or cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseAdditions<'a> {
    /// Complete header lines for every response on the listener (HSTS) and the route
    /// (rewrite, CORS), or empty.
    pub listener_lines: &'a [u8],
    /// Lowercase names of the backend's lines dropped (a route's rewrite).
    pub dropped: &'a [Box<[u8]>],
    /// A sticky cookie to set: the cluster's settings and the value naming the backend.
    pub set_cookie: Option<(&'a Sticky, [u8; 16])>,
    /// Content-Encoding, Vary and a weakened ETag, when the route compresses.
    pub compression: HeadChanges,
    /// `Cache-Status` (RFC 9211) and the like, complete lines, when the route caches.
    pub cache_lines: &'a [u8],
}

/// Queues the client's response head in `out`, whose `buf` holds the backend's head at
/// its front.
pub fn render_response_head(
    (request, response, lines): (&RequestHead, &ResponseHead, &[HeaderLine]),
    plan: &ResponsePlan,
    additions: &ResponseAdditions<'_>,
    out: &mut OutVec,
) {
    let status_line = response.status_line;
    out.push_buf(status_line.start as usize, status_line.end as usize);
    let mut edits = HeadEdits::default();
    let coding = &additions.compression;
    if matches!(plan.framing, BodyFraming::Chunked | BodyFraming::CloseDelimited) || coding.coded {
        // A Content-Length beside Transfer-Encoding is void (RFC 9112 §6.3), and the body
        // is re-framed; a coded body has another length.
        edits.drop_kind(HeaderKind::ContentLength);
    }
    edits.drop_names(coding.dropped);
    edits.drop_lowercase_names(additions.dropped);
    if let Some(line) = coding.content_encoding {
        edits.add_static(line);
    }
    if coding.vary {
        edits.add_static(b"Vary: Accept-Encoding\r\n");
    }
    let http11 = request.version == Version::Http11;
    match (plan.upgrade, plan.client_keep_alive, http11) {
        (true, _, _) => edits.add_static(b"Connection: upgrade\r\n"),
        (false, false, _) => edits.add_static(b"Connection: close\r\n"),
        (false, true, false) => edits.add_static(b"Connection: keep-alive\r\n"),
        (false, true, true) => {}
    }
    if plan.encoder == Encoder::Chunked {
        edits.add_static(b"Transfer-Encoding: chunked\r\n");
    }
    let OutVec { buf, extra, .. } = out;
    let start = extra.len();
    if let (true, Some(value)) = (plan.upgrade, response.upgrade) {
        extra.extend_from_slice(b"Upgrade: ");
        extra.extend_from_slice(value.of(buf));
        extra.extend_from_slice(b"\r\n");
    }
    if let Some(etag) = coding.weak_etag {
        // RFC 9110 §8.8.1: a coded body is not byte-for-byte the backend's, so its
        // validator can only be weak.
        extra.extend_from_slice(b"ETag: W/");
        extra.extend_from_slice(etag.of(buf));
        extra.extend_from_slice(b"\r\n");
    }
    extra.extend_from_slice(additions.listener_lines);
    extra.extend_from_slice(additions.cache_lines);
    if let Some((sticky, value)) = additions.set_cookie {
        extra.extend_from_slice(b"Set-Cookie: ");
        extra.extend_from_slice(sticky.cookie.as_bytes());
        extra.push(b'=');
        extra.extend_from_slice(&value);
        extra.extend_from_slice(sticky.attributes.as_bytes());
        extra.extend_from_slice(b"\r\n");
    }
    edits.add_extra(start..extra.len());
    edits.render_lines(lines, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{ChunkedLimits, parse_request_head};
    use crate::proxy::scripted::{ScriptedStream, Step, WriteFault, bytes, run};
    use std::io::ErrorKind;
    use std::time::Duration;

    const PLAIN: PlanFacts =
        PlanFacts { request_complete: true, shutting_down: false, coded: false };

    fn request(bytes: &[u8]) -> RequestHead {
        let parsed = parse_request_head(bytes, &HeadLimits::DEFAULT, &mut Vec::new());
        let Ok(Parsed::Complete(head)) = parsed else { panic!("{parsed:?}") };
        head
    }

    /// The plan and the rendered head for `response` to `request`.
    fn respond(request_bytes: &[u8], response: &[u8], facts: PlanFacts) -> (ResponsePlan, String) {
        let request = request(request_bytes);
        let mut lines = Vec::new();
        let parsed = parse_response_head(response, &HeadLimits::DEFAULT, &mut lines);
        let Ok(Parsed::Complete(head)) = parsed else { panic!("{parsed:?}") };
        let plan = plan_response(&request, &head, facts);
        let mut out = OutVec::new(response.to_vec());
        let additions = ResponseAdditions {
            listener_lines: b"Strict-Transport-Security: x\r\n",
            dropped: &[],
            set_cookie: None,
            compression: HeadChanges::default(),
            cache_lines: b"",
        };
        render_response_head((&request, &head, &lines), &plan, &additions, &mut out);
        (plan, String::from_utf8(out.to_bytes()).expect("ascii"))
    }

    const GET11: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    const GET10: &[u8] = b"GET / HTTP/1.0\r\nHost: h\r\n\r\n";

    #[test]
    fn a_length_response_goes_as_it_is() {
        let (plan, head) =
            respond(GET11, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: 5\r\n\r\n", PLAIN);
        assert_eq!(plan.framing, BodyFraming::Length(2));
        assert!(plan.client_keep_alive);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nStrict-Transport-Security: x\r\n\r\n"
        );
    }

    #[test]
    fn close_delimited_is_rechunked_for_11_and_closes_for_10() {
        let response = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        let (plan, head) = respond(GET11, response, PLAIN);
        assert_eq!((plan.encoder, plan.client_keep_alive), (Encoder::Chunked, true));
        assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
        let (plan, head) = respond(GET10, response, PLAIN);
        assert_eq!((plan.encoder, plan.client_keep_alive), (Encoder::Raw, false));
        assert!(head.contains("Connection: close\r\n"), "{head}");
    }

    #[test]
    fn a_void_length_beside_chunked_is_dropped() {
        let response =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
        let (_, head) = respond(GET11, response, PLAIN);
        assert!(!head.contains("Content-Length"), "{head}");
    }

    #[test]
    fn an_early_answer_or_a_shutdown_closes_the_client() {
        let response = b"HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\n\r\n";
        let early = PlanFacts { request_complete: false, ..PLAIN };
        let (plan, head) = respond(GET11, response, early);
        assert!(!plan.client_keep_alive);
        assert!(head.contains("Connection: close\r\n"), "{head}");
        let stopping = PlanFacts { shutting_down: true, ..PLAIN };
        assert!(!respond(GET11, response, stopping).0.client_keep_alive);
    }

    #[test]
    fn an_upgrade_keeps_its_protocol() {
        let request =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        let response =
            b"HTTP/1.1 101 Switching\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let (plan, head) = respond(request, response, PLAIN);
        assert!(plan.upgrade);
        assert!(head.contains("Connection: upgrade\r\nUpgrade: websocket\r\n"), "{head}");
    }

    const OPTIONS: RelayOptions = RelayOptions {
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        bytes_max: 1 << 20,
        chunked: ChunkedLimits::DEFAULT,
        buffer_bytes: 64,
        body_buffer_bytes: 256,
        rate_min_bytes: 0,
        watch_sink: false,
    };

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

    /// What [`read_final_head`] did: its result, the buffer, the client.
    type Read = (Result<ResponseHead, ProxyError>, Vec<u8>, ScriptedStream);

    /// Reads the final head for `request_bytes` from a backend whose reads are `backend`.
    fn read_head(
        request_bytes: &[u8],
        (mut backend, mut client): (ScriptedStream, ScriptedStream),
        options: &RelayOptions,
    ) -> Read {
        let request = request(request_bytes);
        let mut lines = Vec::new();
        let (result, buf) = run(read_final_head(
            &request,
            (&mut backend, &mut client),
            (Vec::new(), &mut lines),
            &HeadLimits::DEFAULT,
            options,
        ));
        if let Ok(response) = &result {
            assert_eq!(usize::from(response.headers_count), lines.len());
        }
        (result, buf, client)
    }

    /// Reads the final head from a backend that sends `steps`, for a quiet client.
    fn read_steps(request_bytes: &[u8], steps: Vec<Step>) -> Read {
        let streams = (ScriptedStream::new(steps), ScriptedStream::new([]));
        read_head(request_bytes, streams, &OPTIONS)
    }

    /// `input` split once at every byte boundary, and byte by byte.
    fn splits(input: &[u8]) -> Vec<ScriptedStream> {
        let mut backends = vec![ScriptedStream::new([bytes(input)]).read_pieces(1)];
        for split in 0..=input.len() {
            let (first, second) = input.split_at(split);
            backends.push(ScriptedStream::new([bytes(first), bytes(second)]));
        }
        backends
    }

    #[test]
    fn a_final_head_split_across_reads_is_read_whole() {
        let input = [OK, b"hi"].concat();
        for backend in splits(&input) {
            let (result, buf, _) = read_head(GET11, (backend, ScriptedStream::new([])), &OPTIONS);
            let response = result.expect("a final head");
            assert_eq!((response.status, response.head_len as usize), (200, OK.len()));
            assert!(buf.starts_with(OK) && input.starts_with(&buf), "{buf:?}");
        }
    }

    #[test]
    fn interim_103_goes_to_an_11_client_only() {
        let input = [EARLY_HINTS, EARLY_HINTS, OK].concat();
        for backend in splits(&input) {
            let (result, buf, client) =
                read_head(GET11, (backend, ScriptedStream::new([])), &OPTIONS);
            assert_eq!(result.map(|response| response.status), Ok(200));
            assert_eq!(client.written, [EARLY_HINTS, EARLY_HINTS].concat());
            assert_eq!(client.writes, [EARLY_HINTS.len(); 2], "each as it came, whole");
            assert!(buf.starts_with(OK), "the interim heads are gone from the buffer");
        }
        let (result, buf, client) = read_steps(GET10, vec![bytes(&input)]);
        assert_eq!(result.map(|response| response.status), Ok(200));
        assert!(client.written.is_empty());
        assert_eq!(buf, OK);
    }

    #[test]
    fn interim_100_is_dropped() {
        let input = [CONTINUE, EARLY_HINTS, CONTINUE, OK].concat();
        let (result, buf, client) = read_steps(GET11, vec![bytes(&input)]);
        assert_eq!(result.map(|response| response.status), Ok(200));
        assert_eq!(client.written, EARLY_HINTS);
        assert_eq!(buf, OK);
    }

    #[test]
    fn a_client_gone_during_an_interim_head_is_client_io() {
        let backend = ScriptedStream::new([bytes(&[EARLY_HINTS, OK].concat())]);
        let fault = WriteFault::Error(ErrorKind::BrokenPipe);
        let client = ScriptedStream::new([]).fault_writes_after(0, fault);
        let (result, _, _) = read_head(GET11, (backend, client), &OPTIONS);
        assert_eq!(result, Err(ProxyError::ClientIo));
    }

    #[test]
    fn a_101_is_final_only_for_an_upgrade_request() {
        let switching =
            b"HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        let (result, _, client) = read_steps(GET11, vec![bytes(switching)]);
        assert_eq!(result, Err(ProxyError::UnexpectedUpgrade));
        assert!(client.written.is_empty());
        let upgrade =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        let (result, _, _) = read_steps(upgrade, vec![bytes(switching)]);
        assert_eq!(result.map(|response| response.status), Ok(101));
    }

    #[test]
    fn a_malformed_head_is_a_bad_response() {
        let (result, _, _) = read_steps(GET11, vec![bytes(b"HTTP/1.1 2x0 OK\r\n\r\n")]);
        assert!(matches!(result, Err(ProxyError::BadResponse(_))), "{result:?}");
        let (result, _, _) = read_steps(GET11, vec![bytes(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")]);
        assert!(matches!(result, Err(ProxyError::BadResponse(_))), "{result:?}");
    }

    #[test]
    fn a_backend_gone_before_its_head_is_upstream_closed() {
        let reset = Step::Error(ErrorKind::ConnectionReset);
        for steps in
            [vec![], vec![bytes(b"HTTP/1.1 200 O"), Step::Eof], vec![bytes(&OK[..10]), reset]]
        {
            let (result, _, client) = read_steps(GET11, steps.clone());
            assert_eq!(result, Err(ProxyError::UpstreamClosed), "{steps:?}");
            assert!(client.written.is_empty());
        }
        // Closed right after an interim head: that head went on, the final one never came.
        let (result, _, client) = read_steps(GET11, vec![bytes(EARLY_HINTS), Step::Eof]);
        assert_eq!(result, Err(ProxyError::UpstreamClosed));
        assert_eq!(client.written, EARLY_HINTS);
    }

    #[test]
    fn endless_interim_heads_are_a_bad_response() {
        let mut steps: Vec<Step> =
            (0..2000).map(|_| bytes(b"HTTP/1.1 103 Early\r\n\r\n")).collect();
        steps.push(bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        let backend = ScriptedStream::new(steps);
        let (result, _, _) = read_head(GET11, (backend, ScriptedStream::new([])), &OPTIONS);
        assert!(
            matches!(result, Err(ProxyError::BadResponse(ParseError::HeadTooLarge { .. }))),
            "{result:?}"
        );
    }

    #[test]
    fn a_silent_backend_is_upstream_timeout() {
        let options = RelayOptions { read_timeout: Duration::from_millis(30), ..OPTIONS };
        let started = std::time::Instant::now();
        let backend = ScriptedStream::new([bytes(b"HTTP/1.1 200"), Step::Hold]);
        let (result, _, _) = read_head(GET11, (backend, ScriptedStream::new([])), &options);
        assert_eq!(result, Err(ProxyError::UpstreamTimeout));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
