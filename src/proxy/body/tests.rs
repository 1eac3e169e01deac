//! Component tests of [`relay`] over scripted streams: every framing split at every byte
//! boundary, every way a relay stops early, and a relay stopped by an early answer then
//! resumed with nothing lost or sent twice.

use super::*;
use crate::http::ChunkedDecoder;
use crate::proxy::scripted::{Answer, ScriptedStream, Step, WriteFault, bytes, run};
use std::io::ErrorKind;
use std::time::Instant;

const OPTIONS: RelayOptions = RelayOptions {
    read_timeout: Duration::from_secs(5),
    write_timeout: Duration::from_secs(5),
    bytes_max: 1 << 20,
    chunked: ChunkedLimits::DEFAULT,
    buffer_bytes: 16,
    body_buffer_bytes: 64,
    rate_min_bytes: 0,
    watch_sink: false,
};

/// Bytes of a pipelined request that follows each body.
const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";

const DATA: &[u8] = b"hello, world";
/// [`DATA`] chunked, with extensions (one quoted) and two trailers.
const CHUNKED: &[u8] = b"5;name=value\r\nhello\r\n7 ; q=\"a;b\"\r\n, world\r\n0;last\r\n\
    Expires: never\r\nX-Sum: 1\r\n\r\n";
const TRAILERS: &[u8] = b"Expires: never\r\nX-Sum: 1\r\n";

/// What one relay did.
#[derive(Debug)]
struct Outcome {
    result: Result<u64, RelayError>,
    /// The buffer afterwards: the bytes read past the body.
    left: Vec<u8>,
}

/// Runs one relay of `body`, whose buffer is `out`.
fn relay_once(
    (source, sink): (&mut ScriptedStream, &mut ScriptedStream),
    out: OutVec,
    body: &mut Body,
    options: &RelayOptions,
) -> Outcome {
    let (result, out) = run(relay(source, sink, out, body, options));
    assert!(out.is_empty(), "parts left queued: {out:?}");
    Outcome { result, left: out.buf }
}

/// Relays a body of `framing` whose bytes, `buffered` then `steps`, come in reads of at
/// most `piece` bytes. Returns the relay and the sink.
fn relay_script(
    (buffered, steps): (&[u8], Vec<Step>),
    piece: usize,
    (framing, encoder): (BodyFraming, Encoder),
    options: &RelayOptions,
) -> (Outcome, ScriptedStream, ScriptedStream) {
    let mut source = ScriptedStream::new(steps).read_pieces(piece);
    let mut sink = ScriptedStream::new([]);
    let decoder = Decoder::for_framing(framing).expect("a body");
    let mut body = Body::new(0, decoder, encoder);
    let relayed =
        relay_once((&mut source, &mut sink), OutVec::new(buffered.to_vec()), &mut body, options);
    if let Ok(received) = relayed.result {
        assert_eq!(received, body.received);
    }
    (relayed, source, sink)
}

/// The bytes of the script's steps not read yet.
fn unread(source: &ScriptedStream) -> Vec<u8> {
    let mut unread = Vec::new();
    for step in source.reads_left() {
        if let Step::Bytes(bytes) = step {
            unread.extend_from_slice(bytes);
        }
    }
    unread
}

/// Asserts that the bytes after the body were neither lost nor duplicated: what the relay
/// left in the buffer, then what it did not read, is [`NEXT`].
fn assert_next_kept(relayed: &Outcome, source: &ScriptedStream) {
    assert_eq!([relayed.left.as_slice(), &unread(source)].concat(), NEXT, "{relayed:?}");
}

/// Decodes a chunked `message` whole: its data, its trailers.
fn dechunk(message: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut buf = message.to_vec();
    let decoded = ChunkedDecoder::default().decode_in_place(&mut buf, &ChunkedLimits::DEFAULT);
    let decoded = decoded.expect("valid chunked framing");
    assert!(decoded.done && decoded.consumed == message.len(), "{decoded:?}");
    let trailers = buf[decoded.data_len..decoded.data_len + decoded.trailer_len].to_vec();
    buf.truncate(decoded.data_len);
    (buf, trailers)
}

