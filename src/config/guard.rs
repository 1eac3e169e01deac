//! Validates the edge-protection keys: IP allow and deny lists, trusted proxies, request
//! filters and rate limits, each problem with its key.

use super::file::{FileHeaderPattern, FileRateLimit};
use super::{ConfigError, GlobalRate, RateKey, RateLimitConfig};
use crate::limit::{Acl, IpList, RateLimit, RequestFilter, compile_pattern};
use std::net::SocketAddr;

/// Default and bound of `rate_limit.keys_max`.
const RATE_KEYS_MAX: u64 = 100_000;
const RATE_KEYS_CEILING: u64 = 10_000_000;

/// An address list at `at`, or an empty one after reporting the bad entry.
pub(super) fn ip_list(
    at: &str,
    entries: Option<&Vec<String>>,
    errors: &mut Vec<ConfigError>,
) -> IpList {
    let entries = entries.map_or(&[][..], Vec::as_slice);
    IpList::parse(entries).unwrap_or_else(|(index, reason)| {
        errors.push(ConfigError::invalid(format!("{at}[{index}]"), reason));
        IpList::default()
    })
}

/// `allow` and `deny` at `at`, or `None` when both are absent.
pub(super) fn acl(
    at: &str,
    allow: Option<&Vec<String>>,
    deny: Option<&Vec<String>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Acl> {
    if allow.is_none() && deny.is_none() {
        return None;
    }
    Some(Acl {
        allow: ip_list(&format!("{at}.allow"), allow, errors),
        deny: ip_list(&format!("{at}.deny"), deny, errors),
    })
}

/// A route's request filter, or `None` when it has no filter keys.
pub(super) fn filter(
    at: &str,
    methods_allowed: Option<&Vec<String>>,
    deny_path: Option<&Vec<String>>,
    deny_header: Option<&Vec<FileHeaderPattern>>,
    errors: &mut Vec<ConfigError>,
) -> Option<RequestFilter> {
    if methods_allowed.is_none() && deny_path.is_none() && deny_header.is_none() {
        return None;
    }
    let methods: Vec<Box<[u8]>> = methods_allowed
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .enumerate()
        .filter_map(|(index, method)| {
            let valid = !method.is_empty() && method.bytes().all(|byte| byte.is_ascii_uppercase());
            if !valid {
                let reason =
                    format!("{method:?} is not a method; write it in capitals, like \"GET\"");
                errors.push(ConfigError::invalid(format!("{at}.methods_allowed[{index}]"), reason));
            }
            valid.then(|| method.as_bytes().into())
        })
        .collect();
    let paths = deny_path
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .enumerate()
        .filter_map(|(index, pattern)| {
            compile_pattern(pattern)
                .map_err(|reason| {
                    errors.push(ConfigError::invalid(format!("{at}.deny_path[{index}]"), reason));
                })
                .ok()
        })
        .collect();
    let headers = deny_header
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| {
            let key = format!("{at}.deny_header[{index}]");
            if rule.name.is_empty()
                || !rule.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                errors.push(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("{:?} is not a header name", rule.name),
                ));
                return None;
            }
            match compile_pattern(&rule.pattern) {
                Ok(regex) => Some((rule.name.as_bytes().into(), regex)),
                Err(reason) => {
                    errors.push(ConfigError::invalid(format!("{key}.pattern"), reason));
                    None
                }
            }
        })
        .collect();
    Some(RequestFilter::new(methods, paths, headers))
}

/// A rate limit at `at`.
pub(super) fn rate_limit(
    at: &str,
    file: Option<&FileRateLimit>,
    errors: &mut Vec<ConfigError>,
) -> Option<RateLimitConfig> {
    let file = file?;
    if !(file.rate.is_finite() && file.rate > 0.0 && file.rate <= 1e9) {
        errors.push(ConfigError::invalid(
            format!("{at}.rate"),
            format!(
                "{} is not a rate; use more than 0 and at most 1e9 requests a second",
                file.rate
            ),
        ));
    }
    let burst = file.burst.unwrap_or_else(|| default_burst(file.rate));
    if !(1..=u64::from(u32::MAX)).contains(&burst) {
        errors.push(ConfigError::OutOfRange {
            at: format!("{at}.burst"),
            value: i128::from(burst),
            min: 1,
            max: u64::from(u32::MAX),
        });
    }
    let key = file.key.as_deref().map_or(Some(RateKey::ClientIp), RateKey::from_name);
    let key = key.unwrap_or_else(|| {
        let reason = format!("use {}", RateKey::FORMS);
        errors.push(ConfigError::invalid(format!("{at}.key"), reason));
        RateKey::ClientIp
    });
    let keys_max = file.keys_max.unwrap_or(RATE_KEYS_MAX);
    if !(1..=RATE_KEYS_CEILING).contains(&keys_max) {
        errors.push(ConfigError::OutOfRange {
            at: format!("{at}.keys_max"),
            value: i128::from(keys_max),
            min: 1,
            max: RATE_KEYS_CEILING,
        });
    }
    let global = global_rate(at, file, errors);
    Some(RateLimitConfig {
        global,
        limit: RateLimit {
            rate_per_second: file.rate,
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
        },
        key,
        keys_max: usize::try_from(keys_max.clamp(1, RATE_KEYS_CEILING)).unwrap_or(usize::MAX),
    })
}

/// The Redis side of a rate limit at `at`: `Some` for `scope = "global"`.
fn global_rate(
    at: &str,
    file: &FileRateLimit,
    errors: &mut Vec<ConfigError>,
) -> Option<GlobalRate> {
    let is_global = match file.scope.as_deref() {
        None | Some("local") => false,
        Some("global") => true,
        Some(other) => {
            let reason = format!("{other:?} is not a scope; use \"local\" or \"global\"");
            errors.push(ConfigError::invalid(format!("{at}.scope"), reason));
            return None;
        }
    };
    let redis = match (&file.redis, is_global) {
        (None, false) => return None,
        (Some(_), false) => {
            let reason = "only a limit with scope = \"global\" uses Redis".to_string();
            errors.push(ConfigError::invalid(format!("{at}.redis"), reason));
            return None;
        }
        (None, true) => {
            let reason = "a global limit needs the Redis server's IP:PORT".to_string();
            errors.push(ConfigError::invalid(format!("{at}.redis"), reason));
            return None;
        }
        (Some(redis), true) => redis,
    };
    // An address, not a name: resolving here would be I/O, and a name that resolves to
    // several servers would split the usage between them.
    match redis.parse::<SocketAddr>() {
        Ok(redis) => Some(GlobalRate { redis, name: at.to_string() }),
        Err(_) => {
            let reason = format!("{redis:?} is not IP:PORT (a Redis or Valkey server)");
            errors.push(ConfigError::invalid(format!("{at}.redis"), reason));
            None
        }
    }
}

/// One second's worth of requests, at least 1: the burst when none is set.
#[expect(clippy::cast_possible_truncation, reason = "clamped to 1..=1e9 before the cast")]
fn default_burst(rate: f64) -> u64 {
    if rate.is_finite() { rate.ceil().clamp(1.0, 1e9) as u64 } else { 1 }
}
