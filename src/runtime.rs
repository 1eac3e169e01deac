//! Starts one pinned worker thread per configured core, each with its own monoio runtime
//! (io_uring, or epoll where io_uring is unavailable), and stops them gracefully.
//!
//! The thread that calls [`start`] is the control thread: it binds every socket first, so
//! a bad address fails startup instead of one worker, and later tells workers to drain.

use crate::accept;
use crate::config::{Config, IoDriver, Workers};
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

/// Messages from the control thread to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Shutdown,
}

/// A running proxy: its workers and the addresses it listens on.
#[derive(Debug)]
pub struct Proxy {
    /// The bound address of each listener, in config order (useful with port 0).
    pub listen_addrs: Vec<SocketAddr>,
    controls: Vec<flume::Sender<Control>>,
    threads: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Tells every worker to stop accepting and finish in-flight exchanges.
    pub fn shutdown(&self) {
        for control in &self.controls {
            let _ = control.send(Control::Shutdown);
        }
    }

    /// Waits for every worker thread to end.
    pub fn wait(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("a worker thread panicked");
            }
        }
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

/// Binds every listener for every worker and starts the workers.
pub fn start(config: Arc<Config>) -> io::Result<Proxy> {
    let cores = resolve_cores(&config.workers)?;
    for cluster in config.clusters.iter().filter(|cluster| cluster.backends.is_empty()) {
        log::warn!("cluster {} has no backends: its routes answer 503", cluster.name);
    }
    let driver = resolve_driver(config.io.driver);
    // Per worker, one socket per listener. Port 0 is resolved by the first bind so that
    // every worker shares the same port.
    let mut sockets: Vec<Vec<std::net::TcpListener>> =
        (0..cores.len()).map(|_| Vec::new()).collect();
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
    let mut controls = Vec::with_capacity(cores.len());
    let mut threads = Vec::with_capacity(cores.len());
    for (id, (core, sockets)) in cores.iter().copied().zip(sockets).enumerate() {
        let (sender, receiver) = flume::bounded(1);
        controls.push(sender);
        let config = config.clone();
        let thread =
            std::thread::Builder::new().name(format!("ringway-worker-{id}")).spawn(move || {
                run_worker(WorkerStart { id, core, driver, config, sockets, control: receiver })
            })?;
        threads.push(thread);
    }
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
    Ok(Proxy { listen_addrs, controls, threads })
}

/// What a worker thread starts with.
struct WorkerStart {
    id: usize,
    core: Option<core_affinity::CoreId>,
    driver: IoDriver,
    config: Arc<Config>,
    sockets: Vec<std::net::TcpListener>,
    control: flume::Receiver<Control>,
}

/// The body of one worker thread.
fn run_worker(start: WorkerStart) {
    let WorkerStart { id, core, driver, config, sockets, control } = start;
    if let Some(core) = core {
        if !core_affinity::set_for_current(core) {
            log::warn!("worker {id}: could not pin to core {}", core.id);
        }
    }
    let entries = config.io.ring_entries;
    let main = worker_main(id, config, sockets, control);
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

async fn worker_main(
    id: usize,
    config: Arc<Config>,
    sockets: Vec<std::net::TcpListener>,
    control: flume::Receiver<Control>,
) {
    let shutdown_timeout = config.shutdown_timeout;
    let worker = Rc::new(Worker::new(id, config));
    for (listener, socket) in sockets.into_iter().enumerate() {
        monoio::spawn(accept::accept_loop(worker.clone(), socket, listener));
    }
    monoio::spawn(reap_pool(worker.clone()));
    // A closed channel (the control thread is gone) also means shut down.
    let _ = control.recv_async().await;
    worker.begin_shutdown();
    let deadline = Instant::now() + shutdown_timeout;
    while worker.connections.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
    if worker.connections.get() > 0 {
        log::warn!(
            "worker {id}: shutdown timeout, closing {} connections",
            worker.connections.get()
        );
    }
    worker.pool.borrow_mut().clear();
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
