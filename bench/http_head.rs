//! Codec throughput on inputs shaped like real traffic: a browser's GET, an origin's response
//! head, and a chunked body as an origin streams it.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringway::http::{
    ChunkedDecoder, ChunkedLimits, HeadLimits, encode_chunk_size, parse_request_head,
    parse_response_head,
};
use std::hint::black_box;

const BROWSER_GET: &[u8] = b"GET /assets/app.3f2a.js?v=2 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/\r\n\
Cookie: session=4c1f0e2a9b7d; theme=dark\r\n\
Connection: keep-alive\r\n\r\n";

const ORIGIN_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.26.2\r\n\
Date: Tue, 14 Apr 2026 09:21:07 GMT\r\n\
Content-Type: application/javascript; charset=utf-8\r\n\
Content-Length: 48213\r\n\
Last-Modified: Mon, 13 Apr 2026 17:02:44 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"661ac1f4-bc55\"\r\n\
Cache-Control: public, max-age=31536000, immutable\r\n\
Accept-Ranges: bytes\r\n\r\n";

fn request_head(c: &mut Criterion) {
    let limits = HeadLimits::DEFAULT;
    let mut headers = Vec::with_capacity(usize::from(limits.headers_count_max));
    let mut group = c.benchmark_group("parse_request_head");
    group.throughput(Throughput::Bytes(BROWSER_GET.len() as u64));
    group.bench_function("browser_get", |b| {
        b.iter(|| parse_request_head(black_box(BROWSER_GET), &limits, &mut headers));
    });
    group.finish();
}

fn response_head(c: &mut Criterion) {
    let limits = HeadLimits::DEFAULT;
    let mut headers = Vec::with_capacity(usize::from(limits.headers_count_max));
    let mut group = c.benchmark_group("parse_response_head");
    group.throughput(Throughput::Bytes(ORIGIN_RESPONSE.len() as u64));
    group.bench_function("origin_200", |b| {
        b.iter(|| parse_response_head(black_box(ORIGIN_RESPONSE), &limits, &mut headers));
    });
    group.finish();
}

/// 64 KiB of data in 4 KiB chunks, the way a streaming origin writes it, plus the last chunk.
fn chunked_body() -> Vec<u8> {
    let mut body = Vec::new();
    let mut size_line = [0; 18];
    for index in 0..16_u8 {
        let written = encode_chunk_size(4096, &mut size_line);
        body.extend_from_slice(&size_line[..written]);
        body.extend(std::iter::repeat_n(b'a' + index, 4096));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(ringway::http::LAST_CHUNK);
    body
}

fn chunked_decode(c: &mut Criterion) {
    let body = chunked_body();
    let limits = ChunkedLimits::DEFAULT;
    let mut buf = body.clone();
    let mut group = c.benchmark_group("decode_chunked");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("64k_in_4k_chunks", |b| {
        b.iter(|| {
            // Decoding is in place, so each run starts from a fresh copy; the time includes it.
            buf.copy_from_slice(black_box(&body));
            ChunkedDecoder::default().decode_in_place(&mut buf, &limits)
        });
    });
    group.finish();
}

criterion_group!(benches, request_head, response_head, chunked_decode);
criterion_main!(benches);
