//! Where a forward-proxy request goes (pure): the host and port of an absolute-form
//! target (`http://host:port/path`, port 80 by default) or of CONNECT's `host:port`.
//!
//! The head parser already refused targets in no form at all (no host, userinfo, a bad
//! port, an unbracketed IPv6 literal, a scheme other than http and https); what is left
//! here is what a forward proxy adds: it needs an authority, and it speaks plain http.

use crate::http::{Authority, Method, RequestHead};
use std::net::IpAddr;

/// A request's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardTarget<'a> {
    /// The host as written: a name, an IPv4 address or a bracketed IPv6 one.
    pub host: &'a [u8],
    pub port: u16,
    /// The host, when it is an IP literal: nothing to resolve.
    pub ip: Option<IpAddr>,
    /// A CONNECT tunnel, not an HTTP request.
    pub tunnel: bool,
}

/// Why a request has no forward target: 400, with the reason as the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("a forward proxy takes absolute-form targets (http://host/path) or CONNECT")]
    OriginForm,
    #[error("https:// targets go through CONNECT")]
    Https,
    #[error("the target names no valid host and port")]
    Authority,
    #[error("port 0 is no port")]
    PortZero,
}

impl<'a> ForwardTarget<'a> {
    /// The target of `head`, whose spans index `buf`.
    pub fn of(head: &RequestHead, buf: &'a [u8]) -> Result<Self, TargetError> {
        let tunnel = head.method == Method::Connect;
        let (authority, default_port) = if tunnel {
            (head.target.of(buf), None)
        } else {
            let authority = head.authority.ok_or(TargetError::OriginForm)?;
            let target = head.target.of(buf);
            if !target.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"http://")) {
                return Err(TargetError::Https);
            }
            (authority.of(buf), Some(80))
        };
        let parsed = Authority::parse(authority).map_err(|_| TargetError::Authority)?;
        let port = parsed.port.or(default_port).ok_or(TargetError::Authority)?;
        if port == 0 {
            return Err(TargetError::PortZero);
        }
        let host = parsed.host;
        let literal = host.strip_prefix(b"[").and_then(|host| host.strip_suffix(b"]"));
        let ip =
            std::str::from_utf8(literal.unwrap_or(host)).ok().and_then(|text| text.parse().ok());
        Ok(Self { host, port, ip, tunnel })
    }

    /// The host as a name for the resolver: lowercase, no trailing dot. `None` for an IP.
    pub fn name(&self) -> Option<String> {
        if self.ip.is_some() {
            return None;
        }
        let host = self.host.strip_suffix(b".").unwrap_or(self.host);
        std::str::from_utf8(host).ok().map(str::to_ascii_lowercase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadLimits, Parsed, parse_request_head};

    fn target(request: &str) -> Result<(String, u16, bool, bool), TargetError> {
        let mut lines = Vec::new();
        let Ok(Parsed::Complete(head)) =
            parse_request_head(request.as_bytes(), &HeadLimits::default(), &mut lines)
        else {
            panic!("{request:?} does not parse");
        };
        let target = ForwardTarget::of(&head, request.as_bytes())?;
        let host = String::from_utf8(target.host.to_vec()).unwrap();
        Ok((host, target.port, target.ip.is_some(), target.tunnel))
    }

    #[test]
    fn absolute_form_and_connect_name_host_and_port() {
        let get = target("GET http://Example.test/a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(get, Ok(("Example.test".into(), 80, false, false)));
        let port = target("GET http://127.0.0.1:8080 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(port, Ok(("127.0.0.1".into(), 8080, true, false)));
        let v6 = target("GET http://[::1]:81/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(v6, Ok(("[::1]".into(), 81, true, false)));
        let connect = target("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n");
        assert_eq!(connect, Ok(("origin.test".into(), 443, false, true)));
    }

    #[test]
    fn targets_a_forward_proxy_cannot_take_say_why() {
        let origin = target("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(origin, Err(TargetError::OriginForm));
        let https = target("GET https://x.test/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(https, Err(TargetError::Https));
        let zero = target("GET http://x.test:0/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(zero, Err(TargetError::PortZero));
    }
}
