//! Carries counters across a config reload: each label of the new layout takes the counts
//! its name had under the old one (listeners and clusters by name, routes by
//! `listener/index`, backends by cluster name and address). Names that are gone are
//! dropped, so they stop being exported.

use super::StatsLayout;
use super::worker::WorkerStats;

/// For each index of `from`, the index of the same name in `to`, if any.
fn map_names<'a>(
    from: impl Iterator<Item = &'a str>,
    to: impl Iterator<Item = &'a str> + Clone,
) -> Vec<Option<usize>> {
    from.map(|name| to.clone().position(|known| known == name)).collect()
}

/// Index maps from one layout to another, one per kind of label.
#[derive(Debug)]
pub(super) struct LayoutMap {
    pub(super) listeners: Vec<Option<usize>>,
    pub(super) routes: Vec<Option<usize>>,
    pub(super) clusters: Vec<Option<usize>>,
    pub(super) backends: Vec<Option<usize>>,
}

impl LayoutMap {
    /// Where each label of `from` lives in `to`.
    pub(super) fn new(from: &StatsLayout, to: &StatsLayout) -> Self {
        let names = |layout: &StatsLayout| -> Vec<String> {
            let clusters = &layout.clusters;
            let label = |backend: &super::BackendLabel| {
                format!("{}\u{0}{}", clusters[backend.cluster], backend.name)
            };
            layout.backends.iter().map(label).collect()
        };
        let (from_backends, to_backends) = (names(from), names(to));
        Self {
            listeners: map_names(
                from.listeners.iter().map(String::as_str),
                to.listeners.iter().map(String::as_str),
            ),
            routes: map_names(
                from.routes.iter().map(|route| route.name.as_str()),
                to.routes.iter().map(|route| route.name.as_str()),
            ),
            clusters: map_names(
                from.clusters.iter().map(String::as_str),
                to.clusters.iter().map(String::as_str),
            ),
            backends: map_names(
                from_backends.iter().map(String::as_str),
                to_backends.iter().map(String::as_str),
            ),
        }
    }
}

impl WorkerStats {
    /// `self`'s counters (counted under `from`) rearranged under `to`: what a worker
    /// carries into a new config version.
    pub fn carry_over(&self, from: &StatsLayout, to: &StatsLayout) -> WorkerStats {
        let mut carried = WorkerStats::new(to);
        carried.add_mapped(self, &LayoutMap::new(from, to));
        carried
    }

    /// Adds `other`'s counters (counted under `from`) to these (counted under `to`): the
    /// counts an older config version took after the worker moved on.
    pub fn absorb(&mut self, other: &WorkerStats, from: &StatsLayout, to: &StatsLayout) {
        self.add_mapped(other, &LayoutMap::new(from, to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn layout(text: &str) -> StatsLayout {
        StatsLayout::new(&Config::parse(text).expect("config"))
    }

    const OLD: &str = "[[listener]]\nname = \"a\"\naddr = \"127.0.0.1:0\"\n\
        [[listener.route]]\ncluster = \"x\"\n\
        [[listener]]\nname = \"b\"\naddr = \"127.0.0.1:0\"\n[[listener.route]]\ncluster = \"y\"\n\
        [cluster.x]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
        [cluster.y]\nbackends = [\"127.0.0.1:3\"]\n";
    const NEW: &str = "[[listener]]\nname = \"b\"\naddr = \"127.0.0.1:0\"\n\
        [[listener.route]]\ncluster = \"x\"\n\
        [cluster.x]\nbackends = [\"127.0.0.1:2\", \"127.0.0.1:9\"]\n";

    #[test]
    fn names_that_stay_keep_their_counts_and_names_that_go_are_dropped() {
        let (old, new) = (layout(OLD), layout(NEW));
        let map = LayoutMap::new(&old, &new);
        assert_eq!(map.listeners, vec![None, Some(0)]);
        assert_eq!(map.clusters, vec![Some(0), None]);
        // x/127.0.0.1:1 is gone, x/127.0.0.1:2 moved to the front, y's backend is gone.
        assert_eq!(map.backends, vec![None, Some(0), None]);
        assert_eq!(map.routes, vec![None, Some(0)]);
    }

    #[test]
    fn carried_counters_add_up_under_the_new_names() {
        let (old, new) = (layout(OLD), layout(NEW));
        let mut stats = WorkerStats::new(&old);
        stats.connection_opened(1);
        stats.connection_opened(1);
        stats.connection_opened(0);
        let mut carried = stats.carry_over(&old, &new);
        assert_eq!(carried.connections_total(), 2, "listener a's connection is dropped");
        // A connection opened before the reload closes on the old version: the count the
        // new version shows goes down with it.
        let mut straggler = WorkerStats::new(&old);
        straggler.connection_closed(1);
        carried.absorb(&straggler, &old, &new);
        assert_eq!(carried.connections_active(), 1);
    }
}
