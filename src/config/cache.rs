//! The response cache's settings: the top-level `[cache]` table (the store's size, per
//! worker) and a route's `cache = { ... }` table (what is stored, under which key, for how
//! long past its freshness). A route without the table, or with `enabled = false`, caches
//! nothing.

use super::ConfigError;
use super::bounds::{Bounds, ranged, to_usize};
use super::file::{FileCache, FileRouteCache};
use std::time::Duration;

/// Bytes of stored responses per worker, when `[cache] memory_bytes` is not set.
pub(super) const MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// The largest response a route stores, when it does not say: larger ones stream through.
pub(super) const OBJECT_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// How long a request waits for another's fetch of the same key before it goes itself.
pub(super) const COALESCE_TIMEOUT_MS: u64 = 5_000;
/// The longest stale window or default TTL: one year, RFC 9111's "at most one year"
/// for heuristics, taken as the bound for every configured lifetime.
const LIFETIME_MS_MAX: u64 = 365 * 86_400_000;

/// The whole proxy's cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes of stored responses, heads and keys per worker; the store never holds more.
    pub memory_bytes: u64,
}

/// A route's cache table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCache {
    /// Freshness for a storable response that carries none (`default_ttl_ms`); `None`
    /// (the default) stores only what the origin marks fresh or gives a validator.
    pub default_ttl: Option<Duration>,
    /// Larger bodies stream through and are not stored.
    pub object_bytes_max: usize,
    /// The key's query parameters are sorted by name, so `?a=1&b=2` and `?b=2&a=1` meet.
    pub query_sorted: bool,
    /// Query parameters left out of the key (tracking tags), exact names.
    pub query_ignored: Vec<Box<[u8]>>,
    /// Request headers whose values join the key, lowercase names.
    pub key_headers: Vec<Box<[u8]>>,
    /// A client's `Cache-Control: no-cache` (or `Pragma: no-cache`) makes the cache
    /// revalidate; off, the cache answers from a fresh entry anyway, as nginx does.
    pub honor_no_cache: bool,
    /// How long past freshness a stale entry is served while it is refreshed in the
    /// background, when the origin did not say (`stale-while-revalidate`, RFC 5861).
    pub stale_while_revalidate: Duration,
    /// How long past freshness a stale entry is served when the origin fails or answers
    /// 5xx, when the origin did not say (`stale-if-error`, RFC 5861).
    pub stale_if_error: Duration,
    /// HEAD requests are answered from a stored GET.
    pub head: bool,
    /// Responses with `Set-Cookie` are stored (without it); off by default.
    pub store_set_cookie: bool,
    /// How long a request waits for another's fetch of the same key.
    pub coalesce_timeout: Duration,
}

/// Validates `[cache]`.
pub(super) fn validate_cache(file: &FileCache, errors: &mut Vec<ConfigError>) -> CacheConfig {
    let bounds = Bounds { default: MEMORY_BYTES, min: 0, max: 1 << 40 };
    CacheConfig { memory_bytes: ranged("cache.memory_bytes", file.memory_bytes, bounds, errors) }
}

/// Validates the `cache` table of the route at `route`; `None` when absent or disabled.
pub(super) fn validate_route_cache(
    route: &str,
    file: Option<&FileRouteCache>,
    errors: &mut Vec<ConfigError>,
) -> Option<Box<RouteCache>> {
    let file = file?;
    let at = format!("{route}.cache");
    let lifetime = |key: &str, value: Option<u64>, errors: &mut Vec<ConfigError>| {
        let bounds = Bounds { default: 0, min: 0, max: LIFETIME_MS_MAX };
        Duration::from_millis(ranged(&format!("{at}.{key}"), value, bounds, errors))
    };
    let default_ttl = lifetime("default_ttl_ms", file.default_ttl_ms, errors);
    let object_bounds = Bounds { default: OBJECT_BYTES_MAX, min: 0, max: 1 << 34 };
    let object_bytes_max =
        ranged(&format!("{at}.object_bytes_max"), file.object_bytes_max, object_bounds, errors);
    let head = methods(&at, file.methods.as_deref(), errors);
    let coalesce_bounds = Bounds { default: COALESCE_TIMEOUT_MS, min: 0, max: 600_000 };
    let coalesce_ms = ranged(
        &format!("{at}.coalesce_timeout_ms"),
        file.coalesce_timeout_ms,
        coalesce_bounds,
        errors,
    );
    let cache = RouteCache {
        default_ttl: (!default_ttl.is_zero()).then_some(default_ttl),
        object_bytes_max: to_usize(object_bytes_max),
        query_sorted: file.query_sorted.unwrap_or(false),
        query_ignored: names(
            &format!("{at}.query_ignore"),
            file.query_ignore.as_deref(),
            false,
            errors,
        ),
        key_headers: names(&format!("{at}.key_headers"), file.key_headers.as_deref(), true, errors),
        honor_no_cache: file.honor_no_cache.unwrap_or(true),
        stale_while_revalidate: lifetime(
            "stale_while_revalidate_ms",
            file.stale_while_revalidate_ms,
            errors,
        ),
        stale_if_error: lifetime("stale_if_error_ms", file.stale_if_error_ms, errors),
        head,
        store_set_cookie: file.store_set_cookie.unwrap_or(false),
        coalesce_timeout: Duration::from_millis(coalesce_ms),
    };
    file.enabled.unwrap_or(true).then(|| Box::new(cache))
}

