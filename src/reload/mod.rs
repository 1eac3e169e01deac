//! Reload: a validated new [`Config`] replaces the running one without a restart.
//!
//! The control thread prepares it ([`prepare`]: restart-only settings kept and reported,
//! runtime backend states carried over), binds the listeners it adds, and hands each
//! worker a [`WorkerReload`]; the worker builds its next version ([`apply_on_worker`]).
//! What a reader must not miss: nothing is half-applied. A bad file, or a listener that
//! cannot be bound, changes nothing anywhere.

use crate::accept::Bound;
use crate::config::{BackendState, Config, ListenerMode};
use crate::runtime::AcceptLoops;
use crate::worker::{Newest, Shared, newest};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

/// What one worker needs to move to a new config version.
#[derive(Debug)]
pub struct WorkerReload {
    pub version: u64,
    pub config: Arc<Config>,
    pub shared: Shared,
    /// This worker's sockets for the listeners the reload adds: (index in `config`, socket).
    pub sockets: Vec<(usize, Bound)>,
    /// Told the worker's id once it runs the new version.
    pub applied: flume::Sender<usize>,
}

/// Which config runs: its number (1 at start, one more per applied reload), a hash of
/// the file it came from, and when it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVersion {
    pub number: u64,
    /// The first 16 hex digits of the file's SHA-256; empty for a config given as a value.
    pub hash: String,
    pub loaded_at: SystemTime,
}

impl ConfigVersion {
    /// The version of the config the proxy started with.
    pub fn first(text: Option<&str>) -> Self {
        Self {
            number: 1,
            hash: text.map(file_hash).unwrap_or_default(),
            loaded_at: SystemTime::now(),
        }
    }
}

