//! Head edits: the one way a phase changes a head. An edit says which header lines to
//! drop (by kind, or by name) and which lines to add; a renderer per direction
//! ([`super::request_head`], [`super::response_head`]) turns the parsed head, its lines
//! and the edits into one vectored write. Kept lines stay ranges of the buffer they were
//! read into, so forwarding copies no header it does not change.

use crate::http::{HeaderKind, HeaderLine};
use crate::wire::OutVec;
use std::ops::Range;

/// The most constant lines one head gets (Connection, Transfer-Encoding, Via...).
const STATIC_LINES_MAX: usize = 4;

/// Which lines of one head to drop and which to add.
#[derive(Debug, Clone)]
pub struct HeadEdits<'a> {
    /// A bit per [`HeaderKind`]: lines of these kinds are dropped.
    dropped_kinds: u32,
    /// Lines with these names are dropped too (compression, rewrite rules), compared
    /// without case.
    dropped_names: &'a [&'a [u8]],
    /// More names dropped, lowercase: a forward listener's `header_remove`.
    dropped_lowercase: &'a [Box<[u8]>],
    /// Constant lines added after the kept ones, each ending in CRLF.
    static_lines: [&'static [u8]; STATIC_LINES_MAX],
    static_count: usize,
    /// Generated lines added last: a range of the write's `extra` bytes.
    added: Range<usize>,
}

impl Default for HeadEdits<'_> {
    fn default() -> Self {
        Self {
            dropped_kinds: 0,
            dropped_names: &[],
            dropped_lowercase: &[],
            static_lines: [b""; STATIC_LINES_MAX],
            static_count: 0,
            added: 0..0,
        }
    }
}

impl<'a> HeadEdits<'a> {
    /// Drops every line of `kind`.
    pub fn drop_kind(&mut self, kind: HeaderKind) {
        self.dropped_kinds |= 1 << kind as u32;
    }

    /// Drops every line whose name is one of `names`.
    pub fn drop_names(&mut self, names: &'a [&'a [u8]]) {
        self.dropped_names = names;
    }

    /// Drops every line whose name is one of `names`, which are lowercase.
    pub fn drop_lowercase_names(&mut self, names: &'a [Box<[u8]>]) {
        self.dropped_lowercase = names;
    }

    /// Adds a constant line (ending in CRLF).
    pub fn add_static(&mut self, line: &'static [u8]) {
        assert!(self.static_count < STATIC_LINES_MAX, "raise STATIC_LINES_MAX");
        self.static_lines[self.static_count] = line;
        self.static_count += 1;
    }

    /// Adds the lines a producer wrote into `extra[range]`: the ranges of one head are
    /// written one after another, so they join into one.
    pub fn add_extra(&mut self, range: Range<usize>) {
        if self.added.is_empty() {
            self.added = range;
        } else {
            debug_assert_eq!(self.added.end, range.start, "extra lines written out of order");
            self.added.end = range.end;
        }
    }

    /// True when `line` stays.
    pub fn keeps(&self, line: &HeaderLine, buf: &[u8]) -> bool {
        if line.hop_by_hop || self.dropped_kinds & (1 << line.kind as u32) != 0 {
            return false;
        }
        if self.dropped_names.is_empty() && self.dropped_lowercase.is_empty() {
            return true;
        }
        let name = line.name.of(buf);
        !self.dropped_names.iter().any(|dropped| dropped.eq_ignore_ascii_case(name))
            && !self.dropped_lowercase.iter().any(|dropped| dropped.eq_ignore_ascii_case(name))
    }

    /// Queues the kept lines of `lines` (ranges of `out.buf`), then the added lines and
    /// the blank line that ends the head.
    pub fn render_lines(&self, lines: &[HeaderLine], out: &mut OutVec) {
        for line in lines {
            if self.keeps(line, &out.buf) {
                out.push_buf(line.line.start as usize, line.line.end as usize);
            }
        }
        for line in &self.static_lines[..self.static_count] {
            out.push_static(line);
        }
        out.extend_extra_range(self.added.clone());
        out.push_static(b"\r\n");
    }
}

// Every kind has its own bit.
const _: () = assert!((HeaderKind::Other as u32) < u32::BITS);
