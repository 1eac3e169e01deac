//! Status codes to reason phrases: a pure table, the one every response the proxy writes
//! and every status line it renders reads from.

/// The reason phrase for `status` (RFC 9110 §15), or `Unknown` for a code not listed.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        // Any u16 can reach here (a configured status); the phrase is informative only
        // (RFC 9112 §4: a client ignores it).
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn known_and_unknown_codes() {
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(429), "Too Many Requests");
        assert_eq!(reason(599), "Unknown");
    }
}