/// Every way to deliver `input`: split once at each byte boundary (the first part buffered,
/// or both read), and byte by byte.
fn deliveries(input: &[u8]) -> Vec<(Vec<u8>, Vec<Step>, usize)> {
    let mut deliveries = vec![(Vec::new(), vec![bytes(input)], 1)];
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        deliveries.push((first.to_vec(), vec![bytes(second)], usize::MAX));
        deliveries.push((Vec::new(), vec![bytes(first), Step::Yield, bytes(second)], usize::MAX));
    }
    deliveries
}

#[test]
fn length_bodies_split_at_every_byte_boundary() {
    let input = [DATA, NEXT].concat();
    let framing = (BodyFraming::Length(DATA.len() as u64), Encoder::Raw);
    for (buffered, steps, piece) in deliveries(&input) {
        let (relayed, source, sink) = relay_script((&buffered, steps), piece, framing, &OPTIONS);
        assert_eq!(relayed.result, Ok(DATA.len() as u64), "split after {}", buffered.len());
        assert_eq!(sink.written, DATA);
        assert_next_kept(&relayed, &source);
    }
}

#[test]
fn chunked_goes_on_chunked_with_its_trailers_after_the_last_chunk() {
    let input = [CHUNKED, NEXT].concat();
    let framing = (BodyFraming::Chunked, Encoder::Chunked);
    for (buffered, steps, piece) in deliveries(&input) {
        let (relayed, source, sink) = relay_script((&buffered, steps), piece, framing, &OPTIONS);
        assert_eq!(relayed.result, Ok(DATA.len() as u64), "split after {}", buffered.len());
        assert_eq!(dechunk(&sink.written), (DATA.to_vec(), TRAILERS.to_vec()));
        // Canonical framing: extensions dropped, trailers after one last chunk.
        assert!(!sink.written.contains(&b';'));
        assert!(sink.written.ends_with(&[b"0\r\n", TRAILERS, b"\r\n"].concat()));
        assert_next_kept(&relayed, &source);
    }
    // Buffered whole, the two chunks are decoded side by side and go on as one.
    let (_, _, sink) = relay_script((&input, vec![]), usize::MAX, framing, &OPTIONS);
    let expected = [b"c\r\nhello, world\r\n0\r\n", TRAILERS, b"\r\n"].concat();
    assert_eq!(sink.written, expected);
}

#[test]
fn chunked_without_trailers_ends_with_the_last_chunk() {
    let input = [b"3\r\nabc\r\n0\r\n\r\n", NEXT].concat();
    let framing = (BodyFraming::Chunked, Encoder::Chunked);
    for (buffered, steps, piece) in deliveries(&input) {
        let (relayed, source, sink) = relay_script((&buffered, steps), piece, framing, &OPTIONS);
        assert_eq!(relayed.result, Ok(3));
        assert_eq!(dechunk(&sink.written), (b"abc".to_vec(), Vec::new()));
        assert!(sink.written.ends_with(b"\r\n0\r\n\r\n"));
        assert_next_kept(&relayed, &source);
    }
}

#[test]
fn chunked_goes_on_raw_without_its_trailers() {
    let input = [CHUNKED, NEXT].concat();
    let framing = (BodyFraming::Chunked, Encoder::Raw);
    for (buffered, steps, piece) in deliveries(&input) {
        let (relayed, source, sink) = relay_script((&buffered, steps), piece, framing, &OPTIONS);
        assert_eq!(relayed.result, Ok(DATA.len() as u64), "split after {}", buffered.len());
        assert_eq!(sink.written, DATA);
        assert_next_kept(&relayed, &source);
    }
}

