//! The exchange in phases, end to end: trailers travel both ways, an origin that streams
//! while it reads gets its whole upload while its answer comes back (full duplex), and an
//! early answer mid-upload reaches the client at once.

use crate::support::client::Client;
use crate::support::origin::Origin;
use crate::support::{Driver, on_both_drivers, start_proxy, to_origin};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

on_both_drivers!(
    trailers_travel_both_ways,
    an_origin_that_streams_while_it_reads_gets_64_mib_both_ways,
    an_early_413_during_a_64_mib_upload_arrives_within_a_second,
    early_hints_during_an_upload_do_not_stop_it,
);

fn trailers_travel_both_ways(driver: Driver) {
    let origin = Origin::start_raw(|conn| {
        while let Some(head) = conn.head() {
            let (body, trailers) = if head.is_chunked() {
                conn.reader.chunked_with_trailers().expect("a chunked body")
            } else {
                (Vec::new(), Vec::new())
            };
            let echoed = format!("{} {}", String::from_utf8_lossy(&body), trailers.join("|"));
            let response = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n\
                 {:x}\r\n{echoed}\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok {}\r\n\r\n",
                echoed.len(),
                head.start[1],
            );
            if conn.write(response.as_bytes()).is_err() {
                return;
            }
        }
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"POST /rpc HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n\
          5\r\nhello\r\n0\r\nx-checksum: 42\r\nx-more: yes\r\n\r\n",
    );
    let head = client.response_head_only();
    assert_eq!(head.status, 200);
    let (body, trailers) = client.chunked_with_trailers();
    assert_eq!(String::from_utf8_lossy(&body), "hello x-checksum: 42|x-more: yes");
    assert_eq!(trailers, ["grpc-status: 0", "grpc-message: ok /rpc"]);
    // The connection is in step after the trailers.
    assert_eq!(client.get("/after").status, 200);
}

/// An origin that sends its head at once and then echoes each piece of the body as it
/// reads it: it never reads more than it has echoed, so a proxy that sends the whole body
/// before reading the response deadlocks once socket buffers fill.
fn echo_origin() -> Origin {
    Origin::start_raw(|conn| {
        let Some(head) = conn.head() else { return };
        let mut left = head.content_length().unwrap_or(0);
        let _ = conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        while left > 0 {
            let Ok(piece) = conn.reader.some(left.min(256 * 1024)) else { return };
            if piece.is_empty() {
                return;
            }
            left -= piece.len();
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(&piece);
            chunk.extend_from_slice(b"\r\n");
            if conn.write(&chunk).is_err() {
                return;
            }
        }
        let _ = conn.write(b"0\r\n\r\n");
    })
}

fn an_origin_that_streams_while_it_reads_gets_64_mib_both_ways(driver: Driver) {
    const BODY_BYTES: usize = 64 << 20;
    let origin = echo_origin();
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.set_read_timeout(Duration::from_secs(60));
    let mut writer = client.writer();
    let sender = std::thread::spawn(move || {
        let head =
            format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {BODY_BYTES}\r\n\r\n");
        writer.write_all(head.as_bytes()).expect("send the head");
        let block: Vec<u8> = (0..64 * 1024).map(pattern).collect();
        for _ in 0..BODY_BYTES / block.len() {
            writer.write_all(&block).expect("send the body");
        }
    });
    let head = client.response_head_only();
    assert_eq!(head.status, 200);
    let (echoed, _) = client.chunked_with_trailers();
    sender.join().expect("the sender");
    assert_eq!(echoed.len(), BODY_BYTES);
    let intact = echoed.iter().enumerate().all(|(index, byte)| *byte == pattern(index % 65536));
    assert!(intact, "the echo differs from the upload");
}

/// The byte at `index` of the uploaded block.
fn pattern(index: usize) -> u8 {
    u8::try_from(index % 251).expect("below 251")
}

fn an_early_413_during_a_64_mib_upload_arrives_within_a_second(driver: Driver) {
    // Answers 413 after the head and reads on (as a lingering server does).
    let origin = Origin::start_raw(|conn| {
        if conn.head().is_some() {
            let _ = conn.write(b"HTTP/1.1 413 Too Big\r\nContent-Length: 7\r\n\r\ntoo big");
            conn.drain();
        }
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut stream = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let head = b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 67108864\r\n\r\n";
        let _ = writer.write_all(head);
        let block = vec![b'u'; 64 * 1024];
        for _ in 0..1024 {
            if writer.write_all(&block).is_err() {
                break;
            }
        }
    });
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).expect("an answer");
    let elapsed = started.elapsed();
    assert_eq!(&answer, b"HTTP/1.1 413");
    assert!(elapsed < Duration::from_secs(1), "the answer took {elapsed:?}");
    drop(stream);
    let _ = sender.join();
}

fn early_hints_during_an_upload_do_not_stop_it(driver: Driver) {
    // Sends 103 Early Hints as soon as the head arrives, then reads the whole upload and
    // answers with its length: an interim head is no answer, the upload must go on.
    let origin = Origin::start_raw(|conn| {
        let Some(head) = conn.head() else { return };
        let _ = conn.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
        let Ok(body) = conn.reader.exact(head.content_length().unwrap_or(0)) else { return };
        let answer = body.len().to_string();
        let _ =
            conn.write(crate::support::origin::response(200, &[], answer.as_bytes()).as_slice());
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    let mut writer = client.writer();
    let sender = std::thread::spawn(move || {
        let length = 4 << 20;
        let head = format!("POST /up HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n");
        writer.write_all(head.as_bytes()).expect("send the head");
        writer.write_all(&vec![b'b'; length]).expect("send the body");
    });
    let hints = client.response_head_only();
    assert_eq!(hints.status, 103);
    let answer = client.response();
    assert_eq!((answer.status, answer.text()), (200, (4 << 20).to_string()));
    sender.join().expect("the sender");
}
