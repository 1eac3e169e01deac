//! A worker's idle encoders: states of finished responses, reset, kept for the next
//! response of the same kind. A fresh brotli or zstd state is ~1.5 MiB whose pages are
//! faulted in and zeroed on first use, ~15% of such a response's CPU (perf/results/
//! 2026-12-03-compress.md); a kept one skips that. Owned by one worker: no lock.

use super::Coder;
use crate::config::Encoding;
use std::cell::{Cell, RefCell};

/// Idle states kept per kind: enough for the responses one worker typically codes at
/// once on one route; a burst past it builds fresh states, as before.
pub const IDLE_PER_KIND_MAX: usize = 4;
/// Idle states kept in all: with brotli and zstd states of ~1.5 MiB, at most ~12 MiB of
/// idle tables per worker, on top of the live ones `compression_encoders_max` bounds.
pub const IDLE_MAX: usize = 8;

/// What makes two encoder states interchangeable: the encoding and its level. (The
/// window is one constant per encoding, [`super::encoder`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoderKind {
    pub encoding: Encoding,
    pub level: u32,
}

/// A worker's coders: how many are alive (`limits.compression_encoders_max` bounds it)
/// and the idle encoder states.
#[derive(Debug, Default)]
pub struct WorkerCoders {
    pub live: Cell<u32>,
    pub idle: RefCell<IdleCoders>,
}

/// Reset encoder states, oldest first.
#[derive(Debug, Default)]
pub struct IdleCoders {
    idle: Vec<(CoderKind, Box<Coder>)>,
}

impl IdleCoders {
    /// A reset state of `kind`, the last one given back, or `None`.
    pub fn take(&mut self, kind: CoderKind) -> Option<Box<Coder>> {
        let index = self.idle.iter().rposition(|(idle, _)| *idle == kind)?;
        Some(self.idle.remove(index).1)
    }

    /// Keeps `coder`, an encoder of `kind` made or last reset for `kind`, after resetting
    /// it, when its kind has room (the oldest idle state of another kind goes when the
    /// whole list is full); drops it otherwise, and when its reset fails.
    pub fn give(&mut self, kind: CoderKind, mut coder: Box<Coder>) {
        let same = self.idle.iter().filter(|(idle, _)| *idle == kind).count();
        if same >= IDLE_PER_KIND_MAX || coder.reset(kind.level).is_err() {
            return;
        }
        if self.idle.len() >= IDLE_MAX {
            self.idle.remove(0);
        }
        self.idle.push((kind, coder));
    }

    /// How many states are idle.
    pub fn len(&self) -> usize {
        self.idle.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(encoding: Encoding, level: u32) -> CoderKind {
        CoderKind { encoding, level }
    }

    fn encoder(kind: CoderKind) -> Box<Coder> {
        Box::new(Coder::encoder(kind.encoding, kind.level).expect("a valid level"))
    }

    #[test]
    fn a_state_is_taken_back_by_its_kind_only() {
        let mut idle = IdleCoders::default();
        let zstd3 = kind(Encoding::Zstd, 3);
        idle.give(zstd3, encoder(zstd3));
        assert!(idle.take(kind(Encoding::Zstd, 4)).is_none(), "another level");
        assert!(idle.take(kind(Encoding::Br, 3)).is_none(), "another encoding");
        assert!(idle.take(zstd3).is_some());
        assert!(idle.take(zstd3).is_none(), "taken once");
    }

    #[test]
    fn idle_states_are_bounded_per_kind_and_in_all() {
        let mut idle = IdleCoders::default();
        let gzip1 = kind(Encoding::Gzip, 1);
        for _ in 0..IDLE_PER_KIND_MAX + 3 {
            idle.give(gzip1, encoder(gzip1));
        }
        assert_eq!(idle.len(), IDLE_PER_KIND_MAX);
        for level in 1..=9 {
            let gzip = kind(Encoding::Gzip, level);
            idle.give(gzip, encoder(gzip));
        }
        assert_eq!(idle.len(), IDLE_MAX);
        assert!(idle.take(kind(Encoding::Gzip, 9)).is_some(), "the newest stays");
        assert!(idle.take(gzip1).is_none(), "the oldest went first");
    }
}
