//! `host [":" port]` (RFC 3986 §3.2.2, §3.2.3): the one parser of host text, for an
//! absolute-form target, CONNECT's authority-form, a Host value, a redirect's host and a
//! route's host in config, so that no two of them disagree on what the host is.
//!
//! Pure: takes bytes, hands back the host as a slice of them and the port as a number.

use std::net::Ipv6Addr;

/// A parsed authority, borrowing the bytes it was parsed from.
///
/// Accepted hosts: an IPv6 address in brackets (`[::1]`, no zone id, no IPvFuture), or a
/// non-empty reg-name of unreserved and sub-delim bytes, which covers host names and IPv4
/// addresses (`10.0.0.1`, which RFC 3986's grammar also reads as a reg-name). Refused:
/// an empty host, userinfo (`user@`, RFC 9110 §4.2.4), percent-encoding (`admin%2einternal`
/// is `admin.internal` to a backend that decodes it but matches no host route, and no
/// client needs to encode a host name), and a port that is not a number up to 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authority<'a> {
    /// The host as written, case kept (callers compare it without case, RFC 3986 §3.2.2);
    /// an IPv6 literal keeps its brackets.
    pub host: &'a [u8],
    /// `None` when there is no port, or an empty one (`host:`, which RFC 3986 allows).
    pub port: Option<u16>,
}

/// Why bytes are not an authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("no host")]
    EmptyHost,
    #[error("userinfo (`user@`) before the host")]
    Userinfo,
    #[error("percent-encoding in the host")]
    PercentEncoded,
    #[error("a byte a host name may not hold")]
    HostByte,
    #[error("a bracketed IP literal that is not an IPv6 address")]
    IpLiteral,
    #[error("a port that is not a number from 0 to 65535")]
    Port,
}

impl<'a> Authority<'a> {
    /// Parses all of `bytes` as `host [":" port]`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AuthorityError> {
        // Every request's Host comes here: a name and maybe a port, in one pass over a
        // table. Anything else (and every error) takes the full parse below.
        match Self::parse_name(bytes) {
            Some(authority) => Ok(authority),
            None => Self::parse_full(bytes),
        }
    }

    /// [`Authority::parse`] for every form, and every error.
    fn parse_full(bytes: &'a [u8]) -> Result<Self, AuthorityError> {
        // Checked first, so that `user@[::1]` and `a%40b` say what is wrong with them.
        if bytes.contains(&b'@') {
            return Err(AuthorityError::Userinfo);
        }
        if bytes.contains(&b'%') {
            return Err(AuthorityError::PercentEncoded);
        }
        let (host, rest) = if bytes.first() == Some(&b'[') {
            let close = bytes.iter().position(|&byte| byte == b']');
            let close = close.ok_or(AuthorityError::IpLiteral)?;
            let literal = std::str::from_utf8(&bytes[1..close]).ok();
            if literal.and_then(|literal| literal.parse::<Ipv6Addr>().ok()).is_none() {
                return Err(AuthorityError::IpLiteral);
            }
            bytes.split_at(close + 1)
        } else {
            let colon = bytes.iter().position(|&byte| byte == b':').unwrap_or(bytes.len());
            let (host, rest) = bytes.split_at(colon);
            if host.is_empty() {
                return Err(AuthorityError::EmptyHost);
            }
            if !host.iter().copied().all(is_reg_name_byte) {
                return Err(AuthorityError::HostByte);
            }
            (host, rest)
        };
        let port = match rest.split_first() {
            None => None,
            Some((b':', digits)) => parse_port(digits)?,
            Some(_) => return Err(AuthorityError::HostByte),
        };
        Ok(Self { host, port })
    }
}

impl<'a> Authority<'a> {
    /// `reg-name [":" port]`, when `bytes` are exactly that: the common case, with the
    /// result [`Authority::parse`] gives for it.
    fn parse_name(bytes: &'a [u8]) -> Option<Self> {
        let stop = bytes.iter().position(|&byte| !REG_NAME[usize::from(byte)]);
        let stop = stop.unwrap_or(bytes.len());
        let end = match bytes.get(stop) {
            Some(b':') => stop,
            Some(_) => return None,
            None => bytes.len(),
        };
        let (host, rest) = bytes.split_at(end);
        if host.is_empty() {
            return None;
        }
        let port = match rest.split_first() {
            None => None,
            Some((_, digits)) => parse_port(digits).ok()?,
        };
        Some(Self { host, port })
    }
}

