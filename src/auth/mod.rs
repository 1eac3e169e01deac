//! Who is calling, and may they: the API gateway's step of the guard phase. A route's (or
//! its listener's) [`AuthPolicy`] tries its methods in order ([`basic`], [`api_key`],
//! [`jwt`]): the first whose credentials the request carries decides. Then its
//! authorization [`rules`] decide, before any upstream work.
//!
//! Input: the request head. Output: an [`Identity`] and the header lines that tell the
//! upstream who called, or a [`Refusal`] (401 with the challenges, 403, 503/504). A
//! worker keeps what it verified ([`WorkerAuth`]); credentials are never logged.

pub mod basic;
pub mod api_key;
pub mod jwt;
pub mod external;
pub mod rules;

use crate::http::{HeaderLine, RequestHead, find_header};
use basic::{Credentials, Ttl, VerifiedCache};
use rules::{Identity, IdentityField, MethodKind, Rule};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a request was refused, for the counters and the log: never the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Missing,
    Malformed,
    /// A password or API key that is not right.
    BadCredentials,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    UnknownKey,
    /// `alg` not in the allow list (`none` among them), or not the key's.
    BadAlgorithm,
    TooLarge,
    /// Authenticated, but no authorization rule lets it through.
    Forbidden,
    /// The credentials could not be checked in time (an overloaded check pool).
    Unavailable,
}

