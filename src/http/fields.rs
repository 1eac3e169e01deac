//! Looking up a header or a cookie among a parsed head's lines, without copying.

use super::{HeaderKind, HeaderLine};

/// The value of the first header named `name` (case-insensitive), or `None`.
pub fn find_header<'a>(buf: &'a [u8], headers: &[HeaderLine], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|header| header.name.of(buf).eq_ignore_ascii_case(name))
        .map(|header| header.value.of(buf))
}

/// Every `name=value` pair of every Cookie header, in order (RFC 6265 §5.4: pairs are
/// separated by `;`, surrounding spaces are not part of them).
pub fn cookies<'a>(
    buf: &'a [u8],
    headers: &'a [HeaderLine],
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    headers
        .iter()
        .filter(|header| header.kind == HeaderKind::Cookie)
        .flat_map(move |header| header.value.of(buf).split(|&byte| byte == b';'))
        .map(|pair| {
            let pair = pair.trim_ascii();
            match pair.iter().position(|&byte| byte == b'=') {
                Some(equals) => (&pair[..equals], &pair[equals + 1..]),
                None => (pair, &b""[..]),
            }
        })
}

/// The value of the first cookie named `name` (case-sensitive, as cookie names are).
pub fn find_cookie<'a>(buf: &'a [u8], headers: &'a [HeaderLine], name: &[u8]) -> Option<&'a [u8]> {
    cookies(buf, headers).find(|(cookie, _)| *cookie == name).map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadLimits, Parsed, parse_request_head};

    #[test]
    fn finds_headers_and_cookies() {
        let buf: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nX-User: ada\r\n\
                           Cookie: a=1; session=xyz\r\nCookie: b = 2;flag\r\n\r\n";
        let mut headers = Vec::new();
        let Ok(Parsed::Complete(_)) = parse_request_head(buf, &HeadLimits::DEFAULT, &mut headers)
        else {
            panic!("parses");
        };
        assert_eq!(find_header(buf, &headers, b"x-user"), Some(&b"ada"[..]));
        assert_eq!(find_header(buf, &headers, b"x-none"), None);
        assert_eq!(find_cookie(buf, &headers, b"session"), Some(&b"xyz"[..]));
        assert_eq!(find_cookie(buf, &headers, b"flag"), Some(&b""[..]));
        assert_eq!(find_cookie(buf, &headers, b"b "), Some(&b" 2"[..]));
        assert_eq!(find_cookie(buf, &headers, b"Session"), None);
        assert_eq!(cookies(buf, &headers).count(), 4);
    }
}
