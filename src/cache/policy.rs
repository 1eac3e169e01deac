//! RFC 9111 for a shared cache, as pure functions over a stored head's lines and the
//! clock: may a response be stored (§3), how long is it fresh (§4.2.1, §4.2.2), how old
//! is it (§4.2.3), and may it answer this request, fresh or stale (§4.2, §5.2.1,
//! RFC 5861). Times are milliseconds since the Unix epoch, ages and lifetimes seconds.

use super::control::Directives;

/// Heuristic freshness is a tenth of the time since Last-Modified (RFC 9111 §4.2.2),
/// at most a day: the usual choice of caches that use it.
const HEURISTIC_LIFETIME_MAX: u64 = 86_400;

/// Status codes a cache understands: those RFC 9110 defines (for `must-understand`).
pub fn is_understood(status: u16) -> bool {
    matches!(status, 200..=206 | 300..=308 | 400..=417 | 421 | 422 | 426 | 500..=505)
}

/// Status codes heuristically cacheable (RFC 9110 §15.1): storable and fresh by
/// heuristics without explicit freshness.
pub fn is_heuristically_cacheable(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501)
}

/// The fields of a stored (or candidate) response head that the rules read.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadFacts<'a> {
    pub status: u16,
    pub directives: Directives,
    /// `Expires`: `Some(None)` when present but not a valid date (RFC 9111 §5.3: stale).
    pub expires: Option<Option<u64>>,
    /// `Date`, seconds.
    pub date: Option<u64>,
    /// `Last-Modified`, seconds.
    pub last_modified: Option<u64>,
    pub etag: Option<&'a [u8]>,
    pub has_set_cookie: bool,
    /// `Vary: *`.
    pub vary_any: bool,
}

impl<'a> HeadFacts<'a> {
    /// Reads the facts of a head from its `(name, value)` lines.
    pub fn read(status: u16, lines: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Self {
        let mut facts = Self {
            status,
            directives: Directives::parse(
                lines
                    .clone()
                    .filter(|(name, _)| name.eq_ignore_ascii_case(b"cache-control"))
                    .map(|line| line.1),
            ),
            ..Self::default()
        };
        for (name, value) in lines {
            let is = |wanted: &[u8]| name.eq_ignore_ascii_case(wanted);
            if is(b"expires") && facts.expires.is_none() {
                facts.expires = Some(http_date(value));
            } else if is(b"date") && facts.date.is_none() {
                facts.date = http_date(value);
            } else if is(b"last-modified") && facts.last_modified.is_none() {
                facts.last_modified = http_date(value);
            } else if is(b"etag") && facts.etag.is_none() {
                facts.etag = Some(value.trim_ascii());
            } else if is(b"set-cookie") {
                facts.has_set_cookie = true;
            } else if is(b"vary")
                && value.split(|&byte| byte == b',').any(|name| name.trim_ascii() == b"*")
            {
                facts.vary_any = true;
            }
        }
        facts
    }

    /// True when the origin gave the response a lifetime: max-age, s-maxage or Expires.
    pub fn has_explicit_freshness(&self) -> bool {
        self.directives.max_age.is_some()
            || self.directives.s_maxage.is_some()
            || self.expires.is_some()
    }

    /// True when the response carries a validator to revalidate it with.
    pub fn has_validator(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// An HTTP-date (RFC 9110 §5.6.7, all three forms) as seconds since the epoch.
pub fn http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value.trim_ascii()).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(std::time::UNIX_EPOCH).ok().map(|elapsed| elapsed.as_secs())
}

/// What the request says, for storing and for reuse.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts {
    pub directives: Directives,
    /// `Pragma: no-cache` without a Cache-Control field (RFC 9111 §5.4).
    pub pragma_no_cache: bool,
    pub has_authorization: bool,
}

impl RequestFacts {
    /// The client asked that no stored response be used unvalidated.
    pub fn no_cache(&self) -> bool {
        self.directives.no_cache || (self.pragma_no_cache && !self.directives.present)
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryAny,
    Malformed,
    /// Neither explicit freshness, a heuristically cacheable status with a validator, nor a
    /// route's default TTL.
    NoFreshness,
    NotUnderstood,
    Partial,
}

/// What a route adds to the rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteRules {
    /// Seconds of freshness for a response without any.
    pub default_ttl: Option<u64>,
    pub store_set_cookie: bool,
}

