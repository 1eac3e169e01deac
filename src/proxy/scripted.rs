//! A scripted stream, so the phases are component-tested without sockets: reads follow a
//! script of [`Step`]s (bytes in pieces, waits, errors, end of file) and writes are
//! recorded, short or failing where the test says.
//!
//! It is a [`Source`] and a [`Sink`], so it stands in for either end of a relay, and for
//! the backend and the client of the response-head phase.

#![expect(unsafe_code, reason = "monoio's IoBuf and IoVecBuf hand out raw pointers to read")]

use super::body::{Sink, Source};
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// One step of a read script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Bytes the peer sent. A read takes at most [`ScriptedStream::read_pieces`] of them,
    /// and never reads past the end of its step: two steps are two pieces that arrive apart.
    Bytes(Vec<u8>),
    /// The next read yields to the runtime once first.
    Yield,
    /// The next read waits this long first.
    Sleep(Duration),
    /// The next read waits until the test calls [`ScriptedStream::release`]: forever within
    /// one relay.
    Hold,
    /// The next read fails with this kind.
    Error(io::ErrorKind),
    /// End of file, for this read and every one after it (an empty script reads so too).
    Eof,
}

/// Runs `future` to its end on a fresh epoll-driver runtime with timers: one per test.
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    runtime.block_on(future)
}

/// `bytes` as a step.
pub(crate) fn bytes(bytes: &[u8]) -> Step {
    Step::Bytes(bytes.to_vec())
}

/// What writes meet once a given number of bytes went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteFault {
    Error(io::ErrorKind),
    /// The write never completes (a peer that stopped reading).
    Hold,
}

/// When the peer answers, as [`Sink::answered`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Never,
    /// Once this many bytes have been written to it.
    AfterWritten(usize),
    /// At this moment.
    At(Instant),
}

/// A stream that reads a script and records what is written to it.
#[derive(Debug)]
pub(crate) struct ScriptedStream {
    reads: VecDeque<Step>,
    /// Most bytes one read takes (1: byte by byte).
    read_piece_max: usize,
    /// Every byte written, in order.
    pub(crate) written: Vec<u8>,
    /// Bytes taken by each write call that took any.
    pub(crate) writes: Vec<usize>,
    /// Most bytes one write takes: more makes short writes.
    write_piece_max: usize,
    /// After this many bytes written in all, writes meet the fault.
    write_fault: Option<(usize, WriteFault)>,
    pub(crate) answer: Answer,
    pub(crate) shut_down: bool,
}

impl ScriptedStream {
    /// A stream whose reads follow `steps`, that takes every write whole and never answers.
    pub(crate) fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            reads: steps.into_iter().collect(),
            read_piece_max: usize::MAX,
            written: Vec::new(),
            writes: Vec::new(),
            write_piece_max: usize::MAX,
            write_fault: None,
            answer: Answer::Never,
            shut_down: false,
        }
    }

    /// Reads take at most `len` bytes each.
    pub(crate) fn read_pieces(mut self, len: usize) -> Self {
        assert!(len > 0, "a read of 0 bytes is end of file");
        self.read_piece_max = len;
        self
    }

    /// Writes take at most `len` bytes each.
    pub(crate) fn write_pieces(mut self, len: usize) -> Self {
        assert!(len > 0, "a write of 0 bytes is an error");
        self.write_piece_max = len;
        self
    }

    /// Writes meet `fault` once `len` bytes went through.
    pub(crate) fn fault_writes_after(mut self, len: usize, fault: WriteFault) -> Self {
        self.write_fault = Some((len, fault));
        self
    }

    pub(crate) fn answers(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    /// Ends a [`Step::Hold`] at the front of the script.
    pub(crate) fn release(&mut self) {
        assert_eq!(self.reads.front(), Some(&Step::Hold), "nothing held");
        self.reads.pop_front();
    }

    /// The steps not read yet.
    pub(crate) fn reads_left(&self) -> &VecDeque<Step> {
        &self.reads
    }

    /// Waits out the steps before the next one a read returns at once.
    async fn wait_ready(&mut self) {
        loop {
            match self.reads.front() {
                Some(Step::Yield) => crate::proxy::body::yield_now().await,
                Some(&Step::Sleep(duration)) => monoio::time::sleep(duration).await,
                Some(Step::Hold) => std::future::pending().await,
                Some(Step::Bytes(bytes)) if bytes.is_empty() => {}
                Some(Step::Bytes(_) | Step::Error(_) | Step::Eof) | None => return,
            }
            // Popped only once waited out: a read dropped meanwhile waits again.
            self.reads.pop_front();
        }
    }

    /// Bytes the next write may take, or its fault.
    async fn write_room(&self) -> io::Result<usize> {
        let Some((after, fault)) = self.write_fault else { return Ok(self.write_piece_max) };
        let Some(room) = after.checked_sub(self.written.len()).filter(|&room| room > 0) else {
            return match fault {
                WriteFault::Error(kind) => Err(kind.into()),
                WriteFault::Hold => std::future::pending().await,
            };
        };
        Ok(room.min(self.write_piece_max))
    }

    /// Records up to `room` bytes of `slices`, in order, as one write.
    fn record(&mut self, slices: &[&[u8]], room: usize) -> usize {
        let mut taken = 0;
        for slice in slices {
            let take = slice.len().min(room - taken);
            self.written.extend_from_slice(&slice[..take]);
            taken += take;
        }
        if taken > 0 {
            self.writes.push(taken);
        }
        taken
    }
}

