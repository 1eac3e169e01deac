//! The chunked transfer coding (RFC 9112 §7.1), decoded in place as a body streams past.
//!
//! Takes the bytes after a head whose framing is [`super::BodyFraming::Chunked`]; hands back
//! the chunk data moved to the front of the same buffer, and how many input bytes that used.
//! Size lines, extensions (checked against their grammar, RFC 9112 §7.1.1) and trailers are
//! dropped. Unlike heads, every line here must end in CRLF: bare LF inside a body is where
//! parsers disagree, so a smuggler's favourite.

/// Limits on the framing of one chunked body, from config.
#[derive(Clone, Copy, Debug)]
pub struct ChunkedLimits {
    /// The longest extension on one chunk-size line (from the first byte after the size).
    pub extension_bytes_max: u32,
    /// The longest trailer section, its line endings included.
    pub trailer_bytes_max: u32,
}

impl ChunkedLimits {
    pub const DEFAULT: Self = Self { extension_bytes_max: 4096, trailer_bytes_max: 16384 };
}

impl Default for ChunkedLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The line that ends a chunked body with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The most hex digits a chunk size may have: 16 fill a `u64`.
const SIZE_DIGITS_MAX: u8 = 16;

/// Where the decoder is in the body's grammar; one variant per thing the next byte may be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    #[default]
    Size,
    /// Whitespace after the size, which only a `;` may follow (BWS, RFC 9112 §7.1.1).
    SizeSpace,
    /// After a `;`: whitespace, then the first byte of an extension name.
    NameStart,
    /// Inside an extension name (a token).
    Name,
    /// Whitespace after a name, which only `=` or `;` may follow.
    NameSpace,
    /// After the `=`: whitespace, then a token or a quoted string.
    ValueStart,
    /// Inside a token value.
    Value,
    /// Inside a quoted value.
    Quoted,
    /// After a backslash inside a quoted value (a quoted-pair).
    QuotedPair,
    /// After a value's closing quote: `;`, whitespace or the end of the line.
    QuotedEnd,
    /// Whitespace after a value, which only a `;` may follow.
    ValueSpace,
    /// Read the CR that ends a size line.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the blank line that ends the body.
    TrailerStart,
    /// Inside a trailer field's name (a token).
    TrailerName,
    /// After the name's colon: the value, up to the CR.
    TrailerValue,
    TrailerLf,
    /// Read the CR of the blank line that ends the body.
    EndLf,
    Done,
}

/// State of one chunked body as it streams past. Keep it across reads; start each body with
/// `ChunkedDecoder::default()`.
#[derive(Clone, Debug, Default)]
pub struct ChunkedDecoder {
    state: State,
    /// INVARIANT: from `Size` to `SizeLf` (extension states included), the chunk size read so
    /// far; in `Data`, the bytes of the chunk still to come (never zero there); else zero.
    size: u64,
    /// Hex digits of the size read so far.
    digits: u8,
    /// Bytes of the current extension, or of the trailer section, so far.
    framing_bytes: u32,
}

/// What one call to [`ChunkedDecoder::decode_in_place`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Chunk data now at `buf[..data_len]`.
    pub data_len: usize,
    /// Trailer field lines (each with its CRLF, the final blank line not included) now at
    /// `buf[data_len..data_len + trailer_len]`: trailers come after all data, and may
    /// arrive over several calls.
    pub trailer_len: usize,
    /// Input bytes used; `data_len <= consumed <= buf.len()`.
    pub consumed: usize,
    /// The last chunk and the trailer section's final CRLF have been consumed.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("invalid chunk size")]
    BadChunkSize,
    #[error("chunk extension too long")]
    ExtensionTooLong,
    /// RFC 9112 §7.1.1: `;` name [`=` token or quoted string], names and tokens of tchar.
    #[error("malformed chunk extension")]
    BadExtension,
    #[error("chunked body line not ended by CRLF")]
    BadLineEnding,
    #[error("trailer section too long")]
    TrailersTooLong,
    /// RFC 9112 §7.1.2: a trailer line is a field line, `name: value`.
    #[error("malformed trailer field")]
    BadTrailer,
}

