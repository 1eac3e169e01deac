//! Global rate limits: a thread per limit swaps this proxy's takes with the other proxies'
//! through Redis every sync interval, and hands the others' takes to the workers.
//!
//! The thread is one more member of the limit's [`RateExchange`] (index `workers`): the
//! workers publish their usage to it as they do to each other, and it publishes what the
//! other proxies took, so a worker's bucket pays for every take everywhere. Per key, one
//! atomic script adds this proxy's takes to a counter in Redis and returns the total; what
//! the total grew by beyond our own takes is the others'. When Redis is unreachable the
//! thread publishes nothing: the workers keep their local limit (logged, counted in /stats).

use super::RateExchange;
use super::redis::{RedisClient, RedisError};
use super::resp::Reply;
use crate::config::GlobalRate;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bound on connecting to Redis and on each read and write.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How long after a failure the thread tries Redis again.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a key's counter lives in Redis after its last update: bounds Redis's memory.
const KEY_TTL: Duration = Duration::from_secs(60);
/// How long after this proxy's last take of a key it keeps asking Redis for the others'
/// takes of that key. Past it the key is forgotten and its next take starts afresh.
const ACTIVE_HORIZON: Duration = Duration::from_secs(2);
/// Most keys in one script call; more are sent in several calls.
const KEYS_PER_CALL_MAX: usize = 1000;

/// Adds ARGV[i + 1] to counter KEYS[i], renews its expiry (ARGV[1] ms) and returns every
/// new total, all in one atomic step.
const SCRIPT: &str = "local out = {}\n\
    for i, key in ipairs(KEYS) do\n\
      out[i] = redis.call('INCRBY', key, ARGV[i + 1])\n\
      redis.call('PEXPIRE', key, ARGV[1])\n\
    end\n\
    return out\n";

/// A global limit's link to Redis, as `/stats` shows it. Written by the limit's thread,
/// read by the control thread; never touched on a request's path.
#[derive(Debug, Default)]
pub struct GlobalStatus {
    is_up: AtomicBool,
    /// Script calls that succeeded.
    exchanges: AtomicU64,
    /// Connects and calls that failed: each one is an interval on local limits only.
    errors: AtomicU64,
}

/// One global limit's state for `/stats` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalReport {
    /// The limit's TOML path, which is also its name in Redis.
    pub limit: String,
    pub redis: SocketAddr,
    pub is_up: bool,
    pub exchanges: u64,
    pub errors: u64,
}

/// A running global-limit thread. Dropping it stops the thread within one interval.
#[derive(Debug)]
pub struct GlobalRateThread {
    global: GlobalRate,
    status: Arc<GlobalStatus>,
    _stop: flume::Sender<()>,
}

impl GlobalRateThread {
    pub fn report(&self) -> GlobalReport {
        GlobalReport {
            limit: self.global.name.clone(),
            redis: self.global.redis,
            is_up: self.status.is_up.load(Ordering::Relaxed),
            exchanges: self.status.exchanges.load(Ordering::Relaxed),
            errors: self.status.errors.load(Ordering::Relaxed),
        }
    }
}

/// What a global-limit thread needs.
#[derive(Debug)]
pub struct GlobalStart {
    pub global: GlobalRate,
    /// The limit's exchange, with one member more than `workers`: this thread.
    pub exchange: Arc<RateExchange>,
    pub workers: usize,
    /// Most keys followed in Redis (the limit's `keys_max`).
    pub keys_max: usize,
    pub interval: Duration,
}

/// Starts the thread of one global limit.
pub fn spawn(start: GlobalStart) -> std::io::Result<GlobalRateThread> {
    let status = Arc::new(GlobalStatus::default());
    let (stop, stopped) = flume::bounded(1);
    let thread =
        GlobalRateThread { global: start.global.clone(), status: status.clone(), _stop: stop };
    std::thread::Builder::new()
        .name("ringway-rate-redis".to_string())
        .spawn(move || run(&start, &status, &stopped))?;
    Ok(thread)
}

/// Every `interval` until stopped: collect the workers' takes, swap them through Redis,
/// publish the other proxies' takes.
fn run(start: &GlobalStart, status: &GlobalStatus, stopped: &flume::Receiver<()>) {
    let me = start.workers;
    let mut session = Session::new(&start.global, start.keys_max);
    let (mut usage, mut others) = (Vec::new(), Vec::new());
    let mut next = Instant::now() + start.interval;
    // Ends when the handle is dropped (a disconnect) or sends.
    while let Err(flume::RecvTimeoutError::Timeout) = stopped.recv_deadline(next) {
        let now = Instant::now();
        next = (next + start.interval).max(now);
        usage.clear();
        start.exchange.collect(me, &mut usage);
        others.clear();
        session.swap(&usage, now, status, &mut others);
        start.exchange.publish(me, &others);
    }
}

