//! Request coalescing on one worker: the keys whose response is being fetched, so that
//! concurrent misses for a key wait for the first one's fetch and are then answered from
//! the store. Waiting is bounded by the caller (the route's `coalesce_timeout_ms`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// The fetches running on one worker, by primary key.
#[derive(Debug, Default)]
pub struct Fetches {
    running: HashMap<Box<[u8]>, Rc<Fetch>>,
}

/// One fetch that others wait for.
#[derive(Debug, Default)]
pub struct Fetch {
    done: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
}

impl Fetches {
    /// The fetch of `key` to wait for, or `None` after registering the caller as the
    /// one that fetches it (it calls [`Fetches::finish`] when done).
    pub fn join_or_start(&mut self, key: &[u8]) -> Option<Rc<Fetch>> {
        if let Some(fetch) = self.running.get(key) {
            return Some(Rc::clone(fetch));
        }
        self.running.insert(key.into(), Rc::new(Fetch::default()));
        None
    }

    /// The fetch of `key` running now, without registering one.
    pub fn running(&self, key: &[u8]) -> Option<Rc<Fetch>> {
        self.running.get(key).cloned()
    }

    /// The fetch of `key` ended (stored or not): its waiters wake.
    pub fn finish(&mut self, key: &[u8]) {
        if let Some(fetch) = self.running.remove(key) {
            fetch.done.set(true);
            for waker in fetch.waiting.take() {
                waker.wake();
            }
        }
    }

    /// Fetches running.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

impl Fetch {
    /// Resolves once the fetch has ended.
    pub async fn ended(&self) {
        std::future::poll_fn(|context| {
            if self.done.get() {
                return Poll::Ready(());
            }
            let mut waiting = self.waiting.borrow_mut();
            if !waiting.iter().any(|waker| waker.will_wake(context.waker())) {
                waiting.push(context.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    #[test]
    fn the_first_miss_fetches_and_the_others_wait_until_it_ends() {
        let mut fetches = Fetches::default();
        assert!(fetches.join_or_start(b"k").is_none());
        let waiting = fetches.join_or_start(b"k").expect("a fetch to wait for");
        assert!(fetches.join_or_start(b"other").is_none());
        assert!(fetches.running(b"k").is_some() && fetches.running(b"none").is_none());
        let mut ended = pin!(waiting.ended());
        let mut context = Context::from_waker(Waker::noop());
        assert!(ended.as_mut().poll(&mut context).is_pending());
        fetches.finish(b"k");
        assert!(ended.as_mut().poll(&mut context).is_ready());
        assert!(fetches.join_or_start(b"k").is_none(), "a new fetch after the end");
        assert_eq!(fetches.len(), 2);
    }
}
