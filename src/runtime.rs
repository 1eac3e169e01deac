//! Starts one pinned worker thread per configured core, each with its own monoio runtime
//! (io_uring, or epoll where io_uring is unavailable), and stops them gracefully.
//!
//! The thread that calls [`start`] is the control thread: it binds every socket first, so
//! a bad address fails startup instead of one worker, and later tells workers to drain.

use crate::accept;
use crate::config::{BackendId, BackendState, ClusterId, Config, IoDriver, Workers};
use crate::upstream::LoadBoard;
use crate::upstream::health::{self, HealthEvent};
use crate::worker::Worker;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a worker closes upstream connections idle past their timeout.
const POOL_REAP_INTERVAL: Duration = Duration::from_secs(1);
/// How often a draining worker looks at its open connection count.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Messages from the control plane to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Shutdown,
    Health(HealthEvent),
    BackendState { cluster: ClusterId, backend: BackendId, state: BackendState },
}

/// A running proxy: its workers and the addresses it listens on.
#[derive(Debug)]
pub struct Proxy {
    /// The bound address of each listener, in config order (useful with port 0).
    pub listen_addrs: Vec<SocketAddr>,
    config: Arc<Config>,
    controls: Vec<flume::Sender<Control>>,
    threads: Vec<JoinHandle<()>>,
    load_board: Arc<LoadBoard>,
    /// The administrative state of every backend, as last set: `states[cluster][backend]`.
    states: Vec<Vec<BackendState>>,
    /// Dropping it stops the health-check thread.
    health_stop: Option<flume::Sender<()>>,
    health_thread: Option<JoinHandle<()>>,
}

/// A backend as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendReport {
    pub cluster: String,
    pub backend: String,
    pub state: BackendState,
    /// Exchanges in flight over all workers, as of the last load sync.
    pub in_flight: u32,
}

impl Proxy {
    /// Tells every worker to stop accepting and finish in-flight exchanges.
    pub fn shutdown(&self) {
        for control in &self.controls {
            let _ = control.send(Control::Shutdown);
        }
    }

    /// Waits for every worker thread to end, then stops the health checks.
    pub fn wait(mut self) {
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a worker thread panicked");
            }
        }
        self.health_stop = None;
        if let Some(thread) = self.health_thread.take() {
            if thread.join().is_err() {
                log::error!("the health-check thread panicked");
            }
        }
    }

    /// Sets a backend `active`, `draining` or `disabled` on every worker. `backend` is its
    /// address as written in the config. A draining backend takes no new requests or
    /// sessions; its in-flight exchanges finish and its idle connections close.
    pub fn set_backend_state(
        &mut self,
        cluster: &str,
        backend: &str,
        state: BackendState,
    ) -> Result<(), String> {
        let (cluster_index, backend_index) = self.find_backend(cluster, backend)?;
        self.states[cluster_index][backend_index] = state;
        let message = Control::BackendState {
            cluster: ClusterId(u32::try_from(cluster_index).map_err(|error| error.to_string())?),
            backend: BackendId(u32::try_from(backend_index).map_err(|error| error.to_string())?),
            state,
        };
        for control in &self.controls {
            let _ = control.send(message);
        }
        log::info!("cluster {cluster} backend {backend}: now {state:?}");
        Ok(())
    }

    /// Every backend's state and in-flight count.
    pub fn backends(&self) -> Vec<BackendReport> {
        let mut reports = Vec::new();
        for (cluster_index, cluster) in self.config.clusters.iter().enumerate() {
            for (backend_index, backend) in cluster.backends.iter().enumerate() {
                reports.push(BackendReport {
                    cluster: cluster.name.clone(),
                    backend: backend.host.clone(),
                    state: self.states[cluster_index][backend_index],
                    in_flight: self.load_board.in_flight(cluster_index, backend_index),
                });
            }
        }
        reports
    }

    fn find_backend(&self, cluster: &str, backend: &str) -> Result<(usize, usize), String> {
        let cluster_index = self
            .config
            .clusters
            .iter()
            .position(|known| known.name == cluster)
            .ok_or_else(|| format!("no cluster named {cluster:?}"))?;
        let backend_index = self.config.clusters[cluster_index]
            .backends
            .iter()
            .position(|known| known.host == backend)
            .ok_or_else(|| format!("cluster {cluster:?} has no backend {backend:?}"))?;
        Ok((cluster_index, backend_index))
    }
}

