//! A route's fixed answer: its configured status, header lines and body, with the status
//! line and framing the writer adds.

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
    let lines = [Line::Raw(&fixed.lines)];
    let response = Response {
        status: fixed.status,
        lines: &lines,
        body: Body::Bytes(&fixed.body),
        keep_alive,
        request,
    };
    write(&response, out)
}
