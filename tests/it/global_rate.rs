//! Global rate limits: two ringway processes share one real redis-server (Debian's
//! `redis-server`, installed by .ci/run) and hold the configured rate together; with Redis
//! stopped, each falls back to its own local limit.

use crate::support::admin;
use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::process::Running;
use crate::support::{Driver, eventually, preamble, unused_addr};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The limit under test, in requests a second.
const RATE: f64 = 100.0;
/// What each client offers, in requests a second: 1.5 times the limit per proxy.
const OFFERED_PER_PROXY: f64 = 150.0;

/// A redis-server on loopback, with no persistence, killed on drop.
struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    fn start() -> Self {
        let addr = unused_addr();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server (.ci/run installs it)");
        eventually("redis-server listens", || TcpStream::connect(addr).is_ok());
        Self { child, addr }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One ringway process with `workers` workers on `driver`, limited globally through
/// `redis`, in front of `origin`; its admin listener at the returned address.
fn proxy(driver: Driver, redis: SocketAddr, origin: SocketAddr) -> (Running, SocketAddr) {
    let admin = unused_addr();
    let toml = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\
         rate_limit = {{ rate = {RATE}, burst = 10, scope = \"global\", redis = \"{redis}\" }}\n\
         [[listener.route]]\ncluster = \"app\"\n\n[cluster.app]\nbackends = [\"{origin}\"]\n",
        preamble(driver, 2).replace("127.0.0.1:0\"\n\n", &format!("{admin}\"\n\n"))
    );
    (Running::start(&toml), admin)
}

/// A client sending `OFFERED_PER_PROXY` requests a second to `addr` until `stop`; returns
/// when each 200 came, and how many answers were neither 200 nor 429.
fn offer(addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<(Vec<Instant>, usize)> {
    std::thread::spawn(move || {
        let period = Duration::from_secs_f64(1.0 / OFFERED_PER_PROXY);
        let (mut passed, mut failed) = (Vec::new(), 0);
        let mut client = Client::connect(addr);
        let mut next = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let response = client.get("/");
            match response.status {
                200 => passed.push(Instant::now()),
                429 => {}
                _ => failed += 1,
            }
            if response.closes() {
                client = Client::connect(addr);
            }
            next += period;
            let now = Instant::now();
            if next > now {
                std::thread::park_timeout(next - now);
            } else {
                next = now;
            }
        }
        (passed, failed)
    })
}

/// How many of `passed` fall in `[from, from + length)`.
fn within(passed: &[Instant], from: Instant, length: Duration) -> usize {
    passed.iter().filter(|&&at| at >= from && at < from + length).count()
}

/// The `global_rate_limits[0]` entry of a proxy's `/stats`.
fn redis_link(admin: SocketAddr) -> serde_json::Value {
    admin::stats(admin)["global_rate_limits"][0].clone()
}

/// Runs both clients for `warm + measured`, and returns each proxy's 200s in the measured
/// part, after checking that no answer was anything but 200 or 429.
fn measure(addrs: [SocketAddr; 2], warm: Duration, measured: Duration) -> [usize; 2] {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let clients = addrs.map(|addr| offer(addr, stop.clone()));
    // A little past the window, so that the last answers in it are in.
    let end = start + warm + measured + Duration::from_millis(200);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        std::thread::park_timeout(left);
    }
    stop.store(true, Ordering::SeqCst);
    clients.map(|client| {
        let (passed, failed) = client.join().expect("client thread");
        assert_eq!(failed, 0, "answers other than 200 and 429");
        within(&passed, start + warm, measured)
    })
}

#[test]
fn two_proxies_share_one_rate_through_redis_and_fall_back_without_it() {
    let origin = Origin::start(|_| origin::ok("hi"));
    let mut redis = Redis::start();
    // One proxy on each io driver: the limit lives in the workers, the Redis swap beside them.
    let (proxy_a, admin_a) = proxy(Driver::IoUring, redis.addr, origin.addr());
    let (proxy_b, admin_b) = proxy(Driver::Epoll, redis.addr, origin.addr());
    let addrs = [proxy_a.addr, proxy_b.addr];

    let measured = Duration::from_secs(10);
    let passed = measure(addrs, Duration::from_secs(1), measured);
    let together = (passed[0] + passed[1]) as f64 / measured.as_secs_f64();
    eprintln!("shared: {passed:?} in {measured:?}: {together:.1} req/s together");
    assert!((together - RATE).abs() <= RATE * 0.1, "{together:.1} req/s, not {RATE} ± 10%");
    for admin in [admin_a, admin_b] {
        let link = redis_link(admin);
        assert_eq!(link["up"], true, "{link}");
        assert!(link["exchanges"].as_u64().unwrap_or(0) > 50, "{link}");
    }

    redis.stop();
    for admin in [admin_a, admin_b] {
        eventually("the proxy sees Redis gone", || redis_link(admin)["up"] == false);
    }
    let measured = Duration::from_secs(5);
    let passed = measure(addrs, Duration::from_millis(1500), measured);
    eprintln!("Redis stopped: {passed:?} in {measured:?}");
    for count in passed {
        let alone = count as f64 / measured.as_secs_f64();
        assert!((alone - RATE).abs() <= RATE * 0.1, "{alone:.1} req/s alone, not {RATE} ± 10%");
    }
    for admin in [admin_a, admin_b] {
        let link = redis_link(admin);
        assert!(link["errors"].as_u64().unwrap_or(0) > 0, "{link}");
        let metrics = admin::metrics(admin);
        let series = "ringway_global_rate_limit_redis_up{limit=\"listener[0].rate_limit\"}";
        let up = admin::sample(&metrics, series);
        assert_eq!(up, Some(0.0), "{metrics}");
    }
}