/// The driver actually used: `Auto` resolved by probing io_uring once.
fn resolve_driver(driver: IoDriver) -> IoDriver {
    match driver {
        IoDriver::Auto if monoio::utils::detect_uring() => IoDriver::IoUring,
        IoDriver::Auto => {
            log::warn!(
                "io_uring is unavailable (kernel, seccomp or io_uring_disabled); using epoll"
            );
            IoDriver::Epoll
        }
        IoDriver::IoUring | IoDriver::Epoll => driver,
    }
}

/// The cores to run workers on; `None` entries are unpinned (more workers than cores).
fn resolve_cores(workers: &Workers) -> io::Result<Vec<Option<core_affinity::CoreId>>> {
    let available = core_affinity::get_core_ids().unwrap_or_default();
    let cores = match workers {
        Workers::All if available.is_empty() => vec![None],
        Workers::All => available.into_iter().map(Some).collect(),
        Workers::Count(count) => (0..*count).map(|index| available.get(index).copied()).collect(),
        Workers::Cores(ids) => {
            let mut cores = Vec::with_capacity(ids.len());
            for id in ids {
                let Some(core) = available.iter().find(|core| core.id == *id) else {
                    let message = format!("workers: core {id} is not available to this process");
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
                };
                cores.push(Some(*core));
            }
            cores
        }
    };
    Ok(cores)
}

/// Binds one socket per listener for each of `workers` workers: `sockets[worker]`, and
/// each listener's bound address.
fn bind_all(
    config: &Config,
    workers: usize,
) -> io::Result<(Vec<Vec<std::net::TcpListener>>, Vec<SocketAddr>)> {
    // Per worker, one socket per listener. Port 0 is resolved by the first bind so that
    // every worker shares the same port.
    let mut sockets: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut listen_addrs = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let mut addr = listener.addr;
        for worker_sockets in &mut sockets {
            let socket = accept::bind(listener, addr).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("listener {} at {addr}: {error}", listener.name),
                )
            })?;
            addr = socket.local_addr()?;
            worker_sockets.push(socket);
        }
        listen_addrs.push(addr);
    }
    Ok((sockets, listen_addrs))
}

/// Binds every listener for every worker and starts the workers.
pub fn start(config: Arc<Config>) -> io::Result<Proxy> {
    let cores = resolve_cores(&config.workers)?;
    for cluster in config.clusters.iter().filter(|cluster| cluster.backends.is_empty()) {
        log::warn!("cluster {} has no backends: its routes answer 503", cluster.name);
    }
    let driver = resolve_driver(config.io.driver);
    let (sockets, listen_addrs) = bind_all(&config, cores.len())?;
    let load_board = Arc::new(LoadBoard::new(&config, cores.len()));
    let mut controls = Vec::with_capacity(cores.len());
    let mut threads = Vec::with_capacity(cores.len());
    for (id, (core, sockets)) in cores.iter().copied().zip(sockets).enumerate() {
        let (sender, receiver) = flume::unbounded();
        controls.push(sender);
        let start = WorkerStart {
            id,
            core,
            driver,
            config: config.clone(),
            load_board: load_board.clone(),
            sockets,
            control: receiver,
        };
        let thread = std::thread::Builder::new()
            .name(format!("ringway-worker-{id}"))
            .spawn(move || run_worker(start))?;
        threads.push(thread);
    }
    let (health_stop, stop) = flume::bounded(1);
    let senders = controls.clone();
    let publish = move |event: HealthEvent| {
        for sender in &senders {
            let _ = sender.send(Control::Health(event));
        }
    };
    let health_thread = health::spawn(config.clone(), publish, stop)?;
    log::info!(
        "ringway {} started: {} workers on cores {:?}, driver {:?}, listeners {:?}",
        env!("CARGO_PKG_VERSION"),
        cores.len(),
        cores.iter().map(|core| core.map(|core| core.id)).collect::<Vec<_>>(),
        driver,
        config
            .listeners
            .iter()
            .zip(&listen_addrs)
            .map(|(l, a)| format!("{}={a}", l.name))
            .collect::<Vec<_>>(),
    );
    let states = config
        .clusters
        .iter()
        .map(|cluster| cluster.backends.iter().map(|backend| backend.state).collect())
        .collect();
    Ok(Proxy {
        listen_addrs,
        config,
        controls,
        threads,
        load_board,
        states,
        health_stop: Some(health_stop),
        health_thread,
    })
}

