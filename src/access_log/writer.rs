//! The one writer thread: takes filled buffers from workers and writes them out.
//!
//! It is the only place where access-log I/O blocks, so a slow disk slows this thread and
//! never a worker. It reopens the file on request (SIGUSR1 or [`super::AccessLog::reopen`])
//! so that logrotate can move the old file away.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flume::{Receiver, RecvTimeoutError, Sender};

use super::LogTarget;

/// Longest time a reopen requested by signal waits when no lines arrive.
pub(crate) const REOPEN_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// What workers and the control side send to the writer, in order.
#[derive(Debug)]
pub(crate) enum Message {
    /// Whole lines, ready to write.
    Batch(Vec<u8>),
    /// Reopen the file after the batches sent before this message.
    Reopen,
    /// Write what is queued and end the thread.
    Stop,
}

/// Where the writer puts lines.
#[derive(Debug)]
pub(crate) enum Output {
    Stdout(io::Stdout),
    File { path: PathBuf, file: File },
}

impl Output {
    /// Opens `target` now, so that a bad path fails startup rather than the first write.
    pub(crate) fn open(target: &LogTarget) -> io::Result<Self> {
        match target {
            LogTarget::Stdout => Ok(Output::Stdout(io::stdout())),
            LogTarget::File(path) => {
                Ok(Output::File { path: path.clone(), file: open_append(path)? })
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(stdout) => {
                let mut lock = stdout.lock();
                lock.write_all(bytes)?;
                lock.flush()
            }
            // Files are unbuffered: each batch is one large write(2), and a line is never
            // left half-written in a user-space buffer.
            Output::File { file, .. } => file.write_all(bytes),
        }
    }

    /// Opens the path again; on failure keeps writing to the old file and says why.
    fn reopen(&mut self) {
        if let Output::File { path, file } = self {
            match open_append(path) {
                Ok(fresh) => *file = fresh,
                Err(error) => {
                    log::warn!("access log: reopening {} failed: {error}", path.display());
                }
            }
        }
    }
}

/// Opens for appending, creating the file when missing; errors name the path.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path).map_err(|error| {
        io::Error::new(error.kind(), format!("access log {}: {error}", path.display()))
    })
}

/// The writer's ends of its channels and the flag the SIGUSR1 handler sets.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) output: Output,
    pub(crate) batches: Receiver<Message>,
    /// Emptied buffers go back to the workers, so that steady logging does not allocate.
    pub(crate) recycled: Sender<Vec<u8>>,
    pub(crate) reopen_requested: Arc<AtomicBool>,
    /// Tests hold the writer here to fill the queue; `None` in production.
    pub(crate) gate: Option<Receiver<()>>,
    /// INVARIANT: true while writes fail, so a full disk logs one warning, not one per batch.
    pub(crate) failing: bool,
}

impl Writer {
    /// Runs until [`Message::Stop`] arrives or every sender is gone.
    pub(crate) fn run(mut self) {
        if let Some(gate) = self.gate.take() {
            // Either a value or a dropped sender opens the gate.
            let _ = gate.recv();
        }
        loop {
            match self.batches.recv_timeout(REOPEN_CHECK_INTERVAL) {
                Ok(Message::Batch(buf)) => self.write(buf),
                Ok(Message::Reopen) => self.output.reopen(),
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.reopen_requested.swap(false, Ordering::Relaxed) {
                self.output.reopen();
            }
        }
        // A worker that outlived shutdown may have queued more after Stop; keep its lines.
        while let Ok(message) = self.batches.try_recv() {
            if let Message::Batch(buf) = message {
                self.write(buf);
            }
        }
    }

    fn write(&mut self, mut buf: Vec<u8>) {
        match self.output.write_all(&buf) {
            Ok(()) => self.failing = false,
            Err(error) => {
                if !self.failing {
                    log::error!("access log: write failed, lines are lost: {error}");
                }
                self.failing = true;
            }
        }
        // Workers expect buffers at full length; zeroing here keeps that cost off them.
        buf.resize(buf.capacity(), 0);
        // A full pool means enough buffers are in circulation: this one is freed.
        let _ = self.recycled.try_send(buf);
    }
}
