//! Name resolution that never blocks a worker: a few threads shared by all workers run the
//! system resolver (`getaddrinfo`: /etc/hosts, nsswitch, search domains, as every other
//! program on the host resolves), and each worker keeps its own TTL cache of answers,
//! positive and negative, and asks once for a name however many requests wait on it.
//!
//! The credential checks ([`crate::auth::basic`]) have threads of their own, so that
//! floods of bad credentials cannot hold up name lookups.

use crate::config::ResolverConfig;
use crate::stats::DnsAnswer;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Jobs queued for the threads at most; past it a request gets 503.
const JOBS_MAX: usize = 4096;
/// Addresses kept per name: enough to fall back across families and a few hosts.
pub const ADDRESSES_MAX: usize = 8;

/// Why a name has no addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the name does not resolve")]
    NotFound,
    #[error("name resolution timed out")]
    Timeout,
    #[error("too many name lookups at once")]
    Busy,
}

impl ResolveError {
    /// The status the client gets: 502 as Squid's ERR_DNS_FAIL for a name without
    /// addresses, 504 for a lookup that did not finish, 503 when the proxy is overloaded.
    pub fn status(self) -> u16 {
        match self {
            Self::NotFound => 502,
            Self::Timeout => 504,
            Self::Busy => 503,
        }
    }
}

/// A lookup for the threads.
struct Job {
    name: Box<str>,
    ttls: Ttls,
    reply: flume::Sender<SentAnswer>,
}

/// How long an answer is kept, and how many answers a worker keeps.
#[derive(Debug, Clone, Copy)]
struct Ttls {
    positive: Duration,
    negative: Duration,
    entries_max: usize,
}

/// A lookup's answer, sent back to the worker that asked.
struct SentAnswer {
    name: Box<str>,
    ttls: Ttls,
    result: Result<Vec<IpAddr>, ResolveError>,
}

static JOBS: OnceLock<flume::Sender<Job>> = OnceLock::new();

/// The lookup queue, starting `threads` threads the first time (the first config's count).
fn jobs(threads: usize) -> &'static flume::Sender<Job> {
    JOBS.get_or_init(|| crate::blocking::start_threads("resolve", threads, JOBS_MAX, run))
}

fn run(Job { name, ttls, reply }: Job) {
    let result = lookup(&name);
    let _ = reply.send(SentAnswer { name, ttls, result });
}

/// The system resolver's addresses for `name`, in its order (RFC 6724), without repeats.
fn lookup(name: &str) -> Result<Vec<IpAddr>, ResolveError> {
    let addrs = (name, 0).to_socket_addrs().map_err(|_| ResolveError::NotFound)?;
    let mut ips = Vec::new();
    for addr in addrs {
        if !ips.contains(&addr.ip()) && ips.len() < ADDRESSES_MAX {
            ips.push(addr.ip());
        }
    }
    if ips.is_empty() { Err(ResolveError::NotFound) } else { Ok(ips) }
}

/// A cached answer.
#[derive(Debug)]
struct Entry {
    result: Result<Rc<[IpAddr]>, ResolveError>,
    /// When it arrived: a waiter takes only an answer newer than its question.
    at: Instant,
    expires: Instant,
}

/// Lookup counters of one worker, for stats.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolverCounters {
    /// Names sent to the threads.
    pub lookups: u64,
    pub cache_hits: u64,
    pub failures: u64,
}

#[derive(Debug)]
struct State {
    cache: RefCell<HashMap<Box<str>, Entry>>,
    /// Names asked and not answered yet, with the requests waiting on each.
    waiting: RefCell<HashMap<Box<str>, Vec<Waker>>>,
    replies: flume::Sender<SentAnswer>,
    /// Taken by the task that reads the replies, once started.
    receiver: RefCell<Option<flume::Receiver<SentAnswer>>>,
    counters: Cell<ResolverCounters>,
}

/// One worker's resolver: its cache and the lookups it waits on.
#[derive(Debug, Clone)]
pub struct WorkerResolver {
    state: Rc<State>,
}

impl Default for WorkerResolver {
    fn default() -> Self {
        let (replies, receiver) = flume::unbounded();
        let state = State {
            cache: RefCell::default(),
            waiting: RefCell::default(),
            replies,
            receiver: RefCell::new(Some(receiver)),
            counters: Cell::default(),
        };
        Self { state: Rc::new(state) }
    }
}

impl std::fmt::Debug for SentAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentAnswer").field("name", &self.name).finish_non_exhaustive()
    }
}

impl WorkerResolver {
    /// The addresses of `name` (lowercase, no trailing dot): from the hosts file, the
    /// cache, or the threads within `config.timeout`; and which of them answered.
    pub async fn resolve(
        &self,
        name: &str,
        config: &ResolverConfig,
    ) -> (Result<Rc<[IpAddr]>, ResolveError>, DnsAnswer) {
        if let Some(ips) = config.hosts.get(name) {
            return (Ok(Rc::from(ips)), DnsAnswer::Local);
        }
        let asked = Instant::now();
        if let Some(entry) = self.state.cache.borrow().get(name) {
            if entry.expires > asked {
                self.count(|counters| counters.cache_hits += 1);
                return (entry.result.clone(), DnsAnswer::Cached);
            }
        }
        (self.look_up(name, config, asked).await, DnsAnswer::Looked)
    }

