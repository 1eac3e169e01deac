//! The cache phases of an exchange, over the worker's store ([`crate::cache`]): lookup
//! (between guard and target: answer from the store, or forward with what to revalidate),
//! the response's verdict (store through the body's tap, merge a 304, serve stale on an
//! error, invalidate after an unsafe method) and the store once the body came whole.
//!
//! The key names the scheme and authority, so the lookup does not care how the target
//! was chosen (a cluster, or a forward proxy's direct address).

mod answer;
mod coalesce;
mod coded;

pub use answer::{Discard, answer};
pub use coalesce::wait_for_fetch;

use coalesce::FetchGuard;

use super::body::Tap;
use super::exchange::{Exchange, ExchangeEnd};
use crate::cache::conditional::Conditionals;
use crate::cache::control::Directives;
use crate::cache::entry::{self, Entry, Fill};
use crate::cache::key::{self, KeyParts};
use crate::cache::policy::{
    self, Exchanged, HeadFacts, RequestFacts, Reuse, RouteRules, StaleWindows,
};
use crate::config::{RouteCache, RouteId};
use crate::error::ProxyError;
use crate::http::{BodyFraming, HeaderLine, Method, ResponseHead, response_framing};
use crate::stats::CacheEvent;
use crate::worker::Worker;
use bytes::Bytes;
use std::rc::Rc;

/// What the lookup phase decided.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Go to the origin; `Some` when the cache has a part in the response.
    Forward(Option<Box<Pending<'a>>>),
    /// Answer from the store (or 504 for `only-if-cached`); then, with `refresh`, fetch
    /// the entry again in the background (stale-while-revalidate).
    Answer { answer: Answer, refresh: Option<Box<Pending<'a>>> },
    /// Another exchange on this worker is fetching this key: wait for it, then look again.
    Wait(Rc<crate::cache::coalesce::Fetch>),
}

/// An answer the cache makes itself.
#[derive(Debug)]
pub struct Answer {
    /// Whose counters it goes to.
    route: RouteId,
    /// `None`: no stored response satisfies an `only-if-cached` request (504).
    entry: Option<Rc<Entry>>,
    /// The `Cache-Status` line.
    status_line: Vec<u8>,
    conditionals: OwnedConditionals,
    now: u64,
}

/// The client's conditionals, copied: the exchange may have reused the request's buffer
/// by the time the answer is written.
#[derive(Debug, Default, Clone)]
struct OwnedConditionals {
    if_none_match: Option<Box<[u8]>>,
    if_modified_since: Option<Box<[u8]>>,
    range: Option<Box<[u8]>>,
    if_range: Option<Box<[u8]>>,
}

impl OwnedConditionals {
    fn view(&self) -> Conditionals<'_> {
        Conditionals {
            if_none_match: self.if_none_match.as_deref(),
            if_modified_since: self.if_modified_since.as_deref(),
            range: self.range.as_deref(),
            if_range: self.if_range.as_deref(),
        }
    }
}

/// Why a request went to the origin (RFC 9211 `fwd=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarded {
    UriMiss,
    VaryMiss,
    Stale,
    Request,
    /// An unsafe method: the cache only invalidates after it.
    Bypass,
}

impl Forwarded {
    fn as_str(self) -> &'static str {
        match self {
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Stale => "stale",
            Self::Request => "request",
            Self::Bypass => "bypass",
        }
    }
}

/// A forwarded request the cache follows: what it looked up, and what it may store.
#[derive(Debug)]
pub struct Pending<'a> {
    route: RouteId,
    rules: &'a RouteCache,
    key: Vec<u8>,
    /// `key[..uri_len]` is the URI part.
    uri_len: usize,
    https: bool,
    authority: Vec<u8>,
    /// The request's head, copied: the response's Vary names which of its fields count.
    request_head: Vec<u8>,
    headers: &'a [HeaderLine],
    request: RequestFacts,
    method: Method,
    /// A stored response being revalidated, or the one to serve on an origin error.
    stored: Option<Rc<Entry>>,
    stale_if_error: bool,
    forwarded: Forwarded,
    request_time: u64,
    conditionals: OwnedConditionals,
    /// A response whose body the tap is filling.
    store: Option<PendingStore>,
    /// Lines added to the relayed response head (`Cache-Status`).
    pub lines: Vec<u8>,
    /// This exchange fetches the key for others waiting on it.
    fetch: Option<FetchGuard<'a>>,
}

