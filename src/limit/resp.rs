//! RESP2, the Redis wire format, sans-I/O: commands in, replies parsed from bytes.
//!
//! Input: a command's arguments, or the bytes read so far. Output: the encoded command, or
//! a reply and how many bytes it used (`None` until it is all there). Every length read
//! from the server is bounded, so a broken or hostile server costs an error, not memory.

use std::fmt;

/// Longest bulk string accepted in a reply.
pub const BULK_BYTES_MAX: usize = 1 << 20;
/// Most elements accepted in one array of a reply.
pub const ARRAY_LEN_MAX: usize = 1 << 16;
/// Deepest nesting of arrays accepted.
const DEPTH_MAX: usize = 4;

/// One reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    Integer(i64),
    /// `None`: the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None`: the null array.
    Array(Option<Vec<Reply>>),
}

/// Bytes that are not a RESP2 reply, or one over the bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespError(pub String);

impl fmt::Display for RespError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "bad reply from Redis: {}", self.0)
    }
}

/// Appends `args` to `out` as one command: an array of bulk strings.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`: the reply and the bytes it used, `None` when
/// more bytes are needed.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(line_end) = buf.windows(2).position(|pair| pair == b"\r\n") else {
        return if buf.len() > BULK_BYTES_MAX {
            Err(RespError("a line longer than the bound".to_string()))
        } else {
            Ok(None)
        };
    };
    let Some((&kind, line)) = buf[..line_end].split_first() else {
        return Err(RespError("an empty line".to_string()));
    };
    let after_line = line_end + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    match kind {
        b'+' => Ok(Some((Reply::Simple(text()), after_line))),
        b'-' => Ok(Some((Reply::Error(text()), after_line))),
        b':' => Ok(Some((Reply::Integer(integer(line)?), after_line))),
        b'$' => bulk(buf, line, after_line),
        b'*' => array(buf, line, after_line, depth),
        other => Err(RespError(format!("unknown reply type {:?}", char::from(other)))),
    }
}

fn integer(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| RespError(format!("{:?} is not an integer", String::from_utf8_lossy(line))))
}

/// A length: -1 (null) or 0..=`max`.
fn length(line: &[u8], max: usize) -> Result<Option<usize>, RespError> {
    match integer(line)? {
        -1 => Ok(None),
        len => usize::try_from(len)
            .ok()
            .filter(|&len| len <= max)
            .map(Some)
            .ok_or_else(|| RespError(format!("length {len} is out of bounds"))),
    }
}

fn bulk(buf: &[u8], line: &[u8], start: usize) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(len) = length(line, BULK_BYTES_MAX)? else {
        return Ok(Some((Reply::Bulk(None), start)));
    };
    let end = start + len;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(RespError("a bulk string without its CRLF".to_string()));
    }
    Ok(Some((Reply::Bulk(Some(buf[start..end].to_vec())), end + 2)))
}

fn array(
    buf: &[u8],
    line: &[u8],
    start: usize,
    depth: usize,
) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(len) = length(line, ARRAY_LEN_MAX)? else {
        return Ok(Some((Reply::Array(None), start)));
    };
    if depth >= DEPTH_MAX {
        return Err(RespError("arrays nested too deep".to_string()));
    }
    let mut items = Vec::with_capacity(len.min(64));
    let mut at = start;
    for _ in 0..len {
        let Some((item, used)) = parse_at(&buf[at..], depth + 1)? else { return Ok(None) };
        items.push(item);
        at += used;
    }
    Ok(Some((Reply::Array(Some(items)), at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_command_as_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&[b"INCRBY", b"k", b"12"], &mut out);
        assert_eq!(out, b"*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$2\r\n12\r\n");
    }

    #[test]
    fn parses_each_reply_type() {
        let table: [(&[u8], Reply); 7] = [
            (b"+OK\r\n", Reply::Simple("OK".to_string())),
            (b"-NOSCRIPT x\r\n", Reply::Error("NOSCRIPT x".to_string())),
            (b":-42\r\n", Reply::Integer(-42)),
            (b"$3\r\nabc\r\n", Reply::Bulk(Some(b"abc".to_vec()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*2\r\n:1\r\n$0\r\n\r\n",
                Reply::Array(Some(vec![Reply::Integer(1), Reply::Bulk(Some(Vec::new()))])),
            ),
        ];
        for (bytes, reply) in table {
            assert_eq!(parse_reply(bytes), Ok(Some((reply, bytes.len()))), "{bytes:?}");
        }
    }

    #[test]
    fn waits_for_every_split_of_a_reply() {
        let bytes = b"*3\r\n:1\r\n$5\r\nhello\r\n+OK\r\n";
        for cut in 0..bytes.len() {
            assert_eq!(parse_reply(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(matches!(parse_reply(bytes), Ok(Some((_, used))) if used == bytes.len()));
    }

    #[test]
    fn refuses_what_is_not_resp_or_over_the_bounds() {
        let bad: [&[u8]; 7] = [
            b"?x\r\n",
            b"\r\n",
            b":12a\r\n",
            b"$-2\r\n",
            b"$2\r\nabcd\r\n",
            b"$99999999999\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ];
        for bytes in bad {
            assert!(parse_reply(bytes).is_err(), "{bytes:?}");
        }
    }
}