    /// Asks the threads for `name` (or joins the lookup on its way) and waits.
    async fn look_up(
        &self,
        name: &str,
        config: &ResolverConfig,
        asked: Instant,
    ) -> Result<Rc<[IpAddr]>, ResolveError> {
        self.ask(name, config)?;
        let answer = std::future::poll_fn(|cx| self.poll_answer(name, asked, cx));
        let result = match crate::deadline::timeout(config.timeout, answer).await {
            Ok(result) => result,
            Err(_) => Err(ResolveError::Timeout),
        };
        if result.is_err() {
            self.count(|counters| counters.failures += 1);
        }
        result
    }

    /// This worker's counters so far.
    pub fn counters(&self) -> ResolverCounters {
        self.state.counters.get()
    }

    fn count(&self, change: impl FnOnce(&mut ResolverCounters)) {
        let mut counters = self.state.counters.get();
        change(&mut counters);
        self.state.counters.set(counters);
    }

    /// Sends `name` to the threads unless it is on its way already.
    fn ask(&self, name: &str, config: &ResolverConfig) -> Result<(), ResolveError> {
        let mut waiting = self.state.waiting.borrow_mut();
        if waiting.contains_key(name) {
            return Ok(());
        }
        if waiting.len() >= config.in_flight_max {
            return Err(ResolveError::Busy);
        }
        self.start_replies();
        let ttls = Ttls {
            positive: config.positive_ttl,
            negative: config.negative_ttl,
            entries_max: config.cache_entries_max,
        };
        let job = Job { name: name.into(), ttls, reply: self.state.replies.clone() };
        jobs(config.threads).try_send(job).map_err(|_| ResolveError::Busy)?;
        waiting.insert(name.into(), Vec::new());
        self.count(|counters| counters.lookups += 1);
        Ok(())
    }

    fn poll_answer(
        &self,
        name: &str,
        asked: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Rc<[IpAddr]>, ResolveError>> {
        if let Some(entry) = self.state.cache.borrow().get(name) {
            if entry.at >= asked {
                return Poll::Ready(entry.result.clone());
            }
        }
        match self.state.waiting.borrow_mut().get_mut(name) {
            Some(wakers) => {
                wakers.push(cx.waker().clone());
                Poll::Pending
            }
            // Answered and already pushed out of a full cache: ask again next time.
            None => Poll::Ready(Err(ResolveError::Busy)),
        }
    }

    /// Starts the task that files the threads' answers and wakes their waiters.
    fn start_replies(&self) {
        let Some(receiver) = self.state.receiver.borrow_mut().take() else { return };
        let state = self.state.clone();
        monoio::spawn(async move {
            while let Ok(answer) = receiver.recv_async().await {
                state.settle(answer);
            }
        });
    }
}

impl State {
    fn settle(&self, answer: SentAnswer) {
        let SentAnswer { name, ttls, result } = answer;
        let at = Instant::now();
        let ttl = if result.is_ok() { ttls.positive } else { ttls.negative };
        let result = result.map(Rc::from);
        {
            let mut cache = self.cache.borrow_mut();
            if cache.len() >= ttls.entries_max && !cache.contains_key(&name) {
                cache.retain(|_, entry| entry.expires > at);
                if cache.len() >= ttls.entries_max {
                    // Still full of live answers: start over rather than scan for the oldest.
                    cache.clear();
                }
            }
            cache.insert(name.clone(), Entry { result, at, expires: at + ttl });
        }
        let wakers = self.waiting.borrow_mut().remove(&name).unwrap_or_default();
        wakers.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::hosts::HostsFile;

    fn config() -> ResolverConfig {
        ResolverConfig {
            threads: 2,
            timeout: Duration::from_secs(5),
            cache_entries_max: 2,
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(60),
            in_flight_max: 8,
            hosts: std::sync::Arc::new(HostsFile::parse("127.0.0.9 pinned.test").unwrap()),
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("a runtime");
        runtime.block_on(future)
    }

    #[test]
    fn lookups_are_coalesced_cached_and_bounded() {
        block_on(async {
            let resolver = WorkerResolver::default();
            let config = config();
            let pinned = resolver.resolve("pinned.test", &config).await.0.unwrap();
            assert_eq!(pinned[0], IpAddr::from([127, 0, 0, 9]));
            let (one, two) = monoio::join!(
                resolver.resolve("localhost", &config),
                resolver.resolve("localhost", &config)
            );
            assert_eq!(one.0.unwrap(), two.0.unwrap());
            assert_eq!(one.1, DnsAnswer::Looked);
            assert_eq!(resolver.counters().lookups, 1, "two waiters, one lookup");
            let cached = resolver.resolve("localhost", &config).await;
            assert_eq!(cached.1, DnsAnswer::Cached);
            assert_eq!(resolver.counters().cache_hits, 1);
            let missing = resolver.resolve("no-such-name.invalid", &config).await;
            assert_eq!(missing.0, Err(ResolveError::NotFound));
            let again = resolver.resolve("no-such-name.invalid", &config).await;
            assert_eq!(again, (Err(ResolveError::NotFound), DnsAnswer::Cached));
            assert_eq!(resolver.counters().cache_hits, 2, "negative answers are cached too");
            resolver.resolve("127.0.0.1", &config).await.0.unwrap();
            assert!(resolver.state.cache.borrow().len() <= 2, "the cache keeps its bound");
        });
    }
}
