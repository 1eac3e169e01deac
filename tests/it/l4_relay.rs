//! The two relays of a TCP listener, `copy` and `splice`, on the same cases: megabytes
//! both ways at once, a half-close from either side while the other direction flows, and
//! (splice) connections past the worker's pipe bound falling back to the copy relay.

use crate::l4::{echo_backend, tcp_listener};
use crate::support::{Driver, WAIT, on_both_drivers, preamble, start_proxy};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;

/// Bytes each test sends: many pipe and buffer lengths, so both relays wait on full
/// socket buffers along the way.
const BULK_BYTES: usize = 4 << 20;

/// A payload whose every 64 KiB differs, so a reordered or repeated chunk shows.
#[expect(clippy::cast_possible_truncation, reason = "a pattern: wrapping is the point")]
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 251) as u8 ^ (index >> 16) as u8).collect()
}

fn proxy_config(driver: Driver, relay: &str, backends: &[SocketAddr], pipes_max: usize) -> String {
    let preamble =
        preamble(driver, 1).replace("[io]\n", &format!("[io]\nsplice_pipes_max = {pipes_max}\n"));
    format!("{preamble}{}", tcp_listener(&format!("relay = \"{relay}\"\n"), backends, ""))
}

/// Writes `data` from a thread of its own, then half-closes, while the caller reads the
/// echo: the relay must move both directions at once or both sides' buffers fill.
fn echo_through(proxy: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy).expect("connect to the proxy");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut writer = stream.try_clone().expect("a second handle");
    let data = data.to_vec();
    let sending = std::thread::spawn(move || {
        writer.write_all(&data).expect("send the payload");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("the echo, then end of file");
    sending.join().expect("the sender");
    out
}

/// Megabytes to an echo backend and back, the client's FIN passed on after them and the
/// backend's FIN back after the echo; then the pipes are reused by the next connection.
fn bulk_both_ways_with_half_close(driver: Driver, relay: &str) {
    let backend = echo_backend("E");
    let proxy = start_proxy(&proxy_config(driver, relay, &[backend], 64));
    let data = payload(BULK_BYTES);
    for _ in 0..3 {
        let out = echo_through(proxy.addr(), &data);
        assert_eq!(out.len(), data.len() + 2, "{relay}: bytes lost or added");
        assert!(out[..2] == *b"E\n" && out[2..] == data[..], "{relay}: the echo differs");
    }
}

/// A backend that says `bye`, half-closes at once, then reads to the end and reports how
/// many bytes it got.
fn early_closing_backend() -> (SocketAddr, mpsc::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = stream.write_all(b"bye");
                let _ = stream.shutdown(Shutdown::Write);
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got);
                let _ = tx.send(got.len());
            });
        }
    });
    (addr, rx)
}

/// The backend's FIN reaches the client while the client's bytes keep flowing to the
/// backend, all of them.
fn backend_half_close_leaves_the_upload_flowing(driver: Driver, relay: &str) {
    let (backend, received) = early_closing_backend();
    let proxy = start_proxy(&proxy_config(driver, relay, &[backend], 64));
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut first = Vec::new();
    stream.read_to_end(&mut first).expect("bye, then the backend's end of file");
    assert_eq!(first, b"bye", "{relay}");
    let data = payload(BULK_BYTES);
    stream.write_all(&data).expect("the upload after the backend's FIN");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let got = received.recv_timeout(WAIT).expect("the backend's count");
    assert_eq!(got, data.len(), "{relay}: the upload was cut short");
}

fn l4_copy_relays_bulk_both_ways_with_half_close(driver: Driver) {
    bulk_both_ways_with_half_close(driver, "copy");
}

fn l4_splice_relays_bulk_both_ways_with_half_close(driver: Driver) {
    bulk_both_ways_with_half_close(driver, "splice");
}

fn l4_copy_passes_the_backend_fin_while_the_upload_flows(driver: Driver) {
    backend_half_close_leaves_the_upload_flowing(driver, "copy");
}

fn l4_splice_passes_the_backend_fin_while_the_upload_flows(driver: Driver) {
    backend_half_close_leaves_the_upload_flowing(driver, "splice");
}

/// With pipes for one connection only, a second connection open at the same time is
/// copied, and works the same; once the first ends its pipes serve the next.
fn l4_splice_past_the_pipe_bound_falls_back_to_copy(driver: Driver) {
    let backend = echo_backend("E");
    let proxy = start_proxy(&proxy_config(driver, "splice", &[backend], 2));
    let mut held = TcpStream::connect(proxy.addr()).expect("connect");
    held.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut greeting = [0u8; 2];
    held.read_exact(&mut greeting).expect("the first connection relays");
    let data = payload(1 << 20);
    let out = echo_through(proxy.addr(), &data);
    assert!(out.len() == data.len() + 2 && out[2..] == data[..], "the copied connection");
    held.write_all(b"still").expect("write");
    let mut back = [0u8; 5];
    held.read_exact(&mut back).expect("the spliced connection still relays");
    assert_eq!(&back, b"still");
    drop(held);
    for _ in 0..2 {
        let out = echo_through(proxy.addr(), b"again");
        assert_eq!(out, b"E\nagain");
    }
}

on_both_drivers!(
    l4_copy_relays_bulk_both_ways_with_half_close,
    l4_splice_relays_bulk_both_ways_with_half_close,
    l4_copy_passes_the_backend_fin_while_the_upload_flows,
    l4_splice_passes_the_backend_fin_while_the_upload_flows,
    l4_splice_past_the_pipe_bound_falls_back_to_copy,
);
