//! A route's fixed answer: its configured status, header lines and body.
//!
//! Config renders the head once at load time with a status line and a `Content-Length`
//! around the configured lines; the writer owns both, so only the lines between are used.

use super::{Body, Line, Request, Response, write};
use crate::config::FixedResponse;

/// Appends `fixed` to `out`, as the answer to `request`, and returns its body length. It
/// ends the connection unless `keep_alive` is set.
pub fn write_fixed(
    fixed: &FixedResponse,
    request: Request,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> u64 {
    let lines = [Line::Raw(configured_lines(&fixed.head))];
    let response = Response {
        status: fixed.status,
        lines: &lines,
        body: Body::Bytes(&fixed.body),
        keep_alive,
        request,
    };
    write(&response, out)
}

/// The configured header lines of a rendered fixed head: what lies between its status line
/// and its last line, the `Content-Length` config adds.
fn configured_lines(head: &[u8]) -> &[u8] {
    let start = head.windows(2).position(|pair| pair == b"\r\n").map_or(head.len(), |at| at + 2);
    let lines = &head[start..];
    // The last line ends in CRLF: its start follows the LF before that.
    let without_crlf = lines.strip_suffix(b"\r\n").unwrap_or(lines);
    let end = without_crlf.iter().rposition(|&byte| byte == b'\n').map_or(0, |at| at + 1);
    debug_assert!(
        lines[end..].starts_with(b"Content-Length: "),
        "config's fixed head no longer ends with its Content-Length line"
    );
    &lines[..end]
}
