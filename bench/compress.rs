//! Cost of one coded 100 KiB JSON response in the encoder alone, per encoding and level:
//! with a fresh state per response (how the relay worked before the idle list) and with
//! a state reset and reused (src/compress/idle.rs). The body is perf/compress_json.py's
//! (`RINGWAY_BENCH_BODY` names a file to use instead); the proxy's allocator, mimalloc,
//! is used, since how it returns freed tables to the kernel is part of the cost. Time is
//! the thread's CPU time (its page faults included), not wall time: the 2-core dev
//! machines are shared, and wall time there measures the neighbours.
//! `cargo bench --bench compress`; the coded sizes are printed first.

use criterion::{Criterion, criterion_group, criterion_main};
use ringway::compress::{Coder, Flush};
use ringway::config::Encoding;
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The relay's slice: body bytes coded per call.
const SLICE_BYTES: usize = 32 * 1024;

/// The levels measured: zlib-rs gzip 1 to 4 and 6 (the route default and nginx's usual
/// levels), brotli 4 and zstd 3 (their route defaults).
const CASES: &[(Encoding, u32)] = &[
    (Encoding::Gzip, 1),
    (Encoding::Gzip, 2),
    (Encoding::Gzip, 3),
    (Encoding::Gzip, 4),
    (Encoding::Gzip, 6),
    (Encoding::Br, 4),
    (Encoding::Zstd, 3),
];

fn json_body() -> Vec<u8> {
    let path = std::env::var("RINGWAY_BENCH_BODY").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("ringway-bench-compress.json");
        let status = std::process::Command::new("python3")
            .args(["perf/compress_json.py", &path.to_string_lossy(), "102400"])
            .status()
            .expect("python3 runs perf/compress_json.py");
        assert!(status.success(), "perf/compress_json.py failed");
        path.to_string_lossy().into_owned()
    });
    std::fs::read(&path).expect("the bench body")
}

/// Codes `body` as the relay does, in slices, then ends the stream; returns the size.
fn code(coder: &mut Coder, body: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    for slice in body.chunks(SLICE_BYTES) {
        let mut taken = 0;
        while taken < slice.len() {
            let progress = coder.code(&slice[taken..], Flush::None, out, 1 << 20);
            taken += progress.expect("encodes").consumed;
        }
    }
    while !coder.code(&[], Flush::Finish, out, 1 << 20).expect("encodes").done {}
    out.len()
}

/// CPU time this thread has run: /proc's `schedstat`, nanoseconds on a CPU.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let nanos = text.split_whitespace().next().and_then(|field| field.parse().ok());
    Duration::from_nanos(nanos.expect("schedstat's first field"))
}

/// Runs `once` `iterations` times and answers the thread CPU time it took.
fn cpu_time(iterations: u64, mut once: impl FnMut()) -> Duration {
    let start = thread_cpu();
    for _ in 0..iterations {
        once();
    }
    thread_cpu() - start
}

fn name(encoding: Encoding, level: u32) -> String {
    format!("{}_{level}", encoding.as_str())
}

#[expect(clippy::print_stdout, reason = "the sizes are part of the bench's report")]
fn encoders(c: &mut Criterion) {
    let body = json_body();
    let mut out = Vec::with_capacity(body.len() + 64 * 1024);
    println!("body: {} bytes", body.len());
    for &(encoding, level) in CASES {
        let mut coder = Coder::encoder(encoding, level).expect("a valid level");
        println!("{}: {} bytes", name(encoding, level), code(&mut coder, &body, &mut out));
    }
    let mut group = c.benchmark_group("encode_100k_json");
    group.sample_size(30).measurement_time(Duration::from_secs(3));
    for &(encoding, level) in CASES {
        group.bench_function(format!("{}_fresh", name(encoding, level)), |b| {
            b.iter_custom(|iterations| {
                cpu_time(iterations, || {
                    let mut coder = Coder::encoder(encoding, level).expect("a valid level");
                    black_box(code(&mut coder, &body, &mut out));
                })
            });
        });
        let mut coder = Coder::encoder(encoding, level).expect("a valid level");
        group.bench_function(format!("{}_reused", name(encoding, level)), |b| {
            b.iter_custom(|iterations| {
                cpu_time(iterations, || {
                    coder.reset(level).expect("an encoder resets");
                    black_box(code(&mut coder, &body, &mut out));
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);