impl AsyncReadRent for ScriptedStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.wait_ready().await;
        let piece_max = self.read_piece_max;
        match self.reads.front_mut() {
            None | Some(Step::Eof) => (Ok(0), buf),
            Some(&mut Step::Error(kind)) => {
                self.reads.pop_front();
                (Err(kind.into()), buf)
            }
            Some(Step::Bytes(bytes)) => {
                let mut piece = &bytes[..bytes.len().min(piece_max)];
                let (result, buf) = piece.read(buf).await;
                if let Ok(read) = result {
                    bytes.drain(..read);
                }
                if bytes.is_empty() {
                    self.reads.pop_front();
                }
                (result, buf)
            }
            Some(Step::Yield | Step::Sleep(_) | Step::Hold) => {
                unreachable!("waited out by wait_ready")
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.wait_ready().await;
        let piece_max = self.read_piece_max;
        match self.reads.front_mut() {
            None | Some(Step::Eof) => (Ok(0), buf),
            Some(&mut Step::Error(kind)) => {
                self.reads.pop_front();
                (Err(kind.into()), buf)
            }
            Some(Step::Bytes(bytes)) => {
                let mut piece = &bytes[..bytes.len().min(piece_max)];
                let (result, buf) = piece.readv(buf).await;
                if let Ok(read) = result {
                    bytes.drain(..read);
                }
                if bytes.is_empty() {
                    self.reads.pop_front();
                }
                (result, buf)
            }
            Some(Step::Yield | Step::Sleep(_) | Step::Hold) => {
                unreachable!("waited out by wait_ready")
            }
        }
    }
}

impl AsyncWriteRent for ScriptedStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let room = match self.write_room().await {
            Ok(room) => room,
            Err(error) => return (Err(error), buf),
        };
        let slice = if buf.bytes_init() == 0 {
            &[][..]
        } else {
            // SAFETY: IoBuf promises `bytes_init` initialized bytes at `read_ptr`, which stay
            // put while this call owns `buf`; the slice is gone before `buf` is returned.
            unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
        };
        let taken = self.record(&[slice], room);
        (Ok(taken), buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let room = match self.write_room().await {
            Ok(room) => room,
            Err(error) => return (Err(error), buf),
        };
        let iovecs = if buf.read_iovec_len() == 0 {
            &[][..]
        } else {
            // SAFETY: IoVecBuf promises `read_iovec_len` valid iovecs at `read_iovec_ptr`,
            // unchanged while this call owns `buf`.
            unsafe { std::slice::from_raw_parts(buf.read_iovec_ptr(), buf.read_iovec_len()) }
        };
        let slices: Vec<&[u8]> = iovecs
            .iter()
            .filter(|iovec| iovec.iov_len > 0)
            // SAFETY: each iovec describes `iov_len` readable bytes at `iov_base`, which
            // stay put while this call owns `buf`.
            .map(|iovec| unsafe {
                std::slice::from_raw_parts(iovec.iov_base.cast::<u8>(), iovec.iov_len)
            })
            .collect();
        let taken = self.record(&slices, room);
        (Ok(taken), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.shut_down = true;
        Ok(())
    }
}

impl Source for ScriptedStream {
    async fn readable(&mut self) {
        self.wait_ready().await;
    }
}

impl Sink for ScriptedStream {
    async fn answered(&self) {
        match self.answer {
            Answer::AfterWritten(len) if self.written.len() >= len => {}
            Answer::At(moment) => {
                monoio::time::sleep_until(monoio::time::Instant::from_std(moment)).await;
            }
            Answer::Never | Answer::AfterWritten(_) => std::future::pending().await,
        }
    }

    /// A peer that stopped reading has no room; otherwise there always is.
    async fn writable(&self) {
        match self.write_fault {
            Some((after, WriteFault::Hold)) if self.written.len() >= after => {
                std::future::pending::<()>().await;
            }
            Some((_, WriteFault::Hold | WriteFault::Error(_))) | None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_follow_the_script_in_pieces() {
        let steps = [bytes(b"hello"), Step::Yield, bytes(b"!"), Step::Error(io::ErrorKind::Other)];
        let mut stream = ScriptedStream::new(steps).read_pieces(2);
        let reads = run(async {
            let mut reads = Vec::new();
            loop {
                let (result, buf) = stream.read(Vec::with_capacity(8)).await;
                match result {
                    Ok(0) => break,
                    Ok(_) => reads.push(String::from_utf8(buf).expect("ascii")),
                    Err(error) => reads.push(format!("{:?}", error.kind())),
                }
            }
            reads
        });
        assert_eq!(reads, ["he", "ll", "o", "!", "Other"]);
        assert!(stream.reads_left().is_empty());
    }

    #[test]
    fn writes_are_recorded_short_then_fail() {
        let fault = WriteFault::Error(io::ErrorKind::BrokenPipe);
        let mut stream = ScriptedStream::new([]).write_pieces(3).fault_writes_after(5, fault);
        let results = run(async {
            let mut results = Vec::new();
            for _ in 0..3 {
                results.push(stream.write(b"abcdefg".to_vec()).await.0.map_err(|e| e.kind()));
            }
            results
        });
        assert_eq!(results, [Ok(3), Ok(2), Err(io::ErrorKind::BrokenPipe)]);
        assert_eq!(
            (stream.written.as_slice(), stream.writes.as_slice()),
            (&b"abcab"[..], &[3, 2][..])
        );
    }
}
