//! CORS (the Fetch standard's CORS protocol) per route, pure: which origins may call, the
//! preflight answer the proxy gives itself, and the lines added to actual responses.

/// Who may call: an exact origin, any (`*`), or any subdomain (`https://*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Any,
    Exact(Box<str>),
    /// Scheme and `://`, then the parent domain with its leading dot (`.example.com`).
    Subdomains(Box<str>, Box<str>),
}

impl OriginPattern {
    pub fn parse(text: &str) -> Option<Self> {
        if text == "*" {
            return Some(Self::Any);
        }
        let (scheme, host) = text.split_once("://")?;
        let valid = |part: &str| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        };
        match host.strip_prefix('*') {
            Some(parent) if parent.starts_with('.') && valid(&parent[1..]) => {
                Some(Self::Subdomains(format!("{scheme}://").into(), parent.into()))
            }
            Some(_) => None,
            None => (valid(scheme) && valid(host)).then(|| Self::Exact(text.into())),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact.eq_ignore_ascii_case(origin),
            Self::Subdomains(scheme, parent) => {
                origin.strip_prefix(&**scheme).is_some_and(|host| {
                    host.len() > parent.len() && host.to_ascii_lowercase().ends_with(&**parent)
                })
            }
        }
    }
}

/// A route's CORS settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub origins: Vec<OriginPattern>,
    /// `GET, POST`: the preflight's Access-Control-Allow-Methods.
    pub methods: Box<str>,
    /// Lowercase names, comma-joined; empty allows none beyond the safelisted ones.
    pub headers: Box<str>,
    pub expose_headers: Box<str>,
    pub max_age_s: u64,
    pub credentials: bool,
}

impl Cors {
    /// The origin as sent, when it is allowed.
    pub fn allowed<'a>(&self, origin: Option<&'a [u8]>) -> Option<&'a str> {
        let origin = std::str::from_utf8(origin?).ok()?.trim();
        let printable = origin.bytes().all(|byte| (b'!'..=b'~').contains(&byte));
        (printable && self.origins.iter().any(|pattern| pattern.matches(origin))).then_some(origin)
    }

    /// Access-Control-Allow-Origin (and Credentials, Vary) for an allowed `origin`.
    fn origin_lines(&self, origin: &str, out: &mut Vec<u8>) {
        // `*` cannot go with credentials: the origin is echoed then, and caches told.
        let any = !self.credentials && self.origins.contains(&OriginPattern::Any);
        let value = if any { "*" } else { origin };
        out.extend_from_slice(format!("Access-Control-Allow-Origin: {value}\r\n").as_bytes());
        if self.credentials {
            out.extend_from_slice(b"Access-Control-Allow-Credentials: true\r\n");
        }
        if !any {
            out.extend_from_slice(b"Vary: Origin\r\n");
        }
    }

    /// The preflight answer's lines for an allowed `origin`.
    pub fn preflight_lines(&self, origin: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.origin_lines(origin, &mut out);
        out.extend_from_slice(
            format!("Access-Control-Allow-Methods: {}\r\n", self.methods).as_bytes(),
        );
        if !self.headers.is_empty() {
            out.extend_from_slice(
                format!("Access-Control-Allow-Headers: {}\r\n", self.headers).as_bytes(),
            );
        }
        out.extend_from_slice(format!("Access-Control-Max-Age: {}\r\n", self.max_age_s).as_bytes());
        out
    }

    /// The lines an actual response to an allowed `origin` gets.
    pub fn response_lines(&self, origin: &str, out: &mut Vec<u8>) {
        self.origin_lines(origin, out);
        if !self.expose_headers.is_empty() {
            let line = format!("Access-Control-Expose-Headers: {}\r\n", self.expose_headers);
            out.extend_from_slice(line.as_bytes());
        }
    }
}

/// Whether a request is a CORS preflight: OPTIONS with Origin and
/// Access-Control-Request-Method.
pub fn is_preflight(method: &[u8], origin: Option<&[u8]>, request_method: Option<&[u8]>) -> bool {
    method == b"OPTIONS" && origin.is_some() && request_method.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors {
            origins: origins.iter().map(|text| OriginPattern::parse(text).unwrap()).collect(),
            methods: "GET, POST".into(),
            headers: "content-type, authorization".into(),
            expose_headers: "x-request-id".into(),
            max_age_s: 600,
            credentials,
        }
    }

    #[test]
    fn origins_match_exactly_by_subdomain_or_any() {
        let rules = cors(&["https://app.test", "https://*.example.com"], false);
        let table = [
            ("https://app.test", true),
            ("https://APP.test", true),
            ("http://app.test", false),
            ("https://a.example.com", true),
            ("https://a.b.example.com", true),
            ("https://example.com", false),
            ("https://evilexample.com", false),
            ("https://app.test\r\nX: y", false),
        ];
        for (origin, allowed) in table {
            assert_eq!(rules.allowed(Some(origin.as_bytes())).is_some(), allowed, "{origin}");
        }
        assert!(rules.allowed(None).is_none());
        for bad in ["app.test", "https://*example.com", "https://", "https://a b"] {
            assert_eq!(OriginPattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn any_origin_is_a_star_unless_credentials_are_allowed() {
        let mut out = Vec::new();
        cors(&["*"], false).response_lines("https://x.test", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Access-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: x-request-id\r\n"
        );
        let lines =
            String::from_utf8(cors(&["*"], true).preflight_lines("https://x.test")).unwrap();
        assert_eq!(
            lines,
            "Access-Control-Allow-Origin: https://x.test\r\n\
             Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n\
             Access-Control-Allow-Methods: GET, POST\r\n\
             Access-Control-Allow-Headers: content-type, authorization\r\n\
             Access-Control-Max-Age: 600\r\n"
        );
    }
}
