//! Response compression end to end (issue 22): every encoding round-trips at every size
//! and framing, curl decodes it, responses that must not change do not, ETags weaken and
//! still validate, server-sent events are not held back, and the coder cap holds.

use crate::support::admin::{metrics, sample, stats};
use crate::support::client::{Client, Framing, Response};
use crate::support::origin::{self, Origin, Reply};
use crate::support::process::Running;
use crate::support::{Driver, WAIT, on_both_drivers, start_proxy, to_origin};
use std::io::Read;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

on_both_drivers!(
    each_encoding_round_trips_at_every_size_and_framing,
    curl_compressed_decodes_each_encoding,
    bodies_that_must_not_change_go_as_they_came,
    etags_are_weakened_and_still_validate,
    server_sent_events_arrive_as_they_are_sent,
    past_the_coder_cap_responses_go_uncompressed,
    gzip_is_decoded_for_a_client_without_it,
    a_coder_error_ends_only_its_response,
    an_http_1_0_client_gets_a_close_delimited_coded_body,
    a_thousand_coded_streams_stay_in_bounded_memory,
    a_reused_coder_state_carries_nothing_into_the_next_response,
);

/// A route that compresses everything its client accepts, from the first byte.
fn config(driver: Driver, origin: std::net::SocketAddr, table: &str) -> String {
    to_origin(driver, origin, "").replace(
        "cluster = \"app\"\n\n[cluster",
        &format!("cluster = \"app\"\ncompression = {{ length_min_bytes = 0{table} }}\n\n[cluster"),
    )
}

/// JSON-like text that compresses as real API bodies do.
fn body(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 64);
    let mut index = 0u64;
    while bytes.len() < len {
        let line =
            format!("{{\"id\":{index},\"name\":\"item-{}\",\"ok\":true}},\n", index * 7919 % 1000);
        bytes.extend_from_slice(line.as_bytes());
        index += 1;
    }
    bytes.truncate(len);
    bytes
}

/// The origin's answer to `/LEN/chunked` or `/LEN/length`: LEN bytes of [`body`].
fn sized(request: &origin::Request) -> Reply {
    let mut parts = request.target().trim_start_matches('/').split('/');
    let len: usize = parts.next().and_then(|len| len.parse().ok()).unwrap_or(0);
    let payload = body(len);
    let json = [("Content-Type", "application/json")];
    if parts.next() == Some("chunked") {
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                        Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        for piece in payload.chunks(100_000) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        Reply::Send(out)
    } else {
        Reply::Send(origin::response(200, &json, &payload))
    }
}

fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(bytes).read_to_end(&mut decoded).map(drop),
        "br" => brotli::Decompressor::new(bytes, 4096).read_to_end(&mut decoded).map(drop),
        "zstd" => zstd::stream::decode_all(bytes).map(|all| decoded = all),
        other => panic!("unexpected coding {other}"),
    }
    .unwrap_or_else(|error| panic!("{coding} body does not decode: {error}"));
    decoded
}

fn get(client: &mut Client, path: &str, accept: &str) -> Response {
    client.send(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {accept}\r\n\r\n").as_bytes(),
    );
    client.response()
}

fn each_encoding_round_trips_at_every_size_and_framing(driver: Driver) {
    let origin = Origin::start(sized);
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.set_read_timeout(Duration::from_secs(60));
    for coding in ["gzip", "br", "zstd"] {
        for len in [1, 256, 64 * 1024, 16 << 20] {
            for framing in ["length", "chunked"] {
                let response = get(&mut client, &format!("/{len}/{framing}"), coding);
                let what = format!("{coding}, {len} B, {framing}");
                assert_eq!(response.status, 200, "{what}");
                assert_eq!(response.header("content-encoding"), Some(coding), "{what}");
                assert_eq!(response.header("vary"), Some("Accept-Encoding"), "{what}");
                assert_eq!(response.header("content-length"), None, "{what}");
                assert_eq!(response.framing, Framing::Chunked, "{what}");
                assert!(decode(coding, &response.body) == body(len), "{what}: decoded differs");
                if len >= 64 * 1024 {
                    assert!(response.body.len() < len / 4, "{what}: {} B", response.body.len());
                }
            }
        }
    }
    let text = metrics(proxy.admin_addr());
    let series = r#"ringway_compression_responses_total{route="listener0/0",coding="br"}"#;
    crate::support::eventually("the counters reach /metrics", || {
        sample(&metrics(proxy.admin_addr()), series) == Some(8.0)
    });
    assert!(text.contains("ringway_compression_skipped_total"), "{text}");
    let output_series =
        r#"ringway_compression_output_bytes_total{route="listener0/0",coding="gzip"}"#;
    let input_series =
        r#"ringway_compression_input_bytes_total{route="listener0/0",coding="gzip"}"#;
    let text = metrics(proxy.admin_addr());
    let (input, output) = (sample(&text, input_series), sample(&text, output_series));
    assert!(input.zip(output).is_some_and(|(input, output)| output < input / 4.0), "{text}");
}