/// A response to be stored once its body has come whole.
#[derive(Debug)]
struct PendingStore {
    status: u16,
    head: Box<[u8]>,
    vary: crate::cache::key::VaryKey,
    exchanged: Exchanged,
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    elapsed.map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// Each value of the request field `name` (lowercase).
fn values<'b>(
    buf: &'b [u8],
    headers: &'b [HeaderLine],
    name: &'b [u8],
) -> impl Iterator<Item = &'b [u8]> + Clone {
    fields(buf, headers)
        .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// The `(name, value)` lines of a head in `buf`.
fn fields<'b>(
    buf: &'b [u8],
    headers: &'b [HeaderLine],
) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + Clone {
    headers.iter().map(move |line| (line.name.of(buf), line.value.of(buf)))
}

/// What a request says to the cache, and its conditionals, in one pass over its lines
/// (the first of each conditional counts).
fn scan_request(buf: &[u8], headers: &[HeaderLine]) -> (RequestFacts, OwnedConditionals) {
    let mut facts = RequestFacts { directives: Directives::default(), ..RequestFacts::default() };
    let mut conditionals = OwnedConditionals::default();
    let keep = |slot: &mut Option<Box<[u8]>>, value: &[u8]| {
        if slot.is_none() {
            *slot = Some(value.into());
        }
    };
    for (name, value) in fields(buf, headers) {
        let is = |wanted: &[u8]| name.eq_ignore_ascii_case(wanted);
        if is(b"cache-control") {
            facts.directives.add(value);
        } else if is(b"pragma") {
            let no_cache = |item: &[u8]| item.trim_ascii().eq_ignore_ascii_case(b"no-cache");
            facts.pragma_no_cache |= value.split(|&byte| byte == b',').any(no_cache);
        } else if is(b"authorization") {
            facts.has_authorization = true;
        } else if is(b"if-none-match") {
            keep(&mut conditionals.if_none_match, value);
        } else if is(b"if-modified-since") {
            keep(&mut conditionals.if_modified_since, value);
        } else if is(b"range") {
            keep(&mut conditionals.range, value);
        } else if is(b"if-range") {
            keep(&mut conditionals.if_range, value);
        }
    }
    (facts, conditionals)
}

fn route_rules(rules: &RouteCache) -> RouteRules {
    RouteRules {
        default_ttl: rules.default_ttl.map(|ttl| ttl.as_secs()),
        store_set_cookie: rules.store_set_cookie,
    }
}

/// The lookup phase. `buf` holds the request head at its front.
pub fn lookup<'a>(x: &mut Exchange<'a>, buf: &[u8], may_wait: bool) -> Lookup<'a> {
    let Some((route, rules)) = x.cache else { return Lookup::Forward(None) };
    let head = x.request.head;
    let headers = x.request.headers;
    let cacheable_method =
        head.method == Method::Get || (head.method == Method::Head && rules.head);
    let safe = matches!(head.method, Method::Get | Method::Head | Method::Options | Method::Trace);
    let has_body = !matches!(head.framing, BodyFraming::None | BodyFraming::Length(0));
    let Some(authority) = head.effective_host() else { return Lookup::Forward(None) };
    if (safe && !cacheable_method) || head.upgrade.is_some() || (safe && has_body) {
        count(x.worker, route, CacheEvent::Bypass);
        return Lookup::Forward(None);
    }
    let parts =
        KeyParts { https: x.https, authority: authority.of(buf), origin: head.origin.of(buf) };
    let mut key = Vec::with_capacity(64 + parts.origin.len());
    key::uri_key(parts, rules, &mut key);
    let uri_len = key.len();
    for name in &rules.key_headers {
        key.push(0);
        key.extend_from_slice(values(buf, headers, name).next().unwrap_or_default());
    }
    let now = now_ms();
    let (request, conditionals) = scan_request(buf, headers);
    let pending = Pending {
        route,
        rules,
        key,
        uri_len,
        https: x.https,
        // Only invalidation (unsafe methods) reads it: a hit allocates no copy.
        authority: if safe { Vec::new() } else { parts.authority.to_vec() },
        request_head: Vec::new(),
        headers,
        request,
        method: head.method,
        stored: None,
        stale_if_error: false,
        forwarded: Forwarded::Bypass,
        request_time: now,
        conditionals,
        store: None,
        lines: Vec::new(),
        fetch: None,
    };
    if !safe {
        count(x.worker, route, CacheEvent::Bypass);
        return Lookup::Forward(Some(Box::new(pending)));
    }
    lookup_stored(x, pending, buf, may_wait)
}