/// RFC 9111 §3: may a shared cache store this response to a GET?
pub fn storable(
    request: &RequestFacts,
    head: &HeadFacts<'_>,
    rules: &RouteRules,
) -> Result<(), NotStored> {
    let response = &head.directives;
    if head.status == 206 || head.status == 304 {
        // Partial content is not combined (§3.3), and a 304 only updates (§4.3.4).
        return Err(NotStored::Partial);
    }
    // §5.2.2.3: must-understand overrides no-store for a status the cache understands.
    if response.must_understand && !is_understood(head.status) {
        return Err(NotStored::NotUnderstood);
    }
    if (response.no_store && !response.must_understand) || request.directives.no_store {
        return Err(NotStored::NoStore);
    }
    if response.malformed {
        return Err(NotStored::Malformed);
    }
    if response.private {
        return Err(NotStored::Private);
    }
    // §3.5: a shared cache stores a response to an authorized request only when told.
    if request.has_authorization
        && !(response.public || response.s_maxage.is_some() || response.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    if head.vary_any {
        return Err(NotStored::VaryAny);
    }
    if head.has_set_cookie && !rules.store_set_cookie {
        return Err(NotStored::SetCookie);
    }
    let heuristic = is_heuristically_cacheable(head.status);
    let storable = head.has_explicit_freshness()
        || (heuristic && (head.has_validator() || rules.default_ttl.is_some()))
        || (response.public && head.has_validator())
        || (response.no_cache && head.has_validator() && is_understood(head.status));
    if storable { Ok(()) } else { Err(NotStored::NoFreshness) }
}

/// RFC 9111 §4.2.1: the freshness lifetime of a stored response, in seconds.
/// `response_time` stands in for a missing Date.
pub fn freshness_lifetime(head: &HeadFacts<'_>, rules: &RouteRules, response_time: u64) -> u64 {
    let directives = &head.directives;
    if let Some(seconds) = directives.s_maxage.or(directives.max_age) {
        return seconds;
    }
    match head.expires {
        // §5.3: an invalid Expires (or "0") means already expired.
        Some(None) => return 0,
        Some(Some(expires)) => {
            let date = head.date.unwrap_or(response_time / 1000);
            return expires.saturating_sub(date);
        }
        None => {}
    }
    if let Some(ttl) = rules.default_ttl {
        return ttl;
    }
    // §4.2.2: heuristics only for heuristically cacheable codes (or `public`).
    let heuristic = is_heuristically_cacheable(head.status) || directives.public;
    match (heuristic, head.last_modified) {
        (true, Some(modified)) => {
            let date = head.date.unwrap_or(response_time / 1000);
            (date.saturating_sub(modified) / 10).min(HEURISTIC_LIFETIME_MAX)
        }
        _ => 0,
    }
}

/// When a response was asked for and arrived, milliseconds since the epoch, and the
/// `Age` it came with (seconds; the stored head keeps no `Age`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchanged {
    pub request_time: u64,
    pub response_time: u64,
    pub age: u64,
}

/// RFC 9111 §4.2.3: the corrected initial age, in milliseconds.
pub fn corrected_initial_age(head: &HeadFacts<'_>, times: Exchanged) -> u64 {
    let apparent_age = head.date.map_or(0, |date| times.response_time.saturating_sub(date * 1000));
    let response_delay = times.response_time.saturating_sub(times.request_time);
    let corrected_age_value = times.age.saturating_mul(1000).saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// RFC 9111 §4.2.3: the current age, in whole seconds, at `now`.
pub fn current_age(corrected_initial_age: u64, response_time: u64, now: u64) -> u64 {
    let resident_time = now.saturating_sub(response_time);
    (corrected_initial_age + resident_time) / 1000
}

/// What a stored response may do for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Answer from the store.
    Fresh,
    /// Stale, but the client accepts it (`max-stale`): answer from the store.
    StaleAccepted,
    /// Stale within its stale-while-revalidate window: answer, and refresh behind.
    StaleWhileRevalidate,
    /// Must go to the origin (revalidate when it has a validator); it may still be
    /// served on an origin error while `stale_if_error` is true.
    Revalidate { stale_if_error: bool },
}

/// The stored response's side of [`reuse`].
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub directives: Directives,
    pub lifetime: u64,
    pub age: u64,
}

/// What a route allows past freshness, in seconds, when the origin did not say.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaleWindows {
    pub while_revalidate: u64,
    pub if_error: u64,
    /// The client's `no-cache` is honoured.
    pub honor_no_cache: bool,
}

/// RFC 9111 §4.2, §5.2.1, §5.2.2 and RFC 5861: may `stored` answer `request`?
pub fn reuse(stored: &Stored, request: &RequestFacts, windows: &StaleWindows) -> Reuse {
    let response = &stored.directives;
    let client = &request.directives;
    let staleness = stored.age.saturating_sub(stored.lifetime);
    let fresh = stored.age < stored.lifetime;
    // §4.2.4 and §5.2.2.2: no stale answers past these, whatever is configured.
    let revalidate_always =
        response.must_revalidate || response.proxy_revalidate || response.s_maxage.is_some();
    let if_error_window =
        response.stale_if_error.or(client.stale_if_error).unwrap_or(windows.if_error);
    let stale_if_error = !revalidate_always
        && !response.no_cache
        && if_error_window > 0
        && staleness <= if_error_window;
    let revalidate = Reuse::Revalidate { stale_if_error };
    if response.no_cache || (windows.honor_no_cache && request.no_cache()) {
        return revalidate;
    }
    if client.max_age.is_some_and(|max_age| stored.age > max_age) {
        return revalidate;
    }
    if fresh {
        let left = stored.lifetime - stored.age;
        if client.min_fresh.is_some_and(|min_fresh| left < min_fresh) {
            return revalidate;
        }
        return Reuse::Fresh;
    }
    if !revalidate_always && client.max_stale.is_some_and(|max_stale| staleness <= max_stale) {
        return Reuse::StaleAccepted;
    }
    let window = response.stale_while_revalidate.unwrap_or(windows.while_revalidate);
    if !revalidate_always
        && staleness < window
        && client.max_age.is_none()
        && client.min_fresh.is_none()
    {
        return Reuse::StaleWhileRevalidate;
    }
    revalidate
}

#[cfg(test)]
mod tests;
