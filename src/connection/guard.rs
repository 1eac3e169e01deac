//! The per-request checks between routing and answering: the client address (through
//! trusted proxies), IP allow and deny lists, the route's filters, and rate limits.
//!
//! All state is the worker's own; rate limiters swap usage with other workers on a tick.

use crate::balance::hash_key;
use crate::config::{RateKey, RateLimitConfig, Route};
use crate::error::ProxyError;
use crate::http::{HeaderKind, HeaderLine, RequestHead, find_header};
use crate::limit::{FilterVerdict, client_ip};
use crate::worker::Worker;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Why a request is refused, and the extra header lines its response carries.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) error: ProxyError,
    /// `Allow: ...` for a 405, empty otherwise.
    pub(super) headers: String,
}

impl From<ProxyError> for Refusal {
    fn from(error: ProxyError) -> Self {
        Self { error, headers: String::new() }
    }
}

/// The request being checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checked<'a> {
    pub(super) listener: usize,
    /// The matched route, of this listener.
    pub(super) route: Option<&'a Route>,
    pub(super) peer: SocketAddr,
    pub(super) buf: &'a [u8],
    pub(super) head: &'a RequestHead,
    pub(super) headers: &'a [HeaderLine],
}

/// Runs every check in order; the first that refuses decides the answer.
pub(super) fn check(worker: &Worker, request: &Checked<'_>) -> Result<(), Refusal> {
    let listener = &worker.config.listeners[request.listener];
    let ip = client_address(worker, request);
    if listener.acl.as_ref().is_some_and(|acl| !acl.permits(ip)) {
        return Err(ProxyError::Forbidden.into());
    }
    let slot = worker.listener_rate_slot(request.listener);
    take_token(worker, slot, listener.rate_limit.as_ref(), ip, request)?;
    let Some(route) = request.route else { return Ok(()) };
    if route.acl.as_ref().is_some_and(|acl| !acl.permits(ip)) {
        return Err(ProxyError::Forbidden.into());
    }
    if let Some(filter) = &route.filter {
        let buf = request.buf;
        let verdict =
            filter.check(request.head.method_span.of(buf), request.head.path.of(buf), |name| {
                header_value(request, name)
            });
        match verdict {
            FilterVerdict::Allow => {}
            FilterVerdict::Denied => return Err(ProxyError::Denied.into()),
            FilterVerdict::MethodNotAllowed => {
                let methods: Vec<String> = filter
                    .allowed_methods()
                    .iter()
                    .map(|method| String::from_utf8_lossy(method).into_owned())
                    .collect();
                let headers = format!("Allow: {}\r\n", methods.join(", "));
                return Err(Refusal { error: ProxyError::MethodNotAllowed, headers });
            }
        }
    }
    let slot = worker.route_rate_slot(route.id);
    take_token(worker, slot, route.rate_limit.as_ref(), ip, request)
}

/// The route's rate limit keyed by consumer, once authentication found one: requests
/// are counted against who made them, not the address they came from.
pub(super) fn check_consumer(
    worker: &Worker,
    route: Option<&Route>,
    consumer: &str,
) -> Result<(), Refusal> {
    let Some(route) = route else { return Ok(()) };
    if route.rate_limit.as_ref().is_none_or(|limit| limit.key != RateKey::Consumer) {
        return Ok(());
    }
    take_key(worker, worker.route_rate_slot(route.id), hash_key(consumer.as_bytes()))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the address it
/// names in X-Forwarded-For or Forwarded.
fn client_address(worker: &Worker, request: &Checked<'_>) -> IpAddr {
    let trusted = &worker.config.listeners[request.listener].trusted_proxies;
    if trusted.is_empty() {
        return request.peer.ip();
    }
    let (buf, headers) = (request.buf, request.headers);
    let forwarded_for = headers
        .iter()
        .filter(|header| header.kind == HeaderKind::XForwardedFor)
        .map(|header| header.value.of(buf));
    let forwarded = headers
        .iter()
        .filter(|header| header.name.of(buf).eq_ignore_ascii_case(b"forwarded"))
        .map(|header| header.value.of(buf));
    client_ip(request.peer.ip(), trusted, forwarded_for, forwarded)
}

/// The value of header `name` for the checks. For Host, the host the request is for: the
/// authority of an absolute-form target overrides the header (RFC 9112 §3.2.2).
fn header_value<'a>(request: &Checked<'a>, name: &[u8]) -> Option<&'a [u8]> {
    if name.eq_ignore_ascii_case(b"host") {
        return request.head.effective_host().map(|host| host.of(request.buf));
    }
    find_header(request.buf, request.headers, name)
}

/// Takes a token from the limiter in `slot`, or refuses with 429 and `Retry-After`.
fn take_token(
    worker: &Worker,
    slot: usize,
    limit: Option<&RateLimitConfig>,
    ip: IpAddr,
    request: &Checked<'_>,
) -> Result<(), Refusal> {
    let Some(limit) = limit else { return Ok(()) };
    let key = match &limit.key {
        RateKey::ClientIp => match ip {
            IpAddr::V4(ip) => hash_key(&ip.octets()),
            IpAddr::V6(ip) => hash_key(&ip.octets()),
        },
        // Requests without the header share one bucket.
        RateKey::Header(name) => header_value(request, name).map_or(0, hash_key),
        RateKey::Route => 0,
        // Taken after authentication, by check_consumer.
        RateKey::Consumer => return Ok(()),
    };
    take_key(worker, slot, key)
}

/// Takes a token for `key` from the limiter in `slot`, or refuses with 429.
fn take_key(worker: &Worker, slot: usize, key: u64) -> Result<(), Refusal> {
    let mut limiters = worker.rate_limiters.borrow_mut();
    let Some(Some(limiter)) = limiters.get_mut(slot) else { return Ok(()) };
    match limiter.check(key, Instant::now()) {
        Ok(()) => Ok(()),
        Err(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let retry_after_s = u32::try_from(seconds.max(1)).unwrap_or(u32::MAX);
            Err(ProxyError::TooManyRequests { retry_after_s }.into())
        }
    }
}
