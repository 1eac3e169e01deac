//! The control thread: beside the workers, one monoio runtime that runs the active health
//! checks, merges the workers' stats snapshots, runs the admin listener `admin` hands it
//! and applies backend state changes. Nothing here is on a request's path.
//!
//! Workers hear from it only through their control channel, between requests.

use crate::config::{BackendId, BackendState, ClusterId, Config};
use crate::limit::global::GlobalRateThread;
use crate::stats::{Aggregate, CertificateExpiry, ControlView, Reloads, StatsLayout, WorkerStats};
use crate::tls::server::ServerTls;
use crate::upstream::LoadBoard;
use crate::upstream::health::{self, HealthEvent};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Messages from the control plane to a worker.
#[derive(Debug, Clone)]
pub enum Control {
    Shutdown,
    Health(HealthEvent),
    BackendState {
        cluster: ClusterId,
        backend: BackendId,
        state: BackendState,
    },
    /// New certificates for a TLS listener: new handshakes use them.
    TlsReload {
        listener: usize,
        server: Arc<ServerTls>,
    },
    /// Drop stored responses; the worker answers with its id and how many it dropped.
    PurgeCache {
        target: Arc<PurgeTarget>,
        reply: Option<flume::Sender<(usize, usize)>>,
    },
}

/// Which stored responses a purge drops: the key (`scheme://authority/path?query`), or
/// every key starting with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeTarget {
    pub key: Box<[u8]>,
    pub prefix: bool,
}

/// Requests from the [`crate::runtime::Proxy`] handle to the control thread.
#[derive(Debug)]
pub enum Request {
    SetBackendState {
        cluster: String,
        backend: String,
        state: BackendState,
        reply: flume::Sender<Result<(), String>>,
    },
    Backends {
        reply: flume::Sender<Vec<BackendReport>>,
    },
    /// Reads every TLS listener's certificate files again.
    ReloadTls {
        reply: flume::Sender<Result<usize, String>>,
    },
    /// A worker took a `PURGE`: every worker drops the key.
    PurgeCache {
        target: Arc<PurgeTarget>,
    },
    /// Shutdown has begun: `/ready` answers 503 from now on.
    ShuttingDown,
    /// The workers have ended: stop the control thread.
    Stop,
}

/// A backend as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendReport {
    pub cluster: String,
    pub backend: String,
    pub state: BackendState,
    /// The verdict of the active checks (true when there are none).
    pub is_up: bool,
    /// Exchanges in flight over all workers, as of the last load sync.
    pub in_flight: u32,
}

/// Reopens the access log file (after logrotate moved it).
pub type Reopen = Arc<dyn Fn() + Send + Sync>;

/// Starts the admin listener on the control thread, given the state it serves. `admin`
/// provides it (`admin::server`), so that admin depends on control and not the reverse.
pub type ServeAdmin = Box<dyn FnOnce(Rc<RefCell<ControlState>>) + Send>;

/// Everything the control thread owns.
pub struct ControlState {
    pub config: Arc<Config>,
    pub aggregate: Aggregate,
    /// `states[cluster][backend]`, as last set.
    states: Vec<Vec<BackendState>>,
    /// `health[cluster][backend]`, from the active checks.
    health: Vec<Vec<bool>>,
    workers: Vec<flume::Sender<Control>>,
    load_board: Arc<LoadBoard>,
    started: Instant,
    pub shutting_down: bool,
    reopen: Option<Reopen>,
    /// Certificate expiries as last loaded, and the reloads asked for (`reload_tls`).
    certificates: RefCell<Vec<CertificateExpiry>>,
    reloads: Cell<Reloads>,
    global_rates: Vec<GlobalRateThread>,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState").field("states", &self.states).finish_non_exhaustive()
    }
}

impl ControlState {
    /// What only the control thread knows, for rendering stats.
    pub fn view(&self) -> ControlView {
        ControlView {
            backend_states: self.states.iter().flatten().copied().collect(),
            uptime: self.started.elapsed(),
            workers: self.workers.len(),
            certificates: self.certificates.borrow().clone(),
            reloads: self.reloads.get(),
            global_rates: self.global_rates.iter().map(GlobalRateThread::report).collect(),
        }
    }

