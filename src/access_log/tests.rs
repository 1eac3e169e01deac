//! Access-log tests: exact lines in both formats, escaping and bounds, and the writer
//! thread (ordering, reopen by call and by SIGUSR1, dropping under backpressure).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::format::{LINE_BYTES_MAX, Line, line_bytes_bound, write_combined, write_json};
use super::time::Clock;
use super::*;

const RID: &[u8] = b"5f3a9c01000000010000000000000001";

fn entry() -> LogEntry<'static> {
    LogEntry {
        time: UNIX_EPOCH + Duration::from_millis(1_795_356_078_123),
        client: "203.0.113.7:51234".parse().unwrap(),
        method: b"GET",
        target: b"/search?q=ring",
        version: b"HTTP/1.1",
        status: 200,
        bytes_sent: 5120,
        duration: Duration::from_nanos(12_345_678),
        upstream: Some("10.0.0.2:8080".parse().unwrap()),
        upstream_time: Some(Duration::from_micros(10_002)),
        route: "api",
        cluster: Some("api-backends"),
        request_id: RID,
        user_agent: Some(b"curl/8.5.0"),
        referer: Some(b"https://example.com/"),
        consumer: None,
        l4: None,
    }
}

type WriteLine = fn(&mut Line<'_>, &mut Clock, &LogEntry<'_>);

/// Formats into a buffer exactly as large as the bound, so a bound too small shows up
/// as a cut line (no newline) in every test.
fn format_with(write: WriteLine, entry: &LogEntry<'_>) -> String {
    let bound = line_bytes_bound(entry);
    assert!(bound <= LINE_BYTES_MAX);
    let mut buf = vec![0; bound];
    let mut line = Line::new(&mut buf);
    write(&mut line, &mut Clock::new(), entry);
    let len = line.len();
    assert!(len < bound, "line of {len} bytes reached its bound");
    buf.truncate(len);
    let text = String::from_utf8(buf).expect("lines are UTF-8");
    assert!(text.ends_with('\n'));
    text
}

fn combined(entry: &LogEntry<'_>) -> String {
    let text = format_with(write_combined, entry);
    assert!(text.is_ascii());
    text
}

fn json(entry: &LogEntry<'_>) -> String {
    format_with(write_json, entry)
}

#[test]
fn combined_exact_line() {
    assert_eq!(
        combined(&entry()),
        "203.0.113.7 - - [22/Nov/2026:14:01:18 +0000] \"GET /search?q=ring HTTP/1.1\" 200 5120 \
         \"https://example.com/\" \"curl/8.5.0\" rt=0.012 urt=0.010 \
         rid=5f3a9c01000000010000000000000001\n"
    );
}

#[test]
fn json_exact_line() {
    assert_eq!(
        json(&entry()),
        "{\"time\":\"2026-11-22T14:01:18.123Z\",\"client\":\"203.0.113.7:51234\",\
         \"method\":\"GET\",\"path\":\"/search?q=ring\",\"status\":200,\"bytes\":5120,\
         \"duration_ms\":12.345,\"upstream\":\"10.0.0.2:8080\",\"upstream_ms\":10.002,\
         \"route\":\"api\",\"cluster\":\"api-backends\",\
         \"request_id\":\"5f3a9c01000000010000000000000001\",\"user_agent\":\"curl/8.5.0\"}\n"
    );
}

/// An L4 line: the request-shaped part says `TCP`, the SNI name and the close reason; the
/// backend and the bytes it was sent follow.
#[test]
fn l4_lines_carry_the_backend_bytes_received_and_reason() {
    let tcp = LogEntry {
        method: b"TCP",
        target: b"-",
        version: b"idle_timeout",
        request_id: b"-",
        user_agent: None,
        referer: None,
        consumer: None,
        l4: Some(L4Fields { reason: "idle_timeout", bytes_received: 77 }),
        ..entry()
    };
    assert_eq!(
        combined(&tcp),
        "203.0.113.7 - - [22/Nov/2026:14:01:18 +0000] \"TCP - idle_timeout\" 200 5120 \
         \"-\" \"-\" rt=0.012 urt=0.010 rid=- up=10.0.0.2:8080 in=77\n"
    );
    let json = json(&tcp);
    assert!(
        json.ends_with(",\"user_agent\":null,\"reason\":\"idle_timeout\",\"bytes_received\":77}\n"),
        "{json}"
    );
    assert!(json.contains("\"upstream\":\"10.0.0.2:8080\""), "{json}");
}

