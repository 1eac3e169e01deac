//! Streaming coders: gzip, brotli and zstd encoders and a gzip decoder, each fed body bytes
//! as they arrive and appending what it makes to the caller's buffer.
//!
//! Memory per coder is bounded by its window: gzip 32 KiB (about 270 KiB of state), brotli
//! 2^18 bytes (about 1.5 MiB at quality 4), zstd 2^19 bytes (about 1.5 MiB at level 3), far
//! under RFC 9659's 8 MiB. A worker caps how many it holds (`compression_encoders_max`).
//! An encoder [`Coder::reset`] starts a new stream on the tables it has, which is how a
//! worker reuses states ([`super::IdleCoders`]) instead of faulting in fresh ones.

pub mod blocks;

use crate::config::Encoding;
use blocks::BrAlloc;
use brotli::enc::encode::{
    BrotliEncoderDestroyInstance, BrotliEncoderOperation, BrotliEncoderParameter,
    BrotliEncoderStateStruct,
};
use brotli::enc::{InputPair, InputReferenceMut, StaticCommand};
use flate2::{FlushCompress, FlushDecompress, Status};
use zstd::stream::raw::{InBuffer, Operation, OutBuffer};

/// gzip's window: 2^15, the most deflate allows and what every decoder supports.
const GZIP_WINDOW_BITS: u8 = 15;
/// brotli's window: 2^18 = 256 KiB (issue 22: 18 to 20 bits), as much as a typical page.
const BR_WINDOW_BITS: u32 = 18;
/// zstd's window: 2^19 = 512 KiB; RFC 9659 lets a client refuse windows over 8 MiB.
const ZSTD_WINDOW_LOG: u32 = 19;
/// Free room kept at the end of the output buffer before each call into a coder.
const OUT_ROOM_BYTES: usize = 16 * 1024;

/// What a coder does with what it holds after taking the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Keep what it likes for better compression.
    None,
    /// Emit everything taken so far, decodable at once (server-sent events, a stalled
    /// backend); the stream goes on.
    Sync,
    /// End the stream: its trailer goes out.
    Finish,
}

/// A coder failed: the response cannot go on (the connection closes, as for any
/// mid-body failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoderError {
    #[error("the encoder failed")]
    Encode,
    /// The backend's gzip body is not gzip.
    #[error("the backend's gzip body does not decode")]
    Decode,
}

/// How much of one call's input was taken, and whether the flush asked for is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub consumed: usize,
    /// All input taken and the flush done: call again only with new input.
    pub done: bool,
}

/// One response's coder. Boxed by its owner: the states are large.
#[expect(clippy::large_enum_variant, reason = "the owner boxes the whole coder")]
pub enum Coder {
    Gzip(flate2::Compress),
    Br(BrotliEncoderStateStruct<BrAlloc>),
    Zstd(zstd::stream::raw::Encoder<'static>),
    /// Decodes gzip for a client that does not accept it (`decompress_gzip`).
    Gunzip(flate2::Decompress),
}

impl std::fmt::Debug for Coder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gzip(_) => "Coder::Gzip",
            Self::Br(_) => "Coder::Br",
            Self::Zstd(_) => "Coder::Zstd",
            Self::Gunzip(_) => "Coder::Gunzip",
        })
    }
}

impl Coder {
    /// An encoder for `encoding` at `level` (already checked against the encoding's range).
    pub fn encoder(encoding: Encoding, level: u32) -> Result<Self, CoderError> {
        Ok(match encoding {
            Encoding::Gzip => {
                let level = flate2::Compression::new(level.min(9));
                Self::Gzip(flate2::Compress::new_gzip(level, GZIP_WINDOW_BITS))
            }
            Encoding::Br => Self::Br(br_state(BrAlloc::default(), level)?),
            Encoding::Zstd => {
                let level = i32::try_from(level.min(19)).unwrap_or(3);
                let mut encoder =
                    zstd::stream::raw::Encoder::new(level).map_err(|_| CoderError::Encode)?;
                let window = zstd::zstd_safe::CParameter::WindowLog(ZSTD_WINDOW_LOG);
                encoder.set_parameter(window).map_err(|_| CoderError::Encode)?;
                Self::Zstd(encoder)
            }
        })
    }

