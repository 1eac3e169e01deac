//! Round trips through each coder, fed in pieces, with flushes that decode at once.

use super::*;
use std::io::Read;

fn decode(encoding: Encoding, bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    match encoding {
        Encoding::Gzip => {
            flate2::read::GzDecoder::new(bytes).read_to_end(&mut decoded).expect("gzip");
        }
        Encoding::Br => {
            brotli::Decompressor::new(bytes, 4096).read_to_end(&mut decoded).expect("br");
        }
        Encoding::Zstd => {
            decoded = zstd::stream::decode_all(bytes).expect("zstd");
        }
    }
    decoded
}

fn sample(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    let mut state = 0x2545_f491_u32;
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let word = ["{\"id\":", "\"name\":\"", "ringway", "\",", "}\n"][state as usize % 5];
        bytes.extend_from_slice(word.as_bytes());
        bytes.push(b'0' + (state % 10) as u8);
    }
    bytes.truncate(len);
    bytes
}

/// Feeds `input` in `piece`-byte calls, then finishes; the output is whole.
fn encode_in_pieces(coder: &mut Coder, input: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        let mut taken = 0;
        while taken < chunk.len() {
            taken += coder.code(&chunk[taken..], Flush::None, &mut out, 1 << 20).unwrap().consumed;
        }
    }
    while !coder.code(&[], Flush::Finish, &mut out, 1 << 20).unwrap().done {}
    out
}

#[test]
fn each_encoder_round_trips_at_every_size() {
    for encoding in Encoding::ALL.iter().copied() {
        for len in [0, 1, 256, 64 * 1024, 1 << 20] {
            let input = sample(len);
            for piece in [1000, 16 * 1024] {
                let mut coder = Coder::encoder(encoding, 3).unwrap();
                let encoded = encode_in_pieces(&mut coder, &input, piece);
                assert_eq!(decode(encoding, &encoded), input, "{encoding:?} {len} B");
                if len >= 64 * 1024 {
                    assert!(encoded.len() < len / 2, "{encoding:?} barely compressed");
                }
            }
        }
    }
}

#[test]
fn a_sync_flush_makes_what_was_taken_decodable() {
    for encoding in Encoding::ALL.iter().copied() {
        let mut coder = Coder::encoder(encoding, 5).unwrap();
        let mut out = Vec::new();
        let event = b"data: {\"tick\": 1}\n\n";
        let progress = coder.code(event, Flush::Sync, &mut out, 1 << 20).unwrap();
        assert_eq!(progress, Progress { consumed: event.len(), done: true });
        // A streaming decoder reads the event before the stream ends.
        let mut decoded = vec![0u8; event.len()];
        let read = match encoding {
            Encoding::Gzip => flate2::read::GzDecoder::new(&out[..]).read_exact(&mut decoded),
            Encoding::Br => brotli::Decompressor::new(&out[..], 4096).read_exact(&mut decoded),
            Encoding::Zstd => {
                zstd::stream::read::Decoder::new(&out[..]).unwrap().read_exact(&mut decoded)
            }
        };
        read.unwrap_or_else(|error| panic!("{encoding:?}: {error}"));
        assert_eq!(&decoded, event, "{encoding:?}");
    }
}

#[test]
fn the_decoder_bounds_its_output_per_call() {
    let input = vec![b'a'; 4 << 20];
    let mut gzip = Coder::encoder(Encoding::Gzip, 6).unwrap();
    let encoded = encode_in_pieces(&mut gzip, &input, 1 << 20);
    assert!(encoded.len() < 64 * 1024, "a bomb-like body: {} bytes", encoded.len());
    let mut gunzip = Coder::gunzip();
    let mut decoded = Vec::new();
    let mut taken = 0;
    let mut calls = 0;
    loop {
        let before = decoded.len();
        let progress =
            gunzip.code(&encoded[taken..], Flush::None, &mut decoded, 64 * 1024).unwrap();
        assert!(decoded.len() - before < 64 * 1024 + OUT_ROOM_BYTES + 1024, "grew too much");
        taken += progress.consumed;
        calls += 1;
        if progress.done && taken == encoded.len() {
            break;
        }
    }
    assert_eq!(decoded, input);
    assert!(calls > 32, "{calls} calls");
}

#[test]
fn garbage_does_not_decode() {
    let mut gunzip = Coder::gunzip();
    let result = gunzip.code(b"this is not gzip at all", Flush::None, &mut Vec::new(), 1024);
    assert_eq!(result, Err(CoderError::Decode));
}

/// What [`sample`] is not: the same words upper-cased, in reverse order. A reset state
/// that kept anything of the one would show it in the other's output.
fn other_sample(len: usize) -> Vec<u8> {
    sample(len).into_iter().rev().map(|byte| byte.to_ascii_uppercase()).collect()
}

#[test]
fn a_reset_encoder_codes_the_next_stream_as_a_new_one() {
    for encoding in Encoding::ALL.iter().copied() {
        for level in [1, 4] {
            let what = format!("{encoding:?} level {level}");
            let (first, second) = (sample(100_000), other_sample(100_000));
            let mut coder = Coder::encoder(encoding, level).unwrap();
            let alone =
                encode_in_pieces(&mut Coder::encoder(encoding, level).unwrap(), &second, 16 * 1024);
            assert_eq!(decode(encoding, &encode_in_pieces(&mut coder, &first, 16 * 1024)), first);
            coder.reset(level).unwrap();
            let reused = encode_in_pieces(&mut coder, &second, 16 * 1024);
            assert_eq!(decode(encoding, &reused), second, "{what}: after a whole stream");
            assert_eq!(reused, alone, "{what}: the same bytes as a new encoder's");
            if !coder.resets_mid_stream() {
                continue;
            }
            // Cut mid-stream: part of a body taken and partly flushed, never finished.
            coder.reset(level).unwrap();
            let mut out = Vec::new();
            coder.code(&first[..60_000], Flush::Sync, &mut out, 1 << 20).unwrap();
            coder.code(&first[60_000..70_000], Flush::None, &mut out, 1 << 20).unwrap();
            coder.reset(level).unwrap();
            let reused = encode_in_pieces(&mut coder, &second, 16 * 1024);
            assert_eq!(decode(encoding, &reused), second, "{what}: after a cut stream");
            assert_eq!(reused, alone, "{what}: after a cut stream, as a new encoder's");
        }
    }
}

#[test]
fn the_decoder_does_not_reset() {
    assert_eq!(Coder::gunzip().reset(1), Err(CoderError::Decode));
}
