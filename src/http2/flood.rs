//! Flood budgets of one HTTP/2 connection, read off the bytes the client sends before h2
//! decodes them: frame headers only (nine bytes each), payloads skipped.
//!
//! h2 answers every PING and SETTINGS and takes every RST_STREAM and empty DATA frame
//! without a bound of its own; past a budget here the connection gets GOAWAY
//! (ENHANCE_YOUR_CALM). Sans-I/O: [`FrameWatch::feed`] takes bytes and the time.

use crate::config::Http2Config;
use std::time::{Duration, Instant};

/// The client connection preface, which comes before the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Which budget a connection spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// RST_STREAM frames past `resets_per_second_max` (rapid reset).
    RapidReset,
    /// CONTINUATION frames past `continuation_frames_max` after one HEADERS.
    Continuation,
    /// PING and SETTINGS frames past `control_frames_per_second_max`.
    Control,
    /// Empty DATA frames past `empty_data_frames_per_second_max`.
    EmptyData,
}

/// Counts one connection's frames against its budgets.
#[derive(Debug)]
pub struct FrameWatch {
    limits: Http2Config,
    /// Preface bytes still to skip.
    preface_left: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to skip.
    payload_left: usize,
    /// CONTINUATION frames since the last HEADERS without END_HEADERS.
    continuations: u32,
    window_start: Option<Instant>,
    resets: u32,
    control: u32,
    empty_data: u32,
}

impl FrameWatch {
    /// A watch from the first byte the client sends (its preface).
    pub fn new(limits: Http2Config) -> Self {
        Self {
            limits,
            preface_left: PREFACE_LEN,
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            payload_left: 0,
            continuations: 0,
            window_start: None,
            resets: 0,
            control: 0,
            empty_data: 0,
        }
    }

    /// Reads the frame headers in `bytes`, the next ones the client sent, at `now`.
    /// `Some` names the first budget spent.
    pub fn feed(&mut self, mut bytes: &[u8], now: Instant) -> Option<Flood> {
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(bytes.len());
                self.payload_left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
            self.header[self.header_len..][..take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            bytes = &bytes[take..];
            if self.header_len == FRAME_HEADER_LEN {
                self.header_len = 0;
                let [a, b, c, kind, flags, ..] = self.header;
                let length = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.payload_left = length;
                if let Some(flood) = self.count(kind, flags, length, now) {
                    return Some(flood);
                }
            }
        }
        None
    }

    /// Counts one frame header.
    fn count(&mut self, kind: u8, flags: u8, length: usize, now: Instant) -> Option<Flood> {
        let start = *self.window_start.get_or_insert(now);
        if now.duration_since(start) >= Duration::from_secs(1) {
            self.window_start = Some(now);
            (self.resets, self.control, self.empty_data) = (0, 0, 0);
        }
        let limits = &self.limits;
        match kind {
            DATA if length == 0 && flags & END_STREAM == 0 => {
                self.empty_data += 1;
                (self.empty_data > limits.empty_data_frames_per_second_max)
                    .then_some(Flood::EmptyData)
            }
            HEADERS => {
                self.continuations = 0;
                None
            }
            CONTINUATION => {
                self.continuations += 1;
                let over = self.continuations > limits.continuation_frames_max;
                if flags & END_HEADERS != 0 {
                    self.continuations = 0;
                }
                over.then_some(Flood::Continuation)
            }
            RST_STREAM => {
                self.resets += 1;
                (self.resets > limits.resets_per_second_max).then_some(Flood::RapidReset)
            }
            SETTINGS | PING if flags & ACK == 0 => {
                self.control += 1;
                (self.control > limits.control_frames_per_second_max).then_some(Flood::Control)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len().to_be_bytes();
        let mut out = vec![len[5], len[6], len[7], kind, flags, 0, 0, 0, 1];
        out.extend_from_slice(payload);
        out
    }

    fn limits() -> Http2Config {
        Http2Config {
            resets_per_second_max: 3,
            control_frames_per_second_max: 3,
            empty_data_frames_per_second_max: 3,
            continuation_frames_max: 2,
            ..Http2Config::default()
        }
    }

    /// Feeds the preface and then `frames` one byte at a time (frame headers split
    /// anywhere); returns the first flood.
    fn feed_bytewise(frames: &[Vec<u8>], now: Instant) -> Option<Flood> {
        let mut watch = FrameWatch::new(limits());
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frames.concat());
        bytes.iter().find_map(|byte| watch.feed(std::slice::from_ref(byte), now))
    }

    #[test]
    fn each_budget_trips_one_past_its_limit() {
        let now = Instant::now();
        let cases = [
            (frame(RST_STREAM, 0, &[0, 0, 0, 8]), Flood::RapidReset),
            (frame(PING, 0, &[0; 8]), Flood::Control),
            (frame(SETTINGS, 0, &[]), Flood::Control),
            (frame(DATA, 0, &[]), Flood::EmptyData),
        ];
        for (one, flood) in cases {
            assert_eq!(feed_bytewise(&vec![one.clone(); 3], now), None);
            assert_eq!(feed_bytewise(&vec![one; 4], now), Some(flood));
        }
        let headers = frame(HEADERS, 0, b"abc");
        let continuation = frame(CONTINUATION, 0, b"x");
        let three = [headers.clone(), continuation.clone(), continuation.clone(), continuation];
        assert_eq!(feed_bytewise(&three, now), Some(Flood::Continuation));
    }

    #[test]
    fn acknowledgements_payloads_and_a_new_second_are_free() {
        let now = Instant::now();
        let acks = vec![frame(PING, ACK, &[0; 8]); 10];
        assert_eq!(feed_bytewise(&acks, now), None);
        // A DATA payload that looks like RST_STREAM headers is skipped as payload.
        let fake = frame(RST_STREAM, 0, &[0, 0, 0, 8]).repeat(10);
        assert_eq!(feed_bytewise(&[frame(DATA, 0, &fake)], now), None);
        let mut watch = FrameWatch::new(limits());
        assert_eq!(watch.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", now), None);
        let reset = frame(RST_STREAM, 0, &[0, 0, 0, 8]);
        for second in 0..5 {
            let at = now + Duration::from_secs(second);
            assert_eq!(watch.feed(&reset.repeat(3), at), None, "second {second}");
        }
    }
}
