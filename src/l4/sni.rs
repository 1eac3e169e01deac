//! The server name (SNI, RFC 6066 §3) of a TLS ClientHello, read without terminating TLS,
//! and the SNI route it picks.
//!
//! Sans-I/O: [`parse_client_hello`] takes the bytes read so far (TLS records, RFC 8446
//! §5.1) and says whether the whole ClientHello is there. A hello may span several TCP
//! segments (post-quantum key shares make it larger than one) and even several records.

use crate::config::{ClusterId, HostMatch, SniRoute};

/// The longest server name kept: a DNS name is at most 253 characters.
pub const SERVER_NAME_BYTES_MAX: usize = 255;
/// TLS record header: type, version, length.
const RECORD_HEADER_BYTES: usize = 5;
/// Record type of a handshake message.
const HANDSHAKE: u8 = 22;
/// Handshake type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// The server_name extension.
const SERVER_NAME_EXTENSION: u16 = 0;

/// A server name, lowercase.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ServerName {
    bytes: [u8; SERVER_NAME_BYTES_MAX],
    len: u8,
}

impl ServerName {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for ServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerName({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What [`parse_client_hello`] found.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per connection, never stored: boxing the name would allocate"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    /// The whole ClientHello, and the host name it asks for, if any.
    Complete(Option<ServerName>),
    /// Read more.
    Partial,
}

/// Why bytes are not a usable ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("not a TLS handshake")]
    NotTls,
    #[error("malformed ClientHello")]
    Malformed,
    #[error("ClientHello larger than the cap")]
    TooLarge,
}

/// Parses the ClientHello at the front of `buf`, which holds at most `bytes_max` bytes of
/// records (the cap: a hello that needs more is [`HelloError::TooLarge`]).
pub fn parse_client_hello(buf: &[u8], bytes_max: usize) -> Result<Hello, HelloError> {
    // Most hellos come in one record and are read in place; one split over several records
    // is joined into `joined` first.
    let mut joined = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + RECORD_HEADER_BYTES) else {
            return partial_or_too_large(buf, bytes_max);
        };
        // RFC 8446 §5.1: records of other types may not interleave a handshake message.
        if header[0] != HANDSHAKE || header[1] != 3 {
            return Err(HelloError::NotTls);
        }
        let record_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if record_len == 0 {
            return Err(HelloError::Malformed);
        }
        let start = at + RECORD_HEADER_BYTES;
        if start + record_len > bytes_max {
            return Err(HelloError::TooLarge);
        }
        let Some(fragment) = buf.get(start..start + record_len) else {
            return Ok(Hello::Partial);
        };
        at = start + record_len;
        let message = if joined.is_empty()
            && message_len(fragment).is_some_and(|len| len <= fragment.len())
        {
            fragment
        } else {
            joined.extend_from_slice(fragment);
            &joined[..]
        };
        match message_len(message) {
            Some(len) if len <= message.len() => return client_hello(&message[..len]),
            Some(len) if len > bytes_max => return Err(HelloError::TooLarge),
            _ => {}
        }
    }
}

fn partial_or_too_large(buf: &[u8], bytes_max: usize) -> Result<Hello, HelloError> {
    if buf.len() >= bytes_max { Err(HelloError::TooLarge) } else { Ok(Hello::Partial) }
}

/// Length of the handshake message at the front of `bytes`, header included, once its
/// header is there.
fn message_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..4)?;
    let body = u32::from_be_bytes([0, header[1], header[2], header[3]]);
    Some(4 + usize::try_from(body).unwrap_or(usize::MAX))
}

/// A bounds-checked cursor over a message.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], HelloError> {
        if len > self.bytes.len() {
            return Err(HelloError::Malformed);
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, HelloError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, HelloError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// A vector with a one- or two-byte length prefix.
    fn vector(&mut self, prefix_bytes: usize) -> Result<Reader<'a>, HelloError> {
        let len =
            if prefix_bytes == 1 { usize::from(self.u8()?) } else { usize::from(self.u16()?) };
        Ok(Reader { bytes: self.take(len)? })
    }
}

/// The server name of a whole ClientHello message (RFC 8446 §4.1.2).
fn client_hello(message: &[u8]) -> Result<Hello, HelloError> {
    let mut reader = Reader { bytes: message };
    if reader.u8()? != CLIENT_HELLO {
        return Err(HelloError::Malformed);
    }
    reader.take(3)?; // The length, already checked.
    reader.take(2 + 32)?; // legacy_version, random.
    reader.vector(1)?; // legacy_session_id.
    reader.vector(2)?; // cipher_suites.
    reader.vector(1)?; // legacy_compression_methods.
    if reader.bytes.is_empty() {
        // An SSL 3.0-style hello without extensions names no server.
        return Ok(Hello::Complete(None));
    }
    let mut extensions = reader.vector(2)?;
    if !reader.bytes.is_empty() {
        return Err(HelloError::Malformed);
    }
    while !extensions.bytes.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vector(2)?;
        if kind == SERVER_NAME_EXTENSION {
            return server_name(&mut data).map(Hello::Complete);
        }
    }
    Ok(Hello::Complete(None))
}

/// The host_name entry of a server_name extension (RFC 6066 §3).
fn server_name(data: &mut Reader<'_>) -> Result<Option<ServerName>, HelloError> {
    let mut list = data.vector(2)?;
    while !list.bytes.is_empty() {
        let kind = list.u8()?;
        let name = list.vector(2)?.bytes;
        if kind != 0 {
            continue;
        }
        let valid = !name.is_empty()
            && name.len() <= SERVER_NAME_BYTES_MAX
            && name.iter().all(|&byte| byte.is_ascii_alphanumeric() || b"-._".contains(&byte));
        if !valid {
            return Err(HelloError::Malformed);
        }
        let mut found = ServerName { bytes: [0; SERVER_NAME_BYTES_MAX], len: 0 };
        found.bytes[..name.len()].copy_from_slice(name);
        found.bytes[..name.len()].make_ascii_lowercase();
        // At most SERVER_NAME_BYTES_MAX (255), checked above.
        found.len = u8::try_from(name.len()).map_err(|_| HelloError::Malformed)?;
        return Ok(Some(found));
    }
    Ok(None)
}

/// The cluster of the first route whose names match `name` (lowercase).
pub fn route(routes: &[SniRoute], name: &[u8]) -> Option<ClusterId> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let matches = |pattern: &HostMatch| match pattern {
        HostMatch::Exact(exact) => name == &exact[..],
        HostMatch::Suffix(suffix) => name.len() > suffix.len() && name.ends_with(suffix),
    };
    routes.iter().find(|route| route.names.iter().any(matches)).map(|route| route.cluster)
}

#[cfg(test)]
mod tests;
