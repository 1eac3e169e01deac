//! The proxy's life: graceful shutdown with an exchange in flight, with idle connections
//! and with requests still in the accept queue (in process, and the binary stopped while
//! they arrive), the binary's exit on SIGTERM, a 64 MiB body streamed both ways through
//! the real binary while its resident memory stays flat, and idle keep-alive connections
//! that hold no read buffer; and every io_uring completion mode (`io.ring_taskrun`)
//! carrying concurrent exchanges and a streamed body.

use crate::support::admin;
use crate::support::client::{Client, Framing};
use crate::support::origin::{self, Conn, Origin};
use crate::support::process::Running;
use crate::support::{Driver, WAIT, eventually, on_both_drivers, preamble, start_proxy, to_origin};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

on_both_drivers!(
    in_flight_request_completes_during_shutdown,
    idle_connections_close_at_shutdown,
    parked_connections_serve_time_out_and_close_at_shutdown,
    binary_exits_0_on_sigterm,
    large_body_streams_both_ways_in_bounded_memory,
    idle_keep_alive_connections_hold_no_buffer,
    requests_queued_at_shutdown_are_served,
    binary_answers_requests_sent_while_it_stops,
);

fn in_flight_request_completes_during_shutdown(driver: Driver) {
    let (release, gate) = flume::bounded::<()>(1);
    let origin = Origin::start(move |_| {
        // Holds the response until the test has seen the proxy stop accepting.
        let _ = gate.recv_timeout(WAIT);
        origin::ok("finished after shutdown began")
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let addr = proxy.addr();
    let mut client = Client::connect(addr);
    client.send(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(origin.next_request().target(), "/slow");
    let started = Instant::now();
    proxy.shutdown();
    eventually("the proxy refuses new connections", || TcpStream::connect(addr).is_err());
    release.send(()).expect("release the origin");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "finished after shutdown began");
    assert!(response.closes(), "a draining proxy ends the connection");
    client.expect_closed();
    proxy.wait();
    assert!(started.elapsed() < Duration::from_secs(2), "the drain waited for its timeout");
}

fn idle_connections_close_at_shutdown(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut idle = Client::connect(proxy.addr());
    assert_eq!(idle.get("/").status, 200);
    let started = Instant::now();
    proxy.wait();
    assert!(started.elapsed() < Duration::from_secs(2), "the drain waited for its timeout");
    idle.expect_closed();
}

/// `to_origin`'s config with `io.idle_buffers_max = 0`: every idle keep-alive connection
/// parks (no buffer, no serving task) between requests.
fn parking_config(driver: Driver, origin: std::net::SocketAddr, extra: &str) -> String {
    let config = to_origin(driver, origin, extra).replace("[io]\n", "[io]\nidle_buffers_max = 0\n");
    assert!(config.contains("idle_buffers_max"), "the preamble changed: {config}");
    config
}

fn parked_connections_serve_time_out_and_close_at_shutdown(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let timeouts = "[timeouts]\nkeep_alive_timeout_ms = 300\n";
    let proxy = start_proxy(&parking_config(driver, origin.addr(), timeouts));
    // One connection, requests in a row: it parks after each (idle past the proxy's 100 ms
    // PARK_AFTER) and is served again; then some sent at once, which do not park.
    let mut client = Client::connect(proxy.addr());
    for _ in 0..4 {
        let response = client.get("/");
        assert_eq!((response.status, response.closes()), (200, false));
        crate::support::pause(Duration::from_millis(150));
    }
    for _ in 0..20 {
        assert_eq!(client.get("/").status, 200);
    }
    // The keep-alive timeout closes a parked connection.
    let started = Instant::now();
    client.expect_closed();
    assert!(started.elapsed() >= Duration::from_millis(200), "closed before the timeout");
    drop(proxy);
    // Shutdown closes a parked connection at once, and the worker ends.
    let proxy = start_proxy(&parking_config(driver, origin.addr(), ""));
    let mut idle = Client::connect(proxy.addr());
    assert_eq!(idle.get("/").status, 200);
    crate::support::pause(Duration::from_millis(150));
    let started = Instant::now();
    proxy.wait();
    assert!(started.elapsed() < Duration::from_secs(2), "the drain waited for its timeout");
    idle.expect_closed();
}

fn binary_exits_0_on_sigterm(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("from the binary"));
    let mut running = Running::start(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(running.addr);
    assert_eq!(client.get("/").text(), "from the binary");
    let status = running.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    client.expect_closed();
}

const BODY_BYTES: u64 = 64 * 1024 * 1024;
const RSS_GROWTH_MAX: u64 = 8 * 1024 * 1024;

/// The period of the test body's pattern: a prime, so a shifted or dropped byte breaks it.
const PERIOD: usize = 251;
/// The longest slice [`pattern`] gives.
const PATTERN_SLICE_MAX: usize = 1024 * 1024;

/// The `len` bytes of the test body's pattern from `offset`. Slices of one table, so that
/// filling and checking are memcpy and memcmp even in an unoptimized build.
fn pattern(offset: u64, len: usize) -> &'static [u8] {
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..PERIOD + PATTERN_SLICE_MAX).map(|index| (index % PERIOD).to_le_bytes()[0]).collect()
    });
    let start = usize::try_from(offset % PERIOD as u64).expect("below the period");
    &table[start..start + len]
}