/// The `methods` list: GET is always there; true when HEAD is too (the default).
fn methods(at: &str, methods: Option<&[String]>, errors: &mut Vec<ConfigError>) -> bool {
    let Some(methods) = methods else { return true };
    let mut head = false;
    for (index, method) in methods.iter().enumerate() {
        match method.as_str() {
            "GET" => {}
            "HEAD" => head = true,
            other => {
                let reason = format!("{other:?} cannot be cached; list \"GET\" and \"HEAD\"");
                errors.push(ConfigError::invalid(format!("{at}.methods[{index}]"), reason));
            }
        }
    }
    if !methods.iter().any(|method| method == "GET") {
        let reason = "the cache stores GET responses; list \"GET\" (and \"HEAD\")";
        errors.push(ConfigError::invalid(format!("{at}.methods"), reason));
    }
    head
}

/// A list of header or query parameter names: tokens, lowercase when `lower`.
fn names(
    at: &str,
    names: Option<&[String]>,
    lower: bool,
    errors: &mut Vec<ConfigError>,
) -> Vec<Box<[u8]>> {
    let Some(names) = names else { return Vec::new() };
    let mut out = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~[]".contains(&byte));
        if !token {
            let reason = format!("{name:?} is not a name; write a token like \"X-Tenant\"");
            errors.push(ConfigError::invalid(format!("{at}[{index}]"), reason));
        }
        let name = if lower { name.to_ascii_lowercase() } else { name.clone() };
        out.push(name.into_bytes().into());
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn route(cache: &str) -> String {
        format!(
            "[[listener]]\naddr = \"127.0.0.1:8080\"\n[[listener.route]]\ncluster = \"api\"\n\
             cache = {cache}\n[cluster.api]\nbackends = [\"127.0.0.1:9000\"]\n"
        )
    }

    #[test]
    fn defaults_store_only_what_the_origin_marks() {
        let config = Config::parse(&route("{}")).expect("valid");
        let cache = config.listeners[0].routes[0].cache.as_deref().expect("on");
        assert_eq!(cache.default_ttl, None);
        assert_eq!(cache.object_bytes_max, 8 << 20);
        assert!(cache.head && cache.honor_no_cache && !cache.store_set_cookie);
        assert_eq!(config.cache.memory_bytes, 64 << 20);
        let off = Config::parse(&route("{ enabled = false }")).expect("valid");
        assert!(off.listeners[0].routes[0].cache.is_none());
    }

    #[test]
    fn bad_keys_are_named() {
        let text = route(
            "{ methods = [\"POST\"], key_headers = [\"a b\"], stale_if_error_ms = 99999999999999 }",
        );
        let error = Config::parse(&text).expect_err("invalid").to_string();
        let at = "listener[0].route[0].cache";
        assert!(error.contains(&format!("{at}.methods[0]")), "{error}");
        assert!(error.contains(&format!("{at}.methods:")), "{error}");
        assert!(error.contains(&format!("{at}.key_headers[0]")), "{error}");
        assert!(error.contains(&format!("{at}.stale_if_error_ms")), "{error}");
    }
}
