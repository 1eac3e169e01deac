//! The names of everything counted, built once from the config.
//!
//! Every thread builds the same [`StatsLayout`] from the same config, so an index a worker
//! counts under means the same label on the control thread. Label values come only from the
//! config, never from requests, which keeps metric cardinality bounded.

use crate::config::Config;

/// Label names for everything counted, built once from the config, identical on every thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsLayout {
    /// Listener names.
    pub listeners: Vec<String>,
    /// Each listener's mode: `"http"`, `"tcp"` or `"udp"`.
    pub listener_modes: Vec<&'static str>,
    /// Each forward listener's refusal names ([`crate::forward::acl::rule_names`]); empty
    /// for a listener that is no forward proxy.
    pub forward_rules: Vec<Vec<String>>,
    /// All routes of all listeners, flattened in config order: indexed by
    /// [`RouteId::index`](crate::config::RouteId::index).
    pub routes: Vec<RouteLabel>,
    /// Cluster names.
    pub clusters: Vec<String>,
    /// All backends of all clusters, flattened in config order.
    pub backends: Vec<BackendLabel>,
    /// INVARIANT: `backend_starts[c]` is the index in `backends` of cluster `c`'s first one.
    backend_starts: Vec<usize>,
}

/// A route: its listener (index into [`StatsLayout::listeners`]) and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLabel {
    pub listener: usize,
    /// `"{listener_name}/{route_index}"`: routes have no names of their own.
    pub name: String,
}

/// A backend: its cluster (index into [`StatsLayout::clusters`]) and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendLabel {
    pub cluster: usize,
    /// The backend address as written in the config ([`crate::config::Backend::host`]).
    pub name: String,
}

impl StatsLayout {
    /// Collects the labels of `config`'s listeners, routes, clusters and backends.
    pub fn new(config: &Config) -> Self {
        let mut routes = Vec::new();
        for (listener_index, listener) in config.listeners.iter().enumerate() {
            for (route_index, route) in listener.routes.iter().enumerate() {
                assert_eq!(route.id.index(), routes.len(), "route ids follow config order");
                routes.push(RouteLabel {
                    listener: listener_index,
                    name: format!("{}/{route_index}", listener.name),
                });
            }
            // A forward proxy's cache counts as the listener's last route.
            if let Some((id, _)) =
                listener.forward.as_ref().and_then(|forward| forward.cache.as_ref())
            {
                assert_eq!(id.index(), routes.len(), "route ids follow config order");
                let name = format!("{}/forward", listener.name);
                routes.push(RouteLabel { listener: listener_index, name });
            }
        }
        let mut backends = Vec::new();
        let mut backend_starts = Vec::with_capacity(config.clusters.len());
        for (cluster_index, cluster) in config.clusters.iter().enumerate() {
            backend_starts.push(backends.len());
            backends.extend(cluster.backends.iter().map(|backend| BackendLabel {
                cluster: cluster_index,
                name: backend.host.clone(),
            }));
        }
        Self {
            listeners: config.listeners.iter().map(|listener| listener.name.clone()).collect(),
            listener_modes: config
                .listeners
                .iter()
                .map(|listener| listener.mode.as_str())
                .collect(),
            forward_rules: config
                .listeners
                .iter()
                .map(|listener| match &listener.forward {
                    Some(forward) => {
                        crate::forward::acl::rule_names(forward).map(str::to_owned).collect()
                    }
                    None => Vec::new(),
                })
                .collect(),
            routes,
            clusters: config.clusters.iter().map(|cluster| cluster.name.clone()).collect(),
            backends,
            backend_starts,
        }
    }

    /// Index of backend `backend` of cluster `cluster` in `backends`.
    ///
    /// # Panics
    ///
    /// When `cluster` is not a cluster of the config this layout was built from.
    pub fn backend_index(&self, cluster: usize, backend: usize) -> usize {
        let index = self.backend_starts[cluster] + backend;
        debug_assert!(self.backends.get(index).is_some_and(|label| label.cluster == cluster));
        index
    }
}
