//! Picks the route for a request: the first rule of the listener whose every condition
//! holds (host, path, method, header, cookie).
//!
//! Pure: takes the parsed head and the buffer it points into, returns the route, which
//! carries its [`RouteId`](crate::config::RouteId).

use crate::config::{HostMatch, NameValue, PathMatch, Route};
use crate::http::{Authority, HeaderLine, RequestHead, cookies};

/// The parts of a request that routes look at.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub method: &'a [u8],
    /// The host the request is for, as sent (it may carry a port): the authority of an
    /// absolute-form target, else the Host value (RFC 9112 §3.2.2).
    pub host: Option<&'a [u8]>,
    pub path: &'a [u8],
    pub headers: &'a [HeaderLine],
    pub buf: &'a [u8],
}

impl<'a> RouteRequest<'a> {
    /// The routing view of a parsed request in `buf`.
    pub fn new(buf: &'a [u8], head: &RequestHead, headers: &'a [HeaderLine]) -> Self {
        Self {
            method: head.method_span.of(buf),
            host: head.effective_host().map(|host| host.of(buf)),
            path: head.path.of(buf),
            headers,
            buf,
        }
    }
}

/// The first route in `routes` that matches, or `None` (the client gets 404).
pub fn select<'a>(routes: &'a [Route], request: &RouteRequest<'_>) -> Option<&'a Route> {
    routes.iter().find(|route| matches(route, request))
}