/// True when `chunk` is the pattern at `offset`.
fn intact(chunk: &[u8], offset: u64) -> bool {
    chunk.chunks(PATTERN_SLICE_MAX).enumerate().all(|(index, part)| {
        part == pattern(offset + (index * PATTERN_SLICE_MAX) as u64, part.len())
    })
}

/// Reads each request body, checking the pattern as it arrives, then sends back a body of
/// the same length. The proxy relays a request body whole before it reads the response,
/// so an origin that echoes while it reads would stall once the socket buffers fill.
fn pattern_echo(conn: &mut Conn) {
    while let Some(head) = conn.head() {
        let length = head.content_length().unwrap_or(0) as u64;
        let mut received = 0u64;
        let mut intact = true;
        while received < length {
            let Ok(bytes) = conn.reader.some(usize::MAX) else { return };
            if bytes.is_empty() {
                return;
            }
            let bytes =
                &bytes[..bytes.len().min(usize::try_from(length - received).unwrap_or(usize::MAX))];
            intact &= self::intact(bytes, received);
            received += bytes.len() as u64;
        }
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nX-Intact: {intact}\r\n\r\n");
        if conn.write(head.as_bytes()).is_err() {
            return;
        }
        let mut sent = 0u64;
        while sent < length {
            let len = PATTERN_SLICE_MAX.min(usize::try_from(length - sent).unwrap_or(usize::MAX));
            if conn.write(pattern(sent, len)).is_err() {
                return;
            }
            sent += len as u64;
        }
    }
}

/// Samples a process's resident memory until stopped; the largest value seen.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (stop_flag, max_seen) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !stop_flag.load(Ordering::SeqCst) {
                max_seen.fetch_max(crate::support::process::rss_of(pid), Ordering::SeqCst);
                std::thread::park_timeout(Duration::from_millis(5));
            }
        });
        Self { stop, max, thread }
    }

    pub(crate) fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the sampler panicked");
        self.max.load(Ordering::SeqCst)
    }
}

fn large_body_streams_both_ways_in_bounded_memory(driver: Driver) {
    let origin = Origin::start_raw(pattern_echo);
    let limits = "\n[limits]\nbody_bytes_max = 134217728\n";
    let running = Running::start(&to_origin(driver, origin.addr(), limits));
    let mut client = Client::connect(running.addr);
    // Warm up: the worker's buffers and the upstream connection exist before measuring.
    client.send(b"POST /warm HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n");
    client.send(pattern(0, 100_000));
    assert_eq!(client.response().header("x-intact"), Some("true"));
    client.set_read_timeout(Duration::from_secs(60));
    let before = running.rss_bytes();
    assert!(before > 0, "no VmRSS for the proxy");
    let started = Instant::now();
    let sampler = RssSampler::start(running.pid());
    let mut writer = client.writer();
    let upload = std::thread::spawn(move || {
        let head =
            format!("POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: {BODY_BYTES}\r\n\r\n");
        writer.write_all(head.as_bytes())?;
        let mut sent = 0u64;
        while sent < BODY_BYTES {
            writer.write_all(pattern(sent, PATTERN_SLICE_MAX))?;
            sent += PATTERN_SLICE_MAX as u64;
        }
        std::io::Result::Ok(())
    });
    let response = client.response_head_only();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-intact"), Some("true"), "the origin got a damaged body");
    assert_eq!(response.framing, Framing::Length);
    let mut received = 0u64;
    while received < BODY_BYTES {
        let bytes = client.read_some(1024 * 1024);
        assert!(!bytes.is_empty(), "the body ended at {received} of {BODY_BYTES}");
        assert!(intact(&bytes, received), "the echoed body is damaged after byte {received}");
        received += bytes.len() as u64;
    }
    upload.join().expect("the upload thread panicked").expect("upload the body");
    let elapsed = started.elapsed();
    assert_eq!(client.get("/after").status, 200, "the connection stays usable");
    let peak = sampler.finish().max(running.rss_bytes());
    let growth = peak.saturating_sub(before);
    eprintln!(
        "64 MiB both ways in {elapsed:?}; RSS {} KiB, then at most {} KiB",
        before >> 10,
        peak >> 10
    );
    assert!(
        growth < RSS_GROWTH_MAX,
        "RSS grew by {} KiB (from {} KiB to {} KiB) for a {} MiB body",
        growth / 1024,
        before / 1024,
        peak / 1024,
        BODY_BYTES >> 20
    );
}

