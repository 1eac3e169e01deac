//! The control thread's side of discovery: one task per discovered cluster, and each new
//! set applied as a config reload of that cluster ([`ControlState::apply_config`]), so the
//! state of addresses that stay carries over and removed ones drain.

use super::found::Found;
use super::{DiscoveryReport, Provider};
use crate::config::{Backend, BackendState, Config, Discover};
use crate::control::ControlState;
use std::cell::RefCell;
use std::rc::Rc;

/// Starts a discovery task for each cluster of the running config whose source has none
/// yet (at start, and after a reload that added or changed a source).
pub fn start(state: &Rc<RefCell<ControlState>>) {
    let config = state.borrow().config.clone();
    for cluster in &config.clusters {
        let Some(source) = &cluster.discover else { continue };
        let described = source.describe();
        let mut control = state.borrow_mut();
        let known =
            |entry: &DiscoveryReport| entry.cluster == cluster.name && entry.source == described;
        if control.discovery.iter().any(known) {
            continue;
        }
        control.discovery.push(DiscoveryReport::new(&cluster.name, source));
        drop(control);
        log::info!("cluster {}: backends from {described}", cluster.name);
        monoio::spawn(run_cluster(state.clone(), cluster.name.clone(), source.clone()));
    }
}

/// Runs the provider of `cluster` until the proxy stops or a reload changes the source.
async fn run_cluster(state: Rc<RefCell<ControlState>>, cluster: String, source: Discover) {
    let described = source.describe();
    let report = |update: &mut dyn FnMut(&mut DiscoveryReport)| {
        let mut control = state.borrow_mut();
        let entry = control.discovery.iter_mut().find(|e| e.cluster == cluster);
        if let Some(entry) = entry.filter(|entry| entry.source == described) {
            update(entry);
        }
    };
    let apply = |found: &[Found]| apply(&mut state.borrow_mut(), &cluster, &source, found);
    let is_stopped = || {
        let control = state.borrow();
        let current = control.config.clusters.iter().find(|known| known.name == cluster);
        control.shutting_down || current.and_then(|c| c.discover.as_ref()) != Some(&source)
    };
    super::run(&cluster, Provider::new(&source), report, apply, is_stopped).await;
    let mut control = state.borrow_mut();
    control.discovery.retain(|entry| !(entry.cluster == cluster && entry.source == described));
}

/// Makes `found` the discovered backends of `cluster`, after those the file lists, through
/// the reload path. Returns whether the running config changed.
fn apply(
    control: &mut ControlState,
    cluster: &str,
    source: &Discover,
    found: &[Found],
) -> Result<bool, String> {
    let Some(config) = with_discovered(&control.config, cluster, source, found) else {
        return Ok(false);
    };
    let hash = control.version.hash.clone();
    control.apply_config(config, hash).map(|_| true).map_err(|error| error.to_string())
}

/// The running config with `cluster`'s discovered backends replaced by `found`; `None` when
/// they are the same already, or the cluster no longer takes them from `source`.
pub fn with_discovered(
    running: &Config,
    cluster: &str,
    source: &Discover,
    found: &[Found],
) -> Option<Config> {
    let index = running.clusters.iter().position(|known| known.name == cluster)?;
    let current = &running.clusters[index];
    if current.discover.as_ref() != Some(source) {
        return None;
    }
    let listed = &current.backends[..current.file_backends.min(current.backends.len())];
    // An address the file lists stays the file's, with its weight and state.
    let found = found.iter().filter(|found| !listed.iter().any(|b| b.addr == found.addr));
    let discovered: Vec<Backend> = found
        .map(|found| Backend {
            addr: found.addr,
            host: found.addr.to_string(),
            weight: found.weight,
            state: BackendState::Active,
            state_is_set: false,
        })
        .collect();
    let same = |a: &Backend, b: &Backend| a.addr == b.addr && a.weight == b.weight;
    let now = &current.backends[listed.len()..];
    if now.len() == discovered.len() && now.iter().zip(&discovered).all(|(a, b)| same(a, b)) {
        return None;
    }
    let mut config = running.clone();
    let backends = &mut config.clusters[index].backends;
    backends.truncate(listed.len());
    backends.extend(discovered);
    Some(config)
}
