//! The control thread: beside the workers, one monoio runtime that runs the active health
//! checks, merges the workers' stats snapshots, runs the admin listener `admin` hands it
//! and applies backend state changes. Nothing here is on a request's path.
//!
//! Workers hear from it only through their control channel, between requests.

use crate::accept::Bound;
use crate::config::{BackendId, BackendState, ClusterId, Config};
use crate::limit::global::GlobalRateThread;
use crate::reload::{ConfigVersion, WorkerReload};
use crate::stats::{Aggregate, CertificateExpiry, ControlView, Reloads, StatsLayout, WorkerStats};
use crate::tls::server::ServerTls;
use crate::upgrade::Handed;
use crate::upstream::LoadBoard;
use crate::upstream::health::{self, HealthEvent};
use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Messages from the control plane to a worker.
#[derive(Debug)]
pub enum Control {
    Shutdown,
    /// Shut down after a binary upgrade: as `Shutdown`, but idle keep-alive connections
    /// are served their next request (with `Connection: close`) rather than closed.
    HandOff,
    /// A new config version: the worker moves to it between exchanges.
    Reload(Box<WorkerReload>),
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
    /// Reads the config file again and applies it (SIGHUP, `POST /config/reload`).
    ReloadConfig {
        reply: flume::Sender<Result<ReloadReport, ReloadError>>,
    },
    /// Applies a config given as a value (see [`ControlState::apply_config`]).
    ApplyConfig {
        config: Box<Config>,
        reply: flume::Sender<Result<ReloadReport, ReloadError>>,
    },
    /// Duplicates of every listening socket, for a binary upgrade.
    Handover {
        reply: flume::Sender<std::io::Result<Vec<Handed<OwnedFd>>>>,
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
    /// The file the config came from: what a reload reads. `None` for a config given as a
    /// value (the embedded default, a test).
    pub path: Option<std::path::PathBuf>,
    /// The running config's version.
    pub version: ConfigVersion,
    /// The active checks' current run and what they publish to; a reload starts anew.
    checks_run: health::ChecksRun,
    publish: Option<Rc<dyn Fn(HealthEvent)>>,
    /// The last reload's acknowledgements from the workers, and how many to expect.
    applied: Option<(flume::Receiver<usize>, usize)>,
    global_rates: Vec<GlobalRateThread>,
    /// Each discovered cluster's source and last result; its task updates it.
    pub discovery: Vec<crate::discover::DiscoveryReport>,
    /// A duplicate of every listening socket (admin included), kept current by reloads:
    /// what a binary upgrade hands the new process.
    handover: Vec<Handed<OwnedFd>>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub version: ConfigVersion,
    /// Settings that only a restart applies, each with its key.
    pub needs_restart: Vec<String>,
    /// Listeners bound and accepting, and those that stopped accepting.
    pub listeners_added: Vec<String>,
    pub listeners_removed: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The file is unreadable or invalid: every problem, each with its key path.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The proxy runs a config given as a value: there is no file to read again.
    #[error("the running config came from no file; nothing to reload")]
    NoFile,
    /// A new listener could not be bound.
    #[error("{0}")]
    Bind(String),
    /// The control thread has stopped (the proxy is shutting down).
    #[error("the control thread has stopped")]
    Stopped,
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
            discovery: self.discovery.clone(),
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
        let cluster_id =
            ClusterId(u32::try_from(cluster_index).map_err(|error| error.to_string())?);
        let backend_id =
            BackendId(u32::try_from(backend_index).map_err(|error| error.to_string())?);
        for worker in &self.workers {
            let message = Control::BackendState { cluster: cluster_id, backend: backend_id, state };
            let _ = worker.send(message);
        }
        log::info!("cluster {cluster} backend {backend}: now {}", state.as_str());
        Ok(())
    }

    /// The state the admin API last gave backend `backend` (its address as written) of
    /// cluster `cluster`.
    fn state_of(&self, cluster: &str, backend: &str) -> Option<BackendState> {
        let cluster_index = self.config.clusters.iter().position(|known| known.name == cluster)?;
        let backends = &self.config.clusters[cluster_index].backends;
        let backend_index = backends.iter().position(|known| known.host == backend)?;
        self.states.get(cluster_index)?.get(backend_index).copied()
    }

