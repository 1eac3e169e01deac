//! HTTP/2 flood defenses, one case each, with a raw frame writer (no client library would
//! misbehave on purpose): rapid reset, CONTINUATION, PING, SETTINGS and empty DATA floods
//! get GOAWAY with ENHANCE_YOUR_CALM and a close, counted by reason, while another
//! connection goes on; a stream whose window stays shut is reset after the client write
//! timeout.

use crate::support::origin::{self, Origin};
use crate::support::{Driver, admin, eventually, on_both_drivers, start_proxy, to_origin};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

on_both_drivers!(each_flood_gets_goaway_and_spares_other_connections, a_shut_window_is_reaped);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame: its header, then `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small payload").to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A HEADERS block for `GET http://app.test/`, HPACK without indexing or Huffman, with
/// `flags` (END_HEADERS 0x4, END_STREAM 0x1).
fn get_headers(stream: u32, flags: u8) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84]; // :method GET, :scheme http, :path /
    block.push(0x41); // :authority, literal value
    block.push(8);
    block.extend_from_slice(b"app.test");
    frame(0x1, flags, stream, &block)
}

/// A raw HTTP/2 connection: preface and an empty SETTINGS sent.
fn raw(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect to the proxy");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    stream.write_all(PREFACE).expect("send the preface");
    stream.write_all(&frame(0x4, 0, 0, &[])).expect("send SETTINGS");
    stream
}

/// Reads frames until a GOAWAY and then the end of the connection; returns its error
/// code. The writes that flood may fail once the proxy closed: that is expected.
fn goaway_code(stream: &mut TcpStream) -> u32 {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
        }
    }
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        if bytes[at + 3] == 0x7 && at + 9 + 8 <= bytes.len() {
            let code = &bytes[at + 9 + 4..at + 9 + 8];
            return u32::from_be_bytes(code.try_into().expect("four bytes"));
        }
        at += 9 + len;
    }
    panic!("no GOAWAY in {} bytes before the close", bytes.len());
}

/// Sends `frames` (errors ignored: the proxy may close first) and returns the GOAWAY code.
fn flood(addr: SocketAddr, frames: &[u8]) -> u32 {
    let mut stream = raw(addr);
    let _ = stream.write_all(frames);
    goaway_code(&mut stream)
}

fn each_flood_gets_goaway_and_spares_other_connections(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("fine\n"));
    let extra = "\n[http2]\nresets_per_second_max = 20\ncontrol_frames_per_second_max = 20\n\
                 empty_data_frames_per_second_max = 20\ncontinuation_frames_max = 4\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), extra));
    // A healthy connection, open through every flood.
    let mut healthy = raw(proxy.addr());
    let ping = frame(0x6, 0, 0, &[0; 8]);
    let settings = frame(0x4, 0, 0, &[]);
    let resets: Vec<u8> = (0..50)
        .flat_map(|index| {
            let stream = 1 + 2 * index;
            [get_headers(stream, 0x5), frame(0x3, 0, stream, &8u32.to_be_bytes())].concat()
        })
        .collect();
    let mut continuation = get_headers(1, 0x1);
    continuation.extend(frame(0x9, 0, 1, b"").repeat(10));
    let mut empty_data = get_headers(1, 0x4);
    empty_data.extend(frame(0x0, 0, 1, b"").repeat(50));
    let cases = [
        ("http2_rapid_reset", resets),
        ("http2_continuation_flood", continuation),
        ("http2_control_flood", ping.repeat(50)),
        ("http2_control_flood", settings.repeat(50)),
        ("http2_empty_data_flood", empty_data),
    ];
    for (index, (reason, frames)) in cases.iter().enumerate() {
        assert_eq!(flood(proxy.addr(), frames), ENHANCE_YOUR_CALM, "{reason}");
        // The healthy connection still gets its answer.
        let stream = 1 + 2 * u32::try_from(index).expect("few cases");
        healthy.write_all(&get_headers(stream, 0x5)).expect("a request on the healthy one");
        let answer = read_until(&mut healthy, b"fine\n");
        assert!(answer.windows(5).any(|window| window == b"fine\n"), "{reason}: {answer:?}");
    }
    eventually("each flood is counted by reason", || {
        let rejected = &admin::stats(proxy.admin_addr())["rejected"];
        rejected["http2_rapid_reset"] == 1
            && rejected["http2_continuation_flood"] == 1
            && rejected["http2_control_flood"] == 2
            && rejected["http2_empty_data_flood"] == 1
    });
}

/// Reads from `stream` until `needle` appears (or the read timeout).
fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16384];
    while !bytes.windows(needle.len()).any(|window| window == needle) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
        }
    }
    bytes
}

fn a_shut_window_is_reaped(driver: Driver) {
    let body = vec![b'z'; 200_000];
    let origin = Origin::start(move |_| origin::Reply::Send(origin::response(200, &[], &body)));
    let extra = "\n[timeouts]\nclient_write_timeout_ms = 300\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), extra));
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    stream.write_all(PREFACE).expect("preface");
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no DATA may come until a WINDOW_UPDATE, never sent.
    stream.write_all(&frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0])).expect("settings");
    stream.write_all(&get_headers(1, 0x5)).expect("a request");
    // The stream is reset (RST_STREAM, CANCEL = 0x8) once the write timeout passes.
    let bytes = read_until(&mut stream, &[0x3, 0, 0, 0, 0, 1, 0, 0, 0, 0x8]);
    let reset = [0, 0, 4, 0x3, 0, 0, 0, 0, 1, 0, 0, 0, 0x8];
    assert!(bytes.windows(reset.len()).any(|window| window == reset), "{bytes:?}");
    eventually("the stall is counted", || {
        admin::stats(proxy.admin_addr())["rejected"]["http2_window_stall"] == 1
    });
}
