//! Timeouts that cost nothing while the operation does not wait.
//!
//! `monoio::time::timeout` makes a timer with every operation: an entry of several
//! 128-byte-aligned cache lines, built, registered and dropped each time, and moved
//! through every future that awaits it. Most operations of a proxied request finish on
//! their first poll (a write to a socket with room, a read of bytes already there), so here
//! the timer is made only once the operation first has to wait, and lives in a box: the
//! futures that hold a [`Timeout`] stay the size of the operation.
//!
//! A [`timeout`] counts from that first wait, not from the call: the difference is the
//! time of one poll.
//!
//! A timer is 128-byte aligned, which the allocator serves only on its slow path, so each
//! worker thread keeps the boxes of timers that ended (64 of them) and
//! puts the next timer in one of those.

use monoio::time::{Instant, Sleep};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The operation did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// When a [`Timeout`] ends.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// This long after the operation first waits.
    After(Duration),
    At(Instant),
}

/// Boxes of ended timers a worker thread keeps for the next ones.
const SPARE_TIMERS_MAX: usize = 64;

thread_local! {
    static SPARE_TIMERS: RefCell<Vec<Pin<Box<Option<Sleep>>>>> = const { RefCell::new(Vec::new()) };
}

/// A running timer in a box that goes back to the thread's spares when it ends (the
/// option is empty only inside `drop`).
struct Timer(Option<Pin<Box<Option<Sleep>>>>);

impl Timer {
    fn new(sleep: Sleep) -> Self {
        let spare = SPARE_TIMERS.with(|spares| spares.borrow_mut().pop());
        let mut slot = spare.unwrap_or_else(|| Box::pin(None));
        slot.set(Some(sleep));
        Self(Some(slot))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.0.as_mut().and_then(|slot| slot.as_mut().as_pin_mut()) {
            Some(sleep) => sleep.poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let Some(mut slot) = self.0.take() else { return };
        // Dropping the timer in its box takes it off the timer wheel.
        slot.set(None);
        SPARE_TIMERS.with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < SPARE_TIMERS_MAX {
                spares.push(slot);
            }
        });
    }
}

pin_project_lite::pin_project! {
    /// An operation with a time limit: see [`timeout`] and [`timeout_at`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        limit: Limit,
        sleep: Option<Timer>,
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("limit", &self.limit).finish_non_exhaustive()
    }
}

/// `future`, or [`Elapsed`] once it has waited `after` in all.
pub fn timeout<F: Future>(after: Duration, future: F) -> Timeout<F> {
    Timeout { future, limit: Limit::After(after), sleep: None }
}

/// `future`, or [`Elapsed`] at `deadline`.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout { future, limit: Limit::At(deadline), sleep: None }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let limit = *this.limit;
        let sleep = this.sleep.get_or_insert_with(|| {
            Timer::new(match limit {
                Limit::After(after) => monoio::time::sleep(after),
                Limit::At(deadline) => monoio::time::sleep_until(deadline),
            })
        });
        match sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: Future>(future: F) -> F::Output {
        let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build();
        runtime.expect("runtime").block_on(future)
    }

    #[test]
    fn a_ready_operation_needs_no_timer() {
        run(async {
            let timed = timeout(Duration::ZERO, std::future::ready(7));
            assert!(timed.sleep.is_none());
            assert_eq!(timed.await, Ok(7));
        });
    }

    #[test]
    fn an_operation_that_waits_too_long_is_elapsed() {
        run(async {
            let started = std::time::Instant::now();
            let never = std::future::pending::<()>();
            assert_eq!(timeout(Duration::from_millis(20), never).await, Err(Elapsed));
            assert!(started.elapsed() >= Duration::from_millis(20));
            let deadline = Instant::now() + Duration::from_millis(10);
            assert_eq!(timeout_at(deadline, std::future::pending::<()>()).await, Err(Elapsed));
        });
    }

    #[test]
    fn ended_timers_leave_their_boxes_for_the_next() {
        run(async {
            let spares = || SPARE_TIMERS.with(|spares| spares.borrow().len());
            let before = spares();
            let never = std::future::pending::<()>();
            assert_eq!(timeout(Duration::from_millis(1), never).await, Err(Elapsed));
            assert_eq!(spares(), before + 1);
            // The next timer takes the spare box, and still fires.
            let never = std::future::pending::<()>();
            let timed = timeout_at(Instant::now() + Duration::from_millis(1), never);
            assert_eq!(timed.await, Err(Elapsed));
            assert_eq!(spares(), before + 1);
        });
    }

    #[test]
    fn an_operation_that_finishes_after_a_wait_is_in_time() {
        run(async {
            let later = async {
                monoio::time::sleep(Duration::from_millis(5)).await;
                3
            };
            assert_eq!(timeout(Duration::from_secs(5), later).await, Ok(3));
        });
    }
}
