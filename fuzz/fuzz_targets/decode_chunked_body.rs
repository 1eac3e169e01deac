//! A chunked body, in one read and split: ringway::fuzz::check_decode_chunked_body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::fuzz::check_decode_chunked_body(data));
