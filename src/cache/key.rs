//! Cache keys: the primary key of a request (RFC 9111 §4: scheme, authority, path and
//! query, shaped by the route's key rules, plus configured request headers), and the
//! secondary key a `Vary` response adds (§4.1). Keys are the bytes the store hashes.

use crate::config::RouteCache;

/// A secondary key: each `Vary` field's name (lowercase) and the request's normalized
/// value, `None` when the request had none.
pub type VaryKey = Box<[(Box<[u8]>, Option<Box<[u8]>>)]>;

/// The URI part of a key.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    pub https: bool,
    /// The host (and port) the request is for; lowercased into the key.
    pub authority: &'a [u8],
    /// The path and query, `/a/b?c=d`.
    pub origin: &'a [u8],
}

/// Writes the primary key of a request into `key`: `scheme://authority/path?query`, then
/// a NUL and the value of each key header. `header` finds a request header's value.
pub fn primary_key<'h>(
    parts: KeyParts<'_>,
    rules: &RouteCache,
    header: impl Fn(&[u8]) -> Option<&'h [u8]>,
    key: &mut Vec<u8>,
) {
    uri_key(parts, rules, key);
    for name in &rules.key_headers {
        key.push(0);
        key.extend_from_slice(header(name).unwrap_or_default());
    }
}

/// The URI part of a primary key: what purges by prefix and invalidations match.
pub fn uri_key(parts: KeyParts<'_>, rules: &RouteCache, key: &mut Vec<u8>) {
    key.extend_from_slice(if parts.https { b"https://" } else { b"http://" });
    key.extend(parts.authority.iter().map(u8::to_ascii_lowercase));
    let (path, query) = match parts.origin.iter().position(|&byte| byte == b'?') {
        Some(at) => (&parts.origin[..at], Some(&parts.origin[at + 1..])),
        None => (parts.origin, None),
    };
    key.extend_from_slice(if path.is_empty() { b"/" } else { path });
    let Some(query) = query else { return };
    if rules.query_ignored.is_empty() && !rules.query_sorted {
        key.push(b'?');
        key.extend_from_slice(query);
        return;
    }
    let kept = |pair: &&[u8]| {
        let name = pair.split(|&byte| byte == b'=').next().unwrap_or_default();
        !pair.is_empty() && !rules.query_ignored.iter().any(|ignored| &ignored[..] == name)
    };
    // Parameters are few: a stack of slices, sorted when asked, joined again.
    let mut pairs: Vec<&[u8]> = query.split(|&byte| byte == b'&').filter(kept).collect();
    if rules.query_sorted {
        pairs.sort_unstable();
    }
    for (index, pair) in pairs.iter().enumerate() {
        key.push(if index == 0 { b'?' } else { b'&' });
        key.extend_from_slice(pair);
    }
}

/// A request's values of the `Vary` fields `names` (lowercase): the secondary key an entry
/// keeps. `request` yields the request's `(name, value)` lines.
pub fn vary_values<'v>(
    names: &[Box<[u8]>],
    request: impl Iterator<Item = (&'v [u8], &'v [u8])> + Clone,
) -> VaryKey {
    names.iter().map(|name| (name.clone(), normalized(field(request.clone(), name)))).collect()
}

/// True when a request's values match an entry's secondary key (RFC 9111 §4.1).
pub fn vary_matches<'v>(
    stored: &VaryKey,
    request: impl Iterator<Item = (&'v [u8], &'v [u8])> + Clone,
) -> bool {
    stored.iter().all(|(name, value)| {
        normalized(field(request.clone(), name)).as_deref() == value.as_deref()
    })
}

/// The values of the field `name` among `lines`.
fn field<'v>(
    lines: impl Iterator<Item = (&'v [u8], &'v [u8])>,
    name: &[u8],
) -> impl Iterator<Item = &'v [u8]> {
    lines.filter(move |(field, _)| field.eq_ignore_ascii_case(name)).map(|(_, value)| value)
}

