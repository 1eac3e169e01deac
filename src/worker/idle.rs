//! The connections of one worker that sit idle between requests, so a graceful shutdown
//! can close them at once instead of waiting out their keep-alive timeout. Worker-owned
//! state: `connection` registers into it, the worker's shutdown empties it.
//!
//! A slab of raw fds: registering and unregistering cost a push and a pop, per request.
//! HTTP/2 connections register a waker instead: they answer shutdown with GOAWAY, which
//! needs both directions of the socket.

#![expect(unsafe_code, reason = "shutting down a registered socket by its raw fd")]

use std::os::fd::RawFd;
use std::task::Waker;

/// Idle connections' sockets, by slot.
#[derive(Debug, Default)]
pub struct IdleConnections {
    /// INVARIANT: a `Some(fd)` slot belongs to a live connection that is waiting for its
    /// next request; the connection empties the slot before it drops its socket.
    slots: Vec<Option<RawFd>>,
    free: Vec<usize>,
    /// Tasks to wake at shutdown (HTTP/2 connection loops), by slot.
    wakers: Vec<Option<Waker>>,
    free_wakers: Vec<usize>,
}

impl IdleConnections {
    /// Registers an idle socket; returns its slot.
    pub fn register(&mut self, fd: RawFd) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(fd);
                slot
            }
            None => {
                self.slots.push(Some(fd));
                self.slots.len() - 1
            }
        }
    }

    /// Forgets a slot: its connection is busy again or closing.
    pub fn unregister(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if entry.take().is_some() {
                self.free.push(slot);
            }
        }
    }

    /// Keeps `waker` to wake at shutdown, in `slot` (a new one when `None`); returns the
    /// slot.
    pub fn watch_shutdown(&mut self, slot: Option<usize>, waker: &Waker) -> usize {
        match slot {
            Some(slot) => {
                match &mut self.wakers[slot] {
                    Some(kept) => kept.clone_from(waker),
                    empty @ None => *empty = Some(waker.clone()),
                }
                slot
            }
            None => match self.free_wakers.pop() {
                Some(slot) => {
                    self.wakers[slot] = Some(waker.clone());
                    slot
                }
                None => {
                    self.wakers.push(Some(waker.clone()));
                    self.wakers.len() - 1
                }
            },
        }
    }

    /// Forgets a waker slot: its connection is closing.
    pub fn unwatch_shutdown(&mut self, slot: usize) {
        if let Some(entry) = self.wakers.get_mut(slot) {
            *entry = None;
            self.free_wakers.push(slot);
        }
    }

    /// Shuts down the read side of every idle socket: each connection's pending read
    /// ends, with the bytes of a request that had already arrived (served with
    /// `Connection: close`, as the write side still works) or with end of file, and it
    /// closes. Shutting down both sides would lose a request sent just before, its
    /// connection closing before the answer.
    pub fn shut_down_all(&mut self) {
        for fd in self.slots.iter_mut().filter_map(Option::take) {
            // SAFETY: by the invariant on `slots`, `fd` is an open socket owned by a live
            // connection; shutdown(2) only ends its traffic, the owner still closes it.
            let _ = unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        }
        self.free.clear();
        self.slots.clear();
        // Slots stay taken: their owners unwatch them, and none registers after this.
        for waker in self.wakers.iter_mut().filter_map(Option::take) {
            waker.wake();
        }
    }
}