/// The connection to Redis and what the thread knows of each key.
struct Session<'a> {
    global: &'a GlobalRate,
    client: Option<(RedisClient, String)>,
    retry_at: Instant,
    ledger: Ledger,
}

impl<'a> Session<'a> {
    fn new(global: &'a GlobalRate, keys_max: usize) -> Self {
        Self { global, client: None, retry_at: Instant::now(), ledger: Ledger::new(keys_max) }
    }

    /// Sends this proxy's takes (`usage`, a key may repeat) and appends the other proxies'
    /// takes to `others`; on any failure, drops the connection and appends nothing.
    fn swap(
        &mut self,
        usage: &[(u64, u32)],
        now: Instant,
        status: &GlobalStatus,
        others: &mut Vec<(u64, u32)>,
    ) {
        if self.client.is_none() && now < self.retry_at {
            return;
        }
        let plan = self.ledger.plan(usage, now);
        match self.try_swap(&plan, now, others) {
            Ok(()) => {
                status.exchanges.fetch_add(1, Ordering::Relaxed);
                if !status.is_up.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "rate limit {}: sharing usage through Redis at {}",
                        self.name(),
                        self.global.redis
                    );
                }
            }
            Err(error) => {
                others.clear();
                self.client = None;
                self.retry_at = now + RECONNECT_INTERVAL;
                // What we knew of the totals is stale once we stop reporting: start afresh.
                self.ledger.clear();
                status.errors.fetch_add(1, Ordering::Relaxed);
                let was_up = status.is_up.swap(false, Ordering::Relaxed);
                let first = status.errors.load(Ordering::Relaxed) == 1;
                if was_up || first {
                    log::warn!(
                        "rate limit {}: Redis at {} failed ({error}); each proxy keeps its \
                         local limit until it is back",
                        self.name(),
                        self.global.redis
                    );
                }
            }
        }
    }

    fn name(&self) -> &str {
        &self.global.name
    }

    fn try_swap(
        &mut self,
        plan: &[(u64, u32)],
        now: Instant,
        others: &mut Vec<(u64, u32)>,
    ) -> Result<(), RedisError> {
        let (client, sha) = match &mut self.client {
            Some((client, sha)) => (client, sha),
            None => {
                let mut client = RedisClient::connect(self.global.redis, REDIS_TIMEOUT)?;
                let sha = match client.call(&[b"SCRIPT", b"LOAD", SCRIPT.as_bytes()])? {
                    Reply::Bulk(Some(sha)) => String::from_utf8_lossy(&sha).into_owned(),
                    other => return Err(RedisError::Server(format!("SCRIPT LOAD gave {other:?}"))),
                };
                let (client, sha) = self.client.insert((client, sha));
                (client, sha)
            }
        };
        for chunk in plan.chunks(KEYS_PER_CALL_MAX) {
            let totals = call_script(client, sha, &self.global.name, chunk)?;
            self.ledger.settle(chunk, &totals, now, others);
        }
        Ok(())
    }
}

/// Runs the script over `chunk`'s keys and increments; returns the new totals in order.
fn call_script(
    client: &mut RedisClient,
    sha: &str,
    name: &str,
    chunk: &[(u64, u32)],
) -> Result<Vec<i64>, RedisError> {
    let keys: Vec<String> =
        chunk.iter().map(|(key, _)| format!("ringway:rate:{{{name}}}:{key:016x}")).collect();
    let mut values: Vec<String> = Vec::with_capacity(chunk.len() + 1);
    values.push(KEY_TTL.as_millis().to_string());
    values.extend(chunk.iter().map(|(_, taken)| taken.to_string()));
    let count = chunk.len().to_string();
    let mut args: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), count.as_bytes()];
    args.extend(keys.iter().map(|key| key.as_bytes()));
    args.extend(values.iter().map(|value| value.as_bytes()));
    let Reply::Array(Some(items)) = client.call(&args)? else {
        return Err(RedisError::Server("the script returned no array".to_string()));
    };
    let totals: Vec<i64> = items
        .iter()
        .filter_map(|item| if let Reply::Integer(total) = item { Some(*total) } else { None })
        .collect();
    if totals.len() != chunk.len() {
        return Err(RedisError::Server(format!(
            "{} totals for {} keys",
            totals.len(),
            chunk.len()
        )));
    }
    Ok(totals)
}

/// What the thread last saw of each key's total in Redis: pure bookkeeping, no I/O.
#[derive(Debug)]
pub struct Ledger {
    seen: HashMap<u64, Seen>,
    keys_max: usize,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The key's total in Redis after our last call, our takes included.
    total: i64,
    /// When this proxy last took from the key.
    active_at: Instant,
}

impl Ledger {
    /// A ledger that follows at most `keys_max` keys.
    pub fn new(keys_max: usize) -> Self {
        Self { seen: HashMap::new(), keys_max }
    }

