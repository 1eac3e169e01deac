//! The answer to a gRPC request that the proxy fails itself: HTTP 200 and a trailers-only
//! gRPC status (`grpc-status`, `grpc-message`), as gRPC clients expect, instead of an HTTP
//! error status they would report as a transport failure.
//!
//! The HTTP/2 downstream sends a head with no body as one HEADERS frame that ends the
//! stream: gRPC's "Trailers-Only" response.

use super::{Body, Line, Request, Response, SERVER, write};
use crate::error::ProxyError;

/// gRPC status codes (grpc/doc/statuscodes.md) the proxy answers with.
const UNKNOWN: u64 = 2;
const DEADLINE_EXCEEDED: u64 = 4;
const PERMISSION_DENIED: u64 = 7;
const UNIMPLEMENTED: u64 = 12;
const INTERNAL: u64 = 13;
const UNAVAILABLE: u64 = 14;
const UNAUTHENTICATED: u64 = 16;

/// The gRPC status for `error`: DEADLINE_EXCEEDED for a timeout, UNAVAILABLE for no
/// backend; the rest as gRPC maps HTTP statuses (grpc/doc/http-grpc-status-mapping.md).
pub fn grpc_status(error: &ProxyError) -> u64 {
    match error.status() {
        504 => DEADLINE_EXCEEDED,
        429 | 502 | 503 => UNAVAILABLE,
        400 => INTERNAL,
        401 | 407 => UNAUTHENTICATED,
        403 => PERMISSION_DENIED,
        404 => UNIMPLEMENTED,
        _ => UNKNOWN,
    }
}

/// Appends the gRPC answer for `error` to `out`.
pub fn write_grpc_error(error: &ProxyError, request: Request, out: &mut Vec<u8>) {
    let message = percent_encode(&error.to_string());
    let lines = [
        SERVER,
        Line::Raw(b"Content-Type: application/grpc\r\n"),
        Line::Number(b"Grpc-Status", grpc_status(error)),
        Line::Field(b"Grpc-Message", message.as_bytes()),
    ];
    let response =
        Response { status: 200, lines: &lines, body: Body::Bytes(b""), keep_alive: true, request };
    write(&response, out);
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%`.
fn percent_encode(text: &str) -> String {
    use std::fmt::Write;
    text.bytes().fold(String::with_capacity(text.len()), |mut out, byte| {
        match byte {
            b'%' | ..0x20 | 0x7f.. => {
                let _ = write!(out, "%{byte:02X}"); // Writing into a String cannot fail.
            }
            _ => out.push(char::from(byte)),
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_deadlines_and_no_backend_is_unavailable() {
        assert_eq!(grpc_status(&ProxyError::UpstreamTimeout), DEADLINE_EXCEEDED);
        assert_eq!(grpc_status(&ProxyError::NoBackend), UNAVAILABLE);
        assert_eq!(grpc_status(&ProxyError::Connect), UNAVAILABLE);
        assert_eq!(grpc_status(&ProxyError::NoRoute), UNIMPLEMENTED);
        let mut out = Vec::new();
        write_grpc_error(&ProxyError::NoBackend, Request::UNPARSED, &mut out);
        let text = String::from_utf8(out).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Grpc-Status: 14\r\n"), "{text}");
        assert!(text.contains("Grpc-Message: no backend to send the request to\r\n"), "{text}");
        assert_eq!(percent_encode("50% é"), "50%25 %C3%A9");
    }
}
