//! Access log: each worker formats finished exchanges into its own buffer ([`WorkerLog`]) and
//! hands whole buffers to one writer thread ([`AccessLog`]) over a bounded channel.
//!
//! A worker never blocks on the log: when the writer falls behind and the queue is full,
//! the batch is dropped and counted ([`AccessLog::dropped_lines`]).

mod format;
mod request_id;
pub(crate) mod time;
mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use flume::{Receiver, Sender, TrySendError};

pub use format::{
    FIELD_BYTES_MAX, METHOD_BYTES_MAX, NAME_BYTES_MAX, REQUEST_ID_BYTES_MAX, VERSION_BYTES_MAX,
};
pub use request_id::{
    REQUEST_ID_ACCEPTED_BYTES_MAX, REQUEST_ID_HEADER, REQUEST_ID_LEN, RequestIdGenerator,
    is_acceptable_request_id, process_seed,
};

use format::{LINE_BYTES_MAX, Line};
use time::Clock;
use writer::{Message, Output, Writer};

/// How a listener logs its exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Off,
    /// nginx "combined", extended with `rt=`, `urt=` and `rid=`.
    Combined,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The config spelling: `off`, `combined` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Off => "off",
            LogFormat::Combined => "combined",
            LogFormat::Json => "json",
        }
    }
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    File(std::path::PathBuf),
}

/// One exchange to log. Borrowed bytes come straight from the connection's buffers.
///
/// Bytes from the client may be anything: formatting bounds and escapes them.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry<'a> {
    /// When the request arrived (wall clock).
    pub time: SystemTime,
    pub client: std::net::SocketAddr,
    pub method: &'a [u8],
    /// Path and query as sent.
    pub target: &'a [u8],
    /// As sent, e.g. `HTTP/1.1`.
    pub version: &'a [u8],
    pub status: u16,
    /// Response bytes sent to the client; nginx logs the body only (`$body_bytes_sent`).
    pub bytes_sent: u64,
    /// From request arrival to the last byte of the response.
    pub duration: Duration,
    pub upstream: Option<std::net::SocketAddr>,
    /// From sending to the backend to its response head (time to first byte).
    pub upstream_time: Option<Duration>,
    pub route: &'a str,
    pub cluster: Option<&'a str>,
    pub request_id: &'a [u8],
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    /// Who authentication found: the combined format's `$remote_user` column, and the
    /// JSON `consumer` field.
    pub consumer: Option<&'a str>,
    /// What only an L4 (TCP connection or UDP flow) line carries.
    pub l4: Option<L4Fields>,
}

/// The fields of an L4 line beyond the request-shaped ones: the backend is `upstream`.
#[derive(Debug, Clone, Copy)]
pub struct L4Fields {
    /// Why the connection or flow ended, as a label (`done`, `idle_timeout`, ...).
    pub reason: &'static str,
    /// Bytes from the client to the backend (`bytes_sent` counts the other way).
    pub bytes_received: u64,
}

/// Limits of the log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Buffers queued for the writer before workers start dropping batches.
    pub queue_buffers_max: usize,
    /// A worker hands its buffer over once it holds this many bytes.
    pub batch_bytes: usize,
    /// A worker hands its buffer over once its oldest line is this old.
    pub flush_interval: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        // 64 buffers of 64 KiB: 4 MiB of backlog, several seconds of lines at 100k/s.
        LogOptions {
            queue_buffers_max: 64,
            batch_bytes: 64 * 1024,
            flush_interval: Duration::from_millis(100),
        }
    }
}

/// Buffers ready for workers at startup (each `batch_bytes` plus one worst-case line).
const SPARE_BUFFERS: usize = 4;

/// The access log of the process: the writer thread and what workers need to reach it.
#[derive(Debug)]
pub struct AccessLog {
    batches: Sender<Message>,
    recycled: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    reopen_requested: Arc<AtomicBool>,
    signal: Option<signal_hook::SigId>,
    /// INVARIANT: `Some` until [`AccessLog::shutdown`] (or drop) has joined it.
    writer: Option<JoinHandle<()>>,
    options: LogOptions,
}

impl AccessLog {
    /// Opens `target` and starts the writer thread with default limits.
    ///
    /// Fails at once when the file cannot be opened, with the path in the message.
    pub fn start(target: LogTarget) -> std::io::Result<Self> {
        Self::start_with(target, LogOptions::default())
    }

    /// Like [`AccessLog::start`] with explicit limits.
    pub fn start_with(target: LogTarget, options: LogOptions) -> std::io::Result<Self> {
        Self::start_gated(target, options, None)
    }

    /// Starts the writer; with a `gate` it writes nothing until the gate opens (tests).
    fn start_gated(
        target: LogTarget,
        options: LogOptions,
        gate: Option<Receiver<()>>,
    ) -> std::io::Result<Self> {
        let output = Output::open(&target)?;
        let bound = options.queue_buffers_max.max(1);
        let (batches, batches_rx) = flume::bounded(bound);
        let (recycled_tx, recycled) = flume::bounded(bound);
        for _ in 0..bound.min(SPARE_BUFFERS) {
            // Spares let a worker swap buffers while the writer is still busy with the
            // last one, instead of allocating (and page-faulting) a fresh one.
            let _ = recycled_tx.try_send(vec![0; options.batch_bytes + LINE_BYTES_MAX]);
        }
        let reopen_requested = Arc::new(AtomicBool::new(false));
        // Registered before the thread starts: from here on SIGUSR1 reopens instead of
        // killing the process (its default action), so logrotate can never race us.
        let signal =
            signal_hook::flag::register(signal_hook::consts::SIGUSR1, reopen_requested.clone())?;
        let writer = Writer {
            output,
            batches: batches_rx,
            recycled: recycled_tx,
            reopen_requested: reopen_requested.clone(),
            gate,
            failing: false,
        };
        let spawned = std::thread::Builder::new().name("access-log".into()).spawn(|| writer.run());
        let handle = match spawned {
            Ok(handle) => handle,
            Err(error) => {
                signal_hook::low_level::unregister(signal);
                return Err(error);
            }
        };
        Ok(AccessLog {
            batches,
            recycled,
            dropped: Arc::new(AtomicU64::new(0)),
            reopen_requested,
            signal: Some(signal),
            writer: Some(handle),
            options,
        })
    }