    /// Makes this encoder, made for `level`, start a new stream as if new, keeping its
    /// tables' memory: no byte of the stream before is kept, nor referred to. gzip and
    /// zstd reset in place (`deflateReset`, `ZSTD_CCtx_reset(session only)`: the level
    /// and window stay); the brotli crate has no reset, so its state frees its tables into
    /// its allocator and a new state is built on that allocator. Not for the decoder.
    pub fn reset(&mut self, level: u32) -> Result<(), CoderError> {
        match self {
            Self::Gzip(gzip) => gzip.reset(),
            Self::Br(state) => {
                BrotliEncoderDestroyInstance(state);
                let alloc = std::mem::take(&mut state.m8);
                *state = br_state(alloc, level)?;
            }
            Self::Zstd(encoder) => encoder.reinit().map_err(|_| CoderError::Encode)?,
            Self::Gunzip(_) => return Err(CoderError::Decode),
        }
        Ok(())
    }

    /// Whether [`Coder::reset`] may follow a stream that did not end (a response cut
    /// mid-body). Not for gzip: zlib-rs 0.6.9's `deflateReset` leaves level 1's
    /// `deflate_quick` believing its last block is still open, and the next stream comes
    /// out corrupt (the reset tests caught it), so a cut gzip state is dropped instead.
    pub fn resets_mid_stream(&self) -> bool {
        match self {
            Self::Br(_) | Self::Zstd(_) => true,
            Self::Gzip(_) | Self::Gunzip(_) => false,
        }
    }

    /// A gzip decoder.
    pub fn gunzip() -> Self {
        Self::Gunzip(flate2::Decompress::new_gzip(GZIP_WINDOW_BITS))
    }

    /// The encoding this coder's output has (`None` for the decoder: identity).
    pub fn encoding(&self) -> Option<Encoding> {
        match self {
            Self::Gzip(_) => Some(Encoding::Gzip),
            Self::Br(_) => Some(Encoding::Br),
            Self::Zstd(_) => Some(Encoding::Zstd),
            Self::Gunzip(_) => None,
        }
    }

    /// Takes bytes of `input` and appends output to `out`, until all input is taken and
    /// `flush` is done, or until `out` grew by `out_max` bytes (then call again with the
    /// rest). An encoder's output is about as large as its input at worst; a decoder's may
    /// be far larger, which is what `out_max` bounds.
    pub fn code(
        &mut self,
        input: &[u8],
        flush: Flush,
        out: &mut Vec<u8>,
        out_max: usize,
    ) -> Result<Progress, CoderError> {
        let limit = out.len().saturating_add(out_max.max(1));
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < OUT_ROOM_BYTES {
                out.reserve(OUT_ROOM_BYTES);
            }
            let step = match self {
                Self::Gzip(gzip) => gzip_step(gzip, &input[consumed..], flush, out)?,
                Self::Br(state) => br_step(state, &input[consumed..], flush, out)?,
                Self::Zstd(encoder) => zstd_step(encoder, &input[consumed..], flush, out)?,
                Self::Gunzip(gunzip) => {
                    let room = OUT_ROOM_BYTES.min(limit.saturating_sub(out.len())).max(1);
                    gunzip_step(gunzip, &input[consumed..], out, room)?
                }
            };
            consumed += step.consumed;
            if step.done && consumed == input.len() {
                return Ok(Progress { consumed, done: true });
            }
            if out.len() >= limit {
                return Ok(Progress { consumed, done: false });
            }
        }
    }
}

/// A brotli encoder at quality `level` with the crate's window, allocating from `alloc`.
fn br_state(alloc: BrAlloc, level: u32) -> Result<BrotliEncoderStateStruct<BrAlloc>, CoderError> {
    let mut state = BrotliEncoderStateStruct::new(alloc);
    let quality = BrotliEncoderParameter::BROTLI_PARAM_QUALITY;
    let window = BrotliEncoderParameter::BROTLI_PARAM_LGWIN;
    if !state.set_parameter(quality, level.min(11)) || !state.set_parameter(window, BR_WINDOW_BITS)
    {
        return Err(CoderError::Encode);
    }
    Ok(state)
}

