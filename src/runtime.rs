//! Starts one pinned worker thread per configured core, each with its own monoio runtime
//! (io_uring, or epoll where io_uring is unavailable), and stops them gracefully.
//!
//! [`start`] binds every socket first, so a bad address fails startup instead of one
//! worker, then starts the workers and the control thread (`control`).

use crate::accept;
use crate::access_log::{AccessLog, LogTarget, WorkerLog};
use crate::config::{AccessLogFormat, BackendState, Config, IoDriver, RingTaskrun, Workers};
pub use crate::control::BackendReport;
use crate::control::{self, Control, ControlStart, ReloadError, ReloadReport, Request};
use crate::stats::WorkerStats;
use crate::upgrade;
use crate::upstream::LoadBoard;
use crate::worker::{Newest, Shared, Worker, newest};
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a worker closes upstream connections idle past their timeout.
const POOL_REAP_INTERVAL: Duration = Duration::from_secs(1);
/// How often workers swap rate-limit usage: the global rate holds within about one
/// interval's worth of requests per worker (see `limit::rate`).
use crate::worker::RATE_SYNC_INTERVAL;
/// How often a worker hands buffered access-log lines to the writer thread.
const ACCESS_LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How often a draining worker looks at its open connection count.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A running proxy: its workers, its control thread and the addresses it listens on.
#[derive(Debug)]
pub struct Proxy {
    /// The bound address of each listener, in config order (useful with port 0).
    pub listen_addrs: Vec<SocketAddr>,
    /// The admin listener's bound address, when it is enabled.
    pub admin_addr: Option<SocketAddr>,
    controls: Vec<flume::Sender<Control>>,
    requests: flume::Sender<Request>,
    threads: Vec<JoinHandle<()>>,
    control_thread: Option<JoinHandle<()>>,
    access_log: Option<Arc<AccessLog>>,
}

impl Proxy {
    /// Tells every worker to stop accepting and finish in-flight exchanges.
    pub fn shutdown(&self) {
        let _ = self.requests.send(Request::ShuttingDown);
        for control in &self.controls {
            let _ = control.send(Control::Shutdown);
        }
    }

    /// As [`Proxy::shutdown`], after a binary upgrade handed the sockets over: idle
    /// keep-alive connections are served their next request, with `Connection: close`.
    pub fn hand_off(&self) {
        let _ = self.requests.send(Request::ShuttingDown);
        for control in &self.controls {
            let _ = control.send(Control::HandOff);
        }
    }

