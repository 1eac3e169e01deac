//! Cost of the stale check that runs before a pooled upstream connection is reused: one
//! non-blocking `recv(MSG_PEEK)` on an idle loopback socket, against the same loop
//! without it.

use criterion::{Criterion, criterion_group, criterion_main};
use ringway::upstream::peer::{PeerState, peer_state};
use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

fn stale_check(c: &mut Criterion) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (_server, _) = listener.accept().expect("accept");
    let fd = client.as_raw_fd();
    assert_eq!(peer_state(fd), PeerState::Quiet);
    let mut group = c.benchmark_group("pool_checkout");
    group.bench_function("peek_idle_socket", |b| b.iter(|| peer_state(black_box(fd))));
    group.bench_function("no_check", |b| b.iter(|| black_box(fd) >= 0));
    group.finish();
}

criterion_group!(benches, stale_check);
criterion_main!(benches);