/// What a worker thread starts with.
struct WorkerStart {
    id: usize,
    core: Option<core_affinity::CoreId>,
    driver: IoDriver,
    config: Arc<Config>,
    load_board: Arc<LoadBoard>,
    sockets: Vec<std::net::TcpListener>,
    control: flume::Receiver<Control>,
}

/// The body of one worker thread.
fn run_worker(start: WorkerStart) {
    let WorkerStart { id, core, driver, ref config, .. } = start;
    if let Some(core) = core {
        if !core_affinity::set_for_current(core) {
            log::warn!("worker {id}: could not pin to core {}", core.id);
        }
    }
    let entries = config.io.ring_entries;
    let main = worker_main(start);
    let result = match driver {
        IoDriver::IoUring | IoDriver::Auto => {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(entries)
                .enable_timer()
                .build()
                .map(|mut runtime| runtime.block_on(main))
        }
        IoDriver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut runtime| runtime.block_on(main)),
    };
    if let Err(error) = result {
        log::error!("worker {id}: cannot build the {driver:?} runtime: {error}");
    }
}

async fn worker_main(start: WorkerStart) {
    let WorkerStart { id, config, load_board, sockets, control, .. } = start;
    let shutdown_timeout = config.shutdown_timeout;
    let worker = Rc::new(Worker::new(id, config, load_board));
    for (listener, socket) in sockets.into_iter().enumerate() {
        monoio::spawn(accept::accept_loop(worker.clone(), socket, listener));
    }
    monoio::spawn(reap_pool(worker.clone()));
    monoio::spawn(sync_loads(worker.clone()));
    // A closed channel (the control side is gone) also means shut down.
    while let Ok(message) = control.recv_async().await {
        match message {
            Control::Shutdown => break,
            Control::Health(event) => {
                let mut clusters = worker.clusters.borrow_mut();
                if let Some(status) = clusters.get_mut(event.cluster.0 as usize) {
                    status.set_health(event.backend, event.is_up, Instant::now());
                }
            }
            Control::BackendState { cluster, backend, state } => {
                worker.set_backend_state(cluster, backend, state);
            }
        }
    }
    worker.begin_shutdown();
    let deadline = Instant::now() + shutdown_timeout;
    // Busy connections finish their exchange and close; idle ones were shut down and
    // end as soon as they run.
    while worker.connections.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
    if worker.busy.get() > 0 {
        log::warn!("worker {id}: shutdown timeout, closing {} busy connections", worker.busy.get());
    }
}

/// Shares in-flight counts with the other workers every `load_sync_interval` (the
/// shortest of the clusters').
async fn sync_loads(worker: Rc<Worker>) {
    let clusters = &worker.config.clusters;
    let Some(interval) = clusters.iter().map(|cluster| cluster.load_sync_interval).min() else {
        return;
    };
    while !worker.shutting_down.get() {
        monoio::time::sleep(interval).await;
        worker.sync_loads();
    }
}

async fn reap_pool(worker: Rc<Worker>) {
    while !worker.shutting_down.get() {
        monoio::time::sleep(POOL_REAP_INTERVAL).await;
        worker.pool.borrow_mut().reap(&worker.config.clusters, Instant::now());
    }
}

/// Runs the proxy until SIGTERM or SIGINT, then drains and returns.
pub fn run(config: Arc<Config>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let proxy = start(config)?;
    if let Some(signal) = signals.forever().next() {
        log::info!("signal {signal}: shutting down gracefully");
    }
    proxy.shutdown();
    proxy.wait();
    log::info!("stopped");
    Ok(())
}