    /// Waits for every worker thread to end, then stops the control thread and flushes
    /// the access log.
    pub fn wait(mut self) {
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a worker thread panicked");
            }
        }
        let _ = self.requests.send(Request::Stop);
        if let Some(thread) = self.control_thread.take() {
            if thread.join().is_err() {
                log::error!("the control thread panicked");
            }
        }
        // The control thread held the only other reference; it has ended.
        if let Some(access_log) = self.access_log.take().and_then(|log| Arc::try_unwrap(log).ok()) {
            access_log.shutdown();
        }
    }

    /// Sets a backend `active`, `draining` or `disabled` on every worker, as the admin API
    /// does. `backend` is its address as written in the config. A draining backend takes no
    /// new requests or sessions; its in-flight exchanges finish and its idle connections
    /// close.
    pub fn set_backend_state(
        &self,
        cluster: &str,
        backend: &str,
        state: BackendState,
    ) -> Result<(), String> {
        let (reply, answer) = flume::bounded(1);
        let request = Request::SetBackendState {
            cluster: cluster.to_owned(),
            backend: backend.to_owned(),
            state,
            reply,
        };
        self.requests.send(request).map_err(|_| "the control thread has stopped".to_owned())?;
        answer.recv().map_err(|_| "the control thread has stopped".to_owned())?
    }

    /// Reads every TLS listener's certificate files again, as SIGHUP and
    /// `POST /tls/reload` do. On any problem nothing changes and the error says why.
    pub fn reload_tls(&self) -> Result<usize, String> {
        let (reply, answer) = flume::bounded(1);
        let stopped = || "the control thread has stopped".to_owned();
        self.requests.send(Request::ReloadTls { reply }).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Reads the config file again and applies it, as SIGHUP and `POST /config/reload`
    /// do: see [`crate::control::ControlState::reload_file`].
    pub fn reload_config(&self) -> Result<ReloadReport, ReloadError> {
        let (reply, answer) = flume::bounded(1);
        let stopped = || ReloadError::Stopped;
        self.requests.send(Request::ReloadConfig { reply }).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Applies `config`, already validated: see
    /// [`crate::control::ControlState::apply_config`].
    pub fn apply_config(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let (reply, answer) = flume::bounded(1);
        let stopped = || ReloadError::Stopped;
        let request = Request::ApplyConfig { config: Box::new(config), reply };
        self.requests.send(request).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Duplicates of every listening socket, admin included, for a binary upgrade.
    pub fn handover_sockets(&self) -> io::Result<Vec<upgrade::Handed<OwnedFd>>> {
        let (reply, answer) = flume::bounded(1);
        let stopped = || io::Error::other("the control thread has stopped");
        self.requests.send(Request::Handover { reply }).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Every backend's state, health and in-flight count.
    pub fn backends(&self) -> Vec<BackendReport> {
        let (reply, answer) = flume::bounded(1);
        if self.requests.send(Request::Backends { reply }).is_err() {
            return Vec::new();
        }
        answer.recv().unwrap_or_default()
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

/// The file a running config came from: what a reload reads again.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: std::path::PathBuf,
    /// [`crate::reload::file_hash`] of the text that was loaded.
    pub hash: String,
}

/// Binds every listener for every worker and starts the workers, for a config given as
/// a value: [`Proxy::apply_config`] reloads it, a file reload has nothing to read.
pub fn start(config: Arc<Config>) -> io::Result<Proxy> {
    start_with(config, None)
}

/// Binds every listener for every worker and starts the workers; `file` is where the
/// config came from.
pub fn start_with(config: Arc<Config>, file: Option<ConfigFile>) -> io::Result<Proxy> {
    start_inheriting(config, file, None)
}

/// As [`start_with`], on the sockets an old process handed over where `inheritance` has
/// them (a binary upgrade).
pub fn start_inheriting(
    config: Arc<Config>,
    file: Option<ConfigFile>,
    mut inheritance: Option<&mut upgrade::Inheritance>,
) -> io::Result<Proxy> {
    let cores = resolve_cores(&config.workers)?;
    let is_empty = |cluster: &&crate::config::Cluster| cluster.backends.is_empty();
    // A discovered cluster gets its backends from its first lookup, in a moment.
    for cluster in config.clusters.iter().filter(is_empty).filter(|c| c.discover.is_none()) {
        log::warn!("cluster {} has no backends: its routes answer 503", cluster.name);
    }
    let driver = resolve_driver(config.io.driver);
    let upgrade::Sockets { per_worker: sockets, mut handover, listen_addrs } =
        upgrade::bind_listeners(&config, cores.len(), inheritance.as_deref_mut())?;
    let admin_socket = upgrade::bind_admin(&config, inheritance, &mut handover)?;
    let admin_addr = admin_socket.as_ref().map(std::net::TcpListener::local_addr).transpose()?;
    let access_log = start_access_log(&config)?;
    let load_board = Arc::new(LoadBoard::new(&config, cores.len()));
    let (rate_exchanges, global_rates) = crate::worker::rate_exchanges(&config, cores.len())?;
    let (stats_sender, stats_receiver) = flume::unbounded();
    let mut controls = Vec::with_capacity(cores.len());
    let mut threads = Vec::with_capacity(cores.len());
    let (requests, request_receiver) = flume::unbounded();
    for (id, (core, sockets)) in cores.iter().copied().zip(sockets).enumerate() {
        let (sender, receiver) = flume::unbounded();
        controls.push(sender);
        let start = WorkerStart {
            id,
            core,
            driver,
            config: config.clone(),
            shared: Shared {
                load_board: load_board.clone(),
                rate_exchanges: rate_exchanges.clone(),
            },
            sockets,
            control: receiver,
            stats: stats_sender.clone(),
            access_log: access_log.as_deref().map(AccessLog::worker),
            requests: requests.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("ringway-worker-{id}"))
            .spawn(move || run_worker(start))?;
        threads.push(thread);
    }
    let (path, hash) = file.map(|file| (Some(file.path), file.hash)).unwrap_or_default();
    let control_thread = control::spawn(ControlStart {
        config: config.clone(),
        path,
        handover,
        hash,
        workers: controls.clone(),
        load_board,
        stats: stats_receiver,
        requests: request_receiver,
        admin: admin_socket.map(crate::admin::server),
        reopen: access_log.clone().map(|log| -> control::Reopen { Arc::new(move || log.reopen()) }),
        global_rates,
    })?;
    log_started(&config, &cores, driver, &listen_addrs, admin_addr);
    Ok(Proxy {
        listen_addrs,
        admin_addr,
        controls,
        requests,
        threads,
        control_thread: Some(control_thread),
        access_log,
    })
}

/// Starts the access-log writer when any listener logs.
fn start_access_log(config: &Config) -> io::Result<Option<Arc<AccessLog>>> {
    if config.listeners.iter().all(|listener| listener.access_log == AccessLogFormat::Off) {
        return Ok(None);
    }
    let target = match &config.access_log.path {
        Some(path) => LogTarget::File(path.clone()),
        None => LogTarget::Stdout,
    };
    AccessLog::start(target)
        .map(|log| Some(Arc::new(log)))
        .map_err(|error| io::Error::new(error.kind(), format!("access_log.path: {error}")))
}

/// What a worker thread starts with.
struct WorkerStart {
    id: usize,
    core: Option<core_affinity::CoreId>,
    driver: IoDriver,
    config: Arc<Config>,
    shared: Shared,
    /// (listener index, socket): usually one per listener.
    sockets: Vec<(usize, accept::Bound)>,
    control: flume::Receiver<Control>,
    stats: flume::Sender<(usize, WorkerStats)>,
    access_log: Option<WorkerLog>,
    /// Requests to the control thread (a `PURGE` every worker must hear).
    requests: flume::Sender<Request>,
}

/// The startup line: version, workers and cores, driver, listeners, admin address.
fn log_started(
    config: &Config,
    cores: &[Option<core_affinity::CoreId>],
    driver: IoDriver,
    listen_addrs: &[SocketAddr],
    admin_addr: Option<SocketAddr>,
) {
    log::info!(
        "ringway {} started: {} workers on cores {:?}, driver {:?}, listeners {:?}, admin {:?}",
        env!("CARGO_PKG_VERSION"),
        cores.len(),
        cores.iter().map(|core| core.map(|core| core.id)).collect::<Vec<_>>(),
        driver,
        config
            .listeners
            .iter()
            .zip(listen_addrs)
            .map(|(l, a)| format!("{}={a}", l.name))
            .collect::<Vec<_>>(),
        admin_addr,
    );
}

/// Applies one message from the control thread; false for shutdown.
fn apply_control(worker: &Worker, message: Control) -> bool {
    match message {
        Control::Shutdown => return false,
        Control::HandOff => {
            worker.is_handing_off.set(true);
            return false;
        }
        Control::Reload(_) => unreachable!("worker_main applies reloads itself"),
        Control::Health(event) => {
            let mut clusters = worker.clusters.borrow_mut();
            if let Some(status) = clusters.get_mut(event.cluster.0 as usize) {
                status.set_health(event.backend, event.is_up, Instant::now());
            }
        }
        Control::BackendState { cluster, backend, state } => {
            worker.set_backend_state(cluster, backend, state);
        }
        Control::TlsReload { listener, server } => {
            if let Some(slot) = worker.tls.borrow_mut().get_mut(listener) {
                *slot = Some(server.for_worker());
            }
        }
        Control::PurgeCache { target, reply } => {
            let dropped = worker.cache.borrow_mut().purge(&target.key, target.prefix);
            if let Some(reply) = reply {
                let _ = reply.send((worker.id, dropped));
            }
        }
    }
    true
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
    let taskrun = config.io.ring_taskrun;
    let main = worker_main(start);
    let result = match driver {
        IoDriver::IoUring | IoDriver::Auto => {
            uring_runtime(entries, taskrun, id).map(|mut runtime| runtime.block_on(main))
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

/// A worker's io_uring runtime with the ring set up for `taskrun`. A kernel older than the
/// flags (5.19 for `coop`, 6.1 for `defer`) refuses them: the worker then runs with none,
/// and says so.
fn uring_runtime(
    entries: u32,
    taskrun: RingTaskrun,
    id: usize,
) -> io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    let build = |taskrun: RingTaskrun| {
        let mut ring = io_uring::IoUring::builder();
        match taskrun {
            RingTaskrun::Interrupt => {}
            RingTaskrun::Coop => {
                ring.setup_coop_taskrun().setup_taskrun_flag();
            }
            RingTaskrun::Defer => {
                ring.setup_single_issuer().setup_defer_taskrun();
            }
        }
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(entries)
            .uring_builder(ring)
            .enable_timer()
            .build()
    };
    match build(taskrun) {
        Err(error) if taskrun != RingTaskrun::Interrupt => {
            log::warn!(
                "worker {id}: io.ring_taskrun = {:?} refused by the kernel ({error}); using \
                 \"interrupt\"",
                taskrun.as_str()
            );
            build(RingTaskrun::Interrupt)
        }
        result => result,
    }
}

async fn worker_main(start: WorkerStart) {
    let WorkerStart {
        id,
        driver,
        config,
        shared,
        sockets,
        control,
        stats,
        access_log,
        requests,
        ..
    } = start;
    let shutdown_timeout = config.shutdown_timeout;
    let worker = Rc::new(Worker::new(id, config, shared, access_log));
    *worker.control_requests.borrow_mut() = Some(requests);
    *worker.current.borrow_mut() = Some(worker.clone());
    let mut accept_loops = AcceptLoops::new(driver);
    for (listener, socket) in sockets {
        accept_loops.spawn(&worker, listener, socket);
    }
    // The tasks and this loop hold the thread's slot, never a version: an old version
    // lives only as long as connections on it.
    let slot = worker.current.clone();
    drop(worker);
    monoio::spawn(reap_pool(slot.clone()));
    monoio::spawn(sync_loads(slot.clone()));
    monoio::spawn(sync_rates(slot.clone()));
    monoio::spawn(publish_stats(slot.clone(), stats.clone()));
    // A closed channel (the control side is gone) also means shut down.
    while let Ok(message) = control.recv_async().await {
        if let Control::Reload(reload) = message {
            crate::reload::apply_on_worker(&slot, *reload, &mut accept_loops);
            continue;
        }
        let Some(worker) = newest(&slot) else { break };
        if !apply_control(&worker, message) {
            break;
        }
    }
    let Some(worker) = newest(&slot) else { return };
    worker.begin_shutdown();
    let deadline = Instant::now() + shutdown_timeout;
    // Each accept loop serves what its queue holds, then closes its socket; it does not
    // wait.
    accept_loops.stop_all().await;
    // Busy connections finish their exchange and close; idle ones were shut down and
    // end as soon as they run. A connection counts itself open when it first runs, so
    // sleep before the first look: those the accept loops just spawned run meanwhile.
    loop {
        monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
        if worker.connections.get() == 0 || Instant::now() >= deadline {
            break;
        }
    }
    if worker.busy.get() > 0 {
        log::warn!("worker {id}: shutdown timeout, closing {} busy connections", worker.busy.get());
    }
    // The last snapshot and log lines, so nothing counted is lost.
    let _ = stats.send((id, worker.stats_snapshot()));
    worker.flush_access_log();
    // Breaks the cycle between the newest version and its own slot.
    let newest = worker.current.borrow_mut().take();
    drop(newest);
}

/// One worker's accept loops (and UDP listeners), by listener name and address: a reload
/// keeps those whose name and address stay, stops the others and starts new ones.
#[derive(Debug)]
pub struct AcceptLoops {
    driver: IoDriver,
    loops: Vec<AcceptLoop>,
}

/// One running accept loop.
struct AcceptLoop {
    name: String,
    addr: SocketAddr,
    stop: accept::AcceptStop,
    task: monoio::task::JoinHandle<()>,
}

impl std::fmt::Debug for AcceptLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptLoop").field("name", &self.name).field("addr", &self.addr).finish()
    }
}

impl AcceptLoops {
    fn new(driver: IoDriver) -> Self {
        Self { driver, loops: Vec::new() }
    }

    /// True when a loop runs for a listener of this name and configured address.
    pub fn has(&self, name: &str, addr: SocketAddr) -> bool {
        self.loops.iter().any(|known| known.name == name && known.addr == addr)
    }

    /// Starts serving `socket` for listener `listener` of `worker`'s config.
    pub fn spawn(&mut self, worker: &Rc<Worker>, listener: usize, socket: accept::Bound) {
        let stop = accept::AcceptStop::default();
        let task = match socket {
            accept::Bound::Tcp(socket) => monoio::spawn(accept::accept_loop(
                worker.clone(),
                socket,
                listener,
                self.driver,
                stop.clone(),
            )),
            accept::Bound::Udp(socket) => {
                monoio::spawn(crate::l4::udp::serve(worker.clone(), socket, listener))
            }
        };
        let config = &worker.config.listeners[listener];
        let name = config.name.clone();
        self.loops.push(AcceptLoop { name, addr: config.addr, stop, task });
    }

    /// Stops the loops whose listener `keep` says no to; their sockets close once each has
    /// served its queue.
    pub fn retain(&mut self, keep: impl Fn(&str, SocketAddr) -> bool) {
        let (kept, stopped) = std::mem::take(&mut self.loops)
            .into_iter()
            .partition(|known| keep(&known.name, known.addr));
        self.loops = kept;
        for stopped in stopped {
            stopped.stop.stop();
            monoio::spawn(stopped.task);
        }
    }

    /// Stops every loop and waits for each to close its socket.
    async fn stop_all(self) {
        for known in &self.loops {
            known.stop.stop();
        }
        for known in self.loops {
            known.task.await;
        }
    }
}

/// Sends this worker's counters to the control thread every `stats.interval_ms`, and
/// hands buffered access-log lines to the writer.
async fn publish_stats(slot: Newest, stats: flume::Sender<(usize, WorkerStats)>) {
    let mut next_publish = None;
    let running = |worker: &Rc<Worker>| !worker.shutting_down.get();
    while let Some(interval) = newest(&slot).filter(running).map(|w| w.config.stats_interval) {
        monoio::time::sleep(ACCESS_LOG_FLUSH_INTERVAL.min(interval)).await;
        let Some(worker) = newest(&slot) else { break };
        worker.flush_access_log();
        let now = Instant::now();
        let next = *next_publish.get_or_insert(now + interval);
        if now >= next {
            next_publish = Some(next + interval);
            let _ = stats.send((worker.id, worker.stats_snapshot()));
            worker.buffers.borrow_mut().trim();
        }
    }
}

/// Shares in-flight counts with the other workers every `load_sync_interval` (the
/// shortest of the clusters').
async fn sync_loads(slot: Newest) {
    while let Some(worker) = newest(&slot).filter(|worker| !worker.shutting_down.get()) {
        let clusters = &worker.config.clusters;
        // With no cluster there is nothing to share until a reload adds one.
        let interval = clusters.iter().map(|cluster| cluster.load_sync_interval).min();
        drop(worker);
        monoio::time::sleep(interval.unwrap_or(POOL_REAP_INTERVAL)).await;
        if let Some(worker) = newest(&slot) {
            worker.sync_loads();
        }
    }
}

/// Swaps rate-limit usage with the other workers every [`RATE_SYNC_INTERVAL`].
async fn sync_rates(slot: Newest) {
    while newest(&slot).is_some_and(|worker| !worker.shutting_down.get()) {
        monoio::time::sleep(RATE_SYNC_INTERVAL).await;
        if let Some(worker) = newest(&slot) {
            worker.sync_rates(Instant::now());
        }
    }
}

async fn reap_pool(slot: Newest) {
    while newest(&slot).is_some_and(|worker| !worker.shutting_down.get()) {
        monoio::time::sleep(POOL_REAP_INTERVAL).await;
        if let Some(worker) = newest(&slot) {
            worker.pool.borrow_mut().reap(&worker.config.clusters, Instant::now());
        }
    }
}

/// Starts `exe` and hands it the listening sockets (SIGUSR2); true when it serves on them
/// and this process should drain and exit. On failure this one keeps serving.
fn upgrade_binary(proxy: &Proxy, exe: &std::path::Path, args: &[std::ffi::OsString]) -> bool {
    log::info!("SIGUSR2: upgrading to {}", exe.display());
    let sockets = match proxy.handover_sockets() {
        Ok(sockets) => sockets,
        Err(error) => {
            log::error!("upgrade failed, still serving: {error}");
            return false;
        }
    };
    match upgrade::hand_over(exe, args, &upgrade::borrowed(&sockets)) {
        Ok(pid) => {
            log::info!("upgrade: process {pid} serves now; draining and exiting");
            true
        }
        Err(error) => {
            log::error!("upgrade failed, still serving: {error}");
            false
        }
    }
}

/// Runs the proxy until SIGTERM or SIGINT, then drains and returns. SIGHUP reloads the
/// config file (certificates included).
pub fn run(config: Arc<Config>, file: Option<ConfigFile>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])?;
    // The binary an upgrade starts: the file at the path this one was started from, which
    // a package upgrade has replaced by then.
    let exe = std::env::current_exe()?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut inheritance = upgrade::Inheritance::receive()?;
    let proxy = start_inheriting(config, file, inheritance.as_mut())?;
    if let Some(inheritance) = inheritance {
        inheritance.ready()?;
    }
    let mut handed_off = false;
    for signal in signals.forever() {
        if signal == SIGHUP {
            // The control thread logs the outcome, every problem included.
            log::info!("SIGHUP: reloading the config");
            let _ = proxy.reload_config();
            continue;
        }
        if signal == SIGUSR2 {
            handed_off = upgrade_binary(&proxy, &exe, &args);
            if handed_off {
                break;
            }
            continue;
        }
        log::info!("signal {signal}: shutting down gracefully");
        break;
    }
    if handed_off {
        proxy.hand_off();
    } else {
        proxy.shutdown();
    }
    proxy.wait();
    log::info!("stopped");
    Ok(())
}
