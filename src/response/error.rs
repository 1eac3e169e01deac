//! The response for a [`ProxyError`]: its status, `status reason` as text, and the lines
//! the error calls for (`Retry-After` for a rate limit, `Allow` from the caller).

use super::{Body, Line, Request, Response, SERVER, write};
use crate::error::ProxyError;

const CONTENT_TYPE: Line<'static> = Line::Raw(b"Content-Type: text/plain\r\n");

/// Appends the response for `error` to `out`, with `extra` header lines (each ending in
/// CRLF, such as `Allow`; may be empty), and returns its body length. It ends the
/// connection unless `keep_alive` is set.
pub fn write_error(
    error: &ProxyError,
    request: Request,
    keep_alive: bool,
    extra: &[u8],
    out: &mut Vec<u8>,
) -> u64 {
    // Only a rate limit knows when to come back.
    let retry_after = if let ProxyError::TooManyRequests { retry_after_s } = *error {
        Line::Number(b"Retry-After", u64::from(retry_after_s))
    } else {
        Line::Raw(b"")
    };
    let lines = [SERVER, CONTENT_TYPE, retry_after, Line::Raw(extra)];
    // A malformed request is told what is wrong with it (which rule of the target, the
    // Host, the framing); other errors say their status only.
    let why = match error {
        ProxyError::BadRequest(parse) => {
            let status = error.status();
            format!("{status} {}: {parse}\n", crate::http::status::reason(status))
        }
        _ => String::new(),
    };
    let response = Response {
        status: error.status(),
        lines: &lines,
        body: if why.is_empty() { Body::StatusText } else { Body::Bytes(why.as_bytes()) },
        keep_alive,
        request,
    };
    write(&response, out)
}