impl ChunkedDecoder {
    /// Decodes as much of `buf` as possible, moving the chunk data found to the front of
    /// `buf`, in order, and the trailer field lines right after it.
    ///
    /// Data inside a chunk is returned as soon as it arrives, so a 1 GiB chunk streams through
    /// a 16 KiB buffer. This decoder keeps partial lines in its own state, so it consumes
    /// every byte until the body is done; `buf[consumed..]` is non-empty only then, and holds
    /// the bytes after the body (a pipelined message), which are left untouched.
    pub fn decode_in_place(
        &mut self,
        buf: &mut [u8],
        limits: &ChunkedLimits,
    ) -> Result<Decoded, ChunkedError> {
        let mut read = 0;
        let mut written = 0;
        let mut trailer_len = 0;
        while read < buf.len() && self.state != State::Done {
            if self.state != State::Data {
                let (before, byte) = (self.state, buf[read]);
                self.state = self.step(byte, limits)?;
                read += 1;
                // Bytes of a trailer field line are kept (the blank line that ends the
                // section is not); they follow all the data.
                let in_field = matches!(
                    (before, self.state),
                    (State::TrailerStart, State::TrailerName)
                        | (State::TrailerName | State::TrailerValue | State::TrailerLf, _)
                );
                if in_field {
                    buf[written] = byte;
                    written += 1;
                    trailer_len += 1;
                }
                continue;
            }
            let available = buf.len() - read;
            let take = usize::try_from(self.size).map_or(available, |size| size.min(available));
            if written != read {
                buf.copy_within(read..read + take, written);
            }
            read += take;
            written += take;
            self.size -= take as u64; // Lossless: `take` is at most `self.size`.
            if self.size == 0 {
                self.state = State::DataCr;
            }
        }
        let data_len = written - trailer_len;
        Ok(Decoded { data_len, trailer_len, consumed: read, done: self.is_done() })
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of the current chunk that its size line announced and that have not been decoded
    /// yet: a caller with a body limit can refuse a chunk before its data arrives. While a
    /// size line is still arriving, the size read so far, which more digits only raise; zero
    /// between chunks and after the last one.
    pub fn chunk_bytes_remaining(&self) -> u64 {
        self.size
    }

    /// Takes one framing byte and says which state comes next.
    fn step(&mut self, byte: u8, limits: &ChunkedLimits) -> Result<State, ChunkedError> {
        let next = match (self.state, byte) {
            (State::Size, _) => return self.size_byte(byte, limits),
            (State::SizeSpace, b' ' | b'\t') => self.extension_byte(State::SizeSpace, limits)?,
            (State::SizeSpace, b';') => self.extension_byte(State::NameStart, limits)?,
            (State::SizeSpace, _) => return Err(ChunkedError::BadChunkSize),
            (
                State::NameStart
                | State::Name
                | State::NameSpace
                | State::ValueStart
                | State::Value
                | State::Quoted
                | State::QuotedPair
                | State::QuotedEnd
                | State::ValueSpace,
                _,
            ) => return self.extension_step(byte, limits),
            (State::SizeLf, b'\n') => self.size_line_end(),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.digits = 0;
                State::Size
            }
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerName | State::TrailerValue, b'\n') => {
                return Err(ChunkedError::BadLineEnding);
            }
            // A field name is a token; whitespace before the colon or at the start of a
            // line (obs-fold) is refused, as in heads.
            (State::TrailerStart | State::TrailerName, byte) if is_tchar(byte) => {
                self.trailer_byte(State::TrailerName, limits)?
            }
            (State::TrailerName, b':') => self.trailer_byte(State::TrailerValue, limits)?,
            (State::TrailerValue, b'\r') => self.trailer_byte(State::TrailerLf, limits)?,
            (State::TrailerValue, byte) if !byte.is_ascii_control() || byte == b'\t' => {
                self.trailer_byte(State::TrailerValue, limits)?
            }
            (State::TrailerStart | State::TrailerName | State::TrailerValue, _) => {
                return Err(ChunkedError::BadTrailer);
            }
            (State::TrailerLf, b'\n') => self.trailer_byte(State::TrailerStart, limits)?,
            (State::EndLf, b'\n') => State::Done,
            (
                State::SizeLf | State::DataCr | State::DataLf | State::TrailerLf | State::EndLf,
                _,
            ) => {
                return Err(ChunkedError::BadLineEnding);
            }
            (State::Data | State::Done, _) => {
                unreachable!("decode_in_place copies data itself and stops once done")
            }
        };
        Ok(next)
    }

    /// A byte of the chunk size, or the first one after it.
    fn size_byte(&mut self, byte: u8, limits: &ChunkedLimits) -> Result<State, ChunkedError> {
        if let Some(value) = hex_value(byte) {
            if self.digits == SIZE_DIGITS_MAX {
                return Err(ChunkedError::BadChunkSize);
            }
            self.digits += 1;
            self.size = self.size << 4 | u64::from(value);
            return Ok(State::Size);
        }
        if self.digits == 0 {
            return Err(ChunkedError::BadChunkSize);
        }
        self.framing_bytes = 0;
        match byte {
            b'\r' => Ok(State::SizeLf),
            b'\n' => Err(ChunkedError::BadLineEnding),
            b' ' | b'\t' => self.extension_byte(State::SizeSpace, limits),
            b';' => self.extension_byte(State::NameStart, limits),
            _ => Err(ChunkedError::BadChunkSize),
        }
    }

    /// The LF of a size line: data follows, or the trailer section after the last chunk.
    fn size_line_end(&mut self) -> State {
        self.framing_bytes = 0;
        if self.size == 0 { State::TrailerStart } else { State::Data }
    }

    /// A byte of a chunk extension (RFC 9112 §7.1.1), after its `;`:
    ///
    /// ```text
    /// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
    /// ext-name  = token
    /// ext-val   = token / quoted-string
    /// ```
    ///
    /// The CR that ends the line is not counted against `extension_bytes_max`.
    fn extension_step(&mut self, byte: u8, limits: &ChunkedLimits) -> Result<State, ChunkedError> {
        if byte == b'\n' {
            return Err(ChunkedError::BadLineEnding);
        }
        let is_space = byte == b' ' || byte == b'\t';
        let next = match self.state {
            State::NameStart if is_space => State::NameStart,
            State::NameStart | State::Name if is_tchar(byte) => State::Name,
            State::NameSpace if is_space => State::NameSpace,
            State::Name if is_space => State::NameSpace,
            State::Name | State::NameSpace if byte == b'=' => State::ValueStart,
            State::ValueStart if is_space => State::ValueStart,
            State::ValueStart if byte == b'"' => State::Quoted,
            State::ValueStart | State::Value if is_tchar(byte) => State::Value,
            State::Quoted if byte == b'"' => State::QuotedEnd,
            State::Quoted if byte == b'\\' => State::QuotedPair,
            State::Quoted if is_qdtext(byte) => State::Quoted,
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            State::QuotedPair if is_qdtext(byte) || byte == b'"' || byte == b'\\' => State::Quoted,
            State::Value | State::QuotedEnd | State::ValueSpace if is_space => State::ValueSpace,
            State::Name
            | State::NameSpace
            | State::Value
            | State::QuotedEnd
            | State::ValueSpace
                if byte == b';' =>
            {
                State::NameStart
            }
            State::Name | State::Value | State::QuotedEnd if byte == b'\r' => {
                return Ok(State::SizeLf);
            }
            State::NameStart
            | State::Name
            | State::NameSpace
            | State::ValueStart
            | State::Value
            | State::Quoted
            | State::QuotedPair
            | State::QuotedEnd
            | State::ValueSpace => return Err(ChunkedError::BadExtension),
            State::Size
            | State::SizeSpace
            | State::SizeLf
            | State::Data
            | State::DataCr
            | State::DataLf
            | State::TrailerStart
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::EndLf
            | State::Done => unreachable!("only extension states reach extension_step"),
        };
        self.extension_byte(next, limits)
    }

    fn extension_byte(
        &mut self,
        next: State,
        limits: &ChunkedLimits,
    ) -> Result<State, ChunkedError> {
        self.framing_bytes += 1;
        if self.framing_bytes > limits.extension_bytes_max {
            return Err(ChunkedError::ExtensionTooLong);
        }
        Ok(next)
    }

    fn trailer_byte(&mut self, next: State, limits: &ChunkedLimits) -> Result<State, ChunkedError> {
        self.framing_bytes += 1;
        if self.framing_bytes > limits.trailer_bytes_max {
            return Err(ChunkedError::TrailersTooLong);
        }
        Ok(next)
    }
}