/// One call into zlib with the spare capacity of `out`.
fn gzip_step(
    gzip: &mut flate2::Compress,
    input: &[u8],
    flush: Flush,
    out: &mut Vec<u8>,
) -> Result<Progress, CoderError> {
    let mode = match flush {
        Flush::None => FlushCompress::None,
        Flush::Sync => FlushCompress::Sync,
        Flush::Finish => FlushCompress::Finish,
    };
    let before = gzip.total_in();
    let room = out.capacity() - out.len();
    let status = gzip.compress_vec(input, out, mode).map_err(|_| CoderError::Encode)?;
    let consumed = usize::try_from(gzip.total_in() - before).map_err(|_| CoderError::Encode)?;
    let filled = out.capacity() - out.len() == 0 || room == 0;
    let done = match (flush, status) {
        (Flush::Finish, Status::StreamEnd) => true,
        (Flush::Finish, Status::Ok | Status::BufError) => false,
        // zlib has flushed once it leaves room in the output; a repeated flush with no new
        // input answers BufError, which means the same.
        (Flush::None | Flush::Sync, _) => consumed == input.len() && !filled,
    };
    Ok(Progress { consumed, done })
}

/// One call into the brotli encoder, writing into zeroed room at the end of `out`.
fn br_step(
    state: &mut BrotliEncoderStateStruct<BrAlloc>,
    input: &[u8],
    flush: Flush,
    out: &mut Vec<u8>,
) -> Result<Progress, CoderError> {
    let op = match flush {
        Flush::None => BrotliEncoderOperation::BROTLI_OPERATION_PROCESS,
        Flush::Sync => BrotliEncoderOperation::BROTLI_OPERATION_FLUSH,
        Flush::Finish => BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
    };
    let start = out.len();
    out.resize(out.capacity(), 0);
    let (mut available_in, mut in_offset) = (input.len(), 0);
    let (mut available_out, mut out_offset) = (out.len() - start, 0);
    let mut nop = |_: &mut brotli::interface::PredictionModeContextMap<InputReferenceMut<'_>>,
                   _: &mut [StaticCommand],
                   _: InputPair<'_>,
                   _: &mut BrAlloc| ();
    let ok = state.compress_stream(
        op,
        &mut available_in,
        input,
        &mut in_offset,
        &mut available_out,
        &mut out[start..],
        &mut out_offset,
        &mut None,
        &mut nop,
    );
    out.truncate(start + out_offset);
    if !ok {
        return Err(CoderError::Encode);
    }
    let done = match flush {
        Flush::None => in_offset == input.len(),
        Flush::Sync => in_offset == input.len() && !state.has_more_output(),
        Flush::Finish => state.is_finished(),
    };
    Ok(Progress { consumed: in_offset, done })
}

/// One call into zstd, writing after the bytes `out` holds.
fn zstd_step(
    encoder: &mut zstd::stream::raw::Encoder<'static>,
    input: &[u8],
    flush: Flush,
    out: &mut Vec<u8>,
) -> Result<Progress, CoderError> {
    let position = out.len();
    let mut output = OutBuffer::around_pos(out, position);
    let mut source = InBuffer::around(input);
    encoder.run(&mut source, &mut output).map_err(|_| CoderError::Encode)?;
    let consumed = source.pos();
    let taken = consumed == input.len();
    let done = match flush {
        Flush::None => taken,
        Flush::Sync if taken => encoder.flush(&mut output).map_err(|_| CoderError::Encode)? == 0,
        Flush::Finish if taken => {
            encoder.finish(&mut output, true).map_err(|_| CoderError::Encode)? == 0
        }
        Flush::Sync | Flush::Finish => false,
    };
    Ok(Progress { consumed, done })
}

/// One call into the gzip decoder, writing at most `room` bytes. Done once the input is
/// taken and the decoder left room (it holds nothing more to give), or at the stream's end.
fn gunzip_step(
    gunzip: &mut flate2::Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    room: usize,
) -> Result<Progress, CoderError> {
    let (before_in, before_out) = (gunzip.total_in(), gunzip.total_out());
    let start = out.len();
    out.resize(start + room, 0);
    let status = gunzip.decompress(input, &mut out[start..], FlushDecompress::None);
    let made = usize::try_from(gunzip.total_out() - before_out).unwrap_or(room);
    out.truncate(start + made);
    let status = status.map_err(|_| CoderError::Decode)?;
    let consumed =
        usize::try_from(gunzip.total_in() - before_in).map_err(|_| CoderError::Decode)?;
    let done = match status {
        // Bytes after the end of the stream are not part of the body: they are dropped.
        Status::StreamEnd => return Ok(Progress { consumed: input.len(), done: true }),
        Status::Ok | Status::BufError => consumed == input.len() && made < room,
    };
    Ok(Progress { consumed, done })
}

#[cfg(test)]
mod tests;
