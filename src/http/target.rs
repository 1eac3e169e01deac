//! The form of a request target (RFC 9112 §3.2), checked against the method: origin-form
//! (`/a?q`), absolute-form with an `http` or `https` scheme (`http://host/a?q`),
//! authority-form for CONNECT only (`host:443`), asterisk-form for OPTIONS only (`*`).
//!
//! Pure: takes the target's span in a head's buffer, hands back spans of its parts. The
//! bytes themselves were already checked by httparse (visible ASCII, no space).

use super::{Authority, MalformedKind, Method, Span};

#[cfg(test)]
mod tests;

/// The parts of a request target, as spans of the buffer it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TargetParts {
    /// The authority (`host[:port]`) of an absolute-form target, which names the host in
    /// place of the Host header (RFC 9112 §3.2.2). `None` for the other forms.
    pub(super) authority: Option<Span>,
    /// What follows the authority of an absolute-form target: the path and query, which
    /// may be empty or start with `?` when the path is empty. The whole target otherwise.
    pub(super) origin: Span,
    /// The path up to any `?`. For an absolute-form target with an empty path, the `/`
    /// that ends its `//`, so the path reads as `/`. The whole target for `*` and CONNECT.
    pub(super) path: Span,
}

/// Splits the target at `target` in `buf` into its parts, or says why no form fits.
pub(super) fn parse_target(
    buf: &[u8],
    target: Span,
    method: Method,
) -> Result<TargetParts, MalformedKind> {
    let bytes = target.of(buf);
    let whole = TargetParts { authority: None, origin: target, path: target };
    if method == Method::Connect {
        // RFC 9110 §9.3.6: CONNECT names host and port, and nothing else.
        return if is_authority(bytes, true) { Ok(whole) } else { Err(MalformedKind::TargetForm) };
    }
    match bytes.first() {
        Some(b'/') => Ok(TargetParts { path: path_of(buf, target), ..whole }),
        Some(b'*') if bytes.len() == 1 => {
            if method == Method::Options {
                Ok(whole)
            } else {
                Err(MalformedKind::AsteriskForm)
            }
        }
        Some(_) | None => parse_absolute(buf, target),
    }
}

/// An absolute-form target: `http://` or `https://` (any case), a non-empty authority
/// without userinfo, then the path and query.
fn parse_absolute(buf: &[u8], target: Span) -> Result<TargetParts, MalformedKind> {
    let bytes = target.of(buf);
    let colon = scheme_len(bytes).ok_or(MalformedKind::TargetForm)?;
    let scheme = &bytes[..colon];
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return Err(MalformedKind::TargetScheme);
    }
    // RFC 9110 §4.2.1: an http(s) URI without a host is invalid, so `//` must follow.
    let after_scheme = &bytes[colon + 1..];
    if !after_scheme.starts_with(b"//") {
        return Err(MalformedKind::TargetForm);
    }
    let authority_start = colon + 3;
    let rest = &bytes[authority_start..];
    let authority_len =
        rest.iter().position(|&byte| matches!(byte, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    // RFC 9110 §4.2.4: userinfo (`user@host`) in an http(s) URI is treated as an error,
    // and `Authority` refuses it.
    if !is_authority(&rest[..authority_len], false) {
        return Err(MalformedKind::TargetForm);
    }
    let authority_end = authority_start + authority_len;
    let origin = part(target, authority_end, bytes.len());
    let path = if rest.get(authority_len) == Some(&b'/') {
        path_of(buf, origin)
    } else {
        part(target, authority_start - 1, authority_start)
    };
    let authority = part(target, authority_start, authority_end);
    Ok(TargetParts { authority: Some(authority), origin, path })
}

/// The length of the scheme at the start of `bytes` when a `:` follows it (RFC 3986 §3.1:
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn scheme_len(bytes: &[u8]) -> Option<usize> {
    let colon = bytes.iter().position(|&byte| byte == b':')?;
    let scheme = &bytes[..colon];
    let is_scheme_byte = |byte: &u8| byte.is_ascii_alphanumeric() || b"+-.".contains(byte);
    let valid =
        scheme.first().is_some_and(u8::is_ascii_alphabetic) && scheme.iter().all(is_scheme_byte);
    valid.then_some(colon)
}

/// Whether `bytes` is an authority ([`Authority::parse`]); `port_required` for CONNECT's
/// authority-form, which must name a port.
fn is_authority(bytes: &[u8], port_required: bool) -> bool {
    Authority::parse(bytes).is_ok_and(|authority| !port_required || authority.port.is_some())
}

/// `span` up to its first `?`, or all of it.
fn path_of(buf: &[u8], span: Span) -> Span {
    let len = span.of(buf).iter().position(|&byte| byte == b'?').unwrap_or(span.len());
    part(span, 0, len)
}

/// Bytes `start..end` of `span`.
#[expect(clippy::cast_possible_truncation, reason = "targets are at most uri_bytes_max: u32")]
fn part(span: Span, start: usize, end: usize) -> Span {
    debug_assert!(start <= end && end <= span.len(), "a part lies within its span");
    Span { start: span.start + start as u32, end: span.start + end as u32 }
}
