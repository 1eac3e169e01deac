//! A response that carries content of a named type and is never stored: what the admin
//! listener answers (JSON, metrics text, the dashboard's HTML).

use super::{Body, Line, Request, Response, SERVER, write};

const NO_STORE: Line<'static> = Line::Raw(b"Cache-Control: no-store\r\n");

/// The facts of a [`write_content`] response.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub status: u16,
    /// The `Content-Type` value, such as `application/json`.
    pub content_type: &'a [u8],
    /// More header lines, each ending in CRLF (`Allow`, `WWW-Authenticate`); may be empty.
    pub extra: &'a [u8],
    pub body: &'a [u8],
}

/// Appends `content`, as the answer to `request`, to `out` and returns its body length. It
/// ends the connection unless `keep_alive` is set.
pub fn write_content(
    content: &Content<'_>,
    request: Request,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> u64 {
    let lines = [
        SERVER,
        Line::Field(b"Content-Type", content.content_type),
        NO_STORE,
        Line::Raw(content.extra),
    ];
    let response = Response {
        status: content.status,
        lines: &lines,
        body: Body::Bytes(content.body),
        keep_alive,
        request,
    };
    write(&response, out)
}
