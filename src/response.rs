//! Responses the proxy writes itself: error responses from a [`ProxyError`] and the
//! canned lines (100 Continue) it sends on its own.

use crate::error::ProxyError;

/// The interim response sent before reading a body the client offered with
/// `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reason phrase for `status`.
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
        _ => "Unknown",
    }
}

/// The body length of the response for `error`: "502 Bad Gateway" and a newline.
pub fn error_body_len(error: &ProxyError) -> u64 {
    let status = error.status();
    (3 + 1 + reason(status).len() + 1) as u64
}

/// Appends the complete response for `error` to `out`. It ends the connection unless
/// `keep_alive` is set.
pub fn write_error(error: &ProxyError, keep_alive: bool, out: &mut Vec<u8>) {
    write_error_with(error, keep_alive, "", out);
}

/// [`write_error`] with `extra` header lines (each ending in CRLF), such as `Allow`.
pub fn write_error_with(error: &ProxyError, keep_alive: bool, extra: &str, out: &mut Vec<u8>) {
    let status = error.status();
    let reason = reason(status);
    let connection = if keep_alive { "" } else { "Connection: close\r\n" };
    let retry_after = match error {
        ProxyError::TooManyRequests { retry_after_s } => {
            format!("Retry-After: {retry_after_s}\r\n")
        }
        _ => String::new(),
    };
    let body_len = error_body_len(error);
    // Error responses are cold; a format is fine here.
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: ringway\r\nContent-Type: text/plain\r\n\
         Content-Length: {body_len}\r\n{retry_after}{extra}{connection}\r\n{status} {reason}\n"
    );
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_is_complete_and_framed() {
        let mut out = Vec::new();
        write_error(&ProxyError::NoBackend, false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 503 Service Unavailable\r\nServer: ringway\r\nContent-Type: text/plain\r\n\
             Content-Length: 24\r\nConnection: close\r\n\r\n503 Service Unavailable\n"
        );
    }
}