impl Reason {
    pub const ALL: [Self; 13] = [
        Self::Missing,
        Self::Malformed,
        Self::BadCredentials,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongAudience,
        Self::WrongIssuer,
        Self::UnknownKey,
        Self::BadAlgorithm,
        Self::TooLarge,
        Self::Forbidden,
        Self::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::BadCredentials => "bad_credentials",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::UnknownKey => "unknown_key",
            Self::BadAlgorithm => "bad_algorithm",
            Self::TooLarge => "too_large",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A request authentication or authorization refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: Reason,
    /// The method whose credentials were refused; `None` when none was carried.
    pub method: Option<MethodKind>,
    /// An auth service's own `WWW-Authenticate` lines, sent instead of the policy's.
    pub challenge: Option<Rc<[u8]>>,
}

impl Refusal {
    /// 403 for a caller no rule lets through, 503 for credentials that could not be
    /// checked, 401 for the rest.
    pub fn new(reason: Reason, method: Option<MethodKind>) -> Self {
        let status = match reason {
            Reason::Forbidden => 403,
            Reason::Unavailable => 503,
            Reason::Missing
            | Reason::Malformed
            | Reason::BadCredentials
            | Reason::BadSignature
            | Reason::Expired
            | Reason::NotYetValid
            | Reason::WrongAudience
            | Reason::WrongIssuer
            | Reason::UnknownKey
            | Reason::BadAlgorithm
            | Reason::TooLarge => 401,
        };
        Self { status, reason, method, challenge: None }
    }
}

/// One way to authenticate.
#[derive(Debug)]
pub enum AuthMethod {
    Basic(BasicMethod),
    ApiKey(api_key::ApiKeyMethod),
    Jwt(Box<jwt::JwtMethod>),
    External(Box<external::ExternalMethod>),
}

impl AuthMethod {
    pub fn kind(&self) -> MethodKind {
        match self {
            Self::Basic(_) => MethodKind::Basic,
            Self::ApiKey(_) => MethodKind::ApiKey,
            Self::Jwt(_) => MethodKind::Jwt,
            Self::External(_) => MethodKind::External,
        }
    }
}

/// `Basic` against an htpasswd file, checked off the worker.
#[derive(Debug)]
pub struct BasicMethod {
    pub credentials: Arc<Credentials>,
    pub verify_timeout: Duration,
    pub cache_entries_max: usize,
    pub cache_ttl: Duration,
}

/// A route's authentication and authorization, validated.
#[derive(Debug)]
pub struct AuthPolicy {
    /// Tried in order; never empty.
    pub methods: Vec<AuthMethod>,
    pub realm: Box<str>,
    /// Allow if any matches; none means any authenticated caller.
    pub rules: Vec<Rule>,
    /// Header lines added upstream, after the client's copies are dropped.
    pub identity_headers: Vec<(Box<str>, IdentityField)>,
    /// Lowercase names of the client's lines that never reach the upstream: the
    /// identity headers, and with `strip_credentials` the credentials' own.
    pub dropped: Vec<Box<[u8]>>,
}

impl AuthPolicy {
    /// The `WWW-Authenticate` lines of a 401, one per method (RFC 9110 §11.6.1);
    /// `Bearer` says `invalid_token` when a token was refused (RFC 6750 §3.1).
    pub fn challenges(&self, refusal: &Refusal) -> Vec<u8> {
        if let Some(challenge) = &refusal.challenge {
            return challenge.to_vec();
        }
        let realm = &self.realm;
        let mut out = Vec::new();
        for method in &self.methods {
            let line = match method {
                AuthMethod::External(_) => continue,
                AuthMethod::Basic(_) => {
                    format!("WWW-Authenticate: Basic realm=\"{realm}\", charset=\"UTF-8\"\r\n")
                }
                AuthMethod::ApiKey(_) => format!("WWW-Authenticate: ApiKey realm=\"{realm}\"\r\n"),
                AuthMethod::Jwt(_) if refusal.method == Some(MethodKind::Jwt) => format!(
                    "WWW-Authenticate: Bearer realm=\"{realm}\", error=\"invalid_token\"\r\n"
                ),
                AuthMethod::Jwt(_) => format!("WWW-Authenticate: Bearer realm=\"{realm}\"\r\n"),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out
    }
}

/// A verified token a worker keeps, until its `exp`.
#[derive(Debug)]
struct CachedToken {
    identity: Rc<Identity>,
    expires_s: Option<u64>,
    not_before_s: Option<u64>,
}

/// Verified tokens of one policy, by their bytes.
type TokenCache = HashMap<Box<[u8]>, CachedToken>;

/// One worker's memory of what it verified, per policy: `Basic` values (by SHA-256, right
/// and wrong) and JWTs (verified only; each bounded, cleared whole when full).
#[derive(Debug, Default)]
pub struct WorkerAuth {
    basic: RefCell<HashMap<usize, VerifiedCache>>,
    tokens: RefCell<HashMap<usize, TokenCache>>,
    /// Auth service answers (allow, 401, 403), by the headers sent along.
    answers: RefCell<HashMap<usize, AnswerCache>>,
}

/// Auth service answers of one policy, with when each stops being good.
type AnswerCache = HashMap<Box<[u8]>, (external::Verdict, Instant)>;

/// The request as authentication reads it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub head: &'a RequestHead,
    pub headers: &'a [HeaderLine],
    pub buf: &'a [u8],
    /// The client address as text, for an auth service's X-Forwarded-For.
    pub client: &'a [u8],
}

impl<'a> Asked<'a> {
    fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        find_header(self.buf, self.headers, name)
    }
}

/// Authenticates and authorizes a request by `policy`.
pub async fn authenticate(
    cache: &WorkerAuth,
    policy: &AuthPolicy,
    asked: &Asked<'_>,
) -> Result<Rc<Identity>, Refusal> {
    // A policy lives as long as its config, so its address keeps its caches apart.
    let id = std::ptr::from_ref(policy) as usize;
    let identity = identify(cache, (id, policy), asked).await?;
    let (method, path) = (asked.head.method_span.of(asked.buf), asked.head.path.of(asked.buf));
    if !rules::permits(&policy.rules, &identity, method, path) {
        return Err(Refusal::new(Reason::Forbidden, Some(identity.method)));
    }
    Ok(identity)
}

/// The identity of the first method whose credentials the request carries.
async fn identify(
    cache: &WorkerAuth,
    (id, policy): (usize, &AuthPolicy),
    asked: &Asked<'_>,
) -> Result<Rc<Identity>, Refusal> {
    let authorization = asked.header(b"authorization");
    for method in &policy.methods {
        let refuse = |reason| Refusal::new(reason, Some(method.kind()));
        match method {
            AuthMethod::Jwt(jwt) => match jwt.token(authorization, asked.header(b"cookie")) {
                jwt::Carried::Absent => {}
                jwt::Carried::Malformed => return Err(refuse(Reason::Malformed)),
                jwt::Carried::Token(token) => {
                    return verify_token(cache, id, jwt, token).map_err(refuse);
                }
            },
            AuthMethod::ApiKey(keys) => {
                let from_header = keys.header.as_deref().and_then(|name| asked.header(name));
                let from_query = || {
                    let target = asked.head.target.of(asked.buf);
                    keys.query.as_deref().and_then(|name| api_key::query_value(target, name))
                };
                if let Some(key) = from_header.or_else(from_query) {
                    let owner = keys.owner(key).ok_or_else(|| refuse(Reason::BadCredentials))?;
                    return Ok(Rc::new(Identity {
                        consumer: owner.consumer.clone(),
                        groups: owner.groups.clone(),
                        claims: serde_json::Value::Null,
                        method: MethodKind::ApiKey,
                        upstream_lines: Box::default(),
                    }));
                }
            }
            AuthMethod::Basic(basic) => {
                let Some(value) = authorization.filter(|value| is_basic(value)) else { continue };
                return check_basic(cache, id, basic, value).await.map_err(refuse);
            }
            AuthMethod::External(external) => return ask_service(cache, id, external, asked).await,
        }
    }
    Err(Refusal::new(Reason::Missing, None))
}

fn is_basic(value: &[u8]) -> bool {
    let value = value.trim_ascii_start();
    value.len() >= 5 && value[..5].eq_ignore_ascii_case(b"basic")
}

/// A `Basic` value checked: from the worker's cache, else on a check thread.
async fn check_basic(
    cache: &WorkerAuth,
    policy: usize,
    basic: &BasicMethod,
    value: &[u8],
) -> Result<Rc<Identity>, Reason> {
    let identity = |user: &str| {
        let claims = serde_json::Value::Null;
        Rc::new(Identity {
            consumer: user.into(),
            groups: Vec::new(),
            claims,
            method: MethodKind::Basic,
            upstream_lines: Box::default(),
        })
    };
    let now = Instant::now();
    match cache.basic.borrow().get(&policy).and_then(|verified| verified.user(value, now)) {
        Some(Some(user)) => return Ok(identity(user)),
        // Checked before and wrong: no second check for the same bytes.
        Some(None) => return Err(Reason::BadCredentials),
        None => {}
    }
    let (user, password) = basic::parse_basic(value).ok_or(Reason::Malformed)?;
    let checked = basic::verify(&basic.credentials, (user.clone(), password), basic.verify_timeout);
    let right = checked.await.map_err(|_| Reason::Unavailable)?;
    let ttl = Ttl(now, basic.cache_ttl);
    let remembered = right.then_some(user.as_str());
    let mut caches = cache.basic.borrow_mut();
    caches.entry(policy).or_default().insert(value, remembered, basic.cache_entries_max, ttl);
    if right { Ok(identity(&user)) } else { Err(Reason::BadCredentials) }
}

/// The auth service's verdict: from the worker's cache within its ttl, else asked.
async fn ask_service(
    cache: &WorkerAuth,
    policy: usize,
    external: &external::ExternalMethod,
    asked: &Asked<'_>,
) -> external::Verdict {
    let request = (asked.buf, asked.headers);
    let key = (!external.cache_ttl.is_zero()).then(|| external.cache_key(request));
    let now = Instant::now();
    if let Some(key) = &key {
        let answers = cache.answers.borrow();
        let kept = answers.get(&policy).and_then(|answers| answers.get(key));
        if let Some((verdict, _)) = kept.filter(|(_, expires)| now < *expires) {
            return verdict.clone();
        }
    }
    let line = (asked.head.method_span.of(asked.buf), asked.head.target.of(asked.buf));
    let verdict = external.check(external.subrequest(line, request, asked.client)).await;
    let failed = verdict.as_ref().is_err_and(|refusal| refusal.reason == Reason::Unavailable);
    if let (Some(key), false) = (key, failed) {
        let mut answers = cache.answers.borrow_mut();
        let answers = answers.entry(policy).or_default();
        if answers.len() >= external.cache_entries_max {
            answers.clear();
        }
        answers.insert(key, (verdict.clone(), now + external.cache_ttl));
    }
    verdict
}

/// A token checked: from the worker's cache while it is within its `exp` and `nbf`, else
/// verified here (a signature check: tens of microseconds, so on the worker).
fn verify_token(
    cache: &WorkerAuth,
    policy: usize,
    jwt: &jwt::JwtMethod,
    token: &[u8],
) -> Result<Rc<Identity>, Reason> {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let leeway = jwt.leeway_s;
    let current = |cached: &CachedToken| {
        cached.expires_s.is_none_or(|exp| now_s < exp.saturating_add(leeway))
            && cached.not_before_s.is_none_or(|nbf| nbf <= now_s.saturating_add(leeway))
    };
    let mut caches = cache.tokens.borrow_mut();
    let tokens = caches.entry(policy).or_default();
    if let Some(cached) = tokens.get(token) {
        if current(cached) {
            return Ok(cached.identity.clone());
        }
        tokens.remove(token);
    }
    let verified = jwt.verify(token)?;
    let identity =
        Rc::new(Identity::of_claims(verified.claims, &jwt.consumer_claim, &jwt.groups_claim));
    if tokens.len() >= jwt.cache_entries_max {
        tokens.clear();
    }
    if jwt.cache_entries_max > 0 {
        let cached = CachedToken {
            identity: identity.clone(),
            expires_s: verified.expires_s,
            not_before_s: verified.not_before_s,
        };
        tokens.insert(token.into(), cached);
    }
    Ok(identity)
}

/// The header lines an authenticated request carries upstream; none without a policy.
pub fn identity_lines(policy: Option<&AuthPolicy>, identity: Option<&Identity>) -> Vec<u8> {
    let mut out = Vec::new();
    if let (Some(policy), Some(identity)) = (policy, identity) {
        rules::write_identity_lines(&policy.identity_headers, identity, &mut out);
    }
    out
}
