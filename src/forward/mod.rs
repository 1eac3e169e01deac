//! The forward proxy's phases before an exchange leaves: the target a request names
//! ([`target`]), who the client is ([`crate::auth::basic`]), whether it may go there ([`acl`]), and
//! the addresses to try ([`resolve`], then the destination address rules).
//!
//! `connection` calls [`admit`] for an absolute-form request or a CONNECT on a forward
//! listener, then runs the exchange to `Target::Direct`, or the tunnel ([`tunnel`]).

pub mod acl;
pub mod domains;
pub mod filter;
pub mod hosts;
pub mod resolve;
pub mod target;
pub mod tunnel;

use crate::auth::basic::{self, Ttl, VerifiedCache};
use crate::config::Forward;
use crate::http::{HeaderLine, RequestHead, find_header};
use crate::proxy::exchange::DirectTarget;
use crate::upstream::PoolLimits;
use crate::worker::Worker;
use acl::{Facts, Verdict};
use resolve::{ResolveError, WorkerResolver};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use target::ForwardTarget;

/// One worker's forward-proxy state: its resolver and the credentials it saw verified.
#[derive(Debug, Default)]
pub struct WorkerForward {
    pub resolver: WorkerResolver,
    pub verified: RefCell<VerifiedCache>,
}

/// A request the proxy answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The page's text: what went wrong, never internals.
    pub reason: String,
    /// The rule that refused, for the access log and counters.
    pub rule: Option<String>,
    /// The rule that had allowed the request before a later step failed (resolution).
    pub allowed_by: Option<String>,
    /// A 407: send the listener's `Proxy-Authenticate` line.
    pub challenge: bool,
}

impl Refusal {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into(), rule: None, allowed_by: None, challenge: false }
    }

    /// The answer to an origin-form request on a forward listener without routes.
    pub fn origin_form() -> Self {
        Self::new(400, target::TargetError::OriginForm.to_string())
    }

    fn by_rule(rule: &str, reason: String) -> Self {
        Self {
            status: 403,
            reason,
            rule: Some(rule.to_owned()),
            allowed_by: None,
            challenge: false,
        }
    }

    fn authenticate() -> Self {
        let reason = "proxy authentication required";
        Self { status: 407, reason: reason.into(), rule: None, allowed_by: None, challenge: true }
    }
}

/// A request admitted: where to connect, and what decided.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub direct: DirectTarget,
    /// The rule that allowed it (or `default`).
    pub rule: String,
    pub user: Option<String>,
}

/// The request a forward listener got, as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub listener: usize,
    pub client: IpAddr,
    pub head: &'a RequestHead,
    pub headers: &'a [HeaderLine],
    pub buf: &'a [u8],
}

/// Checks a request and finds its addresses, in this order: its target (400), the
/// client's credentials (407), the rules (403), resolution (502/503/504) and the
/// destination address rules (403). Nothing leaves the proxy before all passed.
pub async fn admit(
    worker: &Worker,
    forward: &Forward,
    asked: &Asked<'_>,
) -> Result<Admitted, Refusal> {
    let target = ForwardTarget::of(asked.head, asked.buf)
        .map_err(|error| Refusal::new(400, error.to_string()))?;
    let user = authenticate(worker, forward, asked).await?;
    let facts = Facts {
        client: asked.client,
        host: target.host,
        port: target.port,
        method: asked.head.method_span.of(asked.buf),
        url: asked.head.target.of(asked.buf),
        user: user.as_deref(),
    };
    let rule = match acl::check(forward, &facts, target.tunnel) {
        Verdict::Allow(rule) => rule.to_owned(),
        Verdict::Deny(rule) => return Err(refuse(worker, (asked.listener, forward), rule)),
    };
    let ips = match (target.ip, target.name()) {
        (Some(ip), _) => std::rc::Rc::from([ip].as_slice()),
        (None, Some(name)) => {
            let resolver = &worker.forward.resolver;
            let (resolved, answer) = resolver.resolve(&name, &forward.resolver).await;
            let failed = resolved.is_err();
            worker.stats.borrow_mut().forward_dns(asked.listener, answer, failed);
            let allowed_by =
                |refusal: Refusal| Refusal { allowed_by: Some(rule.clone()), ..refusal };
            resolved.map_err(|error| allowed_by(resolve_refusal(error, &name)))?
        }
        (None, None) => return Err(Refusal::new(400, "the target names no valid host")),
    };
    let mut direct = direct_target(forward);
    for ip in ips.iter().filter(|ip| acl::destination_allowed(forward, **ip)) {
        direct.push(SocketAddr::new(*ip, target.port));
    }
    if direct.is_empty() {
        return Err(refuse(worker, (asked.listener, forward), acl::DESTINATION_IP));
    }
    Ok(Admitted { direct, rule, user })
}

/// The refusal page of `rule`, counted.
fn refuse(worker: &Worker, (listener, forward): (usize, &Forward), rule: &str) -> Refusal {
    let index = acl::rule_index(forward, rule);
    worker.stats.borrow_mut().forward_refused(listener, index);
    Refusal::by_rule(rule, format!("access denied by rule \"{rule}\""))
}

fn resolve_refusal(error: ResolveError, name: &str) -> Refusal {
    Refusal::new(error.status(), format!("{name}: {error}"))
}

/// How long a worker trusts a `Proxy-Authorization` value it checked: a changed or
/// removed password takes effect within it.
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The user named by valid `Proxy-Authorization` credentials, `None` when the listener
/// takes no credentials, or a 407.
async fn authenticate(
    worker: &Worker,
    forward: &Forward,
    asked: &Asked<'_>,
) -> Result<Option<String>, Refusal> {
    let Some(credentials) = &forward.auth else { return Ok(None) };
    let value = find_header(asked.buf, asked.headers, b"proxy-authorization")
        .ok_or_else(Refusal::authenticate)?;
    let now = std::time::Instant::now();
    match worker.forward.verified.borrow().user(value, now) {
        Some(Some(user)) => return Ok(Some(user.to_owned())),
        // Checked before and wrong: no second bcrypt for the same bytes.
        Some(None) => return Err(Refusal::authenticate()),
        None => {}
    }
    let (user, password) = basic::parse_basic(value).ok_or_else(Refusal::authenticate)?;
    let checked = (user.clone(), password);
    let verified = basic::verify(credentials, checked, forward.resolver.timeout).await;
    let entries_max = forward.auth_cache_entries_max;
    let ttl = Ttl(now, VERIFIED_TTL);
    match verified {
        Ok(true) => {
            worker.forward.verified.borrow_mut().insert(value, Some(&user), entries_max, ttl);
            Ok(Some(user))
        }
        Ok(false) => {
            worker.forward.verified.borrow_mut().insert(value, None, entries_max, ttl);
            Err(Refusal::authenticate())
        }
        Err(error) => Err(Refusal::new(error.status(), "credentials could not be checked")),
    }
}

/// An empty direct target with the listener's timeouts and pool settings.
fn direct_target(forward: &Forward) -> DirectTarget {
    DirectTarget::new(
        forward.connect_timeout,
        forward.response_timeout,
        PoolLimits {
            idle_max: forward.pool_idle_max,
            idle_timeout: forward.pool_idle_timeout,
            requests_max: forward.pool_requests_max,
        },
    )
}
