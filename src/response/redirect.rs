//! A redirect: `Location` and no content (`Content-Length: 0`).

use super::{Body, Line, Request, Response, SERVER, write};

/// Appends a `status` redirect to `location` to `out`. It ends the connection unless
/// `keep_alive` is set.
pub fn write_redirect(
    status: u16,
    location: &[u8],
    request: Request,
    keep_alive: bool,
    out: &mut Vec<u8>,
) {
    let lines = [SERVER, Line::Field(b"Location", location)];
    let response = Response { status, lines: &lines, body: Body::Bytes(b""), keep_alive, request };
    write(&response, out);
}
