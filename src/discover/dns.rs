//! The DNS wire format (RFC 1035, SRV from RFC 2782, AAAA from RFC 3596), sans-I/O: a
//! query for one name and type in, the records of a response out.
//!
//! Every count and name read from a response is bounded and every compression pointer must
//! point backwards, so a hostile or broken server costs an error, never a loop or a panic.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest name (RFC 1035 §2.3.4), in wire bytes.
const NAME_BYTES_MAX: usize = 255;
/// Most records read from one response, all sections together.
pub const RECORDS_MAX: usize = 512;
const HEADER_BYTES: usize = 12;
const CLASS_IN: u16 = 1;

/// The record types discovery asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
    Srv,
}

impl RecordType {
    pub fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Aaaa => 28,
            Self::Srv => 33,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Srv => "SRV",
        }
    }
}

/// One resource record of a response, of a type discovery reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owner name, lower case, without the final dot.
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv { priority: u16, weight: u16, port: u16, target: String },
}

/// What a response says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub id: u16,
    /// 0 is NOERROR, 3 NXDOMAIN (RFC 1035 §4.1.1).
    pub rcode: u8,
    /// The server cut the answer to fit a UDP datagram.
    pub truncated: bool,
    pub answers: Vec<Record>,
    pub additional: Vec<Record>,
}

/// A name that cannot be asked for, or bytes that are not a DNS response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsError(pub String);

impl fmt::Display for DnsError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

fn error(text: &str) -> DnsError {
    DnsError(text.to_string())
}

/// Checks `name` as a DNS name to ask for: labels of 1 to 63 bytes, 255 in all.
pub fn validate_name(name: &str) -> Result<(), DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() + 2 > NAME_BYTES_MAX {
        return Err(error("a name has 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError(format!("label {label:?} must have 1 to 63 characters")));
        }
        if !label.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte)) {
            return Err(DnsError(format!("label {label:?} may hold letters, digits, - and _")));
        }
    }
    Ok(())
}

/// Appends a query for `name` and `kind` with id `id` and recursion desired to `out`.
pub fn encode_query(
    id: u16,
    name: &str,
    kind: RecordType,
    out: &mut Vec<u8>,
) -> Result<(), DnsError> {
    validate_name(name)?;
    out.extend_from_slice(&id.to_be_bytes());
    // Flags: a standard query with RD (recursion desired) set.
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.strip_suffix('.').unwrap_or(name).split('.') {
        out.push(u8::try_from(label.len()).map_err(|_| error("label too long"))?);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&kind.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(())
}

/// Parses a response: its header, answer and additional records of the types in
/// [`RecordData`] (others, and authority records, are skipped).
pub fn parse_response(bytes: &[u8]) -> Result<Response, DnsError> {
    let header = bytes.get(..HEADER_BYTES).ok_or_else(|| error("shorter than a DNS header"))?;
    let word = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let flags = word(2);
    if flags & 0x8000 == 0 {
        return Err(error("a query, not a response"));
    }
    let counts = [word(4), word(6), word(8), word(10)].map(usize::from);
    if counts[1] + counts[2] + counts[3] > RECORDS_MAX {
        return Err(error("more records than the bound"));
    }
    let mut response = Response {
        id: word(0),
        rcode: (flags & 0x000F) as u8,
        truncated: flags & 0x0200 != 0,
        ..Response::default()
    };
    let mut at = HEADER_BYTES;
    for _ in 0..counts[0] {
        at = skip_name(bytes, at)? + 4;
    }
    for (section, &count) in counts.iter().enumerate().skip(1) {
        for _ in 0..count {
            let (record, next) = parse_record(bytes, at)?;
            at = next;
            match (section, record) {
                (1, Some(record)) => response.answers.push(record),
                (3, Some(record)) => response.additional.push(record),
                _ => {}
            }
        }
    }
    Ok(response)
}

/// One record at `at`: the record when its type is one we read, and where the next starts.
fn parse_record(bytes: &[u8], at: usize) -> Result<(Option<Record>, usize), DnsError> {
    let (name, after_name) = read_name(bytes, at)?;
    let fixed =
        bytes.get(after_name..after_name + 10).ok_or_else(|| error("a record cut short"))?;
    let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let length = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let start = after_name + 10;
    let data = bytes.get(start..start + length).ok_or_else(|| error("record data cut short"))?;
    let end = start + length;
    if class != CLASS_IN {
        return Ok((None, end));
    }
    let data = match kind {
        1 => {
            let octets: [u8; 4] =
                data.try_into().map_err(|_| error("an A record of bad length"))?;
            RecordData::A(Ipv4Addr::from(octets))
        }
        28 => {
            let octets: [u8; 16] =
                data.try_into().map_err(|_| error("an AAAA record of bad length"))?;
            RecordData::Aaaa(Ipv6Addr::from(octets))
        }
        33 => {
            let fixed = data.get(..6).ok_or_else(|| error("an SRV record cut short"))?;
            let (target, target_end) = read_name(bytes, start + 6)?;
            if target_end != end {
                return Err(error("an SRV record whose target overruns it"));
            }
            RecordData::Srv {
                priority: u16::from_be_bytes([fixed[0], fixed[1]]),
                weight: u16::from_be_bytes([fixed[2], fixed[3]]),
                port: u16::from_be_bytes([fixed[4], fixed[5]]),
                target,
            }
        }
        _ => return Ok((None, end)),
    };
    // RFC 2181 §8: a TTL with the top bit set is read as 0.
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    Ok((Some(Record { name, ttl, data }), end))
}

/// Where the name at `at` ends in the message (a pointer ends it).
fn skip_name(bytes: &[u8], mut at: usize) -> Result<usize, DnsError> {
    loop {
        let &length = bytes.get(at).ok_or_else(|| error("a name cut short"))?;
        match length {
            0 => return Ok(at + 1),
            0xC0..=0xFF => return Ok(at + 2),
            1..=63 => at += 1 + usize::from(length),
            _ => return Err(error("a label of a reserved kind")),
        }
    }
}

/// The name at `at`, lower case and dotted, and where it ends in the message. Pointers
/// must point before the label that holds them, so a name cannot loop.
fn read_name(bytes: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut at = start;
    let mut end = None;
    loop {
        let &length = bytes.get(at).ok_or_else(|| error("a name cut short"))?;
        match length {
            0 => break,
            0xC0..=0xFF => {
                let &low = bytes.get(at + 1).ok_or_else(|| error("a pointer cut short"))?;
                let target = usize::from(u16::from_be_bytes([length & 0x3F, low]));
                if target >= at {
                    return Err(error("a name pointer that does not point back"));
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            1..=63 => {
                let label = bytes
                    .get(at + 1..at + 1 + usize::from(length))
                    .ok_or_else(|| error("a label cut short"))?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&byte| char::from(byte.to_ascii_lowercase())));
                if name.len() > NAME_BYTES_MAX {
                    return Err(error("a name longer than 255 bytes"));
                }
                at += 1 + usize::from(length);
            }
            _ => return Err(error("a label of a reserved kind")),
        }
    }
    Ok((name, end.unwrap_or(at + 1)))
}

#[cfg(test)]
mod tests;