/// The `Vary` field names of a head's values, lowercase, `*` left out (a `Vary: *`
/// response is never stored).
pub fn vary_names<'v>(values: impl Iterator<Item = &'v [u8]>) -> Vec<Box<[u8]>> {
    let mut names: Vec<Box<[u8]>> = Vec::new();
    for value in values {
        for name in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
            if !name.is_empty()
                && name != b"*"
                && !names.iter().any(|known| known.eq_ignore_ascii_case(name))
            {
                names.push(name.to_ascii_lowercase().into());
            }
        }
    }
    names
}

/// A field's values joined with commas, without whitespace: `gzip, br` and `gzip,br`
/// select the same response (RFC 9111 §4.1 allows normalizing). `None` when absent.
fn normalized<'v>(values: impl Iterator<Item = &'v [u8]>) -> Option<Box<[u8]>> {
    let mut joined: Option<Vec<u8>> = None;
    for value in values {
        let out = joined.get_or_insert_with(Vec::new);
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend(value.iter().copied().filter(|byte| !matches!(byte, b' ' | b'\t')));
    }
    joined.map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RouteCache {
        RouteCache {
            default_ttl: None,
            object_bytes_max: 1 << 20,
            query_sorted: false,
            query_ignored: Vec::new(),
            key_headers: Vec::new(),
            honor_no_cache: true,
            stale_while_revalidate: std::time::Duration::ZERO,
            stale_if_error: std::time::Duration::ZERO,
            head: true,
            store_set_cookie: false,
            coalesce_timeout: std::time::Duration::from_secs(5),
        }
    }

    fn key(origin: &str, rules: &RouteCache, tenant: Option<&'static [u8]>) -> String {
        let parts =
            KeyParts { https: false, authority: b"Example.COM:8080", origin: origin.as_bytes() };
        let mut key = Vec::new();
        primary_key(parts, rules, |_| tenant, &mut key);
        String::from_utf8(key).expect("ascii")
    }

    #[test]
    fn rfc9111_4_the_key_is_scheme_authority_path_and_query() {
        assert_eq!(key("/a?b=1", &rules(), None), "http://example.com:8080/a?b=1");
        assert_eq!(key("", &rules(), None), "http://example.com:8080/");
    }

    #[test]
    fn key_rules_sort_and_ignore_query_parameters() {
        let rules = RouteCache {
            query_sorted: true,
            query_ignored: vec![b"utm_source".as_slice().into()],
            ..rules()
        };
        assert_eq!(
            key("/a?z=1&utm_source=x&a=2&", &rules, None),
            "http://example.com:8080/a?a=2&z=1"
        );
        assert_eq!(key("/a?utm_source=x", &rules, None), "http://example.com:8080/a");
    }

    #[test]
    fn key_headers_join_the_key() {
        let rules = RouteCache { key_headers: vec![b"x-tenant".as_slice().into()], ..rules() };
        assert_ne!(key("/", &rules, Some(b"a")), key("/", &rules, Some(b"b")));
        assert_eq!(key("/", &rules, Some(b"a")), "http://example.com:8080/\0a");
    }

    #[test]
    fn rfc9111_4_1_vary_matches_normalized_values() {
        let names =
            vary_names([b"Accept-Encoding, X-Custom".as_slice(), b"accept-encoding"].into_iter());
        assert_eq!(names.len(), 2);
        let request = [(b"Accept-Encoding".as_slice(), b"gzip, br".as_slice())];
        let stored = vary_values(&names, request.iter().copied());
        let same = [(b"accept-encoding".as_slice(), b"gzip,br".as_slice())];
        assert!(vary_matches(&stored, same.iter().copied()));
        let other = [(b"accept-encoding".as_slice(), b"gzip".as_slice())];
        assert!(!vary_matches(&stored, other.iter().copied()));
        let with_custom = [same[0], (b"x-custom".as_slice(), b"1".as_slice())];
        assert!(!vary_matches(&stored, with_custom.iter().copied()));
    }
}