#[test]
fn absent_values_are_dash_or_null() {
    let mut bare = entry();
    bare.upstream = None;
    bare.upstream_time = None;
    bare.cluster = None;
    bare.user_agent = None;
    bare.referer = Some(b"");
    bare.method = b"";
    bare.target = b"";
    bare.request_id = b"";
    bare.status = 400;
    assert_eq!(
        combined(&bare),
        "203.0.113.7 - - [22/Nov/2026:14:01:18 +0000] \"-\" 400 5120 \"-\" \"-\" rt=0.012 \
         urt=- rid=-\n"
    );
    let line = json(&bare);
    assert!(line.contains(",\"upstream\":null,\"upstream_ms\":null,"), "{line}");
    assert!(line.contains(",\"cluster\":null,\"request_id\":\"\",\"user_agent\":null}"), "{line}");
}

/// Quotes, backslashes, control bytes, DEL, a byte that is not UTF-8, and UTF-8.
const NASTY_TARGET: &[u8] = b"/a\"b\\c\x01\x7f\xff?\xc3\xa9";
const NASTY_AGENT: &[u8] = b"Mozilla \"x\"\n127.0.0.1 - - fake line";

#[test]
fn combined_escapes_like_nginx() {
    let mut nasty = entry();
    nasty.target = NASTY_TARGET;
    nasty.user_agent = Some(NASTY_AGENT);
    nasty.referer = Some(b"\t\\");
    nasty.method = b"G\"T";
    let line = combined(&nasty);
    assert_eq!(
        line,
        "203.0.113.7 - - [22/Nov/2026:14:01:18 +0000] \
         \"G\\x22T /a\\x22b\\x5Cc\\x01\\x7F\\xFF?\\xC3\\xA9 HTTP/1.1\" 200 5120 \"\\x09\\x5C\" \
         \"Mozilla \\x22x\\x22\\x0A127.0.0.1 - - fake line\" rt=0.012 urt=0.010 \
         rid=5f3a9c01000000010000000000000001\n"
    );
    assert_eq!(line.matches('\n').count(), 1, "a client forged a line break");
}

#[test]
fn json_escapes_and_replaces_invalid_utf8() {
    let mut nasty = entry();
    nasty.target = NASTY_TARGET;
    nasty.user_agent = Some(NASTY_AGENT);
    nasty.request_id = b"id\x00\"";
    let line = json(&nasty);
    assert!(line.contains(",\"path\":\"/a\\\"b\\\\c\\u0001\u{7f}\u{fffd}?\u{e9}\","), "{line}");
    assert!(line.contains(",\"request_id\":\"id\\u0000\\\"\","), "{line}");
    assert!(
        line.contains(",\"user_agent\":\"Mozilla \\\"x\\\"\\n127.0.0.1 - - fake line\"}"),
        "{line}"
    );
    assert_eq!(line.matches('\n').count(), 1, "a client forged a line break");
}

#[test]
fn long_fields_are_cut_at_the_limit() {
    let long_path = vec![b'a'; 5000];
    let long_agent = vec![b'u'; 3000];
    let mut long = entry();
    long.target = &long_path;
    long.user_agent = Some(&long_agent);
    let line = combined(&long);
    let expected_request = format!("\"GET {} HTTP/1.1\"", "a".repeat(FIELD_BYTES_MAX));
    assert!(line.contains(&expected_request));
    assert!(line.contains(&format!(" \"{}\" rt=", "u".repeat(FIELD_BYTES_MAX))));
    let value: serde_json::Value = serde_json::from_str(&json(&long)).unwrap();
    assert_eq!(value["path"].as_str().unwrap().len(), FIELD_BYTES_MAX);
    assert_eq!(value["user_agent"].as_str().unwrap().len(), FIELD_BYTES_MAX);
}