/// The lookup proper, for a safe request: the stored variant, fresh or stale, or none.
fn lookup_stored<'a>(
    x: &mut Exchange<'a>,
    mut pending: Pending<'a>,
    buf: &[u8],
    may_wait: bool,
) -> Lookup<'a> {
    let (rules, headers, request, now) =
        (pending.rules, pending.headers, pending.request, pending.request_time);
    let (found, uri_found) = find_variant(x.worker, &pending.key, buf, headers);
    let conditionals = std::mem::take(&mut pending.conditionals);
    let only_if_cached = request.directives.only_if_cached;
    let Some(entry) = found else {
        if only_if_cached {
            return Lookup::Answer {
                answer: answer_only_if_cached(x.worker, pending.route, now),
                refresh: None,
            };
        }
        pending.forwarded = if uri_found { Forwarded::VaryMiss } else { Forwarded::UriMiss };
        return fetch(x.worker, pending, (buf, conditionals), may_wait);
    };
    let age = entry.age(now);
    let stored = policy::Stored { directives: entry.directives, lifetime: entry.lifetime, age };
    let lifetime = entry.lifetime;
    let hit = |detail: &[u8]| hit_line(lifetime, age, detail);
    match policy::reuse(&stored, &request, &stale_windows(rules)) {
        reuse @ (Reuse::Fresh | Reuse::StaleAccepted) => {
            let event = if reuse == Reuse::Fresh { CacheEvent::Hit } else { CacheEvent::StaleHit };
            count(x.worker, pending.route, event);
            let route = pending.route;
            let answer =
                Answer { route, entry: Some(entry), status_line: hit(b""), conditionals, now };
            Lookup::Answer { answer, refresh: None }
        }
        Reuse::StaleWhileRevalidate => {
            let route = pending.route;
            // One refresh per key at a time: a fetch already running refreshes it.
            let refresh = x.worker.cache_fetches.borrow_mut().join_or_start(&pending.key).is_none();
            let refresh = refresh.then(|| {
                pending.fetch = Some(FetchGuard::new(x.worker, &pending.key));
                pending.forwarded = Forwarded::Stale;
                pending.stored = Some(Rc::clone(&entry));
                pending.request_head = request_head_of(&pending, buf);
                Box::new(pending)
            });
            count(x.worker, route, CacheEvent::StaleHit);
            if refresh.is_some() {
                count(x.worker, route, CacheEvent::Revalidation);
            }
            let status_line = hit(b"; detail=stale-while-revalidate");
            let answer = Answer { route, entry: Some(entry), status_line, conditionals, now };
            Lookup::Answer { answer, refresh }
        }
        Reuse::Revalidate { .. } if only_if_cached => Lookup::Answer {
            answer: answer_only_if_cached(x.worker, pending.route, now),
            refresh: None,
        },
        Reuse::Revalidate { stale_if_error } => {
            let asked =
                rules.honor_no_cache && request.no_cache() || request.directives.max_age.is_some();
            pending.forwarded =
                if asked && age < entry.lifetime { Forwarded::Request } else { Forwarded::Stale };
            pending.stale_if_error = stale_if_error;
            let lines = revalidation_lines(&entry);
            pending.stored = Some(entry);
            let lookup = fetch(x.worker, pending, (buf, conditionals), may_wait && !asked);
            if matches!(lookup, Lookup::Forward(_)) {
                x.revalidation = lines;
            }
            lookup
        }
    }
}

