//! The control thread's view: each worker's latest snapshot, merged when someone asks.
//!
//! Merging costs one pass over every histogram of every worker, so it happens per scrape,
//! never per snapshot: snapshots arrive every `stats.interval_ms` from each worker, scrapes
//! come far less often.

use super::worker::WorkerStats;
use super::{ControlView, StatsLayout, json, prometheus};
use crate::config::BackendState;

/// The control thread's view: the latest snapshot of each worker.
#[derive(Debug)]
pub struct Aggregate {
    layout: StatsLayout,
    /// The config version `layout` is of, and the one before with its layout: snapshots
    /// from a worker that has not switched yet are carried over from it.
    version: u64,
    previous: Option<(u64, StatsLayout)>,
    /// Per worker; `None` until its first snapshot arrives.
    snapshots: Vec<Option<WorkerStats>>,
}

/// Every worker's counters summed, plus the backend gauges merged across workers.
#[derive(Debug)]
pub(super) struct Merged {
    pub(super) total: WorkerStats,
    /// Per [`StatsLayout::backends`] index.
    pub(super) backends: Vec<BackendSummary>,
}

/// One backend's gauges over all workers that sent a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BackendSummary {
    pub(super) in_flight: u64,
    /// Workers that sent a snapshot.
    pub(super) workers: usize,
    /// Workers that see it healthy per active checks.
    pub(super) healthy_workers: usize,
    /// Workers whose passive checks ejected it.
    pub(super) ejected_workers: usize,
}

impl BackendSummary {
    /// Up: healthy on every worker, ejected on none, and not disabled (which reads as down).
    /// Unknown (no snapshot yet) reads as down.
    pub(super) fn is_up(&self, state: BackendState) -> bool {
        self.workers > 0
            && self.healthy_workers == self.workers
            && self.ejected_workers == 0
            && state != BackendState::Disabled
    }
}

impl Aggregate {
    /// An aggregate for `workers` workers counting under `layout`.
    pub fn new(layout: StatsLayout, workers: usize) -> Self {
        Self { layout, version: 1, previous: None, snapshots: (0..workers).map(|_| None).collect() }
    }

    /// Counts under `layout` (config version `version`) from now on: the snapshots kept
    /// are carried over by name until each worker sends one of its own.
    pub fn relayout(&mut self, layout: StatsLayout, version: u64) {
        for snapshot in self.snapshots.iter_mut().flatten() {
            let mut carried = snapshot.carry_over(&self.layout, &layout);
            carried.set_version(snapshot.version());
            *snapshot = carried;
        }
        let old = std::mem::replace(&mut self.layout, layout);
        self.previous = Some((self.version, old));
        self.version = version;
    }

    /// The labels everything is counted under.
    pub fn layout(&self) -> &StatsLayout {
        &self.layout
    }

    /// Replaces worker `worker`'s snapshot with a newer one.
    pub fn update(&mut self, worker: usize, snapshot: WorkerStats) {
        debug_assert!(worker < self.snapshots.len(), "snapshot from unknown worker {worker}");
        let snapshot = match &self.previous {
            _ if snapshot.version() == self.version => snapshot,
            Some((version, layout)) if snapshot.version() == *version => {
                let mut carried = snapshot.carry_over(layout, &self.layout);
                carried.set_version(*version);
                carried
            }
            // Older still: sent before two reloads in a row; the next one replaces it.
            _ => return,
        };
        if let Some(slot) = self.snapshots.get_mut(worker) {
            *slot = Some(snapshot);
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self, view: &ControlView, out: &mut String) {
        prometheus::render(self, view, out);
    }

    /// JSON for /stats and the dashboard; the schema is in the module doc of `stats/json.rs`.
    pub fn render_json(&self, view: &ControlView, out: &mut String) {
        json::render(self, view, out);
    }

    /// Each worker's latest snapshot, `None` before its first.
    pub(super) fn snapshots(&self) -> &[Option<WorkerStats>] {
        &self.snapshots
    }

    /// Sums every worker's snapshot.
    pub(super) fn merged(&self) -> Merged {
        let mut total = WorkerStats::new(&self.layout);
        let mut backends = vec![BackendSummary::default(); self.layout.backends.len()];
        for snapshot in self.snapshots.iter().flatten() {
            total.merge(snapshot);
            for (summary, backend) in backends.iter_mut().zip(&snapshot.backends) {
                summary.in_flight += u64::from(backend.gauge.in_flight);
                summary.workers += 1;
                summary.healthy_workers += usize::from(backend.gauge.is_healthy);
                summary.ejected_workers += usize::from(backend.gauge.is_ejected);
            }
        }
        Merged { total, backends }
    }
}

/// The admin state of backend `index`; `Active` when the view does not know it.
pub(super) fn backend_state(view: &ControlView, index: usize) -> BackendState {
    debug_assert!(index < view.backend_states.len(), "no admin state for backend {index}");
    view.backend_states.get(index).copied().unwrap_or(BackendState::Active)
}