    /// Every backend's state, health and in-flight count.
    pub fn backend_reports(&self) -> Vec<BackendReport> {
        let mut reports = Vec::new();
        for (cluster_index, cluster) in self.config.clusters.iter().enumerate() {
            for (backend_index, backend) in cluster.backends.iter().enumerate() {
                reports.push(BackendReport {
                    cluster: cluster.name.clone(),
                    backend: backend.host.clone(),
                    state: self.states[cluster_index][backend_index],
                    is_up: self.health[cluster_index][backend_index],
                    in_flight: self.load_board.in_flight(cluster_index, backend_index),
                });
            }
        }
        reports
    }

    /// Sets a backend `active`, `draining` or `disabled` on every worker. `backend` is its
    /// address as written in the config.
    pub fn set_backend_state(
        &mut self,
        cluster: &str,
        backend: &str,
        state: BackendState,
    ) -> Result<(), String> {
        let clusters = &self.config.clusters;
        let cluster_index = clusters
            .iter()
            .position(|known| known.name == cluster)
            .ok_or_else(|| format!("no cluster named {cluster:?}"))?;
        let backend_index = clusters[cluster_index]
            .backends
            .iter()
            .position(|known| known.host == backend)
            .ok_or_else(|| format!("cluster {cluster:?} has no backend {backend:?}"))?;
        self.states[cluster_index][backend_index] = state;
        let message = Control::BackendState {
            cluster: ClusterId(u32::try_from(cluster_index).map_err(|error| error.to_string())?),
            backend: BackendId(u32::try_from(backend_index).map_err(|error| error.to_string())?),
            state,
        };
        for worker in &self.workers {
            let _ = worker.send(message.clone());
        }
        log::info!("cluster {cluster} backend {backend}: now {}", state.as_str());
        Ok(())
    }

    /// Reads the certificate files of every TLS listener again and hands the new ones to
    /// the workers; existing connections keep theirs. All or nothing: on any problem the
    /// old certificates stay everywhere. Returns how many listeners were reloaded.
    pub fn reload_tls(&self) -> Result<usize, String> {
        let mut reloaded = Vec::new();
        let mut problems = Vec::new();
        for (index, listener) in self.config.listeners.iter().enumerate() {
            if let Some(tls) = &listener.tls {
                match tls.server.reload() {
                    Ok(server) => reloaded.push((index, Arc::new(server))),
                    Err(found) => problems.extend(found),
                }
            }
        }
        let mut reloads = self.reloads.get();
        if !problems.is_empty() {
            reloads.failed += 1;
            self.reloads.set(reloads);
            let lines: Vec<String> =
                problems.iter().map(|(at, reason)| format!("{at}: {reason}")).collect();
            let message = format!("certificates not reloaded: {}", lines.join("; "));
            log::error!("{message}");
            return Err(message);
        }
        reloads.succeeded += 1;
        self.reloads.set(reloads);
        let mut certificates = self.certificates.borrow_mut();
        certificates.retain(|known| {
            let name = |&(index, _): &(usize, _)| &self.config.listeners[index].name;
            !reloaded.iter().map(name).any(|listener| *listener == known.listener)
        });
        for (index, server) in &reloaded {
            certificates.extend(expiries(&self.config.listeners[*index].name, server));
        }
        drop(certificates);
        for (listener, server) in &reloaded {
            for worker in &self.workers {
                let message = Control::TlsReload { listener: *listener, server: server.clone() };
                let _ = worker.send(message);
            }
        }
        log::info!("reloaded the certificates of {} TLS listeners", reloaded.len());
        Ok(reloaded.len())
    }

    /// Asks every worker to drop `target`'s stored responses; each answers on the returned
    /// channel with its id and count.
    pub fn purge_cache(
        &self,
        target: &Arc<PurgeTarget>,
    ) -> (flume::Receiver<(usize, usize)>, usize) {
        let (reply, replies) = flume::unbounded();
        for worker in &self.workers {
            let message =
                Control::PurgeCache { target: Arc::clone(target), reply: Some(reply.clone()) };
            let _ = worker.send(message);
        }
        (replies, self.workers.len())
    }