#[test]
fn until_close_is_rechunked_and_ends_at_end_of_file() {
    let steps = || vec![bytes(b"abc"), Step::Yield, bytes(b"de"), Step::Eof];
    let chunked = (BodyFraming::CloseDelimited, Encoder::Chunked);
    let (relayed, _, sink) = relay_script((b"xy", steps()), usize::MAX, chunked, &OPTIONS);
    assert_eq!(relayed.result, Ok(7));
    assert_eq!(sink.written, b"2\r\nxy\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    let raw = (BodyFraming::CloseDelimited, Encoder::Raw);
    let (relayed, _, sink) = relay_script((b"xy", steps()), 1, raw, &OPTIONS);
    assert_eq!(relayed.result, Ok(7));
    assert_eq!(sink.written, b"xyabcde");
}

#[test]
fn a_pipelined_request_after_the_body_is_left_at_the_front() {
    let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut out = OutVec::new([head, CHUNKED, NEXT].concat());
    out.push_buf(0, head.len());
    let mut body = Body::new(head.len(), Decoder::Chunked(ChunkedDecoder::default()), Encoder::Raw);
    // End of file: the source is not read at all.
    let (mut source, mut sink) = (ScriptedStream::new([Step::Eof]), ScriptedStream::new([]));
    let relayed = relay_once((&mut source, &mut sink), out, &mut body, &OPTIONS);
    assert_eq!(relayed.result, Ok(DATA.len() as u64));
    assert_eq!(relayed.left, NEXT);
    assert_eq!(sink.written, [&head[..], DATA].concat());
    assert_eq!(sink.writes.len(), 1, "one write for the head and the whole body");
}

#[test]
fn the_head_goes_out_in_the_same_write_as_the_first_body_bytes() {
    let head = b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n";
    let mut out = OutVec::new([&head[..], b"hel"].concat());
    out.push_buf(0, head.len());
    let mut body = Body::new(head.len(), Decoder::Length { remaining: 12 }, Encoder::Raw);
    let mut source = ScriptedStream::new([bytes(b"lo, "), bytes(b"world")]);
    let mut sink = ScriptedStream::new([]);
    let relayed = relay_once((&mut source, &mut sink), out, &mut body, &OPTIONS);
    assert_eq!(relayed.result, Ok(12));
    assert!(relayed.left.is_empty());
    assert_eq!(sink.written, [&head[..], DATA].concat());
    assert_eq!(sink.writes, [head.len() + 3, 4, 5]);
}

#[test]
fn short_writes_lose_nothing() {
    let mut source = ScriptedStream::new([bytes(&CHUNKED[..20]), bytes(&CHUNKED[20..])]);
    let mut sink = ScriptedStream::new([]).write_pieces(1);
    let mut body = Body::new(0, Decoder::Chunked(ChunkedDecoder::default()), Encoder::Chunked);
    let relayed = relay_once((&mut source, &mut sink), OutVec::default(), &mut body, &OPTIONS);
    assert_eq!(relayed.result, Ok(DATA.len() as u64));
    assert_eq!(dechunk(&sink.written), (DATA.to_vec(), TRAILERS.to_vec()));
    assert!(sink.writes.iter().all(|&len| len == 1));
}

#[test]
fn a_large_body_gets_the_large_buffer_and_gives_it_back() {
    let data: Vec<u8> = (0..1000u16).map(|index| (index % 251) as u8).collect();
    let framing = (BodyFraming::Length(1000), Encoder::Raw);
    let (relayed, _, sink) = relay_script((&[], vec![bytes(&data)]), usize::MAX, framing, &OPTIONS);
    assert_eq!(relayed.result, Ok(1000));
    assert_eq!(sink.written, data);
    assert!(sink.writes.iter().any(|&len| len > OPTIONS.buffer_bytes), "{:?}", sink.writes);
    assert!(relayed.left.capacity() <= 2 * OPTIONS.buffer_bytes, "{}", relayed.left.capacity());
}

#[test]
fn source_failures_stop_the_relay() {
    let length = (BodyFraming::Length(12), Encoder::Raw);
    let chunked = (BodyFraming::Chunked, Encoder::Chunked);
    let close = (BodyFraming::CloseDelimited, Encoder::Chunked);
    let reset = Step::Error(ErrorKind::ConnectionReset);
    let cases = [
        (vec![bytes(b"hello"), reset.clone()], length, RelayError::SourceIo, &b"hello"[..]),
        (vec![bytes(b"hello"), Step::Eof], length, RelayError::SourceClosed, b"hello"),
        (vec![Step::Eof], length, RelayError::SourceClosed, b""),
        (vec![bytes(b"5\r\nhel"), Step::Eof], chunked, RelayError::SourceClosed, b"3\r\nhel\r\n"),
        (vec![bytes(b"5\r\nhello\r\n0\r\n")], chunked, RelayError::SourceClosed, b"5\r\nhello\r\n"),
        (vec![bytes(b"ab"), reset], close, RelayError::SourceIo, b"2\r\nab\r\n"),
        (
            vec![bytes(b"5\r\nhello\r\nz\r\n")],
            chunked,
            RelayError::BadChunk(ChunkedError::BadChunkSize),
            b"",
        ),
    ];
    for (steps, framing, error, sent) in cases {
        let (relayed, _, sink) = relay_script((&[], steps), usize::MAX, framing, &OPTIONS);
        assert_eq!(relayed.result, Err(error));
        assert_eq!(sink.written, sent, "{error:?}");
    }
}

#[test]
fn sink_failures_stop_the_relay() {
    let framing = (BodyFraming::Length(12), Encoder::Raw);
    let broken = WriteFault::Error(ErrorKind::BrokenPipe);
    let options = RelayOptions { write_timeout: Duration::from_millis(30), ..OPTIONS };
    for (fault, error) in
        [(broken, RelayError::SinkIo), (WriteFault::Hold, RelayError::SinkTimeout)]
    {
        let mut source = ScriptedStream::new([bytes(b"hello"), bytes(b", world")]);
        let mut sink = ScriptedStream::new([]).write_pieces(3).fault_writes_after(4, fault);
        let mut body = Body::new(0, Decoder::for_framing(framing.0).expect("a body"), framing.1);
        let (result, _) =
            run(relay(&mut source, &mut sink, OutVec::default(), &mut body, &options));
        assert_eq!(result, Err(error));
        assert_eq!((sink.written.as_slice(), sink.writes.as_slice()), (&b"hell"[..], &[3, 1][..]));
    }
}

#[test]
fn a_silent_source_times_out() {
    let options = RelayOptions { read_timeout: Duration::from_millis(30), ..OPTIONS };
    let framing = (BodyFraming::Length(12), Encoder::Raw);
    let started = Instant::now();
    let steps = vec![bytes(b"he"), Step::Hold];
    let (relayed, _, sink) = relay_script((&[], steps), usize::MAX, framing, &options);
    assert_eq!(relayed.result, Err(RelayError::SourceTimeout));
    assert_eq!(sink.written, b"he");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn bodies_over_bytes_max_are_too_large() {
    let options = RelayOptions { bytes_max: 5, ..OPTIONS };
    let length = |len| (BodyFraming::Length(len), Encoder::Raw);
    let chunked = (BodyFraming::Chunked, Encoder::Chunked);
    let close = (BodyFraming::CloseDelimited, Encoder::Raw);
    let cases = [
        // A length over the limit is refused before anything is read or sent.
        (length(6), vec![bytes(b"hello!")], usize::MAX, Err(RelayError::TooLarge), &b""[..]),
        (length(5), vec![bytes(b"hello")], usize::MAX, Ok(5), b"hello"),
        // A chunk announced too large is refused before its data: no wait for it.
        (chunked, vec![bytes(b"a\r\n"), Step::Hold], usize::MAX, Err(RelayError::TooLarge), b""),
        (chunked, vec![bytes(b"10\r\n"), Step::Hold], 1, Err(RelayError::TooLarge), b""),
        (
            chunked,
            vec![bytes(b"3\r\nabc\r\n"), bytes(b"3\r\n"), Step::Hold],
            usize::MAX,
            Err(RelayError::TooLarge),
            b"3\r\nabc\r\n",
        ),
        (chunked, vec![bytes(b"5\r\nhello\r\n0\r\n\r\n")], 1, Ok(5), b""),
        (close, vec![bytes(b"abc"), bytes(b"def")], usize::MAX, Err(RelayError::TooLarge), b"abc"),
    ];
    for (index, (framing, steps, piece, result, sent)) in cases.into_iter().enumerate() {
        let (relayed, _, sink) = relay_script((&[], steps), piece, framing, &options);
        assert_eq!(relayed.result, result, "case {index}");
        if result.is_err() {
            assert_eq!(sink.written, sent, "case {index}");
        }
    }
}

#[test]
fn a_body_slower_than_rate_min_bytes_times_out() {
    let options = RelayOptions { rate_min_bytes: 1000, ..OPTIONS };
    let framing = (BodyFraming::Length(12), Encoder::Raw);
    // Within the one-second grace, any rate will do.
    let steps = vec![bytes(b"hello"), Step::Sleep(Duration::from_millis(50)), bytes(b", world")];
    let (relayed, _, _) = relay_script((&[], steps), 1, framing, &options);
    assert_eq!(relayed.result, Ok(12));
    // After it, 12 bytes in 1.1 s are short of 1000 a second.
    let framing = (BodyFraming::Length(20), Encoder::Raw);
    let steps = vec![
        bytes(b"hello"),
        Step::Sleep(Duration::from_millis(1100)),
        bytes(b", world"),
        Step::Hold,
    ];
    let (relayed, _, sink) = relay_script((&[], steps), usize::MAX, framing, &options);
    assert_eq!(relayed.result, Err(RelayError::SourceTimeout));
    assert_eq!(sink.written, b"hello, world", "what was read went on before the check");
}

#[test]
fn an_early_answer_stops_the_relay_and_the_same_body_resumes() {
    let options = RelayOptions { watch_sink: true, ..OPTIONS };
    let out = OutVec::new(b"hello".to_vec());
    let mut body = Body::new(0, Decoder::Length { remaining: 12 }, Encoder::Raw);
    let steps = [bytes(b", w"), Step::Hold, bytes(b"orld"), bytes(NEXT)];
    let mut source = ScriptedStream::new(steps);
    // The backend answers while the client holds the rest of its body.
    let answer = Answer::At(Instant::now() + Duration::from_millis(30));
    let mut sink = ScriptedStream::new([]).answers(answer);
    let relayed = relay_once((&mut source, &mut sink), out, &mut body, &options);
    assert_eq!(relayed.result, Err(RelayError::SinkAnswered));
    assert_eq!((body.received, sink.written.as_slice()), (8, &b"hello, w"[..]));
    assert!(relayed.left.is_empty());
    source.release();
    sink.answer = Answer::Never;
    let relayed =
        relay_once((&mut source, &mut sink), OutVec::new(relayed.left), &mut body, &options);
    assert_eq!(relayed.result, Ok(12));
    assert_eq!(sink.written, DATA);
    assert_next_kept(&relayed, &source);
}

#[test]
fn an_early_answer_mid_chunked_body_resumes_with_its_framing_whole() {
    let options = RelayOptions { watch_sink: true, ..OPTIONS };
    let first_chunk = b"5;name=value\r\nhello\r\n".len();
    let input = [CHUNKED, NEXT].concat();
    let out = OutVec::new(input[..first_chunk].to_vec());
    let mut body = Body::new(0, Decoder::Chunked(ChunkedDecoder::default()), Encoder::Chunked);
    let mut source = ScriptedStream::new([bytes(&input[first_chunk..])]);
    // Answered once anything went out: the first relay sends only what was buffered.
    let mut sink = ScriptedStream::new([]).answers(Answer::AfterWritten(1));
    let relayed = relay_once((&mut source, &mut sink), out, &mut body, &options);
    assert_eq!(relayed.result, Err(RelayError::SinkAnswered));
    assert_eq!(sink.written, b"5\r\nhello\r\n");
    sink.answer = Answer::Never;
    let relayed =
        relay_once((&mut source, &mut sink), OutVec::new(relayed.left), &mut body, &options);
    assert_eq!(relayed.result, Ok(DATA.len() as u64));
    let expected = [b"5\r\nhello\r\n7\r\n, world\r\n0\r\n", TRAILERS, b"\r\n"].concat();
    assert_eq!(sink.written, expected);
    assert_next_kept(&relayed, &source);
}