/// `Cache-Status: ringway; hit; ttl=N` and `detail`, without the formatting machinery
/// (a hit's one line the cache writes itself). `ttl` is negative for a stale answer.
fn hit_line(lifetime: u64, age: u64, detail: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(64);
    line.extend_from_slice(b"Cache-Status: ringway; hit; ttl=");
    if age > lifetime {
        line.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut left = lifetime.abs_diff(age);
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b"0123456789"[usize::try_from(left % 10).unwrap_or(0)];
        left /= 10;
        if left == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[start..]);
    line.extend_from_slice(detail);
    line.extend_from_slice(b"\r\n");
    line
}

/// What the route allows past freshness.
fn stale_windows(rules: &RouteCache) -> StaleWindows {
    StaleWindows {
        while_revalidate: rules.stale_while_revalidate.as_secs(),
        if_error: rules.stale_if_error.as_secs(),
        honor_no_cache: rules.honor_no_cache,
    }
}

/// Goes to the origin as the key's fetcher, or waits for the fetch another exchange of
/// this worker runs (when `may_wait`: a second look goes on its own).
fn fetch<'a>(
    worker: &'a Worker,
    mut pending: Pending<'a>,
    (buf, conditionals): (&[u8], OwnedConditionals),
    may_wait: bool,
) -> Lookup<'a> {
    if pending.method == Method::Get && pending.rules.coalesce_timeout > std::time::Duration::ZERO {
        // A range or a conditional the origin answers (no stored validators replace them)
        // may bring a 206 or 304 that is not stored: it waits for others, fetches for none.
        let view = conditionals.view();
        let partial = pending.stored.is_none() && (view.range.is_some() || view.any());
        let mut fetches = worker.cache_fetches.borrow_mut();
        let running = if partial {
            fetches.running(&pending.key)
        } else {
            fetches.join_or_start(&pending.key)
        };
        match running {
            Some(running) if may_wait => return Lookup::Wait(running),
            Some(_) => {}
            None if partial => {}
            None => pending.fetch = Some(FetchGuard::new(worker, &pending.key)),
        }
    }
    forward(worker, pending, buf, conditionals)
}

/// A copy of the request's head lines, read again once the response names its Vary.
fn request_head_of(pending: &Pending<'_>, buf: &[u8]) -> Vec<u8> {
    let head_len = pending.headers.iter().map(|line| line.line.end as usize).max().unwrap_or(0);
    buf[..head_len.min(buf.len())].to_vec()
}

/// The URI key a `PURGE` names: its scheme, authority, path and query under the route's
/// key rules; `None` without a host.
pub fn purge_key(
    rules: &RouteCache,
    https: bool,
    head: &crate::http::RequestHead,
    buf: &[u8],
) -> Option<Vec<u8>> {
    let authority = head.effective_host()?.of(buf);
    let mut key = Vec::with_capacity(64);
    key::uri_key(KeyParts { https, authority, origin: head.origin.of(buf) }, rules, &mut key);
    Some(key)
}

/// Drops `key` here at once, and asks the control thread to drop it on every worker;
/// returns how many entries this worker dropped.
pub fn purge_everywhere(worker: &Worker, key: Vec<u8>) -> usize {
    let purged = worker.cache.borrow_mut().purge(&key, false);
    if let Some(requests) = worker.control_requests.borrow().as_ref() {
        let target =
            std::sync::Arc::new(crate::control::PurgeTarget { key: key.into(), prefix: false });
        let _ = requests.send(crate::control::Request::PurgeCache { target });
    }
    purged
}

impl Pending<'_> {
    /// The conditional lines that revalidate the stored response (empty without one).
    pub fn revalidation_lines(&self) -> Vec<u8> {
        self.stored.as_deref().map(revalidation_lines).unwrap_or_default()
    }
}

/// Goes to the origin, keeping a copy of the request head for the response's Vary.
fn forward<'a>(
    worker: &Worker,
    mut pending: Pending<'a>,
    buf: &[u8],
    conditionals: OwnedConditionals,
) -> Lookup<'a> {
    // Counted here, once the exchange surely goes to the origin (not after a wait).
    let event = match pending.stored {
        Some(_) => CacheEvent::Revalidation,
        None => CacheEvent::Miss,
    };
    count(worker, pending.route, event);
    pending.request_head = request_head_of(&pending, buf);
    pending.conditionals = conditionals;
    Lookup::Forward(Some(Box::new(pending)))
}

