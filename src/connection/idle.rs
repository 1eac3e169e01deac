//! Keeps a connection registered in its worker's [`IdleConnections`] while it waits for
//! its next request.

use crate::worker::IdleConnections;
use std::os::fd::RawFd;

/// Keeps a connection registered as idle while it lives.
#[derive(Debug)]
pub(super) struct IdleGuard<'a> {
    idle: &'a std::cell::RefCell<IdleConnections>,
    slot: usize,
}

impl<'a> IdleGuard<'a> {
    /// Registers `fd` until the guard drops.
    pub(super) fn new(idle: &'a std::cell::RefCell<IdleConnections>, fd: RawFd) -> Self {
        let slot = idle.borrow_mut().register(fd);
        Self { idle, slot }
    }
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        self.idle.borrow_mut().unregister(self.slot);
    }
}
