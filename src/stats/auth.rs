//! Authentication counters per route: outcomes by method (`none` when the request carried
//! no credentials) and by result (`allowed`, or the refusal's reason). Rendered for
//! `/metrics` (non-zero samples only: a bounded set, methods times reasons) and `/stats`.
//! Per route also the consumers with the most requests, in a table of bounded size on each
//! worker, merged on the control thread, and shown on `/stats` only (a consumer is never
//! a Prometheus label: the set of names has no bound).

use super::worker::slot;
use super::{StatsLayout, WorkerStats};
use crate::auth::Reason;
use crate::auth::rules::MethodKind;
use crate::config::RouteId;

/// Method labels, in counter order.
const METHODS: [&str; 5] = ["none", "basic", "api_key", "jwt", "external"];
/// Results: `allowed`, then every [`Reason`].
const RESULTS: usize = 1 + Reason::ALL.len();

/// The counters of one route: `[method][result]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct AuthCounts([[u64; RESULTS]; METHODS.len()]);

impl Default for AuthCounts {
    fn default() -> Self {
        Self([[0; RESULTS]; METHODS.len()])
    }
}

impl AuthCounts {
    pub(super) fn add(&mut self, other: &Self) {
        for (into, from) in self.0.iter_mut().flatten().zip(other.0.iter().flatten()) {
            *into += from;
        }
    }

    /// `(method, result, count)` for every non-zero counter.
    fn samples(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.0.iter().zip(METHODS).flat_map(|(results, method)| {
            results.iter().enumerate().filter(|(_, count)| **count > 0).map(
                move |(index, count)| {
                    let result = match index.checked_sub(1) {
                        Some(reason) => Reason::ALL[reason].as_str(),
                        None => "allowed",
                    };
                    (method, result, *count)
                },
            )
        })
    }
}

/// How many consumers a route's table holds, on a worker and merged.
pub(super) const CONSUMERS_MAX: usize = 16;

/// The consumers of one route with the most authenticated requests, at most
/// [`CONSUMERS_MAX`] (Space-Saving: a new name, when the table is full, takes the place of
/// the least counted one and its count, so a count can exceed the name's true count by at
/// most the count it took over; heavy consumers are never lost).
#[derive(Debug, Clone, Default)]
pub(super) struct ConsumerTop(Vec<(Box<str>, u64)>);

impl ConsumerTop {
    pub(super) fn count(&mut self, name: &str) {
        if let Some(entry) = self.0.iter_mut().find(|(known, _)| &**known == name) {
            entry.1 += 1;
        } else if self.0.len() < CONSUMERS_MAX {
            self.0.push((name.into(), 1));
        } else if let Some(least) = self.0.iter_mut().min_by_key(|(_, count)| *count) {
            *least = (name.into(), least.1 + 1);
        }
    }

    /// Adds `other`'s counts by name, keeping the [`CONSUMERS_MAX`] most counted.
    pub(super) fn add(&mut self, other: &Self) {
        for (name, count) in &other.0 {
            match self.0.iter_mut().find(|(known, _)| known == name) {
                Some(entry) => entry.1 += count,
                None => self.0.push((name.clone(), *count)),
            }
        }
        self.0.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.0.truncate(CONSUMERS_MAX);
    }

    /// `[{ "consumer": NAME, "requests": N }]`, most requests first.
    pub(super) fn to_json(&self) -> serde_json::Value {
        let mut sorted: Vec<_> = self.0.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let entries = sorted.iter().map(
            |(name, count)| serde_json::json!({ "consumer": name.as_ref(), "requests": count }),
        );
        entries.collect::<Vec<_>>().into()
    }
}

fn method_index(method: Option<MethodKind>) -> usize {
    match method {
        None => 0,
        Some(MethodKind::Basic) => 1,
        Some(MethodKind::ApiKey) => 2,
        Some(MethodKind::Jwt) => 3,
        Some(MethodKind::External) => 4,
    }
}

impl WorkerStats {
    /// A request on `route` was authenticated by `method` (`refused`: `None`), or refused
    /// for that reason.
    pub fn auth_outcome(
        &mut self,
        route: RouteId,
        method: Option<MethodKind>,
        refused: Option<Reason>,
    ) {
        let result = refused
            .map_or(0, |reason| 1 + Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0));
        if let Some(stats) = slot(&mut self.routes, route.index()) {
            stats.auth.0[method_index(method)][result] += 1;
        }
    }

    /// `consumer` was let through on `route`.
    pub fn consumer_request(&mut self, route: RouteId, consumer: &str) {
        if let Some(stats) = slot(&mut self.routes, route.index()) {
            stats.consumers.count(consumer);
        }
    }
}

/// Writes `ringway_auth_total` from `total`.
pub(super) fn render_prometheus(
    layout: &StatsLayout,
    total: &WorkerStats,
    (family, sample): (super::compression::FamilyFn, super::compression::SampleFn),
    out: &mut String,
) {
    let name = "ringway_auth_total";
    family(out, name, "counter", "Authentication outcomes per route, method and result.");
    for (label, stats) in layout.routes.iter().zip(&total.routes) {
        for (method, result, count) in stats.auth.samples() {
            let labels = [("route", label.name.as_str()), ("method", method), ("result", result)];
            sample(out, name, &labels, count);
        }
    }
}

/// The `auth` object of a route in `/stats`: `{ METHOD: { RESULT: count } }`, non-zero only.
pub(super) fn to_json(counts: &AuthCounts) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for (method, result, count) in counts.samples() {
        let entry = object.entry(method).or_insert_with(|| serde_json::json!({}));
        entry[result] = count.into();
    }
    object.into()
}