/// The stored variant of `key` this request selects, and whether the URI had any.
fn find_variant(
    worker: &Worker,
    key: &[u8],
    buf: &[u8],
    headers: &[HeaderLine],
) -> (Option<Rc<Entry>>, bool) {
    let store = worker.cache.borrow();
    let Some(variants) = store.get(key) else { return (None, false) };
    // The newest matching variant wins (RFC 9111 §4.1).
    let found = variants
        .iter()
        .rev()
        .find(|entry| key::vary_matches(&entry.vary, fields(buf, headers)))
        .cloned();
    (found, true)
}

/// `If-None-Match` and `If-Modified-Since` from a stored response's validators.
fn revalidation_lines(entry: &Entry) -> Vec<u8> {
    let mut lines = Vec::new();
    if let Some(etag) = &entry.etag {
        entry::push_line(&mut lines, b"If-None-Match", etag);
    }
    if let Some(modified) = &entry.last_modified {
        entry::push_line(&mut lines, b"If-Modified-Since", modified);
    }
    lines
}

fn answer_only_if_cached(worker: &Worker, route: RouteId, now: u64) -> Answer {
    count(worker, route, CacheEvent::Miss);
    let status_line = b"Cache-Status: ringway; fwd=miss; detail=only-if-cached\r\n".to_vec();
    Answer { route, entry: None, status_line, conditionals: OwnedConditionals::default(), now }
}

/// Counts one cache event on the worker's counters for `route`.
fn count(worker: &Worker, route: RouteId, event: CacheEvent) {
    worker.stats.borrow_mut().cache_event(route, event);
}

/// What the cache makes of the origin's response head.
#[derive(Debug)]
pub enum Verdict {
    /// Relay it; the tap fills the store when it is [`Tap::Store`].
    Relay(Tap),
    /// Answer from the store instead (a 304 merged, or stale on an error); the response's
    /// body, if any, is not read.
    Answer(Answer),
}

/// The response verdict phase: a response head arrived for a request the cache follows.
pub fn on_response(
    worker: &Worker,
    pending: &mut Pending<'_>,
    (response, response_buf, lines): (&ResponseHead, &[u8], &[HeaderLine]),
) -> Verdict {
    let status = response.status;
    let field = |line: &HeaderLine| (line.name.of(response_buf), line.value.of(response_buf));
    let age = lines
        .iter()
        .map(field)
        .find(|(name, _)| name.eq_ignore_ascii_case(b"age"))
        .and_then(|(_, value)| crate::cache::control::age_seconds(value))
        .unwrap_or(0);
    let exchanged = Exchanged { request_time: pending.request_time, response_time: now_ms(), age };
    if pending.forwarded == Forwarded::Bypass {
        // RFC 9111 §4.4: a non-error response to an unsafe method invalidates.
        if status < 400 {
            invalidate(worker, pending, lines.iter().map(field));
        }
        return Verdict::Relay(Tap::None);
    }
    if let Some(verdict) =
        on_revalidation(worker, pending, (status, lines, response_buf), exchanged)
    {
        return verdict;
    }
    let rules = route_rules(pending.rules);
    let facts = HeadFacts::read(status, lines.iter().map(field));
    let framing = response_framing(pending.method, response);
    let storable = pending.method == Method::Get
        && framing != BodyFraming::CloseDelimited
        && policy::storable(&pending.request, &facts, &rules).is_ok();
    let fwd = pending.forwarded.as_str();
    if !storable {
        // A newer response that may not be stored leaves no stale copy behind.
        if let (Some(stored), true) =
            (&pending.stored, status < 500 && pending.method == Method::Get)
        {
            let stored = Rc::clone(stored);
            worker
                .cache
                .borrow_mut()
                .remove_variant(&pending.key, |old| std::ptr::eq(old, &*stored));
        }
        pending.lines =
            format!("Cache-Status: ringway; fwd={fwd}; fwd-status={status}\r\n").into_bytes();
        return Verdict::Relay(Tap::None);
    }
    let vary_values =
        lines.iter().filter(|line| line.name.of(response_buf).eq_ignore_ascii_case(b"vary"));
    let vary_names = key::vary_names(vary_values.map(|line| line.value.of(response_buf)));
    let vary = key::vary_values(&vary_names, fields(&pending.request_head, pending.headers));
    let head = stored_head(lines, response_buf);
    let store = PendingStore { status, head: head.into(), vary, exchanged };
    start_store(worker, pending, store, framing)
}