/// RFC 3986 §3.2.2 reg-name bytes, less pct-encoded: unreserved and sub-delims.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b: u8 = 0;
    loop {
        table[b as usize] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || matches!(
                b,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            );
        if b == u8::MAX {
            break table;
        }
        b += 1;
    }
};

/// `*DIGIT` up to 65535; empty is no port.
fn parse_port(digits: &[u8]) -> Result<Option<u16>, AuthorityError> {
    if digits.is_empty() {
        return Ok(None);
    }
    let mut port: u16 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return Err(AuthorityError::Port);
        }
        port = port
            .checked_mul(10)
            .and_then(|port| port.checked_add(u16::from(digit - b'0')))
            .ok_or(AuthorityError::Port)?;
    }
    Ok(Some(port))
}

fn is_reg_name_byte(byte: u8) -> bool {
    REG_NAME[usize::from(byte)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path gives what the full parse gives, on every string of up to four bytes
    /// from an alphabet of each class of byte.
    #[test]
    fn the_name_fast_path_agrees_with_the_full_parse() {
        let alphabet = b"a1.-:@%[] /!";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = inputs
                .iter()
                .flat_map(|input| alphabet.iter().map(move |&byte| [&input[..], &[byte]].concat()))
                .collect();
            inputs.extend(longer.into_iter().filter(|input| input.len() <= 4));
            inputs.sort();
            inputs.dedup();
        }
        for input in &inputs {
            if let Some(fast) = Authority::parse_name(input) {
                assert_eq!(Ok(fast), Authority::parse_full(input), "{}", input.escape_ascii());
            }
        }
        assert!(Authority::parse_name(b"example.com:8080").is_some());
        assert!(inputs.len() > 20_000, "{} inputs", inputs.len());
    }

    #[test]
    fn accepts_names_addresses_and_literals() {
        let cases: [(&[u8], &[u8], Option<u16>); 13] = [
            (b"example.com", b"example.com", None),
            (b"Example.COM:8080", b"Example.COM", Some(8080)),
            (b"example.com.", b"example.com.", None),
            (b"a:", b"a", None),
            (b"a:0", b"a", Some(0)),
            (b"a:065535", b"a", Some(65535)),
            (b"10.0.0.1:80", b"10.0.0.1", Some(80)),
            (b"a-1.b_c~d", b"a-1.b_c~d", None),
            (b"[::1]", b"[::1]", None),
            (b"[::1]:443", b"[::1]", Some(443)),
            (b"[2001:db8::a]:", b"[2001:db8::a]", None),
            (b"[::ffff:10.0.0.1]:8080", b"[::ffff:10.0.0.1]", Some(8080)),
            (b"x!$&'()*+,;=", b"x!$&'()*+,;=", None),
        ];
        for (input, host, port) in cases {
            let expected = Ok(Authority { host, port });
            assert_eq!(Authority::parse(input), expected, "input: {}", input.escape_ascii());
        }
    }

    #[test]
    fn refuses_what_is_no_authority() {
        let cases: [(&[u8], AuthorityError); 20] = [
            (b"", AuthorityError::EmptyHost),
            (b":80", AuthorityError::EmptyHost),
            (b"user@a", AuthorityError::Userinfo),
            (b"user:pass@a:80", AuthorityError::Userinfo),
            (b"@a", AuthorityError::Userinfo),
            (b"admin%2einternal", AuthorityError::PercentEncoded),
            (b"[::1%25lo]", AuthorityError::PercentEncoded),
            (b"a b", AuthorityError::HostByte),
            (b"a/b", AuthorityError::HostByte),
            (b"a\"b", AuthorityError::HostByte),
            (b"[::1]x", AuthorityError::HostByte),
            (b"[::1]]", AuthorityError::HostByte),
            (b"[::1", AuthorityError::IpLiteral),
            (b"[]", AuthorityError::IpLiteral),
            (b"[v1.fe]", AuthorityError::IpLiteral),
            (b"[1.2.3.4]", AuthorityError::IpLiteral),
            (b"a:8x", AuthorityError::Port),
            (b"a:65536", AuthorityError::Port),
            (b"a:1:2", AuthorityError::Port),
            (b"::1", AuthorityError::EmptyHost),
        ];
        for (input, error) in cases {
            assert_eq!(Authority::parse(input), Err(error), "input: {}", input.escape_ascii());
        }
    }
}