    /// Reads the config file again and applies it (SIGHUP, `ringway reload`,
    /// `POST /config/reload`). A file that does not parse and validate changes nothing:
    /// the error lists every problem with its key path, as `ringway check` does.
    pub fn reload_file(&mut self) -> Result<ReloadReport, ReloadError> {
        let Some(path) = self.path.clone() else { return Err(ReloadError::NoFile) };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|error| ReloadError::Invalid(vec![format!("{}: {error}", path.display())]))
            .and_then(|text| {
                let hash = crate::reload::file_hash(&text);
                let lines = |errors: crate::config::ConfigErrors| {
                    errors.0.iter().map(ToString::to_string).collect()
                };
                Config::parse(&text)
                    .map(|config| (config, hash))
                    .map_err(|errors| ReloadError::Invalid(lines(errors)))
            });
        match parsed {
            Ok((config, hash)) => self.apply_config(config, hash),
            Err(error) => Err(self.refused(error)),
        }
    }

    /// Counts and logs a reload that changed nothing.
    fn refused(&self, error: ReloadError) -> ReloadError {
        let mut reloads = self.reloads.get();
        reloads.failed += 1;
        self.reloads.set(reloads);
        log::error!("reload refused, the running config stays: {error}");
        error
    }

    /// Replaces the running config with `config`, already parsed and validated: the entry
    /// point for every runtime change of the config, a reloaded file or a cluster's
    /// backend list from service discovery (build the new `Config` from
    /// [`ControlState::config`] with that cluster's backends replaced, and call this).
    ///
    /// Settings only a restart applies keep their running values (reported in
    /// [`ReloadReport::needs_restart`]). Listeners whose name and address stay keep their
    /// sockets; new ones are bound here first, so a failed bind changes nothing. Backends
    /// that stay, by cluster name and address, keep their balancer, health, ejection and
    /// slow-start state and their admin-set state (unless the file sets one); counters
    /// keyed by name carry over. Each worker moves to the new version between exchanges;
    /// an exchange in flight, and a tunnel, finish on the version they started on.
    /// `hash` names the file's text (empty for a value built in memory).
    pub fn apply_config(
        &mut self,
        config: Config,
        hash: String,
    ) -> Result<ReloadReport, ReloadError> {
        let prepared = crate::reload::prepare(&self.config, config, |cluster, backend| {
            self.state_of(cluster, backend)
        });
        let workers = self.workers.len();
        let mut sockets: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
        let mut added = Vec::new();
        for &index in &prepared.added {
            let listener = &prepared.config.listeners[index];
            let bound = crate::accept::bind_for_workers(listener, listener.addr, workers);
            let bound = bound.map_err(|error| {
                let at = format!("listener[{index}] {} at {}", listener.name, listener.addr);
                self.refused(ReloadError::Bind(format!("{at}: {error}")))
            })?;
            for (worker_sockets, socket) in sockets.iter_mut().zip(bound.0) {
                let fd = socket.duplicate().map_err(|error| {
                    self.refused(ReloadError::Bind(format!("listener[{index}]: {error}")))
                })?;
                let kind = crate::upgrade::kind_of(listener);
                added.push(Handed { kind, name: listener.name.clone(), addr: listener.addr, fd });
                worker_sockets.push((index, socket));
            }
        }
        let listeners_added =
            prepared.added.iter().map(|&index| prepared.config.listeners[index].name.clone());
        let listeners_added = listeners_added.collect();
        let config = Arc::new(prepared.config);
        let number = self.version.number + 1;
        let listeners = &config.listeners;
        self.handover.retain(|socket| {
            socket.kind == crate::upgrade::SocketKind::Admin
                || listeners
                    .iter()
                    .any(|known| known.name == socket.name && known.addr == socket.addr)
        });
        self.handover.extend(added);
        self.send_version(&config, number, sockets);
        self.adopt(&config, number);
        self.version = ConfigVersion { number, hash, loaded_at: std::time::SystemTime::now() };
        let mut reloads = self.reloads.get();
        reloads.succeeded += 1;
        self.reloads.set(reloads);
        for line in &prepared.needs_restart {
            log::warn!("reload: {line}");
        }
        log::info!("config version {number} applied (hash {:?})", self.version.hash);
        Ok(ReloadReport {
            version: self.version.clone(),
            needs_restart: prepared.needs_restart,
            listeners_added,
            listeners_removed: prepared.removed,
        })
    }

    /// Duplicates of every listening socket, for a binary upgrade.
    pub fn handover(&self) -> std::io::Result<Vec<Handed<OwnedFd>>> {
        let duplicate = |socket: &Handed<OwnedFd>| {
            Ok(Handed {
                kind: socket.kind,
                name: socket.name.clone(),
                addr: socket.addr,
                fd: socket.fd.try_clone()?,
            })
        };
        self.handover.iter().map(duplicate).collect()
    }

    /// The last reload's acknowledgements, for [`wait_applied`]; `None` when taken.
    pub fn take_applied(&mut self) -> Option<(flume::Receiver<usize>, usize)> {
        self.applied.take()
    }

    /// Hands every worker version `number` of `config` with its sockets for the added
    /// listeners.
    fn send_version(
        &mut self,
        config: &Arc<Config>,
        number: u64,
        sockets: Vec<Vec<(usize, Bound)>>,
    ) {
        let workers = self.workers.len();
        let (applied, acknowledgements) = flume::unbounded();
        self.applied = Some((acknowledgements, workers));
        self.load_board = Arc::new(LoadBoard::new(config, workers));
        // Fresh limiters come with a new version, so the Redis threads of global limits
        // start anew too; the old ones stop when dropped here.
        let (rate_exchanges, global_rates) = match crate::worker::rate_exchanges(config, workers) {
            Ok(started) => started,
            Err(error) => {
                log::error!("reload: global rate limits stay local, no thread: {error}");
                let exchanges = crate::worker::rate_limits(config);
                (
                    exchanges.map(|_| crate::limit::RateExchange::new(workers + 1)).collect(),
                    Vec::new(),
                )
            }
        };
        self.global_rates = global_rates;
        for (worker, sockets) in self.workers.iter().zip(sockets) {
            let shared = crate::worker::Shared {
                load_board: self.load_board.clone(),
                rate_exchanges: rate_exchanges.clone(),
            };
            let applied = applied.clone();
            let config = config.clone();
            let reload = WorkerReload { version: number, config, shared, sockets, applied };
            let _ = worker.send(Control::Reload(Box::new(reload)));
        }
    }

    /// Makes `config` the control thread's own: backend states and health by name,
    /// counters under the new names, certificate expiries, and the active checks.
    fn adopt(&mut self, config: &Arc<Config>, number: u64) {
        let old = std::mem::replace(&mut self.config, config.clone());
        let health_of = |cluster: &crate::config::Cluster, host: &str| {
            let cluster_index = old.clusters.iter().position(|known| known.name == cluster.name)?;
            let backends = &old.clusters[cluster_index].backends;
            let backend_index = backends.iter().position(|known| known.host == host)?;
            self.health.get(cluster_index)?.get(backend_index).copied()
        };
        let health = (config.clusters.iter())
            .map(|cluster| {
                let hosts = cluster.backends.iter();
                hosts.map(|backend| health_of(cluster, &backend.host).unwrap_or(true)).collect()
            })
            .collect();
        self.health = health;
        self.states = (config.clusters.iter())
            .map(|cluster| cluster.backends.iter().map(|backend| backend.state).collect())
            .collect();
        self.aggregate.relayout(StatsLayout::new(config), number);
        *self.certificates.borrow_mut() = certificate_expiries(config);
        self.checks_run.set(self.checks_run.get() + 1);
        if let Some(publish) = &self.publish {
            health::start(config, publish.clone(), &self.checks_run, &self.health);
        }
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
    /// The file `config` came from, and its text's hash (see [`ControlState::path`]).
    pub path: Option<std::path::PathBuf>,
    /// Duplicates of the listening sockets (see [`Request::Handover`]).
    pub handover: Vec<Handed<OwnedFd>>,
    pub hash: String,
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

/// The certificate expiries of every TLS listener of `config`.
fn certificate_expiries(config: &Config) -> Vec<CertificateExpiry> {
    let listeners = config.listeners.iter();
    let each = |listener: &crate::config::Listener| {
        Some(expiries(&listener.name, &listener.tls.as_ref()?.server))
    };
    listeners.filter_map(each).flatten().collect()
}

/// How long a reload's answer waits for the workers to run the new version. A worker
/// takes it between two control messages, so this bounds only a wedged worker.
const APPLIED_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until every worker runs the version of the reload `applied` came from (or
/// `APPLIED_WAIT` passes): a reload's answer then means new exchanges use it.
pub async fn wait_applied(applied: Option<(flume::Receiver<usize>, usize)>) {
    let Some((acknowledgements, workers)) = applied else { return };
    for _ in 0..workers {
        let received = crate::deadline::timeout(APPLIED_WAIT, acknowledgements.recv_async());
        if !matches!(received.await, Ok(Ok(_))) {
            log::warn!("reload: a worker did not confirm the new version in {APPLIED_WAIT:?}");
            return;
        }
    }
}

/// Sends a reload's `result` on `reply` once the workers run the new version.
fn answer_applied(
    state: &Rc<RefCell<ControlState>>,
    result: Result<ReloadReport, ReloadError>,
    reply: flume::Sender<Result<ReloadReport, ReloadError>>,
) {
    let applied = state.borrow_mut().take_applied();
    monoio::spawn(async move {
        wait_applied(applied).await;
        let _ = reply.send(result);
    });
}

/// Starts the active checks of the running config; their verdicts go to every worker.
fn start_checks(state: &Rc<RefCell<ControlState>>) {
    let publish_state = state.clone();
    let publish = move |event: HealthEvent| {
        let mut state = publish_state.borrow_mut();
        let (cluster, backend) = (event.cluster.0 as usize, event.backend.0 as usize);
        if let Some(known) = state.health.get_mut(cluster).and_then(|c| c.get_mut(backend)) {
            *known = event.is_up;
        }
        for worker in &state.workers {
            let _ = worker.send(Control::Health(event));
        }
    };
    let publish: Rc<dyn Fn(HealthEvent)> = Rc::new(publish);
    let mut state = state.borrow_mut();
    state.publish = Some(publish.clone());
    let config = state.config.clone();
    health::start(&config, publish, &state.checks_run, &state.health);
}

async fn run(start: ControlStart) {
    let ControlStart {
        config,
        path,
        handover,
        hash,
        workers,
        load_board,
        stats,
        requests,
        admin,
        reopen,
        global_rates,
    } = start;
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
        discovery: Vec::new(),
        certificates: RefCell::new(certificate_expiries(&config)),
        reloads: Cell::new(Reloads::default()),
        path,
        version: ConfigVersion { hash, ..ConfigVersion::first(None) },
        checks_run: Rc::default(),
        publish: None,
        applied: None,
        handover,
        config: config.clone(),
    }));
    start_checks(&state);
    crate::discover::apply::start(&state);
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
        if !handle(&state, request) {
            break;
        }
    }
}