#[test]
fn cuts_never_split_a_utf8_character() {
    // 2047 ASCII bytes, then 2-, 3- and 4-byte characters straddling the limit.
    for (character, kept) in [("\u{e9}", 2047), ("\u{20ac}", 2047), ("\u{1f600}", 2047)] {
        let mut path = vec![b'a'; 2047];
        for _ in 0..10 {
            path.extend_from_slice(character.as_bytes());
        }
        let mut cut = entry();
        cut.target = &path;
        let value: serde_json::Value = serde_json::from_str(&json(&cut)).unwrap();
        let logged = value["path"].as_str().unwrap();
        assert_eq!(logged, "a".repeat(kept), "{character}");
    }
    // Not UTF-8 at all (continuation bytes only): cut at the limit exactly.
    let garbage = vec![0x80u8; 4000];
    let mut cut = entry();
    cut.target = &garbage;
    assert_eq!(format::bound(&garbage, FIELD_BYTES_MAX).len(), FIELD_BYTES_MAX);
    let value: serde_json::Value = serde_json::from_str(&json(&cut)).unwrap();
    assert_eq!(value["path"].as_str().unwrap().chars().count(), FIELD_BYTES_MAX);
}

#[test]
fn worst_case_lines_fit_their_bound() {
    // Control bytes take the longest escapes (`\u0001`, `\x01`); numbers their most digits.
    let control = vec![1u8; 3 * FIELD_BYTES_MAX];
    let name = "\u{1}".repeat(2 * NAME_BYTES_MAX);
    let worst = LogEntry {
        client: "[1111:2222:3333:4444:5555:6666:7777:8888]:65535".parse().unwrap(),
        method: &control,
        target: &control,
        version: &control,
        status: u16::MAX,
        bytes_sent: u64::MAX,
        duration: Duration::MAX,
        upstream: Some("[1111:2222:3333:4444:5555:6666:7777:8888]:65535".parse().unwrap()),
        upstream_time: Some(Duration::MAX),
        route: &name,
        cluster: Some(&name),
        request_id: &control,
        user_agent: Some(&control),
        referer: Some(&control),
        consumer: None,
        l4: Some(L4Fields { reason: "total_timeout", bytes_received: u64::MAX }),
        ..entry()
    };
    assert_eq!(line_bytes_bound(&worst), LINE_BYTES_MAX);
    // `format_with` asserts each line ends inside its bound.
    let line = json(&worst);
    assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok());
    combined(&worst);
}

#[test]
fn json_round_trips_with_the_right_types() {
    let value: serde_json::Value = serde_json::from_str(&json(&entry())).unwrap();
    assert_eq!(value["time"], "2026-11-22T14:01:18.123Z");
    assert_eq!(value["client"], "203.0.113.7:51234");
    assert_eq!(value["method"], "GET");
    assert_eq!(value["path"], "/search?q=ring");
    assert_eq!(value["status"].as_u64(), Some(200));
    assert_eq!(value["bytes"].as_u64(), Some(5120));
    assert_eq!(value["duration_ms"].as_f64(), Some(12.345));
    assert_eq!(value["upstream"], "10.0.0.2:8080");
    assert_eq!(value["upstream_ms"].as_f64(), Some(10.002));
    assert_eq!(value["route"], "api");
    assert_eq!(value["cluster"], "api-backends");
    assert_eq!(value["request_id"], "5f3a9c01000000010000000000000001");
    assert_eq!(value["user_agent"], "curl/8.5.0");
    assert_eq!(value.as_object().unwrap().len(), 13);
}

#[test]
fn json_round_trips_every_byte_value() {
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let mut all = entry();
    all.target = &every_byte;
    all.user_agent = Some(&every_byte);
    all.method = &every_byte[..METHOD_BYTES_MAX];
    let value: serde_json::Value = serde_json::from_str(&json(&all)).unwrap();
    let lossy = String::from_utf8_lossy(&every_byte);
    assert_eq!(value["path"].as_str().unwrap(), lossy);
    assert_eq!(value["user_agent"].as_str().unwrap(), lossy);
    assert_eq!(value["method"].as_str().unwrap(), String::from_utf8_lossy(&every_byte[..32]));
}

#[test]
fn ipv6_clients_and_backends() {
    let mut six = entry();
    six.client = "[2001:db8::7]:443".parse().unwrap();
    six.upstream = Some("[::ffff:10.0.0.9]:80".parse().unwrap());
    assert!(combined(&six).starts_with("2001:db8::7 - - ["));
    let line = json(&six);
    assert!(line.contains("\"client\":\"[2001:db8::7]:443\""), "{line}");
    assert!(line.contains("\"upstream\":\"10.0.0.9:80\""), "{line}");
    let mut mapped = entry();
    mapped.client = "[::ffff:198.51.100.1]:9".parse().unwrap();
    assert!(combined(&mapped).starts_with("198.51.100.1 - - ["));
}