/// Idle keep-alive connections opened by [`idle_keep_alive_connections_hold_no_buffer`].
const IDLE_CONNECTIONS: usize = 4000;
/// Most resident memory one idle connection may add in this (debug) build, whatever its
/// buffers. Past `io.idle_buffers_max` connections an idle one is parked: no buffer and
/// no serving task, about 3.5 KiB here; a serving task alone is over 8 KiB unoptimized,
/// so a connection that waited in one fails this. perf/ measures the release build
/// against nginx.
const IDLE_BYTES_MAX: u64 = 8 * 1024;

/// RSS added per idle keep-alive connection with `io.buffer_bytes = buffer_bytes`.
fn idle_connection_bytes(driver: Driver, buffer_bytes: usize) -> u64 {
    let config = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\n\
         respond = {{ status = 200, body = \"ok\" }}\n",
        crate::support::preamble(driver, 1)
            .replace("[io]\n", &format!("[io]\nbuffer_bytes = {buffer_bytes}\n"))
    );
    assert!(config.contains("buffer_bytes"), "the preamble changed: {config}");
    let running = Running::start(&config);
    let open = |count: usize| -> Vec<Client> {
        (0..count)
            .map(|_| {
                let mut client = Client::connect(running.addr);
                assert_eq!(client.get("/").status, 200);
                client
            })
            .collect()
    };
    // Warm up: pools, stats and the allocator's first pages exist before measuring; the
    // first io.idle_buffers_max connections keep their buffers, the rest must not.
    let mut warm = open(300);
    let before = running.rss_bytes();
    let mut idle = open(IDLE_CONNECTIONS);
    // Let the last connections reach their idle wait.
    std::thread::park_timeout(Duration::from_millis(200));
    let after = running.rss_bytes();
    let per_connection = after.saturating_sub(before) / IDLE_CONNECTIONS as u64;
    eprintln!(
        "{IDLE_CONNECTIONS} idle connections, {buffer_bytes}-byte buffers: RSS {} KiB -> {} \
         KiB, {per_connection} bytes each",
        before >> 10,
        after >> 10
    );
    // Parked or not, each idle connection serves its next request.
    for client in warm.iter_mut().chain(idle.iter_mut()) {
        assert_eq!(client.get("/").status, 200);
    }
    drop((warm, idle));
    per_connection
}

/// An idle connection's memory does not depend on the buffer size: it holds none. (A
/// held buffer would add the 48 KiB between the two sizes to each connection.)
fn idle_keep_alive_connections_hold_no_buffer(driver: Driver) {
    let small = idle_connection_bytes(driver, 16 * 1024);
    let large = idle_connection_bytes(driver, 64 * 1024);
    assert!(
        large.abs_diff(small) < 8 * 1024,
        "idle connections cost {small} bytes with 16 KiB buffers and {large} with 64 KiB: \
         they hold a buffer"
    );
    assert!(
        small.max(large) < IDLE_BYTES_MAX,
        "an idle connection costs {} bytes of RSS (at most {IDLE_BYTES_MAX})",
        small.max(large)
    );
}

/// Connections queued at shutdown in [`requests_queued_at_shutdown_are_served`] and
/// connected while the binary is stopped in [`binary_answers_requests_sent_while_it_stops`].
const QUEUED: usize = 50;

/// One listener answering 200 itself, `workers` workers.
fn respond_config(driver: Driver, workers: usize) -> String {
    format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\n\
         respond = {{ status = 200, body = \"ok\" }}\n",
        preamble(driver, workers)
    )
}

/// `count` clients connected to `addr` that have each sent one GET.
fn clients_with_a_request(addr: std::net::SocketAddr, count: usize) -> Vec<Client> {
    (0..count)
        .map(|_| {
            let mut client = Client::connect(addr);
            client.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
            client
        })
        .collect()
}

/// Reads every client's response; fails unless each is a 200 followed by the close, and,
/// with `says_close`, carries `Connection: close`.
fn assert_all_answered_and_closed(clients: Vec<Client>, says_close: bool) {
    let mut lost = Vec::new();
    for (index, mut client) in clients.into_iter().enumerate() {
        client.set_read_timeout(WAIT);
        match client.try_response_to("GET") {
            Ok(response) if response.status == 200 && (response.closes() || !says_close) => {
                client.expect_closed();
            }
            Ok(response) => {
                lost.push(format!("client {index}: {} {:?}", response.status, response))
            }
            Err(error) => lost.push(format!("client {index}: {error}")),
        }
    }
    assert!(lost.is_empty(), "{} of {QUEUED} requests lost:\n{}", lost.len(), lost.join("\n"));
}

/// Deterministic: every request is in the listening socket's accept queue before the
/// worker first looks at it, and the worker is already shutting down when it does.
fn requests_queued_at_shutdown_are_served(driver: Driver) {
    use ringway::{accept, limit::RateExchange, upstream::LoadBoard, worker};
    let config = ringway::config::Config::parse(&respond_config(driver, 1)).expect("config");
    let config = Arc::new(config);
    let listener = &config.listeners[0];
    let socket = accept::bind(listener, listener.addr).expect("bind");
    let clients = clients_with_a_request(socket.local_addr().expect("bound address"), QUEUED);
    let driver = match driver {
        Driver::IoUring => ringway::config::IoDriver::IoUring,
        Driver::Epoll => ringway::config::IoDriver::Epoll,
    };
    // One worker as the runtime builds it, told to stop before its accept loop first runs.
    let run = async move {
        let shared = worker::Shared {
            load_board: Arc::new(LoadBoard::new(&config, 1)),
            rate_exchanges: worker::rate_limits(&config).map(|_| RateExchange::new(1)).collect(),
        };
        let worker = std::rc::Rc::new(worker::Worker::new(0, config, shared, None));
        worker.begin_shutdown();
        accept::accept_loop(worker.clone(), socket, 0, driver, accept::AcceptStop::default()).await;
        // As the runtime does: the spawned connections count themselves when they run.
        let deadline = Instant::now() + WAIT;
        loop {
            monoio::time::sleep(Duration::from_millis(10)).await;
            if worker.connections.get() == 0 || Instant::now() >= deadline {
                break;
            }
        }
    };
    match driver {
        ringway::config::IoDriver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("an epoll runtime")
            .block_on(run),
        ringway::config::IoDriver::IoUring | ringway::config::IoDriver::Auto => {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .expect("an io_uring runtime")
                .block_on(run);
        }
    }
    assert_all_answered_and_closed(clients, true);
}

/// The restart case end to end: requests sent while the binary is stopped (SIGSTOP) wait
/// in the accept queues, SIGTERM arrives before it runs again, and each is answered.
fn binary_answers_requests_sent_while_it_stops(driver: Driver) {
    let mut running = Running::start(&respond_config(driver, 2));
    let pid = running.pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill").args([name, &pid]).status();
        assert!(status.expect("run kill").success(), "kill {name} failed");
    };
    signal("-STOP");
    let clients = clients_with_a_request(running.addr, QUEUED);
    signal("-TERM");
    signal("-CONT");
    // A worker may take some before it reads the SIGTERM: those are answered without
    // `Connection: close`, and closed right after.
    assert_all_answered_and_closed(clients, false);
    let status = running.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

/// Each `io.ring_taskrun` mode serves concurrent keep-alive exchanges and a body streamed
/// both ways: completions are reaped whether the kernel runs their work at once, at the
/// worker's next system call, or only when it waits.
#[test]
fn every_ring_taskrun_mode_carries_exchanges() {
    let origin = Origin::start_raw(pattern_echo);
    for mode in ["interrupt", "coop", "defer"] {
        let config = to_origin(Driver::IoUring, origin.addr(), "").replace(
            "[io]\ndriver = \"io_uring\"\n",
            &format!("[io]\ndriver = \"io_uring\"\nring_taskrun = \"{mode}\"\n"),
        );
        assert!(config.contains("ring_taskrun"), "the preamble changed: {config}");
        let proxy = start_proxy(&config);
        let shown = admin::get(proxy.admin_addr(), "/config").text();
        assert!(shown.contains(&format!("\"ring_taskrun\":\"{mode}\"")), "{mode}: {shown}");
        let addr = proxy.addr();
        let clients: Vec<_> = (0..8)
            .map(|index| {
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr);
                    for request in 0..50 {
                        let path = format!("/c{index}/r{request}");
                        assert_eq!(client.get(&path).status, 200, "{path}");
                    }
                })
            })
            .collect();
        let mut client = Client::connect(addr);
        let size = 4 << 20;
        let mut writer = client.writer();
        let upload = std::thread::spawn(move || {
            let head =
                format!("POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: {size}\r\n\r\n");
            writer.write_all(head.as_bytes())?;
            for offset in (0..size).step_by(PATTERN_SLICE_MAX) {
                writer.write_all(pattern(offset as u64, PATTERN_SLICE_MAX))?;
            }
            std::io::Result::Ok(())
        });
        let response = client.response();
        assert_eq!(response.header("x-intact"), Some("true"), "{mode}: a damaged upload");
        assert_eq!(response.body.len(), size, "{mode}");
        assert!(intact(&response.body, 0), "{mode}: a damaged echo");
        upload.join().expect("the upload thread panicked").expect("upload the body");
        for thread in clients {
            thread.join().expect("a client failed");
        }
    }
}