fn curl_compressed_decodes_each_encoding(driver: Driver) {
    let origin = Origin::start(sized);
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    for coding in ["gzip", "br", "zstd"] {
        let url = format!("http://{}/70000/length", proxy.addr());
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10", "--compressed"])
            .args(["-H", &format!("Accept-Encoding: {coding}"), "-D", "/dev/stderr", &url])
            .output()
            .expect("run curl");
        let headers = String::from_utf8_lossy(&output.stderr).to_ascii_lowercase();
        assert!(output.status.success(), "curl: {headers}");
        assert!(headers.contains(&format!("content-encoding: {coding}")), "{headers}");
        assert!(output.stdout == body(70000), "{coding}: curl decoded something else");
    }
}

fn bodies_that_must_not_change_go_as_they_came(driver: Driver) {
    let origin = Origin::start(|request| {
        let text = [("Content-Type", "text/plain")];
        let payload = body(4096);
        Reply::Send(match request.target() {
            "/no-transform" => origin::response(
                200,
                &[("Content-Type", "text/plain"), ("Cache-Control", "public, no-transform")],
                &payload,
            ),
            "/encoded" => origin::response(
                200,
                &[("Content-Type", "text/plain"), ("Content-Encoding", "br")],
                b"not really brotli",
            ),
            "/image" => origin::response(200, &[("Content-Type", "image/png")], &payload),
            "/204" => b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n".to_vec(),
            "/206" => origin::response(
                206,
                &[("Content-Type", "text/plain"), ("Content-Range", "bytes 0-4095/9000")],
                &payload,
            ),
            _ => origin::response(200, &text, &payload),
        })
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    for (path, vary) in
        [("/no-transform", false), ("/encoded", false), ("/image", false), ("/206", false)]
    {
        let response = get(&mut client, path, "gzip, br, zstd");
        let coding = response.header("content-encoding");
        assert!(coding.is_none() || path == "/encoded", "{path}: {coding:?}");
        assert_eq!(response.header("vary").is_some(), vary, "{path}");
        assert!(response.header("content-length").is_some(), "{path} keeps its length");
    }
    let response = get(&mut client, "/204", "gzip");
    assert_eq!((response.status, response.header("content-encoding")), (204, None));
    client.send(b"HEAD /text HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    let head = client.response_to("HEAD");
    assert_eq!(head.header("content-encoding"), None, "HEAD is never coded");
    assert_eq!(head.header("content-length"), Some("4096"));
    let plain = get(&mut client, "/text", "identity");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"), "another client could differ");
    assert!(plain.body == body(4096));
    let unparsable = get(&mut client, "/text", "gzip;q=2");
    assert_eq!(unparsable.header("content-encoding"), None, "a bad header is identity");
    let refused = get(&mut client, "/text", "gzip;q=0, br;q=0.5");
    assert_eq!(refused.header("content-encoding"), Some("br"));
}

fn etags_are_weakened_and_still_validate(driver: Driver) {
    // This origin compares If-None-Match tags as strings, as many do.
    let origin = Origin::start(|request| {
        let tags = request.header("if-none-match").unwrap_or_default().to_owned();
        let etag = [("Content-Type", "text/html"), ("ETag", "\"v1\"")];
        if tags.split(',').any(|tag| tag.trim() == "\"v1\"") {
            Reply::Send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec())
        } else {
            Reply::Send(origin::response(200, &etag, &body(2000)))
        }
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    let first = get(&mut client, "/", "gzip");
    assert_eq!(first.header("content-encoding"), Some("gzip"));
    assert_eq!(first.header("etag"), Some("W/\"v1\""));
    let request = "GET / HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\
                   If-None-Match: W/\"v1\"\r\n\r\n";
    client.send(request.as_bytes());
    let again = client.response();
    assert_eq!(again.status, 304, "the weak tag still matches");
    assert_eq!(again.header("etag"), Some("W/\"v1\""), "the 304 names the variant held");
    let identity = get(&mut client, "/", "identity");
    assert_eq!(identity.header("etag"), Some("\"v1\""), "an uncoded body keeps its tag");
}

fn server_sent_events_arrive_as_they_are_sent(driver: Driver) {
    // The origin sends the next event only once the client has the last one: an event the
    // proxy held until more data came would never arrive. Each delay is also timed; the
    // median (one slow turn of a loaded machine aside) must be under 50 ms.
    let (sent, sent_at) = mpsc::channel::<Instant>();
    let received = std::sync::Arc::new(AtomicUsize::new(0));
    let got = received.clone();
    let origin = Origin::start_raw(move |conn| {
        if conn.head().is_none() {
            return;
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        let _ = conn.write(head.as_bytes());
        for index in 0..5 {
            crate::support::pause(Duration::from_millis(20));
            let event = format!("data: {{\"tick\":{index}}}\n\n");
            let chunk = format!("{:x}\r\n{event}\r\n", event.len());
            let _ = sent.send(Instant::now());
            let _ = conn.write(chunk.as_bytes());
            let asked = Instant::now();
            while got.load(Ordering::SeqCst) <= index {
                if asked.elapsed() > WAIT {
                    return;
                }
                crate::support::pause(Duration::from_millis(1));
            }
        }
        let _ = conn.write(b"0\r\n\r\n");
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    let head = client.response_head_only();
    assert_eq!(head.header("content-encoding"), Some("gzip"));
    let mut stream = StreamingGunzip::default();
    let mut delays = Vec::new();
    for index in 0..5 {
        let event = format!("data: {{\"tick\":{index}}}\n\n");
        while !stream.text.contains(&event) {
            let bytes = client.read_some(64 * 1024);
            assert!(!bytes.is_empty(), "the response ended before event {index}");
            stream.feed(&bytes);
        }
        delays.push(sent_at.recv_timeout(WAIT).expect("the origin sent it").elapsed());
        received.fetch_add(1, Ordering::SeqCst);
    }
    delays.sort();
    assert!(delays[2] < Duration::from_millis(50), "median delay over 50 ms: {delays:?}");
}

/// A chunked, gzip-coded body decoded as its bytes arrive.
#[derive(Default)]
struct StreamingGunzip {
    raw: Vec<u8>,
    inflate: Option<flate2::Decompress>,
    text: String,
}

impl StreamingGunzip {
    fn feed(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        let inflate = self.inflate.get_or_insert_with(|| flate2::Decompress::new_gzip(15));
        // Take every whole chunk: "SIZE\r\nDATA\r\n".
        while let Some(line_end) = self.raw.windows(2).position(|pair| pair == b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16).expect("a chunk size");
            let end = line_end + 2 + size + 2;
            if size == 0 || self.raw.len() < end {
                break;
            }
            let data = self.raw[line_end + 2..end - 2].to_vec();
            self.raw.drain(..end);
            let mut out = Vec::with_capacity(64 * 1024);
            inflate.decompress_vec(&data, &mut out, flate2::FlushDecompress::Sync).expect("gzip");
            self.text.push_str(&String::from_utf8_lossy(&out));
        }
    }
}

fn past_the_coder_cap_responses_go_uncompressed(driver: Driver) {
    let (release, released) = flume::bounded::<()>(1);
    let origin = Origin::start_raw(move |conn| {
        while let Some(head) = conn.head() {
            let held = head.start[1] == "/held";
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                        Transfer-Encoding: chunked\r\n\r\n";
            let _ = conn.write(head.as_bytes());
            let _ = conn.write(b"5\r\nhello\r\n");
            if held {
                let _ = released.recv_timeout(WAIT);
            }
            let _ = conn.write(b"0\r\n\r\n");
        }
    });
    let text = config(driver, origin.addr(), "")
        .replace("[io]\n", "[limits]\ncompression_encoders_max = 1\n\n[io]\n");
    let proxy = start_proxy(&text);
    let mut holder = Client::connect(proxy.addr());
    holder.send(b"GET /held HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    let held = holder.response_head_only();
    assert_eq!(held.header("content-encoding"), Some("gzip"), "the one coder");
    let mut other = Client::connect(proxy.addr());
    let busy = get(&mut other, "/other", "gzip");
    assert_eq!(busy.header("content-encoding"), None, "past the cap");
    assert_eq!(busy.header("vary"), Some("Accept-Encoding"));
    assert_eq!(busy.text(), "hello");
    release.send(()).expect("the origin waits");
    let (coded, _) = holder.chunked_with_trailers();
    assert_eq!(decode("gzip", &coded), b"hello");
    let again = get(&mut other, "/other", "gzip");
    assert_eq!(again.header("content-encoding"), Some("gzip"), "the place was given back");
    let series = r#"ringway_compression_skipped_total{route="listener0/0",reason="busy"}"#;
    crate::support::eventually("the busy skip is counted", || {
        sample(&metrics(proxy.admin_addr()), series) == Some(1.0)
    });
}

fn gzip_is_decoded_for_a_client_without_it(driver: Driver) {
    let payload = body(300_000);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gzip, &payload).expect("encode");
    let encoded = gzip.finish().expect("encode");
    let origin = Origin::start(move |_| {
        let headers = [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")];
        Reply::Send(origin::response(200, &headers, &encoded))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ", decompress_gzip = true"));
    let mut client = Client::connect(proxy.addr());
    let decoded = get(&mut client, "/", "identity");
    assert_eq!(decoded.header("content-encoding"), None);
    assert!(decoded.body == body(300_000), "decoded {} bytes", decoded.body.len());
    let passed = get(&mut client, "/", "gzip");
    assert_eq!(passed.header("content-encoding"), Some("gzip"), "a gzip client gets gzip");
    assert!(decode("gzip", &passed.body) == body(300_000));
}

/// Every byte `client` receives until the proxy closes the connection.
fn read_to_close(client: &mut Client) -> Vec<u8> {
    let mut wire = Vec::new();
    loop {
        match client.try_read_some(64 * 1024) {
            Ok(bytes) if bytes.is_empty() => return wire,
            Ok(bytes) => wire.extend_from_slice(&bytes),
            // A reset is a close too: the proxy may close with bytes unread.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return wire,
            Err(error) => panic!("the proxy neither finished nor closed: {error}"),
        }
    }
}

fn a_coder_error_ends_only_its_response(driver: Driver) {
    let payload = body(300_000);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gzip, &payload).expect("encode");
    let good = gzip.finish().expect("encode");
    // Valid gzip for its first 4,000 bytes, then bytes no deflate stream can hold: the
    // decoder has made part of the body when it fails.
    let mut corrupt = good.clone();
    corrupt[4000..4400].fill(0xff);
    let origin = Origin::start(move |request| {
        let headers = [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")];
        let bytes = if request.target() == "/corrupt" { &corrupt } else { &good };
        Reply::Send(origin::response(200, &headers, bytes))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ", decompress_gzip = true"));
    // A connection mid-response while the other one fails.
    let mut bystander = Client::connect(proxy.addr());
    bystander.send(b"GET /good HTTP/1.1\r\nHost: t\r\nAccept-Encoding: identity\r\n\r\n");
    let bystander_head = bystander.response_head_only();
    assert_eq!(bystander_head.framing, Framing::Chunked, "decoded bodies are re-framed");

    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /corrupt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: identity\r\n\r\n");
    let head = client.response_head_only();
    assert_eq!((head.status, head.header("content-encoding")), (200, None));
    assert_eq!(head.framing, Framing::Chunked);
    let wire = read_to_close(&mut client);
    assert!(!wire.ends_with(b"0\r\n\r\n"), "a cut body must not end like a whole one");
    let series = r#"ringway_compression_errors_total{route="listener0/0"}"#;
    crate::support::eventually("the coder error is counted", || {
        sample(&metrics(proxy.admin_addr()), series) == Some(1.0)
    });
    let (decoded, _) = bystander.chunked_with_trailers();
    assert!(decoded == payload, "the other connection's body is whole");
    let again = get(&mut bystander, "/good", "identity");
    assert!(again.body == payload, "and the connection stays usable");
    let mut fresh = Client::connect(proxy.addr());
    assert!(get(&mut fresh, "/good", "identity").body == payload, "new connections work");
    let text = metrics(proxy.admin_addr());
    assert_eq!(sample(&text, series), Some(1.0), "only the corrupt body failed: {text}");
    // The dashboard's view: the same counts in /stats, with the bytes for the ratio. Three
    // whole bodies and the cut one.
    let gunzipped = |stats: &serde_json::Value| {
        stats["routes"][0]["compression"]["coded"]["gunzip"]["responses"].as_u64()
    };
    crate::support::eventually("/stats has every decoded response", || {
        gunzipped(&stats(proxy.admin_addr())) == Some(4)
    });
    let stats = stats(proxy.admin_addr());
    let counts = &stats["routes"][0]["compression"];
    assert_eq!(counts["errors"], 1, "{counts}");
    let gunzip = &counts["coded"]["gunzip"];
    let (bytes_in, bytes_out) = (gunzip["bytes_in"].as_u64(), gunzip["bytes_out"].as_u64());
    assert!(bytes_in.zip(bytes_out).is_some_and(|(i, o)| o > 3 * 300_000 && i < o), "{counts}");
    assert_eq!(counts["skipped"]["not_accepted"], 0, "every response was decoded: {counts}");
}

fn an_http_1_0_client_gets_a_close_delimited_coded_body(driver: Driver) {
    let origin = Origin::start(sized);
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    for framing in ["length", "chunked"] {
        for coding in ["gzip", "br", "zstd"] {
            let mut client = Client::connect(proxy.addr());
            let request = format!(
                "GET /70000/{framing} HTTP/1.0\r\nHost: t\r\nAccept-Encoding: {coding}\r\n\r\n"
            );
            client.send(request.as_bytes());
            let response = client.response();
            let what = format!("{coding}, origin {framing}");
            assert_eq!(response.status, 200, "{what}");
            assert_eq!(response.header("content-encoding"), Some(coding), "{what}");
            assert_eq!(response.header("transfer-encoding"), None, "{what}: 1.0 has no chunked");
            assert_eq!(response.header("content-length"), None, "{what}");
            assert_eq!(response.framing, Framing::Close, "{what}");
            assert!(decode(coding, &response.body) == body(70000), "{what}: decoded differs");
        }
    }
}

/// Streams open at once in [`a_thousand_coded_streams_stay_in_bounded_memory`].
const STREAMS: usize = 1000;
/// `limits.compression_encoders_max` left at its default: the worker codes this many of
/// the streams and sends the rest as they came.
const CODERS_MAX: usize = 256;
/// The body part each stream gets before its origin holds: enough to fill gzip's window
/// and a good part of brotli's and zstd's.
const PART_BYTES: usize = 64 * 1024;

/// The most resident memory one coder may add, rounded up: its state, from its window and
/// tables (src/compress/encoder.rs), plus its output queue (16 KiB of room kept free, what
/// it made, allocator slack). Measured after 64 KiB of JSON, alone: gzip 343 KiB, brotli
/// 1,459 KiB, zstd 768 KiB; in the proxy with all 256 coders brotli, 2.4 MiB each.
/// - gzip (window 2^15): window 2 x 32 KiB + prev chain 64 KiB + head 2^16 x 2 B =
///   128 KiB + pending 64 KiB = 320 KiB, + queue = 512 KiB;
/// - brotli (quality 4, window 2^18): ring buffer 256 KiB + hash 2^17 x 4 B = 512 KiB +
///   commands and storage for a 2^16-byte block, about 1 MiB = 1.8 MiB, + queue and slack
///   = 3 MiB;
/// - zstd (level 3, window 2^19): window 512 KiB + a 128 KiB block + hash 2^17 x 4 B =
///   512 KiB + chain 2^16 x 4 B = 256 KiB + sequences 128 KiB = 1.5 MiB, + queue = 2 MiB.
fn coder_bytes_max(coding: &str) -> u64 {
    match coding {
        "gzip" => 512 << 10,
        "br" => 3 << 20,
        "zstd" => 2 << 20,
        other => panic!("unexpected coding {other}"),
    }
}

/// The most resident memory one open stream may add besides a coder, in this (debug)
/// build: the relay buffer of a body larger than `io.buffer_bytes` (128 KiB), the 16 KiB
/// head buffer, and the client and upstream connections' tasks and bookkeeping (several
/// KiB of future each, unoptimized): 192 KiB. Measured with no coder: about 153 KiB.
const STREAM_BYTES_MAX: u64 = 192 << 10;

/// Memory with 1,000 streams open, each holding a coder or not, grows by at most
/// `STREAMS x STREAM_BYTES_MAX + sum over coded streams of coder_bytes_max(coding)`: with
/// the default cap of 256 and this test's mix, about 187 MiB + 410 MiB = 600 MiB (measured:
/// 410 MiB with a fresh state per response; 413 to 419 MiB since states are reused, as a
/// live brotli state keeps the blocks it frees, up to 16 per type). Without the cap all
/// 1,000 would code (about 1.6 GiB); the count of coded heads rules that out first.
/// One stream of [`a_thousand_coded_streams_stay_in_bounded_memory`]'s origin: a chunked
/// JSON body whose first [`PART_BYTES`] go at once; the last KiB waits until `released`
/// disconnects (every waiting stream wakes at once), except for `/warm…` requests.
fn part_then_hold(conn: &mut origin::Conn, released: &flume::Receiver<()>) {
    let Some(head) = conn.head() else { return };
    let whole = body(PART_BYTES + 1024);
    let (part, rest) = whole.split_at(PART_BYTES);
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
    out.extend_from_slice(part);
    out.extend_from_slice(b"\r\n");
    if conn.write(&out).is_err() {
        return;
    }
    if !head.start[1].starts_with("/warm") {
        let _ = released.recv_timeout(4 * WAIT);
    }
    let mut end = format!("{:x}\r\n", rest.len()).into_bytes();
    end.extend_from_slice(rest);
    end.extend_from_slice(b"\r\n0\r\n\r\n");
    let _ = conn.write(&end);
}

fn a_thousand_coded_streams_stay_in_bounded_memory(driver: Driver) {
    let (release, released) = flume::bounded::<()>(0);
    let origin = Origin::start_raw(move |conn| part_then_hold(conn, &released));
    let running = Running::start(&config(driver, origin.addr(), ""));
    let accepts = ["gzip", "br", "zstd", "gzip, br;q=0.9", "zstd;q=0.5, gzip;q=0.2, br;q=0"];
    let request = |index: usize| {
        format!(
            "GET /{index} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {}\r\n\r\n",
            accepts[index % accepts.len()]
        )
    };
    // Warm up: the worker's buffers, coders of each kind and the allocator's first pages.
    // The warm-up leaves idle encoder states (at most `IDLE_MAX`, 8, src/compress/idle.rs)
    // in `before`; the streams below take those first, so the growth counts only states
    // built on top of them, each live one under the cap.
    for index in 0..30 {
        let mut client = Client::connect(running.addr);
        client.send(request(index).replacen("/", "/warm", 1).as_bytes());
        let response = client.response();
        assert_eq!(response.status, 200);
    }
    let before = running.rss_bytes();
    assert!(before > 0, "no VmRSS for the proxy");
    let mut clients: Vec<Client> = (0..STREAMS)
        .map(|index| {
            let mut client = Client::connect(running.addr);
            client.send(request(index).as_bytes());
            client
        })
        .collect();
    let mut codings: Vec<Option<String>> = Vec::with_capacity(STREAMS);
    for client in &mut clients {
        let head = client.response_head_only();
        assert_eq!(head.status, 200);
        codings.push(head.header("content-encoding").map(str::to_owned));
    }
    let coded = codings.iter().flatten().count();
    assert_eq!(coded, CODERS_MAX, "the worker codes up to its cap, no more");
    // Let every coder take its part and flush it (5 ms of upstream silence).
    crate::support::pause(Duration::from_millis(300));
    let open = running.rss_bytes();
    let coders: u64 = codings.iter().flatten().map(|coding| coder_bytes_max(coding)).sum();
    let bound = coders + STREAMS as u64 * STREAM_BYTES_MAX;
    let growth = open.saturating_sub(before);
    eprintln!(
        "{STREAMS} streams, {coded} coded: RSS {} KiB -> {} KiB (+{} KiB; bound {} KiB = \
         coders {} KiB + {STREAMS} x {} KiB)",
        before >> 10,
        open >> 10,
        growth >> 10,
        bound >> 10,
        coders >> 10,
        STREAM_BYTES_MAX >> 10
    );
    assert!(
        growth < bound,
        "RSS grew by {} KiB, over the bound of {} KiB",
        growth >> 10,
        bound >> 10
    );
    drop(release);
    let whole = body(PART_BYTES + 1024);
    for (client, coding) in clients.iter_mut().zip(&codings) {
        client.set_read_timeout(WAIT);
        let (bytes, _) = client.chunked_with_trailers();
        let decoded = match coding {
            Some(coding) => decode(coding, &bytes),
            None => bytes,
        };
        assert!(decoded == whole, "{coding:?}: the body differs after the hold");
    }
}

/// [`body`] upper-cased and reversed: a reused state that kept anything of the one would
/// show it in the other's output.
fn other_body(len: usize) -> Vec<u8> {
    body(len).into_iter().rev().map(|byte| byte.to_ascii_uppercase()).collect()
}

/// One worker codes responses in a row, so each takes the state the one before gave back
/// (src/compress/idle.rs): different bodies each decode to exactly their own, also after
/// a response cut mid-body (its backend closed early) handed back a state mid-stream.
fn a_reused_coder_state_carries_nothing_into_the_next_response(driver: Driver) {
    const LEN: usize = 100_000;
    let origin = Origin::start(|request| {
        let json = [("Content-Type", "application/json")];
        match request.target() {
            "/a" => Reply::Send(origin::response(200, &json, &body(LEN))),
            "/b" => Reply::Send(origin::response(200, &json, &other_body(LEN))),
            _ => {
                // Promises LEN bytes, sends 60%, then closes.
                let mut cut = origin::response(200, &json, &body(LEN));
                cut.truncate(cut.len() - LEN * 2 / 5);
                Reply::SendAndClose(cut)
            }
        }
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    for coding in ["gzip", "br", "zstd"] {
        let mut client = Client::connect(proxy.addr());
        for (path, expected) in [("/a", body(LEN)), ("/b", other_body(LEN)), ("/a", body(LEN))] {
            let response = get(&mut client, path, coding);
            assert_eq!(response.header("content-encoding"), Some(coding), "{coding} {path}");
            assert!(decode(coding, &response.body) == expected, "{coding} {path}: differs");
        }
        let mut cut = Client::connect(proxy.addr());
        cut.send(
            format!("GET /cut HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {coding}\r\n\r\n").as_bytes(),
        );
        assert_eq!(cut.response_head_only().header("content-encoding"), Some(coding));
        let wire = read_to_close(&mut cut);
        assert!(!wire.ends_with(b"0\r\n\r\n"), "{coding}: a cut body must not end whole");
        for (path, expected) in [("/b", other_body(LEN)), ("/a", body(LEN))] {
            let response = get(&mut client, path, coding);
            assert!(decode(coding, &response.body) == expected, "{coding} {path} after the cut");
        }
    }
}