#[test]
fn log_format_reads_its_config_spelling() {
    for format in [LogFormat::Off, LogFormat::Combined, LogFormat::Json] {
        let quoted = format!("\"{}\"", format.as_str());
        assert_eq!(serde_json::from_str::<LogFormat>(&quoted).unwrap(), format);
    }
}

// --- The writer thread. ---

/// A fresh path under the system temp dir, removed (with its rotations) on drop.
struct TempLog(PathBuf);

impl TempLog {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir();
        TempLog(dir.join(format!("ringway-access-{}-{unique}-{name}.log", std::process::id())))
    }

    fn rotated(&self) -> PathBuf {
        self.0.with_extension("log.1")
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.rotated());
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// Polls `done` for up to 10 s: the writer runs on its own thread and time.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

fn entry_with_id(id: &[u8]) -> LogEntry<'_> {
    LogEntry { request_id: id, ..entry() }
}

fn log_ids(worker: &mut WorkerLog, ids: std::ops::Range<usize>, tag: &str) {
    for index in ids {
        let id = format!("{tag}-{index}");
        worker.log(LogFormat::Json, &entry_with_id(id.as_bytes()), Instant::now());
    }
}

fn ids_in(path: &Path) -> Vec<String> {
    read_lines(path)
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
            value["request_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn two_workers_write_whole_lines() {
    let temp = TempLog::new("two-workers");
    let options =
        LogOptions { queue_buffers_max: 4096, batch_bytes: 4096, ..LogOptions::default() };
    let log = AccessLog::start_with(LogTarget::File(temp.0.clone()), options).unwrap();
    std::thread::scope(|scope| {
        for tag in ["w0", "w1"] {
            let mut worker = log.worker();
            scope.spawn(move || log_ids(&mut worker, 0..2000, tag));
        }
    });
    assert_eq!(log.dropped_lines(), 0);
    log.shutdown();
    let mut ids = ids_in(&temp.0);
    ids.sort();
    let mut expected: Vec<String> =
        ["w0", "w1"].iter().flat_map(|tag| (0..2000).map(move |i| format!("{tag}-{i}"))).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn reopen_follows_a_rename() {
    let temp = TempLog::new("reopen");
    let log = AccessLog::start(LogTarget::File(temp.0.clone())).unwrap();
    let mut worker = log.worker();
    log_ids(&mut worker, 0..3, "before");
    worker.flush();
    wait_until("the first lines", || read_lines(&temp.0).len() == 3);
    std::fs::rename(&temp.0, temp.rotated()).unwrap();
    log.reopen();
    log_ids(&mut worker, 0..2, "after");
    drop(worker);
    log.shutdown();
    assert_eq!(ids_in(&temp.rotated()), ["before-0", "before-1", "before-2"]);
    assert_eq!(ids_in(&temp.0), ["after-0", "after-1"]);
}

#[test]
fn sigusr1_reopens() {
    let temp = TempLog::new("sigusr1");
    let log = AccessLog::start(LogTarget::File(temp.0.clone())).unwrap();
    let mut worker = log.worker();
    log_ids(&mut worker, 0..2, "before");
    worker.flush();
    wait_until("the first lines", || read_lines(&temp.0).len() == 2);
    std::fs::rename(&temp.0, temp.rotated()).unwrap();
    signal_hook::low_level::raise(signal_hook::consts::SIGUSR1).unwrap();
    // The writer creates the new file when it reopens, within REOPEN_CHECK_INTERVAL.
    wait_until("the reopened file", || temp.0.exists());
    log_ids(&mut worker, 0..2, "after");
    drop(worker);
    log.shutdown();
    assert_eq!(ids_in(&temp.rotated()), ["before-0", "before-1"]);
    assert_eq!(ids_in(&temp.0), ["after-0", "after-1"]);
}

#[test]
fn a_stalled_writer_makes_workers_drop_not_block() {
    let temp = TempLog::new("backpressure");
    // Every line is its own batch, and the queue holds two.
    let options = LogOptions { queue_buffers_max: 2, batch_bytes: 1, ..LogOptions::default() };
    let (open_gate, gate) = flume::bounded(1);
    let log = AccessLog::start_gated(LogTarget::File(temp.0.clone()), options, Some(gate)).unwrap();
    let mut worker = log.worker();
    let started = Instant::now();
    log_ids(&mut worker, 0..10, "line");
    assert!(started.elapsed() < Duration::from_secs(2), "log() blocked");
    assert_eq!(log.dropped_lines(), 8);
    assert_eq!(worker.buffered_bytes(), 0);
    open_gate.send(()).unwrap();
    drop(worker);
    log.shutdown();
    assert_eq!(ids_in(&temp.0), ["line-0", "line-1"]);
}

#[test]
fn buffers_are_handed_over_by_age_and_size() {
    let temp = TempLog::new("handover");
    let options = LogOptions { batch_bytes: 1000, ..LogOptions::default() };
    let log = AccessLog::start_with(LogTarget::File(temp.0.clone()), options).unwrap();
    let mut worker = log.worker();
    let start = Instant::now();
    worker.log(LogFormat::Combined, &entry(), start);
    worker.log(LogFormat::Off, &entry(), start);
    let one_line = worker.buffered_bytes();
    assert!(one_line > 100 && one_line < 1000);
    worker.log(LogFormat::Combined, &entry(), start + Duration::from_millis(99));
    assert_eq!(worker.buffered_bytes(), 2 * one_line, "handed over too early");
    worker.log(LogFormat::Combined, &entry(), start + Duration::from_millis(100));
    assert_eq!(worker.buffered_bytes(), 0, "not handed over after the flush interval");
    for _ in 0..(1000 / one_line + 1) {
        worker.log(LogFormat::Combined, &entry(), start + Duration::from_millis(101));
    }
    assert_eq!(worker.buffered_bytes(), 0, "not handed over when full");
    drop(worker);
    log.shutdown();
    assert_eq!(read_lines(&temp.0).len(), 3 + 1000 / one_line + 1);
}

#[test]
fn a_bad_path_fails_startup_with_the_path() {
    let error = AccessLog::start(LogTarget::File("/nonexistent-dir/x/access.log".into()))
        .expect_err("the directory does not exist");
    assert!(error.to_string().contains("/nonexistent-dir/x/access.log"), "{error}");
}

#[test]
fn stdout_target_starts_and_stops() {
    let log = AccessLog::start(LogTarget::Stdout).unwrap();
    log.reopen();
    assert_eq!(log.dropped_lines(), 0);
    log.shutdown();
}

/// Cost per line, formatting alone and through [`WorkerLog::log`]; run with
/// `cargo test --release --lib access_log::tests::time_per_line -- --ignored --nocapture`.
#[test]
#[ignore = "timing, meaningful only in release builds"]
fn time_per_line() {
    let lines = 2_000_000u32;
    let mut buf = vec![0u8; 1 << 20];
    let mut clock = Clock::new();
    let writers: [(&str, WriteLine); 2] = [("combined", write_combined), ("json", write_json)];
    for (name, write) in writers {
        let sample = entry();
        let started = Instant::now();
        let mut at = 0;
        for _ in 0..lines {
            let mut line = Line::new(&mut buf[at..]);
            write(&mut line, &mut clock, &sample);
            at = if at > 60_000 { 0 } else { at + line.len() };
        }
        let per_line = started.elapsed().as_nanos() / u128::from(lines);
        println!("{name}, formatting only: {per_line} ns per line");
    }
    // /dev/null: the writer keeps up, and the disk is not part of the measurement.
    let log = AccessLog::start(LogTarget::File("/dev/null".into())).unwrap();
    let mut worker = log.worker();
    for format in [LogFormat::Combined, LogFormat::Json] {
        let mut sample = entry();
        let started = Instant::now();
        for index in 0..lines {
            // A new second every 1000 lines exercises the clock cache as 1000 lines/s would.
            let micros = 1_795_356_078_000_000 + u64::from(index) * 1000;
            sample.time = UNIX_EPOCH + Duration::from_micros(micros);
            sample.bytes_sent = u64::from(index);
            worker.log(format, &sample, started);
        }
        let per_line = started.elapsed().as_nanos() / u128::from(lines);
        let dropped = log.dropped_lines();
        println!("{}, WorkerLog::log: {per_line} ns per line (dropped {dropped})", format.as_str());
    }
    drop(worker);
    log.shutdown();
}

#[test]
fn system_time_is_used_not_instant() {
    // Guards the contract that the timestamp comes from the entry, not the call time.
    let mut later = entry();
    later.time = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
    assert!(combined(&later).contains("[02/Jan/1970:00:00:00 +0000]"));
}