    /// A buffer for one worker; call once per worker thread.
    pub fn worker(&self) -> WorkerLog {
        WorkerLog {
            buf: vec![0; self.options.batch_bytes + LINE_BYTES_MAX],
            filled: 0,
            lines: 0,
            oldest_line_at: None,
            clock: Clock::new(),
            batches: self.batches.clone(),
            recycled: self.recycled.clone(),
            dropped: self.dropped.clone(),
            options: self.options,
        }
    }

    /// Asks the writer to reopen the file after the batches already queued.
    ///
    /// Never blocks: with the queue full, the request takes the signal's path instead and
    /// happens within 200 ms (the writer's reopen check interval).
    pub fn reopen(&self) {
        if self.batches.try_send(Message::Reopen).is_err() {
            self.reopen_requested.store(true, Ordering::Relaxed);
        }
    }

    /// Lines dropped so far because the writer fell behind (or had stopped).
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything queued and stops the writer. Call after the workers have ended
    /// (their [`WorkerLog`]s flush when dropped); later lines are dropped and counted.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(handle) = self.writer.take() else {
            return;
        };
        // Blocking here is fine: this is the control thread at shutdown, and the writer
        // is draining the queue. An error means the writer is already gone.
        let _ = self.batches.send(Message::Stop);
        if handle.join().is_err() {
            log::error!("access log: the writer thread panicked");
        }
        if let Some(signal) = self.signal.take() {
            // SIGUSR1 stays handled (and now ignored) rather than killing the process.
            signal_hook::low_level::unregister(signal);
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A worker's buffer of formatted lines. Lives in the worker; nothing in it is shared
/// except the channel ends and the dropped-lines counter (touched only when dropping).
#[derive(Debug)]
pub struct WorkerLog {
    /// Kept at its full length (`batch_bytes` plus one worst-case line), zeroed when made:
    /// lines are written into `buf[filled..]`, so formatting never checks capacity.
    buf: Vec<u8>,
    /// INVARIANT: `buf[..filled]` holds whole lines.
    filled: usize,
    /// Lines in `buf`, so a dropped batch is counted in lines.
    lines: u64,
    oldest_line_at: Option<Instant>,
    clock: Clock,
    batches: Sender<Message>,
    recycled: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    options: LogOptions,
}

impl WorkerLog {
    /// Appends one line for `entry`; hands the buffer over when it is full or its oldest
    /// line is older than the flush interval. Never blocks.
    pub fn log(&mut self, format: LogFormat, entry: &LogEntry<'_>, now: Instant) {
        if format == LogFormat::Off {
            return;
        }
        if self.buf.len() - self.filled < format::line_bytes_bound(entry) {
            // Rare: only when the threshold left less than a worst-case line of room.
            self.flush();
        }
        let mut line = Line::new(&mut self.buf[self.filled..]);
        match format {
            LogFormat::Off => {}
            LogFormat::Combined => format::write_combined(&mut line, &mut self.clock, entry),
            LogFormat::Json => format::write_json(&mut line, &mut self.clock, entry),
        }
        self.filled += line.len();
        self.lines += 1;
        let oldest = *self.oldest_line_at.get_or_insert(now);
        let is_due = now.saturating_duration_since(oldest) >= self.options.flush_interval;
        if is_due || self.filled >= self.options.batch_bytes {
            self.flush();
        }
    }

    /// Hands over whatever is buffered (the worker's tick calls this, and drop does).
    pub fn flush(&mut self) {
        if self.filled == 0 {
            return;
        }
        let size = self.buf.len();
        let mut full = std::mem::take(&mut self.buf);
        full.truncate(self.filled);
        match self.batches.try_send(Message::Batch(full)) {
            Ok(()) => {
                // The writer returns buffers at their full length (it zeroes them, not us).
                self.buf = match self.recycled.try_recv() {
                    Ok(buf) if buf.len() == size => buf,
                    _ => vec![0; size],
                };
            }
            Err(error) => {
                // Full: the writer fell behind. Disconnected: it has stopped. Either way
                // these lines are lost; reusing the buffer keeps memory flat.
                let (TrySendError::Full(message) | TrySendError::Disconnected(message)) = error;
                self.buf = match message {
                    Message::Batch(mut buf) => {
                        buf.resize(size, 0);
                        buf
                    }
                    Message::Reopen | Message::Stop => vec![0; size],
                };
                self.dropped.fetch_add(self.lines, Ordering::Relaxed);
            }
        }
        self.filled = 0;
        self.lines = 0;
        self.oldest_line_at = None;
    }

    /// Bytes waiting in this worker's buffer.
    pub fn buffered_bytes(&self) -> usize {
        self.filled
    }
}

impl Drop for WorkerLog {
    fn drop(&mut self) {
        self.flush();
    }
}