fn matches(route: &Route, request: &RouteRequest<'_>) -> bool {
    if !route.methods.is_empty() && !route.methods.iter().any(|method| **method == *request.method)
    {
        return false;
    }
    if let Some(path) = &route.path {
        let is_match = match path {
            PathMatch::Exact(exact) => request.path == &**exact,
            PathMatch::Prefix(prefix) => request.path.starts_with(prefix),
        };
        if !is_match {
            return false;
        }
    }
    if let Some(host) = &route.host {
        let Some(name) = request.host.and_then(host_name) else { return false };
        let is_match = match host {
            HostMatch::Exact(exact) => name.eq_ignore_ascii_case(exact),
            HostMatch::Suffix(suffix) => {
                name.len() > suffix.len()
                    && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        };
        if !is_match {
            return false;
        }
    }
    if let Some(header) = &route.header {
        if !header_matches(header, request) {
            return false;
        }
    }
    if let Some(cookie) = &route.cookie {
        if !cookie_matches(cookie, request) {
            return false;
        }
    }
    true
}

/// The host name of a Host value or target authority ([`Authority`]): the port and a
/// trailing dot removed, an IPv6 literal in its brackets. `None` when it is not an authority,
/// which no host route matches.
pub fn host_name(host: &[u8]) -> Option<&[u8]> {
    let name = Authority::parse(host).ok()?.host;
    Some(name.strip_suffix(b".").unwrap_or(name))
}

fn header_matches(condition: &NameValue, request: &RouteRequest<'_>) -> bool {
    // A Host condition sees the host the request is for, as a host route does.
    if condition.name.eq_ignore_ascii_case(b"host") {
        let value = condition.value.as_deref();
        return request.host.is_some_and(|host| value.is_none_or(|value| host == value));
    }
    request.headers.iter().any(|header| {
        header.name.of(request.buf).eq_ignore_ascii_case(&condition.name)
            && condition.value.as_ref().is_none_or(|value| header.value.of(request.buf) == &**value)
    })
}

fn cookie_matches(condition: &NameValue, request: &RouteRequest<'_>) -> bool {
    cookies(request.buf, request.headers).any(|(name, value)| {
        name == &*condition.name && condition.value.as_ref().is_none_or(|want| value == &**want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RouteAction};
    use crate::http::{HeadLimits, Parsed, parse_request_head};

    const ROUTES: &str = r#"
        [[listener]]
        addr = "127.0.0.1:8080"
        [[listener.route]]
        host = "api.example.com"
        path_prefix = "/v1/"
        respond = { status = 200, body = "0" }
        [[listener.route]]
        host = "*.example.com"
        path = "/exact"
        respond = { status = 200, body = "1" }
        [[listener.route]]
        methods = ["POST", "PUT"]
        respond = { status = 200, body = "2" }
        [[listener.route]]
        header = { name = "X-Canary" }
        respond = { status = 200, body = "3" }
        [[listener.route]]
        header = { name = "x-env", value = "staging" }
        respond = { status = 200, body = "4" }
        [[listener.route]]
        cookie = { name = "beta", value = "1" }
        respond = { status = 200, body = "5" }
        [[listener.route]]
        path_prefix = "/static/"
        respond = { status = 200, body = "6" }
    "#;

    /// The id of the route `request` selects; the one listener's ids are its indexes.
    fn route_of(request: &str) -> Option<u32> {
        let config = Config::parse(ROUTES).unwrap();
        let routes = &config.listeners[0].routes;
        for route in routes {
            assert!(matches!(route.action, RouteAction::Respond(_)));
        }
        let mut headers = Vec::new();
        let buf = request.as_bytes();
        let Ok(Parsed::Complete(head)) =
            parse_request_head(buf, &HeadLimits::DEFAULT, &mut headers)
        else {
            panic!("test request must parse: {request}");
        };
        select(routes, &RouteRequest::new(buf, &head, &headers)).map(|route| route.id.0)
    }

    #[test]
    fn first_match_wins_on_every_condition() {
        let cases: [(&str, Option<u32>); 19] = [
            ("GET /v1/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n", Some(0)),
            // An absolute-form target's authority overrides Host (RFC 9112 §3.2.2).
            ("GET http://api.example.com/v1/users HTTP/1.1\r\nHost: h\r\n\r\n", Some(0)),
            ("GET http://h/v1/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n", None),
            ("GET http://www.example.com/exact?q HTTP/1.1\r\nHost: h\r\n\r\n", Some(1)),
            ("GET /v1/users HTTP/1.1\r\nHost: API.Example.com:8080\r\n\r\n", Some(0)),
            ("GET /v1/users HTTP/1.1\r\nHost: api.example.com.\r\n\r\n", Some(0)),
            // A Host that is no authority (`api.example.com:x`) never gets here: the parser
            // answers 400 (http::tests::rejects_host_values_that_are_no_authority).
            ("GET /v2/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n", None),
            ("GET /exact HTTP/1.1\r\nHost: www.example.com\r\n\r\n", Some(1)),
            ("GET /exact?q=1 HTTP/1.1\r\nHost: a.b.example.com\r\n\r\n", Some(1)),
            ("GET /exact HTTP/1.1\r\nHost: example.com\r\n\r\n", None),
            ("GET /exact/more HTTP/1.1\r\nHost: www.example.com\r\n\r\n", None),
            ("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", Some(2)),
            ("GET /x HTTP/1.1\r\nHost: h\r\nX-Canary: \r\n\r\n", Some(3)),
            ("GET /x HTTP/1.1\r\nHost: h\r\nX-ENV: staging\r\n\r\n", Some(4)),
            ("GET /x HTTP/1.1\r\nHost: h\r\nX-Env: production\r\n\r\n", None),
            ("GET /x HTTP/1.1\r\nHost: h\r\nCookie: a=2; beta=1\r\n\r\n", Some(5)),
            ("GET /x HTTP/1.1\r\nHost: h\r\nCookie: beta=10\r\n\r\n", None),
            ("GET /static/app.js HTTP/1.1\r\nHost: h\r\nCookie: beta=1\r\n\r\n", Some(5)),
            ("GET /static/app.js HTTP/1.1\r\nHost: h\r\n\r\n", Some(6)),
        ];
        for (request, expected) in cases {
            assert_eq!(route_of(request), expected, "request: {}", request.escape_debug());
        }
    }

    #[test]
    fn host_name_strips_port_and_trailing_dot() {
        let cases: [(&[u8], Option<&[u8]>); 8] = [
            (b"example.com", Some(b"example.com")),
            (b"example.com:8080", Some(b"example.com")),
            (b"example.com.", Some(b"example.com")),
            (b"[::1]:8080", Some(b"[::1]")),
            (b"[::1]", Some(b"[::1]")),
            (b"user@example.com", None),
            (b"example.com:http", None),
            (b"", None),
        ];
        for (host, name) in cases {
            assert_eq!(host_name(host), name, "host: {}", host.escape_ascii());
        }
    }
}
