//! Per-route request filters: an allowed-methods list (405) and deny patterns on the path and
//! on named headers (403).
//!
//! Patterns are `regex::bytes` expressions, which match in time linear in the input, so no
//! pattern or request can backtrack catastrophically; [`compile_pattern`] also caps how large
//! a compiled pattern may be, so a config cannot make one huge.

use regex::bytes::{Regex, RegexBuilder};

/// Longest deny pattern accepted, in bytes of source text.
pub const PATTERN_LEN_MAX: usize = 4096;
/// Most heap one compiled pattern may use (regex's `size_limit`; its default is 10 MiB).
pub const PATTERN_COMPILED_BYTES_MAX: usize = 1 << 20;
/// Most heap one pattern's lazy DFA cache may use, per worker (regex's default is 2 MiB).
pub const PATTERN_CACHE_BYTES_MAX: usize = 1 << 20;
/// Deepest nesting of groups and repetitions accepted (regex's default is 250).
pub const PATTERN_NEST_MAX: u32 = 64;

/// What a [`RequestFilter`] says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterVerdict {
    Allow,
    /// The method is not in the allowed list: 405 with an `Allow` header.
    MethodNotAllowed,
    /// A deny pattern matched: 403.
    Denied,
}

impl FilterVerdict {
    /// The status to answer with, or `None` when the request may pass.
    pub fn status(self) -> Option<u16> {
        match self {
            Self::Allow => None,
            Self::MethodNotAllowed => Some(405),
            Self::Denied => Some(403),
        }
    }
}

/// Per-route request filters.
///
/// Give each worker its own clone: a cloned `Regex` gets its own cache pool, so the worker that
/// first matches with it owns the cache and matching takes no lock.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    methods_allowed: Vec<Box<[u8]>>,
    deny_path: Vec<Regex>,
    /// Header names are stored lowercase.
    deny_header: Vec<(Box<[u8]>, Regex)>,
}

impl RequestFilter {
    /// `methods_allowed` empty = any method; methods compare case-sensitively (RFC 9110 §9.1),
    /// so list `HEAD` next to `GET` when both are meant. Deny rules are patterns (see
    /// [`compile_pattern`]) on the path and on named headers; header names are lowercased.
    pub fn new(
        methods_allowed: Vec<Box<[u8]>>,
        deny_path: Vec<Regex>,
        deny_header: Vec<(Box<[u8]>, Regex)>,
    ) -> Self {
        let deny_header = deny_header
            .into_iter()
            .map(|(name, pattern)| (name.to_ascii_lowercase().into_boxed_slice(), pattern))
            .collect();
        Self { methods_allowed, deny_path, deny_header }
    }

    /// Checks one request: the method first (405), then path patterns, then header patterns.
    ///
    /// `path` is whatever the caller chooses to filter on (the target's path, with or without
    /// the query); patterns see it as given, so percent-encoded bytes are not decoded here.
    /// `header` is called with each lowercase header name that has a rule and returns that
    /// header's value, if the request has one; a missing header matches no rule.
    pub fn check<'a>(
        &self,
        method: &[u8],
        path: &[u8],
        header: impl Fn(&[u8]) -> Option<&'a [u8]>,
    ) -> FilterVerdict {
        let method_allowed = self.methods_allowed.is_empty()
            || self.methods_allowed.iter().any(|allowed| **allowed == *method);
        if !method_allowed {
            return FilterVerdict::MethodNotAllowed;
        }
        if self.deny_path.iter().any(|pattern| pattern.is_match(path)) {
            return FilterVerdict::Denied;
        }
        let header_denied = self
            .deny_header
            .iter()
            .any(|(name, pattern)| header(name).is_some_and(|value| pattern.is_match(value)));
        if header_denied { FilterVerdict::Denied } else { FilterVerdict::Allow }
    }

    /// The allowed methods, for the `Allow` header of a 405; empty when any method is allowed.
    pub fn allowed_methods(&self) -> &[Box<[u8]>] {
        &self.methods_allowed
    }

    /// Whether the filter lets every request pass, so the caller can skip it.
    pub fn is_empty(&self) -> bool {
        self.methods_allowed.is_empty() && self.deny_path.is_empty() && self.deny_header.is_empty()
    }
}