/// A response to a revalidation: a 304 merges into the stored entry, which answers; a 5xx
/// lets the stale entry answer where stale-if-error allows. `None`: go on as a miss.
fn on_revalidation(
    worker: &Worker,
    pending: &mut Pending<'_>,
    (status, lines, response_buf): (u16, &[HeaderLine], &[u8]),
    exchanged: Exchanged,
) -> Option<Verdict> {
    let stored = pending.stored.clone()?;
    let now = exchanged.response_time;
    if status >= 500 && pending.stale_if_error {
        return Some(stale_on_error(worker, pending, status, now));
    }
    if status != 304 {
        return None;
    }
    let head = stored_head(lines, response_buf);
    let entry = if stored.matches_304(&head) {
        let updated = Rc::new(stored.updated(&head, exchanged, &route_rules(pending.rules)));
        let mut store = worker.cache.borrow_mut();
        store.insert(&pending.key, Rc::clone(&updated), |old| std::ptr::eq(old, &*stored));
        updated
    } else {
        stored
    };
    let status_line = b"Cache-Status: ringway; fwd=stale; fwd-status=304\r\n".to_vec();
    let conditionals = std::mem::take(&mut pending.conditionals);
    let route = pending.route;
    Some(Verdict::Answer(Answer { route, entry: Some(entry), status_line, conditionals, now }))
}

/// A storable response: stored at once when it has no body, else filled by the tap.
fn start_store(
    worker: &Worker,
    pending: &mut Pending<'_>,
    store: PendingStore,
    framing: BodyFraming,
) -> Verdict {
    let (fwd, status) = (pending.forwarded.as_str(), store.status);
    pending.lines =
        format!("Cache-Status: ringway; fwd={fwd}; fwd-status={status}; stored\r\n").into_bytes();
    let bytes_max = pending.rules.object_bytes_max;
    let expected = match framing {
        BodyFraming::None | BodyFraming::Length(0) => {
            insert(worker, pending, store, Bytes::new());
            return Verdict::Relay(Tap::None);
        }
        BodyFraming::Length(len) if len > bytes_max as u64 => {
            pending.lines = format!(
                "Cache-Status: ringway; fwd={fwd}; fwd-status={status}; detail=too-large\r\n"
            )
            .into_bytes();
            return Verdict::Relay(Tap::None);
        }
        BodyFraming::Length(len) => Some(len),
        BodyFraming::Chunked | BodyFraming::CloseDelimited => None,
    };
    pending.store = Some(store);
    Verdict::Relay(Tap::Store(Box::new(Fill::new(bytes_max, expected))))
}

/// The stored entry answers in place of an origin that failed (RFC 5861 stale-if-error).
fn stale_on_error(worker: &Worker, pending: &mut Pending<'_>, status: u16, now: u64) -> Verdict {
    count(worker, pending.route, CacheEvent::StaleHit);
    let status_line =
        format!("Cache-Status: ringway; fwd=stale; fwd-status={status}; detail=stale-if-error\r\n");
    let conditionals = std::mem::take(&mut pending.conditionals);
    Verdict::Answer(Answer {
        route: pending.route,
        entry: pending.stored.clone(),
        status_line: status_line.into_bytes(),
        conditionals,
        now,
    })
}