    /// Tells every worker to drop `target`'s stored responses, asking no count back.
    pub fn broadcast_purge(&self, target: &Arc<PurgeTarget>) {
        for worker in &self.workers {
            let _ = worker.send(Control::PurgeCache { target: Arc::clone(target), reply: None });
        }
    }

    /// Reopens the access log, if there is one.
    pub fn reopen_access_log(&self) {
        if let Some(reopen) = &self.reopen {
            reopen();
        }
    }
}

/// What the control thread starts with.
pub struct ControlStart {
    pub config: Arc<Config>,
    pub workers: Vec<flume::Sender<Control>>,
    pub load_board: Arc<LoadBoard>,
    pub stats: flume::Receiver<(usize, WorkerStats)>,
    pub requests: flume::Receiver<Request>,
    pub admin: Option<ServeAdmin>,
    pub reopen: Option<Reopen>,
    /// The Redis threads of the global rate limits: reported in stats, stopped with this
    /// thread.
    pub global_rates: Vec<GlobalRateThread>,
}

impl std::fmt::Debug for ControlStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlStart").field("admin", &self.admin.is_some()).finish_non_exhaustive()
    }
}

/// Starts the control thread.
pub fn spawn(start: ControlStart) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("ringway-control".to_owned()).spawn(move || {
        let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build();
        match runtime {
            Ok(mut runtime) => runtime.block_on(run(start)),
            Err(error) => log::error!("control thread: cannot build a runtime: {error}"),
        }
    })
}

/// The certificate expiries of one TLS listener's `server`.
fn expiries(listener: &str, server: &ServerTls) -> Vec<CertificateExpiry> {
    let files = server.settings.certificates.iter();
    files
        .zip(&server.expiries)
        .map(|(files, not_after)| CertificateExpiry {
            listener: listener.to_owned(),
            certificate: files.cert.display().to_string(),
            not_after: *not_after,
        })
        .collect()
}

async fn run(start: ControlStart) {
    let ControlStart { config, workers, load_board, stats, requests, admin, reopen, global_rates } =
        start;
    let layout = StatsLayout::new(&config);
    let state = Rc::new(RefCell::new(ControlState {
        aggregate: Aggregate::new(layout, workers.len()),
        states: config
            .clusters
            .iter()
            .map(|c| c.backends.iter().map(|b| b.state).collect())
            .collect(),
        health: config.clusters.iter().map(|c| vec![true; c.backends.len()]).collect(),
        workers,
        load_board,
        started: Instant::now(),
        shutting_down: false,
        reopen,
        global_rates,
        certificates: RefCell::new(
            config
                .listeners
                .iter()
                .filter_map(|listener| {
                    Some(expiries(&listener.name, &listener.tls.as_ref()?.server))
                })
                .flatten()
                .collect(),
        ),
        reloads: Cell::new(Reloads::default()),
        config: config.clone(),
    }));
    let publish_state = state.clone();
    let publish = move |event: HealthEvent| {
        let mut state = publish_state.borrow_mut();
        let (cluster, backend) = (event.cluster.0 as usize, event.backend.0 as usize);
        state.health[cluster][backend] = event.is_up;
        for worker in &state.workers {
            let _ = worker.send(Control::Health(event));
        }
    };
    health::start(&config, Rc::new(publish));
    if let Some(serve) = admin {
        serve(state.clone());
    }
    let stats_state = state.clone();
    monoio::spawn(async move {
        while let Ok((worker, snapshot)) = stats.recv_async().await {
            stats_state.borrow_mut().aggregate.update(worker, snapshot);
        }
    });
    while let Ok(request) = requests.recv_async().await {
        match request {
            Request::SetBackendState { cluster, backend, state: wanted, reply } => {
                let result = state.borrow_mut().set_backend_state(&cluster, &backend, wanted);
                let _ = reply.send(result);
            }
            Request::Backends { reply } => {
                let _ = reply.send(state.borrow().backend_reports());
            }
            Request::ReloadTls { reply } => {
                let _ = reply.send(state.borrow().reload_tls());
            }
            Request::PurgeCache { target } => state.borrow().broadcast_purge(&target),
            Request::ShuttingDown => state.borrow_mut().shutting_down = true,
            Request::Stop => break,
        }
    }
}
