//! Pieces for the balancing tests: origins that answer with their name after an
//! adjustable delay, a cluster config over many backends, tallies of who answered, and
//! client threads that keep a load going and count every failure.

use super::client::Client;
use super::origin::{self, Origin, Reply, Request};
use super::{Driver, WAIT, eventually, preamble};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A delay in milliseconds that a test can change while origins use it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delay(Arc<AtomicU64>);

impl Delay {
    pub(crate) fn ms(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }

    pub(crate) fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Sleeps for the current delay: the origin's service time, not a test wait.
    #[expect(
        clippy::disallowed_methods,
        reason = "an origin thread, not a worker: the sleep is the service time"
    )]
    fn wait(&self) {
        let ms = self.0.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
}

/// Counts the exchanges an origin is serving at once, and the most it ever served.
#[derive(Debug, Clone, Default)]
pub(crate) struct Concurrency {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Concurrency {
    /// Exchanges in service now.
    pub(crate) fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    /// The most exchanges served at the same time so far.
    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    /// Runs `serve` counted as one exchange in service.
    fn serve<T>(&self, serve: impl FnOnce() -> T) -> T {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        let result = serve();
        self.now.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// An origin that answers every request `200` with body `name`.
pub(crate) fn named(name: &'static str) -> Origin {
    named_on(SocketAddr::from(([127, 0, 0, 1], 0)), name)
}

/// As [`named`], at `addr` (to restart an origin on its old port).
pub(crate) fn named_on(addr: SocketAddr, name: &'static str) -> Origin {
    Origin::start_on(addr, move |_| origin::ok(name))
}

/// As [`named`], after `delay`, counted in `concurrency`.
pub(crate) fn named_slow(name: &'static str, delay: &Delay, concurrency: &Concurrency) -> Origin {
    named_slow_on(SocketAddr::from(([127, 0, 0, 1], 0)), name, delay, concurrency)
}

/// As [`named_slow`], at `addr` (to restart an origin on its old port).
pub(crate) fn named_slow_on(
    addr: SocketAddr,
    name: &'static str,
    delay: &Delay,
    concurrency: &Concurrency,
) -> Origin {
    let (delay, concurrency) = (delay.clone(), concurrency.clone());
    Origin::start_on(addr, move |_: &Request| -> Reply {
        concurrency.serve(|| delay.wait());
        origin::ok(name)
    })
}

/// A `backends` entry: the address, with a weight when it is not 1.
pub(crate) fn backend(addr: SocketAddr, weight: u32) -> String {
    if weight == 1 {
        format!("\"{addr}\"")
    } else {
        format!("{{ addr = \"{addr}\", weight = {weight} }}")
    }
}

/// `workers` workers, one listener on port 0 that sends everything to cluster `app`, whose
/// backends are `backends` (entries as [`backend`] writes them). `extra` follows the
/// `backends` line: more keys of `[cluster.app]`, then any other tables.
pub(crate) fn cluster(driver: Driver, workers: usize, backends: &[String], extra: &str) -> String {
    format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [{}]\n{extra}\n",
        preamble(driver, workers),
        backends.join(", ")
    )
}

/// How many responses each body got.
pub(crate) type Tally = BTreeMap<String, usize>;

/// The count for `name` in `tally` (0 when absent).
pub(crate) fn count(tally: &Tally, name: &str) -> usize {
    tally.get(name).copied().unwrap_or(0)
}

/// Sends `requests` GETs for `path` on a keep-alive connection (a new one after the proxy
/// closes one) and tallies the answers: a 200 by its body, anything else as `"status N"`.
pub(crate) fn tally(addr: SocketAddr, requests: usize, path: &str) -> Tally {
    let mut client = Client::connect(addr);
    let mut tally = Tally::new();
    for _ in 0..requests {
        let response = client.get(path);
        let answer = match response.status {
            200 => response.text(),
            status => format!("status {status}"),
        };
        *tally.entry(answer).or_default() += 1;
        if response.closes() {
            client = Client::connect(addr);
        }
    }
    tally
}

/// What a load saw: bodies of the 200s, and every failure with its reason.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    pub(crate) ok: Tally,
    pub(crate) failed: Vec<String>,
}

/// Client threads sending `GET path` in a loop, each on its own keep-alive connection,
/// until stopped. A failed request (an error status or a broken connection) is recorded
/// and the thread reconnects. Outcomes come back over a channel, so nothing is locked.
#[derive(Debug)]
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    outcomes: flume::Receiver<Result<String, String>>,
    report: RefCell<LoadReport>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(addr: SocketAddr, threads: usize, path: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, outcomes) = flume::unbounded();
        let threads = (0..threads)
            .map(|_| {
                let (stop, sender) = (stop.clone(), sender.clone());
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr);
                    while !stop.load(Ordering::SeqCst) {
                        let outcome = one_request(&mut client, path);
                        if outcome.is_err() {
                            client = Client::connect(addr);
                        }
                        if sender.send(outcome).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Self { stop, outcomes, report: RefCell::default(), threads }
    }

    /// Folds the outcomes that arrived into the report; returns the requests done so far.
    fn collect(&self) -> usize {
        let mut report = self.report.borrow_mut();
        for outcome in self.outcomes.try_iter() {
            match outcome {
                Ok(body) => *report.ok.entry(body).or_default() += 1,
                Err(reason) => report.failed.push(reason),
            }
        }
        report.ok.values().sum::<usize>() + report.failed.len()
    }

    /// Waits until `more` further requests have completed.
    pub(crate) fn wait_for(&self, more: usize) {
        let target = self.collect() + more;
        eventually(&format!("{target} requests of the load complete"), || self.collect() >= target);
    }

    /// What the load saw so far: the bodies of its 200s.
    pub(crate) fn snapshot(&self) -> Tally {
        self.collect();
        self.report.borrow().ok.clone()
    }

    /// Stops every thread after its current request and returns what they saw.
    pub(crate) fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().expect("a load thread panicked");
        }
        self.collect();
        self.report.take()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One GET; the body of a 200, or why it failed.
fn one_request(client: &mut Client, path: &str) -> Result<String, String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    client.try_send(request.as_bytes()).map_err(|error| format!("send: {error}"))?;
    let response = client.try_response_to("GET").map_err(|error| format!("read: {error}"))?;
    if response.status != 200 || response.closes() {
        return Err(format!("{} {}", response.status, response.text()));
    }
    Ok(response.text())
}

/// Runs `threads` client threads at once, each sending `request` (whole request bytes)
/// `per_thread` times on its own keep-alive connection, and tallies the bodies of the
/// responses, which must all be 200s.
pub(crate) fn concurrently(
    addr: SocketAddr,
    threads: usize,
    per_thread: usize,
    request: &str,
) -> Tally {
    let request = Arc::new(request.to_owned());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                client.set_read_timeout(2 * WAIT);
                let mut tally = Tally::new();
                for _ in 0..per_thread {
                    client.send(request.as_bytes());
                    let response = client.response();
                    assert_eq!(response.status, 200, "{}", response.text());
                    *tally.entry(response.text()).or_default() += 1;
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::new();
    for handle in handles {
        for (body, count) in handle.join().expect("a client thread panicked") {
            *total.entry(body).or_default() += count;
        }
    }
    total
}
