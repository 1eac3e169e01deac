//! Coalescing in the exchange: the first miss for a key holds a [`FetchGuard`] until its
//! exchange ends (its body stored, or not); concurrent misses wait for it, bounded, and
//! look again. See [`crate::cache::coalesce`].

use crate::cache::coalesce::Fetch;
use crate::worker::Worker;
use std::rc::Rc;
use std::time::Duration;

/// The fetch of one key by this exchange; dropped, it wakes the waiters.
#[derive(Debug)]
pub(super) struct FetchGuard<'a> {
    worker: &'a Worker,
    key: Box<[u8]>,
}

impl<'a> FetchGuard<'a> {
    /// The guard for `key`, once [`crate::cache::coalesce::Fetches::join_or_start`]
    /// registered the caller as its fetcher.
    pub(super) fn new(worker: &'a Worker, key: &[u8]) -> Self {
        Self { worker, key: key.into() }
    }
}

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        self.worker.cache_fetches.borrow_mut().finish(&self.key);
    }
}

/// Waits for another exchange's fetch to end, at most `timeout`; false when it did not.
pub async fn wait_for_fetch(fetch: Rc<Fetch>, timeout: Duration) -> bool {
    crate::deadline::timeout(timeout, fetch.ended()).await.is_ok()
}