/// The first 16 hex digits of `text`'s SHA-256.
pub fn file_hash(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A config ready to apply, and what of it waits for a restart.
#[derive(Debug)]
pub struct Prepared {
    pub config: Config,
    /// One line per setting that only a restart applies: `key: needs restart (...)`.
    pub needs_restart: Vec<String>,
    /// Indices in `config` of the listeners to bind: new, or moved to another address.
    pub added: Vec<usize>,
    /// Names of the running listeners that stop accepting.
    pub removed: Vec<String>,
}

/// Makes `new` ready to replace `old`: settings that only a restart applies keep their
/// running values (each reported), UDP listeners stay as they run, and a backend that
/// stays (same cluster name and address) keeps its runtime state (`state_of`, as the
/// admin API set it) unless the file sets `state`.
pub fn prepare(
    old: &Config,
    mut new: Config,
    state_of: impl Fn(&str, &str) -> Option<BackendState>,
) -> Prepared {
    let mut needs_restart = Vec::new();
    keep_restart_only(old, &mut new, &mut needs_restart);
    keep_udp_listeners(old, &mut new, &mut needs_restart);
    for cluster in &mut new.clusters {
        for backend in cluster.backends.iter_mut().filter(|backend| !backend.state_is_set) {
            if let Some(state) = state_of(&cluster.name, &backend.host) {
                backend.state = state;
            }
        }
    }
    let kept = |name: &str, addr: SocketAddr| {
        old.listeners.iter().any(|known| known.name == name && known.addr == addr)
    };
    let added = (new.listeners.iter().enumerate())
        .filter(|(_, listener)| !kept(&listener.name, listener.addr))
        .map(|(index, _)| index)
        .collect();
    let stays = |name: &str, addr: SocketAddr| {
        new.listeners.iter().any(|known| known.name == name && known.addr == addr)
    };
    let removed = (old.listeners.iter())
        .filter(|listener| !stays(&listener.name, listener.addr))
        .map(|listener| listener.name.clone())
        .collect();
    Prepared { config: new, needs_restart, added, removed }
}

/// Puts `old`'s value back in `new` for every setting a running worker cannot change,
/// and reports each that differed.
fn keep_restart_only(old: &Config, new: &mut Config, needs_restart: &mut Vec<String>) {
    let mut keep = |key: &str, differs: bool| {
        if differs {
            needs_restart.push(format!("{key}: needs restart; the running value stays"));
        }
    };
    keep("workers", old.workers != new.workers);
    keep("io.driver", old.io.driver != new.io.driver);
    keep("io.ring_entries", old.io.ring_entries != new.io.ring_entries);
    keep("io.ring_taskrun", old.io.ring_taskrun != new.io.ring_taskrun);
    keep("io.buffer_bytes", old.io.buffer_bytes != new.io.buffer_bytes);
    keep("io.splice_pipes_max", old.io.splice_pipes_max != new.io.splice_pipes_max);
    keep("admin.addr", old.admin.addr != new.admin.addr);
    keep("access_log.path", old.access_log.path != new.access_log.path);
    keep("cache.memory_bytes", old.cache.memory_bytes != new.cache.memory_bytes);
    keep("log", old.log != new.log);
    new.workers = old.workers.clone();
    new.io.driver = old.io.driver;
    new.io.ring_entries = old.io.ring_entries;
    new.io.ring_taskrun = old.io.ring_taskrun;
    new.io.buffer_bytes = old.io.buffer_bytes;
    new.io.splice_pipes_max = old.io.splice_pipes_max;
    new.admin.addr = old.admin.addr;
    new.access_log.path = old.access_log.path.clone();
    new.cache = old.cache;
    new.log = old.log;
}

/// A UDP listener's flows live in its socket's task, on the config it started with:
/// adding, removing or changing one needs a restart. New ones are left out; running
/// ones keep serving as they were.
fn keep_udp_listeners(old: &Config, new: &mut Config, needs_restart: &mut Vec<String>) {
    let is_udp = |mode: &ListenerMode| matches!(mode, ListenerMode::Udp(_));
    let before = new.listeners.len();
    new.listeners.retain(|listener| {
        let running = old.listeners.iter().any(|known| {
            is_udp(&known.mode) && known.name == listener.name && known.addr == listener.addr
        });
        !is_udp(&listener.mode) || running
    });
    if new.listeners.len() != before {
        needs_restart.push("listener: adding a UDP listener needs restart".to_owned());
    }
    for listener in old.listeners.iter().filter(|listener| is_udp(&listener.mode)) {
        let stays = new.listeners.iter().any(|known| {
            is_udp(&known.mode) && known.name == listener.name && known.addr == listener.addr
        });
        if !stays {
            needs_restart.push(format!(
                "listener {}: removing or changing a UDP listener needs restart; it keeps \
                 serving",
                listener.name
            ));
        }
    }
}

/// Moves this worker thread to `reload`'s version: builds it from the newest one, makes
/// it the newest (new connections and kept-alive connections' next exchanges take it),
/// stops the accept loops of removed listeners and starts those of added ones.
pub fn apply_on_worker(slot: &Newest, reload: WorkerReload, loops: &mut AcceptLoops) {
    let Some(previous) = newest(slot) else { return };
    let WorkerReload { version, config, shared, sockets, applied } = reload;
    let next = Rc::new(previous.successor(config, shared, version));
    // Idle pooled connections of the old version would wait for exchanges that will not
    // come; those in flight finish and close with it.
    previous.pool.borrow_mut().clear();
    let replaced = slot.borrow_mut().replace(next.clone());
    // Dropped outside the slot's borrow: the last reference runs `Worker::drop`, which
    // reads the slot.
    drop(replaced);
    drop(previous);
    let listeners = &next.config.listeners;
    loops.retain(|name, addr| {
        listeners.iter().any(|known| known.name == name && known.addr == addr)
    });
    for (listener, socket) in sockets {
        loops.spawn(&next, listener, socket);
    }
    log::debug!("worker {}: now on config version {version}", next.id);
    let _ = applied.send(next.id);
}

#[cfg(test)]
mod tests;
