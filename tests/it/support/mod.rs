//! What every integration test uses: the proxy started in process from a TOML text, the
//! two io drivers, scripted origins, a raw client, the real binary as a child process,
//! and waits that end on a condition or a deadline.

pub(crate) mod admin;
pub(crate) mod client;
pub(crate) mod dns;
pub(crate) mod jwt_keys;
pub(crate) mod load;
pub(crate) mod origin;
pub(crate) mod pki;
pub(crate) mod process;
pub(crate) mod reader;
pub(crate) mod rng;

use ringway::config::{BackendState, Config};
use ringway::runtime::{self, BackendReport, Proxy};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest any single wait in a test may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Declares, for each named `fn(Driver)` of the calling module, one `#[test]` per io
/// driver: `io_uring::NAME` and `epoll::NAME`.
macro_rules! on_both_drivers {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::support::Driver::IoUring);
                }
            )*
        }
        mod epoll {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::support::Driver::Epoll);
                }
            )*
        }
    };
}
pub(crate) use on_both_drivers;

/// The io driver a test runs the proxy on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    /// The `io.driver` value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::IoUring => "io_uring",
            Self::Epoll => "epoll",
        }
    }
}

/// The top of every test config: worker count, a short shutdown timeout and the driver.
/// Tables follow it.
pub(crate) fn preamble(driver: Driver, workers: usize) -> String {
    format!(
        "workers = {workers}\nshutdown_timeout_ms = 3000\n\n[io]\ndriver = \"{}\"\n\n\
         [admin]\naddr = \"127.0.0.1:0\"\n\n",
        driver.name()
    )
}

/// One worker, one listener on port 0 whose only route sends everything to cluster `app`,
/// whose one backend is `origin`. `extra` follows the cluster's `backends` line: more keys
/// of `[cluster.app]`, then any other tables.
pub(crate) fn to_origin(driver: Driver, origin: SocketAddr, extra: &str) -> String {
    format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [\"{origin}\"]\n{extra}\n",
        preamble(driver, 1)
    )
}

/// A proxy running in this process. Dropping it shuts it down and waits for it.
#[derive(Debug)]
pub(crate) struct ProxyHandle {
    proxy: Option<Proxy>,
    addrs: Vec<SocketAddr>,
}

impl ProxyHandle {
    /// The bound address of the first listener.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The bound address of listener `index`.
    pub(crate) fn addr_of(&self, index: usize) -> SocketAddr {
        self.addrs[index]
    }

    /// The bound address of the admin listener.
    pub(crate) fn admin_addr(&self) -> SocketAddr {
        let proxy = self.proxy.as_ref().expect("the proxy is running");
        proxy.admin_addr.expect("the admin listener is enabled")
    }

    /// Sets a backend `active`, `draining` or `disabled` on every worker, as the admin API
    /// does. `backend` is its address as written in the config. Workers apply it when they
    /// next read their control channel, so a test waits for its effect.
    pub(crate) fn set_backend_state(&mut self, cluster: &str, backend: &str, state: BackendState) {
        let proxy = self.proxy.as_mut().expect("the proxy is running");
        proxy.set_backend_state(cluster, backend, state).unwrap_or_else(|error| panic!("{error}"));
    }

    /// The report of the backend written as `backend` in cluster `cluster`.
    pub(crate) fn backend(&self, cluster: &str, backend: &str) -> BackendReport {
        let proxy = self.proxy.as_ref().expect("the proxy is running");
        let reports = proxy.backends();
        let found =
            reports.iter().find(|report| report.cluster == cluster && report.backend == backend);
        found.cloned().unwrap_or_else(|| panic!("no backend {cluster}/{backend} in {reports:?}"))
    }

    /// Starts a graceful shutdown and returns at once.
    pub(crate) fn shutdown(&self) {
        if let Some(proxy) = &self.proxy {
            proxy.shutdown();
        }
    }

    /// Shuts down (if not yet) and waits for every worker to end.
    pub(crate) fn wait(mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.shutdown();
            proxy.wait();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.shutdown();
            proxy.wait();
        }
    }
}

/// Parses `toml` and starts the proxy it describes.
pub(crate) fn start_proxy(toml: &str) -> ProxyHandle {
    init_logging();
    let config = Config::parse(toml).unwrap_or_else(|errors| panic!("{errors}\nconfig:\n{toml}"));
    let proxy = runtime::start(Arc::new(config)).expect("start the proxy");
    let addrs = proxy.listen_addrs.clone();
    ProxyHandle { proxy: Some(proxy), addrs }
}

/// Waits until `condition` holds, polling, and fails the test after [`WAIT`].
pub(crate) fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::park_timeout(Duration::from_millis(2));
    }
}

/// An address on which nothing listens and nothing will.
pub(crate) fn unused_addr() -> SocketAddr {
    // A privileged port that refuses connections: the kernel never hands one out for port
    // 0, so no other test's listener can take it between this call and its use (a freed
    // ephemeral port could be, and was, reused by a parallel test).
    (1..1024)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .find(|addr| {
            std::net::TcpStream::connect(addr)
                .is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionRefused)
        })
        .expect("a privileged port with nothing listening")
}

/// Proxy logs on stderr when `RINGWAY_LOG` is set (`RINGWAY_LOG=debug cargo test ...`).
fn init_logging() {
    struct TestLogger;
    impl log::Log for TestLogger {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            eprintln!("{:5} {}", record.level(), record.args());
        }
        fn flush(&self) {}
    }
    static LOGGER: TestLogger = TestLogger;
    let Some(level) = std::env::var("RINGWAY_LOG").ok().and_then(|level| level.parse().ok()) else {
        return;
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Sleeps the test's thread: for tests whose subject is time (idle timeouts, slow
/// clients). Test threads are not workers, so the lint against sleeping does not apply.
#[expect(clippy::disallowed_methods, reason = "a test thread, not a worker's event loop")]
pub(crate) fn pause(duration: Duration) {
    std::thread::sleep(duration);
}