/// Compiles a deny pattern within the `PATTERN_*` limits; the error reads well in a config
/// report.
pub fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > PATTERN_LEN_MAX {
        return Err(format!(
            "pattern is {} bytes long; the limit is {PATTERN_LEN_MAX}",
            pattern.len()
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(PATTERN_COMPILED_BYTES_MAX)
        .dfa_size_limit(PATTERN_CACHE_BYTES_MAX)
        .nest_limit(PATTERN_NEST_MAX)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(limit) => format!(
                "pattern compiles to more than {limit} bytes; make it smaller (large counted \
                 repetitions such as `\\w{{1000}}` are the usual cause)"
            ),
            regex::Error::Syntax(why) => format!("invalid pattern: {why}"),
            other => format!("invalid pattern: {other}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(methods: &[&str], paths: &[&str], headers: &[(&str, &str)]) -> RequestFilter {
        RequestFilter::new(
            methods.iter().map(|method| method.as_bytes().into()).collect(),
            paths.iter().map(|pattern| compile_pattern(pattern).unwrap()).collect(),
            headers
                .iter()
                .map(|(name, pattern)| (name.as_bytes().into(), compile_pattern(pattern).unwrap()))
                .collect(),
        )
    }

    /// One filter case: method, path, headers, expected verdict.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], FilterVerdict);

    /// Headers of a test request, looked up case-insensitively as the caller would.
    fn lookup<'a>(headers: &'a [(&'a str, &'a str)]) -> impl Fn(&[u8]) -> Option<&'a [u8]> {
        move |name| {
            headers
                .iter()
                .find(|(key, _)| key.as_bytes().eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_bytes())
        }
    }

    #[test]
    fn filter_table() {
        use FilterVerdict::{Allow, Denied, MethodNotAllowed};
        let rules = filter(
            &["GET", "HEAD", "POST"],
            &[r"^/admin(/|$)", r"\.\./", r"(?i)\.php$"],
            &[("User-Agent", r"(?i)sqlmap|nikto"), ("x-debug", r"^1$")],
        );
        let cases: [Case<'_>; 14] = [
            ("GET", "/", &[], Allow),
            ("HEAD", "/index.html", &[("user-agent", "curl/8")], Allow),
            ("DELETE", "/", &[], MethodNotAllowed),
            ("get", "/", &[], MethodNotAllowed),
            // The method is checked first: a bad method on a denied path is a 405.
            ("PUT", "/admin", &[], MethodNotAllowed),
            ("GET", "/admin", &[], Denied),
            ("GET", "/admin/users", &[], Denied),
            ("GET", "/administrator", &[], Allow),
            ("GET", "/a/../etc/passwd", &[], Denied),
            ("POST", "/x/INDEX.PHP", &[], Denied),
            ("GET", "/", &[("User-Agent", "Mozilla/5.0 SQLMap/1.7")], Denied),
            ("GET", "/", &[("X-Debug", "1")], Denied),
            ("GET", "/", &[("X-Debug", "10")], Allow),
            ("GET", "/", &[("X-Other", "sqlmap")], Allow),
        ];
        for (method, path, headers, expected) in cases {
            let verdict = rules.check(method.as_bytes(), path.as_bytes(), lookup(headers));
            assert_eq!(verdict, expected, "{method} {path} {headers:?}");
        }
        let names: Vec<&[u8]> = rules.allowed_methods().iter().map(|m| &m[..]).collect();
        assert_eq!(names, [&b"GET"[..], b"HEAD", b"POST"]);
        assert_eq!(MethodNotAllowed.status(), Some(405));
        assert_eq!(Denied.status(), Some(403));
        assert_eq!(Allow.status(), None);
    }

    #[test]
    fn empty_filter_allows_everything() {
        let rules = RequestFilter::default();
        assert!(rules.is_empty());
        let verdict = rules.check(b"BREW", b"/\xff\x00", |_| Some(&b"anything"[..]));
        assert_eq!(verdict, FilterVerdict::Allow);
        assert!(rules.allowed_methods().is_empty());
        let path_only = filter(&[], &["^/private"], &[]);
        assert!(!path_only.is_empty());
        assert_eq!(path_only.check(b"PATCH", b"/public", |_| None), FilterVerdict::Allow);
        assert_eq!(path_only.check(b"PATCH", b"/private", |_| None), FilterVerdict::Denied);
    }

    #[test]
    fn patterns_match_raw_bytes() {
        // Paths are bytes, not UTF-8: a pattern can still match around invalid bytes.
        let rules = filter(&[], &[r"(?-u)\xff", "%2e%2e"], &[]);
        assert_eq!(rules.check(b"GET", b"/a\xffb", |_| None), FilterVerdict::Denied);
        assert_eq!(rules.check(b"GET", b"/%2e%2e/x", |_| None), FilterVerdict::Denied);
        assert_eq!(rules.check(b"GET", b"/\xfe", |_| None), FilterVerdict::Allow);
    }

    #[test]
    fn compile_pattern_rejects_huge_and_invalid_patterns() {
        let cases = [
            (r"\w{1000}", "compiles to more than 1048576 bytes"),
            (r"(\w{100}){100}", "compiles to more than"),
            ("(unclosed", "invalid pattern"),
            ("a{2,1}", "invalid pattern"),
            (r"\p{NotAClass}", "invalid pattern"),
        ];
        for (pattern, text) in cases {
            let why = compile_pattern(pattern).unwrap_err();
            assert!(why.contains(text), "{pattern}: {why}");
        }
        let nested = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(compile_pattern(&nested).unwrap_err().contains("invalid pattern"));
        let long = "a".repeat(PATTERN_LEN_MAX + 1);
        assert_eq!(
            compile_pattern(&long).unwrap_err(),
            "pattern is 4097 bytes long; the limit is 4096"
        );
        // Within the limits: a realistic pattern and one at the length limit compile.
        assert!(compile_pattern(r"(?i)^/(wp-admin|phpmyadmin|\.git)(/|$)").is_ok());
        assert!(compile_pattern(&"a".repeat(PATTERN_LEN_MAX)).is_ok());
    }

    #[test]
    fn matching_is_linear_on_a_classic_redos_pattern() {
        // (a+)+$ backtracks exponentially in a backtracking engine; here it is one pass.
        let rules = filter(&[], &["^(a+)+$"], &[]);
        let mut path = vec![b'a'; 100_000];
        path.push(b'!');
        let started = std::time::Instant::now();
        assert_eq!(rules.check(b"GET", &path, |_| None), FilterVerdict::Allow);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