/// RFC 9110 §5.6.2: `tchar`, the bytes of a token.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 9110 §5.6.4: `qdtext`, the bytes a quoted string holds unescaped.
fn is_qdtext(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Writes the chunk-size line for `len` bytes of data (`1a2b\r\n`) into `out` and returns its
/// length. `len` 0 writes `0\r\n`, which starts the last chunk: never send it for empty data.
pub fn encode_chunk_size(len: usize, out: &mut [u8; 18]) -> usize {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bits = usize::BITS - len.leading_zeros();
    let digits = bits.div_ceil(4).max(1) as usize;
    for (index, out) in out[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - index);
        *out = HEX_DIGITS[(len >> shift) & 0xf];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChunkedLimits = ChunkedLimits::DEFAULT;

    /// Three chunks, extensions (one quoted, one after BWS), a last-chunk extension and two
    /// trailers.
    const BODY: &[u8] = b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE ; a=\"q; r\"\r\n in\r\n\r\n\
chunks.\r\n0;last\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Trailer: y\r\n\r\n";
    const DATA: &[u8] = b"Wikipedia in\r\n\r\nchunks.";
    const TRAILERS: &[u8] = b"Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Trailer: y\r\n";
    const NEXT: &[u8] = b"GET /next HTTP/1.1\r\n";

    /// Decodes `parts` in order as reads into one buffer, keeping the unconsumed tail of each.
    /// Returns the data, the bytes left after the body, and whether it is done.
    fn decode_parts(parts: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>, bool), ChunkedError> {
        let mut decoder = ChunkedDecoder::default();
        let (mut data, mut pending) = (Vec::new(), Vec::new());
        for part in parts {
            pending.extend_from_slice(part);
            if decoder.is_done() {
                continue;
            }
            let decoded = decoder.decode_in_place(&mut pending, &LIMITS)?;
            assert!(decoded.data_len <= decoded.consumed && decoded.consumed <= pending.len());
            data.extend_from_slice(&pending[..decoded.data_len]);
            pending.drain(..decoded.consumed);
            assert_eq!(decoded.done, decoder.is_done());
        }
        Ok((data, pending, decoder.is_done()))
    }

    #[test]
    fn decodes_at_every_split() {
        let input = [BODY, NEXT].concat();
        for split in 0..=input.len() {
            let (first, second) = input.split_at(split);
            let result = decode_parts(&[first, second]);
            assert_eq!(result, Ok((DATA.to_vec(), NEXT.to_vec(), true)), "split at {split}");
        }
    }

    #[test]
    fn decodes_byte_by_byte() {
        let input = [BODY, NEXT].concat();
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_parts(&bytes), Ok((DATA.to_vec(), NEXT.to_vec(), true)));
        let mut decoder = ChunkedDecoder::default();
        for (index, byte) in BODY.iter().enumerate() {
            assert!(!decoder.is_done(), "done early, at byte {index}");
            let mut buf = [*byte];
            decoder.decode_in_place(&mut buf, &LIMITS).unwrap();
        }
        assert!(decoder.is_done());
    }

    /// Trailers come after the data at every split of the input, whole and in order.
    #[test]
    fn keeps_trailers_at_every_split() {
        for split in 0..=BODY.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut trailers = Vec::new();
            for part in [&BODY[..split], &BODY[split..]] {
                let mut buf = part.to_vec();
                let decoded = decoder.decode_in_place(&mut buf, &LIMITS).unwrap();
                let start = decoded.data_len;
                trailers.extend_from_slice(&buf[start..start + decoded.trailer_len]);
            }
            assert!(decoder.is_done());
            assert_eq!(trailers, TRAILERS, "split at {split}");
        }
    }

    #[test]
    fn refuses_malformed_trailers() {
        for bad in [
            &b"0\r\nNo Colon\r\n\r\n"[..],
            b"0\r\n : folded\r\n\r\n",
            b"0\r\nName : space before colon\r\n\r\n",
            b"0\r\nName: nul\x00\r\n\r\n",
            b"0\r\n:empty-name\r\n\r\n",
        ] {
            let mut buf = bad.to_vec();
            let result = ChunkedDecoder::default().decode_in_place(&mut buf, &LIMITS);
            assert_eq!(result, Err(ChunkedError::BadTrailer), "{}", bad.escape_ascii());
        }
        let mut bare_lf = b"0\r\nName: v\n\r\n".to_vec();
        let result = ChunkedDecoder::default().decode_in_place(&mut bare_lf, &LIMITS);
        assert_eq!(result, Err(ChunkedError::BadLineEnding));
    }

    #[test]
    fn leaves_the_next_message_alone() {
        let mut buf = [BODY, NEXT].concat();
        let mut decoder = ChunkedDecoder::default();
        let decoded = decoder.decode_in_place(&mut buf, &LIMITS).unwrap();
        let trailer_len = TRAILERS.len();
        let whole = Decoded { data_len: DATA.len(), trailer_len, consumed: BODY.len(), done: true };
        assert_eq!(decoded, whole);
        assert_eq!(&buf[..DATA.len()], DATA);
        assert_eq!(&buf[DATA.len()..DATA.len() + trailer_len], TRAILERS);
        assert_eq!(&buf[BODY.len()..], NEXT);
        let again = decoder.decode_in_place(&mut buf[BODY.len()..], &LIMITS).unwrap();
        assert_eq!(again, Decoded { data_len: 0, trailer_len: 0, consumed: 0, done: true });
    }

    #[test]
    fn decodes_what_it_must() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"0\r\n\r\n", b""),
            (b"1\r\na\r\n0\r\n\r\n", b"a"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"000000000000000a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"2;a=b;c\r\nxy\r\n0\r\n\r\n", b"xy"),
            (b"2 \t; a\r\nxy\r\n0\r\n\r\n", b"xy"),
            (b"1\r\nz\r\n00\r\nT: 1\r\n\r\n", b"z"),
        ];
        for (input, expected) in cases {
            let result = decode_parts(&[input]);
            let expected = Ok((expected.to_vec(), Vec::new(), true));
            assert_eq!(result, expected, "input: {}", input.escape_ascii());
        }
    }

    #[test]
    fn rejects_what_it_must() {
        let long_extension = [b"1;", &[b'e'; 4096][..], b"\r\n"].concat();
        let long_trailer = [b"0\r\nT: ", &[b'v'; 16384][..], b"\r\n\r\n"].concat();
        let cases: [(&[u8], ChunkedError); 20] = [
            (b"\r\n", ChunkedError::BadChunkSize),
            (b";ext\r\n", ChunkedError::BadChunkSize),
            (b"g\r\n", ChunkedError::BadChunkSize),
            (b"-1\r\n", ChunkedError::BadChunkSize),
            (b"0x1\r\n", ChunkedError::BadChunkSize),
            (b"1 \r\nx\r\n", ChunkedError::BadChunkSize),
            (b" 1\r\nx\r\n", ChunkedError::BadChunkSize),
            (b"1 2\r\n", ChunkedError::BadChunkSize),
            (b"10000000000000000\r\n", ChunkedError::BadChunkSize),
            (b"1;a\x00\r\nx\r\n", ChunkedError::BadExtension),
            (b"1\nx\r\n", ChunkedError::BadLineEnding),
            (b"1;a\nx\r\n", ChunkedError::BadLineEnding),
            (b"1\rx\r\n", ChunkedError::BadLineEnding),
            (b"1\r\nxy\r\n", ChunkedError::BadLineEnding),
            (b"1\r\nx\n0\r\n\r\n", ChunkedError::BadLineEnding),
            (b"1\r\nx\r\r\n", ChunkedError::BadLineEnding),
            (b"0\r\n\n", ChunkedError::BadLineEnding),
            (b"0\r\nT: 1\n\r\n", ChunkedError::BadLineEnding),
            (&long_extension, ChunkedError::ExtensionTooLong),
            (&long_trailer, ChunkedError::TrailersTooLong),
        ];
        for (input, expected) in cases {
            for parts in [vec![input], input.chunks(1).collect()] {
                let result = decode_parts(&parts);
                assert_eq!(result, Err(expected), "input: {}", input.escape_ascii());
            }
        }
    }

    /// Extensions follow RFC 9112 §7.1.1 byte by byte: BWS around `;` and `=`, names are
    /// tokens, values are tokens or quoted strings with quoted-pairs; nothing else.
    #[test]
    fn checks_extensions_against_the_grammar() {
        let good: [&[u8]; 14] = [
            b";a",
            b";a=b",
            b";a;b;c",
            b" ;a",
            b"\t; \ta",
            b"; a = b",
            b";a =b ;c",
            b";a=\"\"",
            b";a=\"q; r=\\\"s\\\\\"",
            b";a=\"\t x\x80\xff\"",
            b";a=\"\\\x80\";b",
            b";!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~09AZaz",
            b";a=\"x\" ;b",
            b";a=1;b=\"2\";c",
        ];
        let bad: [(&[u8], ChunkedError); 20] = [
            (b";", ChunkedError::BadExtension),
            (b"; ", ChunkedError::BadExtension),
            (b";;a", ChunkedError::BadExtension),
            (b";=b", ChunkedError::BadExtension),
            (b";a=", ChunkedError::BadExtension),
            (b";a= ", ChunkedError::BadExtension),
            (b";a ", ChunkedError::BadExtension),
            (b";a=b ", ChunkedError::BadExtension),
            (b";a=\"b\" ", ChunkedError::BadExtension),
            (b";a=b c", ChunkedError::BadExtension),
            (b";a b", ChunkedError::BadExtension),
            (b";a=\"b", ChunkedError::BadExtension),
            (b";a=\"b\"c", ChunkedError::BadExtension),
            (b";a=b\"", ChunkedError::BadExtension),
            (b";a(b)", ChunkedError::BadExtension),
            (b";a=b,c", ChunkedError::BadExtension),
            (b";a=\"\x7f\"", ChunkedError::BadExtension),
            (b";a=\"\\\x00\"", ChunkedError::BadExtension),
            (b";\x80", ChunkedError::BadExtension),
            (b";a=\"b\nc\"", ChunkedError::BadLineEnding),
        ];
        for extension in good {
            let input = [b"2", extension, b"\r\nxy\r\n0", extension, b"\r\n\r\n"].concat();
            for parts in [vec![&input[..]], input.chunks(1).collect()] {
                let result = decode_parts(&parts);
                let expected = Ok((b"xy".to_vec(), Vec::new(), true));
                assert_eq!(result, expected, "input: {}", input.escape_ascii());
            }
        }
        for (extension, error) in bad {
            for input in [
                [b"2", extension, b"\r\nxy\r\n0\r\n\r\n"].concat(),
                [b"2\r\nxy\r\n0", extension, b"\r\n\r\n"].concat(),
            ] {
                for parts in [vec![&input[..]], input.chunks(1).collect()] {
                    let result = decode_parts(&parts);
                    assert_eq!(result, Err(error), "input: {}", input.escape_ascii());
                }
            }
        }
    }

    /// The limits are checked as bytes arrive, so an endless line is stopped at the limit.
    #[test]
    fn stops_an_unfinished_line_at_its_limit() {
        let limits = ChunkedLimits { extension_bytes_max: 8, trailer_bytes_max: 8 };
        let cases: [(&[u8], ChunkedError); 2] = [
            (b"1;aaaaaaaa", ChunkedError::ExtensionTooLong),
            (b"0\r\nT: 123456", ChunkedError::TrailersTooLong),
        ];
        for (input, expected) in cases {
            let mut decoder = ChunkedDecoder::default();
            let (fits, last) = input.split_at(input.len() - 1);
            let decoded = decoder.decode_in_place(&mut fits.to_vec(), &limits).unwrap();
            assert_eq!(decoded.consumed, fits.len(), "input: {}", input.escape_ascii());
            let result = decoder.decode_in_place(&mut last.to_vec(), &limits);
            assert_eq!(result, Err(expected), "input: {}", input.escape_ascii());
        }
    }

    #[test]
    fn streams_a_large_chunk_through_a_small_buffer() {
        const CHUNK_LEN: usize = 1 << 20;
        let mut decoder = ChunkedDecoder::default();
        let mut head = *b"100000\r\n";
        let decoded = decoder.decode_in_place(&mut head, &LIMITS).unwrap();
        assert_eq!(decoded, Decoded { data_len: 0, trailer_len: 0, consumed: 8, done: false });
        let mut buf = vec![7_u8; 16 * 1024];
        let mut data_total = 0;
        while data_total < CHUNK_LEN {
            let len = buf.len().min(CHUNK_LEN - data_total);
            let decoded = decoder.decode_in_place(&mut buf[..len], &LIMITS).unwrap();
            let expected = Decoded { data_len: len, trailer_len: 0, consumed: len, done: false };
            assert_eq!(decoded, expected);
            data_total += len;
        }
        let mut end = *b"\r\n0\r\n\r\n";
        let decoded = decoder.decode_in_place(&mut end, &LIMITS).unwrap();
        let expected = Decoded { data_len: 0, trailer_len: 0, consumed: end.len(), done: true };
        assert_eq!(decoded, expected);
    }

    /// The announced size is known as soon as its digits are, before the data arrives.
    #[test]
    fn says_how_much_of_the_chunk_is_still_to_come() {
        let steps: [(&[u8], u64); 7] = [
            (b"ff", 0xff),
            (b"ffffffffffffff", u64::MAX),
            (b"\r\nabc", u64::MAX - 3),
            (b"", u64::MAX - 3),
            (b"1;a=b", 0x1),
            (b"\r\n", 0x1),
            (b"x\r\n", 0),
        ];
        let mut decoder = ChunkedDecoder::default();
        assert_eq!(decoder.chunk_bytes_remaining(), 0);
        for (index, (input, remaining)) in steps.into_iter().enumerate() {
            if index == 4 {
                decoder = ChunkedDecoder::default();
            }
            decoder.decode_in_place(&mut input.to_vec(), &LIMITS).unwrap();
            assert_eq!(
                decoder.chunk_bytes_remaining(),
                remaining,
                "after {}",
                input.escape_ascii()
            );
        }
        decoder.decode_in_place(&mut b"0\r\n\r\n".to_vec(), &LIMITS).unwrap();
        assert!(decoder.is_done());
        assert_eq!(decoder.chunk_bytes_remaining(), 0);
    }

    #[test]
    fn encodes_chunk_sizes() {
        let cases: [(usize, &[u8]); 6] = [
            (0, b"0\r\n"),
            (1, b"1\r\n"),
            (15, b"f\r\n"),
            (16, b"10\r\n"),
            (0x1a2b, b"1a2b\r\n"),
            (usize::MAX, b"ffffffffffffffff\r\n"),
        ];
        for (len, expected) in cases {
            let mut out = [0; 18];
            let written = encode_chunk_size(len, &mut out);
            assert_eq!(&out[..written], expected, "len: {len}");
        }
    }

    #[test]
    fn decodes_what_it_encodes() {
        let mut body = Vec::new();
        let mut out = [0; 18];
        for piece in [&b"hello"[..], &[b'x'; 300][..], b"!"] {
            let written = encode_chunk_size(piece.len(), &mut out);
            body.extend_from_slice(&out[..written]);
            body.extend_from_slice(piece);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(LAST_CHUNK);
        let expected = [&b"hello"[..], &[b'x'; 300][..], b"!"].concat();
        assert_eq!(decode_parts(&[&body]), Ok((expected, Vec::new(), true)));
    }

    /// Mutations of a valid body (xorshift, fixed seed) never panic, and decoding them in one
    /// read or byte by byte gives the same data, or the same error.
    #[test]
    fn mutated_bodies_decode_the_same_at_any_split() {
        const BYTES: &[u8] = b"\r\n \t;=\"0aAfFgG\x00\x7f";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % below as u64).unwrap()
        };
        let mut completed = 0;
        for _ in 0..5_000 {
            let mut input = [BODY, NEXT].concat();
            for _ in 0..=random(2) {
                let at = random(input.len());
                match random(3) {
                    0 => input[at] = BYTES[random(BYTES.len())],
                    1 => input.insert(at, BYTES[random(BYTES.len())]),
                    _ => _ = input.remove(at),
                }
            }
            let whole = decode_parts(&[&input]);
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(decode_parts(&bytes), whole, "input: {}", input.escape_ascii());
            completed += usize::from(whole.is_ok_and(|(_, _, done)| done));
        }
        assert!(completed > 1_000, "only {completed} mutated bodies decoded");
    }
}