/// Carries out one request; false for [`Request::Stop`].
fn handle(state: &Rc<RefCell<ControlState>>, request: Request) -> bool {
    match request {
        Request::SetBackendState { cluster, backend, state: wanted, reply } => {
            let result = state.borrow_mut().set_backend_state(&cluster, &backend, wanted);
            let _ = reply.send(result);
        }
        Request::Backends { reply } => {
            let _ = reply.send(state.borrow().backend_reports());
        }
        Request::ReloadConfig { reply } => {
            let result = state.borrow_mut().reload_file();
            crate::discover::apply::start(state);
            answer_applied(state, result, reply);
        }
        Request::ApplyConfig { config, reply } => {
            let result = state.borrow_mut().apply_config(*config, String::new());
            crate::discover::apply::start(state);
            answer_applied(state, result, reply);
        }
        Request::Handover { reply } => {
            let _ = reply.send(state.borrow().handover());
        }
        Request::ReloadTls { reply } => {
            let _ = reply.send(state.borrow().reload_tls());
        }
        Request::PurgeCache { target } => state.borrow().broadcast_purge(&target),
        Request::ShuttingDown => {
            let mut state = state.borrow_mut();
            state.shutting_down = true;
            // The workers close their listening sockets as they drain: these duplicates
            // must not keep them open (a connect would then queue where nobody accepts).
            state.handover.clear();
        }
        Request::Stop => return false,
    }
    true
}