    /// What to send this interval: each key of `usage` once with its summed takes, and each
    /// key taken from within `ACTIVE_HORIZON` with 0 (to hear the others' takes).
    pub fn plan(&mut self, usage: &[(u64, u32)], now: Instant) -> Vec<(u64, u32)> {
        self.seen.retain(|_, seen| now.saturating_duration_since(seen.active_at) < ACTIVE_HORIZON);
        let mut sums: HashMap<u64, u32> = HashMap::with_capacity(usage.len());
        for &(key, taken) in usage {
            let sum = sums.entry(key).or_default();
            *sum = sum.saturating_add(taken);
        }
        let polled = self.seen.keys().filter(|key| !sums.contains_key(key)).map(|&key| (key, 0));
        let mut plan: Vec<(u64, u32)> = polled.collect();
        plan.extend(sums);
        plan
    }

    /// Records the totals Redis returned for `sent` (from [`Ledger::plan`]) and appends the
    /// other proxies' takes since the last call to `others`. A key seen for the first time
    /// only sets its baseline.
    pub fn settle(
        &mut self,
        sent: &[(u64, u32)],
        totals: &[i64],
        now: Instant,
        others: &mut Vec<(u64, u32)>,
    ) {
        for (&(key, mine), &total) in sent.iter().zip(totals) {
            let mine_i64 = i64::from(mine);
            let has_room = self.seen.len() < self.keys_max;
            match self.seen.get_mut(&key) {
                Some(seen) => {
                    let expected = seen.total.saturating_add(mine_i64);
                    // A total below what we know means the counter expired or Redis lost
                    // it: whatever is there beyond our takes is the others'.
                    let theirs =
                        if total >= expected { total - expected } else { total - mine_i64 };
                    if theirs > 0 {
                        others.push((key, u32::try_from(theirs).unwrap_or(u32::MAX)));
                    }
                    seen.total = total;
                    if mine > 0 {
                        seen.active_at = now;
                    }
                }
                None if mine > 0 && has_room => {
                    self.seen.insert(key, Seen { total, active_at: now });
                }
                None => {}
            }
        }
    }

    /// Forgets every key (after an outage, the totals we knew are stale).
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut pairs: Vec<(u64, u32)>) -> Vec<(u64, u32)> {
        pairs.sort_unstable();
        pairs
    }

    #[test]
    fn charges_what_the_total_grew_by_beyond_our_takes() {
        let now = Instant::now();
        let mut ledger = Ledger::new(10);
        let mut others = Vec::new();
        let plan = ledger.plan(&[(7, 2), (7, 3)], now);
        assert_eq!(plan, vec![(7, 5)]);
        // First sight: the baseline only.
        ledger.settle(&plan, &[40], now, &mut others);
        assert!(others.is_empty());
        let plan = ledger.plan(&[(7, 4)], now);
        ledger.settle(&plan, &[40 + 4 + 11], now, &mut others);
        assert_eq!(others, vec![(7, 11)]);
    }

    #[test]
    fn polls_a_recent_key_with_zero_and_forgets_an_old_one() {
        let start = Instant::now();
        let mut ledger = Ledger::new(10);
        let mut others = Vec::new();
        let plan = ledger.plan(&[(1, 1), (2, 1)], start);
        ledger.settle(&plan, &[1, 1], start, &mut others);
        let later = start + Duration::from_secs(1);
        let plan = ledger.plan(&[(2, 1)], later);
        assert_eq!(sorted(plan.clone()), vec![(1, 0), (2, 1)]);
        ledger.settle(&plan, &[6, 2], later, &mut others);
        assert_eq!(others, vec![(1, 5)]);
        let much_later = later + ACTIVE_HORIZON;
        assert_eq!(ledger.plan(&[], much_later), vec![]);
    }

    #[test]
    fn a_counter_that_expired_counts_from_zero() {
        let now = Instant::now();
        let mut ledger = Ledger::new(10);
        let mut others = Vec::new();
        let plan = ledger.plan(&[(3, 10)], now);
        ledger.settle(&plan, &[500], now, &mut others);
        let plan = ledger.plan(&[(3, 2)], now);
        // Redis lost the key: the new counter holds our 2 and the others' 3.
        ledger.settle(&plan, &[5], now, &mut others);
        assert_eq!(others, vec![(3, 3)]);
    }

    #[test]
    fn follows_at_most_keys_max_keys_but_sends_every_take() {
        let now = Instant::now();
        let mut ledger = Ledger::new(1);
        let mut others = Vec::new();
        let plan = ledger.plan(&[(1, 1), (2, 1)], now);
        assert_eq!(plan.len(), 2);
        ledger.settle(&plan, &[1, 1], now, &mut others);
        assert_eq!(ledger.seen.len(), 1);
        ledger.clear();
        assert!(ledger.plan(&[], now).is_empty());
    }
}