/// The attempt failed (no backend, connect failure, timeout): a stale entry answers when
/// `stale-if-error` allows it.
pub fn on_error(worker: &Worker, pending: &mut Pending<'_>, error: ProxyError) -> Option<Answer> {
    // A backend's failure, or none to try (all down or disabled): nginx's
    // proxy_cache_use_stale error covers both.
    let origin_failed =
        error.side() == crate::error::Side::Upstream || error == ProxyError::NoBackend;
    if !pending.stale_if_error || pending.stored.is_none() || !origin_failed {
        return None;
    }
    match stale_on_error(worker, pending, 504, now_ms()) {
        Verdict::Answer(answer) => Some(answer),
        Verdict::Relay(_) => None,
    }
}

/// The store phase: the body came whole through the tap.
pub fn on_body_end(worker: &Worker, pending: &mut Pending<'_>, tap: Tap, complete: bool) {
    let (Tap::Store(fill), Some(store)) = (tap, pending.store.take()) else { return };
    if !complete || fill.overflowed {
        return;
    }
    insert(worker, pending, store, Bytes::from(fill.bytes));
}

fn insert(worker: &Worker, pending: &Pending<'_>, store: PendingStore, body: Bytes) {
    let rules = route_rules(pending.rules);
    let entry =
        Rc::new(Entry::new((store.status, store.head), body, store.vary, store.exchanged, &rules));
    let vary = entry.vary.clone();
    let bytes = (entry.head.len() + entry.body.len()) as u64;
    let inserted = worker.cache.borrow_mut().insert(&pending.key, entry, |old| old.vary == vary);
    if inserted.stored {
        count(worker, pending.route, CacheEvent::Stored { bytes, evicted: inserted.evicted });
    }
}

/// The fields of a response head that are stored, as `Name: value` lines: not those of
/// one connection (hop-by-hop, and those its Connection names) nor of one message.
fn stored_head(lines: &[HeaderLine], buf: &[u8]) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    for line in lines.iter().filter(|line| !line.hop_by_hop) {
        let name = line.name.of(buf);
        if entry::is_stored_field(name) {
            entry::push_line(&mut head, name, line.value.of(buf));
        }
    }
    head
}

/// RFC 9111 §4.4: drops the target URI and the same-origin `Location` and
/// `Content-Location` URIs of a response to an unsafe method.
fn invalidate<'v>(
    worker: &Worker,
    pending: &Pending<'_>,
    lines: impl Iterator<Item = (&'v [u8], &'v [u8])>,
) {
    let mut store = worker.cache.borrow_mut();
    let uri = &pending.key[..pending.uri_len];
    drop_uri(&mut store, uri, !pending.rules.key_headers.is_empty());
    let scheme: &[u8] = if pending.https { b"https://" } else { b"http://" };
    for (name, value) in lines {
        if !(name.eq_ignore_ascii_case(b"location")
            || name.eq_ignore_ascii_case(b"content-location"))
        {
            continue;
        }
        let origin = if value.starts_with(b"/") && !value.starts_with(b"//") {
            Some(value)
        } else {
            value
                .strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix(&pending.authority[..]))
                .filter(|path| path.is_empty() || path.starts_with(b"/") || path.starts_with(b"?"))
        };
        if let Some(origin) = origin {
            let parts = KeyParts { https: pending.https, authority: &pending.authority, origin };
            let mut key = Vec::new();
            key::uri_key(parts, pending.rules, &mut key);
            drop_uri(&mut store, &key, !pending.rules.key_headers.is_empty());
        }
    }
}

fn drop_uri(store: &mut crate::cache::store::Store, uri: &[u8], with_key_headers: bool) {
    store.remove(uri);
    if with_key_headers {
        let mut prefix = uri.to_vec();
        prefix.push(0);
        store.remove_prefix(&prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::hit_line;

    #[test]
    fn rfc9211_hit_lines_carry_the_ttl_left() {
        assert_eq!(hit_line(60, 10, b""), b"Cache-Status: ringway; hit; ttl=50\r\n");
        assert_eq!(hit_line(60, 60, b""), b"Cache-Status: ringway; hit; ttl=0\r\n");
        let stale = hit_line(10, 25, b"; detail=stale-while-revalidate");
        assert_eq!(
            stale,
            b"Cache-Status: ringway; hit; ttl=-15; detail=stale-while-revalidate\r\n"
        );
    }
}
