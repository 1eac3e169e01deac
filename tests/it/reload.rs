//! Hot reload of the whole config (issue 13): under keep-alive and one-request-per-connection
//! load at a fixed rate with a tight connect probe, 20 reloads that alternate a route's
//! cluster lose nothing and switch every connection's next request; a bad file changes
//! nothing and is answered 422 with every key; listeners come and go; a WebSocket keeps
//! echoing across reloads. The proxy runs in process, started from a file as the binary
//! is, and reloads through `POST /config/reload`.

use crate::http1::{upgrade, websocket_echo};
use crate::support::load::named;
use crate::support::process::TempFile;
use crate::support::{Driver, WAIT, admin, eventually, on_both_drivers, pause, preamble};
use ringway::config::Config;
use ringway::runtime::{self, ConfigFile, Proxy};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

on_both_drivers!(
    reloads_under_load_lose_nothing_and_switch_at_the_next_request,
    a_bad_file_changes_nothing_and_is_answered_with_every_key,
    listeners_are_added_and_removed_and_kept_ones_keep_their_socket,
    a_websocket_keeps_echoing_across_reloads,
    runtime_states_and_counters_survive_a_reload,
    sighup_and_the_reload_verb_reload_the_file,
);

/// A proxy started from a config file, as the binary starts; `reload` rewrites the file
/// and asks the admin API to read it again.
pub(crate) struct Reloadable {
    proxy: Option<Proxy>,
    file: TempFile,
}

impl Reloadable {
    pub(crate) fn start(toml: &str) -> Self {
        let file = TempFile::new(toml);
        let config = Config::parse(toml).expect("a valid config");
        let source = ConfigFile { path: file.arg().into(), hash: ringway::reload::file_hash(toml) };
        let proxy = runtime::start_with(Arc::new(config), Some(source)).expect("start");
        Self { proxy: Some(proxy), file }
    }

    fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("running")
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.proxy().listen_addrs[0]
    }

    pub(crate) fn admin(&self) -> SocketAddr {
        self.proxy().admin_addr.expect("admin enabled")
    }

    /// Writes `toml` to the file and reloads; the admin API's answer.
    pub(crate) fn reload(&self, toml: &str) -> crate::support::client::Response {
        std::fs::write(self.file.arg(), toml).expect("rewrite the config");
        admin::request(self.admin(), "POST", "/config/reload", &[], "")
    }

    fn config_json(&self) -> serde_json::Value {
        let response = admin::get(self.admin(), "/config");
        serde_json::from_slice(&response.body).expect("JSON")
    }
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.shutdown();
            proxy.wait();
        }
    }
}

/// Two workers, one listener on `addr` whose route goes to `cluster`, and clusters `a`
/// (backend `one`) and `b` (backend `two`).
fn alternating(
    driver: Driver,
    addr: &str,
    cluster: &str,
    one: SocketAddr,
    two: SocketAddr,
) -> String {
    format!(
        "{}[[listener]]\nname = \"public\"\naddr = \"{addr}\"\n\n[[listener.route]]\n\
         cluster = \"{cluster}\"\n\n[cluster.a]\nbackends = [\"{one}\"]\n\n\
         [cluster.b]\nbackends = [\"{two}\"]\n",
        preamble(driver, 2)
    )
}

/// One GET on `stream`; the status and body. `close` asks the proxy to close after it.
pub(crate) fn exchange(
    stream: &mut BufReader<TcpStream>,
    close: bool,
) -> std::io::Result<(u16, String)> {
    exchange_full(stream, close).map(|(status, body, _)| (status, body))
}

/// As [`exchange`], and whether the response says the connection closes after it (a
/// client then opens a new one, as HTTP clients do).
pub(crate) fn exchange_full(
    stream: &mut BufReader<TcpStream>,
    close: bool,
) -> std::io::Result<(u16, String, bool)> {
    let connection = if close { "close" } else { "keep-alive" };
    let request = format!("GET /load HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n");
    stream.get_mut().write_all(request.as_bytes())?;
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let status = line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let (mut length, mut closes) = (0, false);
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        closes |= lower.starts_with("connection:") && lower.contains("close");
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned(), closes))
}

pub(crate) fn connect(addr: SocketAddr) -> std::io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}

/// Counts of one load thread.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) done: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) refused: AtomicU64,
}

/// Requests at a fixed rate (one per `interval` per thread), on one keep-alive connection
/// each or on a new connection each, until `stop`.
pub(crate) fn load(
    addr: SocketAddr,
    keep_alive: bool,
    interval: Duration,
    stop: &Arc<AtomicBool>,
) -> (Arc<Counts>, JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let (thread_counts, stop) = (counts.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let mut kept = None;
        while !stop.load(Ordering::SeqCst) {
            let stream = match kept.take() {
                Some(stream) => Ok(stream),
                None => connect(addr),
            };
            let Ok(mut stream) = stream else {
                thread_counts.refused.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            match exchange_full(&mut stream, !keep_alive) {
                Ok((200, _, closes)) => {
                    thread_counts.done.fetch_add(1, Ordering::SeqCst);
                    if keep_alive && !closes {
                        kept = Some(stream);
                    }
                }
                Ok(_) | Err(_) => {
                    thread_counts.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
            pause(interval);
        }
    });
    (counts, thread)
}

/// Connects and closes in a tight loop until `stop`, counting refused connects.
pub(crate) fn connect_probe(
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> (Arc<Counts>, JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let (thread_counts, stop) = (counts.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match TcpStream::connect(addr) {
                Ok(stream) => drop(stream),
                Err(_) => {
                    thread_counts.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
            thread_counts.done.fetch_add(1, Ordering::SeqCst);
            pause(Duration::from_millis(1));
        }
    });
    (counts, thread)
}

/// Running load threads with their counts.
pub(crate) type Loads = Vec<(Arc<Counts>, JoinHandle<()>)>;

/// Two keep-alive and two one-request-per-connection load threads (one request per 5 ms
/// each) and a connect probe, until `stop`.
pub(crate) fn start_load(addr: SocketAddr, stop: &Arc<AtomicBool>) -> Loads {
    let interval = Duration::from_millis(5);
    vec![
        load(addr, true, interval, stop),
        load(addr, true, interval, stop),
        load(addr, false, interval, stop),
        load(addr, false, interval, stop),
        connect_probe(addr, stop),
    ]
}

/// Stops the load and joins its threads; (done, failed, refused).
pub(crate) fn stop_load(loads: Loads, stop: &AtomicBool) -> [u64; 3] {
    stop.store(true, Ordering::SeqCst);
    let mut totals = [0, 0, 0];
    for (counts, thread) in loads {
        thread.join().expect("load thread");
        totals[0] += counts.done.load(Ordering::SeqCst);
        totals[1] += counts.failed.load(Ordering::SeqCst);
        totals[2] += counts.refused.load(Ordering::SeqCst);
    }
    totals
}

fn reloads_under_load_lose_nothing_and_switch_at_the_next_request(driver: Driver) {
    let (one, two) = (named("one"), named("two"));
    let config = |cluster| alternating(driver, "127.0.0.1:0", cluster, one.addr(), two.addr());
    let proxy = Reloadable::start(&config("a"));
    let addr = proxy.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let loads = start_load(addr, &stop);
    // A kept-alive connection opened before the reloads: each next request must take the
    // version the reload just applied.
    let mut checker = connect(addr).expect("connect");
    assert_eq!(exchange(&mut checker, false).expect("first").1, "one");
    for round in 1..=20 {
        let (cluster, body) = if round % 2 == 1 { ("b", "two") } else { ("a", "one") };
        let answer = proxy.reload(&config(cluster));
        assert_eq!(answer.status, 200, "reload {round}: {}", answer.text());
        let version: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
        assert_eq!(version["version"]["number"], round + 1);
        let (status, text) = exchange(&mut checker, false).expect("the kept connection");
        assert_eq!((status, text.as_str()), (200, body), "reload {round}: kept connection");
        let mut fresh = connect(addr).expect("connect");
        assert_eq!(exchange(&mut fresh, true).expect("fresh").1, body, "reload {round}: new");
        pause(Duration::from_millis(50));
    }
    let totals = stop_load(loads, &stop);
    eprintln!("{driver:?}: {} done, {} failed, {} refused", totals[0], totals[1], totals[2]);
    assert_eq!((totals[1], totals[2]), (0, 0), "failed requests and refused connects");
    assert!(totals[0] > 200, "the load ran: {totals:?}");
    // Every worker reports the newest version in /stats.
    eventually("each worker reports version 21", || {
        let stats = admin::get(proxy.admin(), "/stats");
        let stats: serde_json::Value = serde_json::from_slice(&stats.body).expect("JSON");
        let workers = stats["workers"].as_array().cloned().unwrap_or_default();
        workers.len() == 2 && workers.iter().all(|worker| worker["config_version"] == 21)
    });
}

fn a_bad_file_changes_nothing_and_is_answered_with_every_key(driver: Driver) {
    let (one, two) = (named("one"), named("two"));
    let good = alternating(driver, "127.0.0.1:0", "a", one.addr(), two.addr());
    let proxy = Reloadable::start(&good);
    let before = proxy.config_json()["version"].clone();
    let bad = alternating(driver, "127.0.0.1:0", "nowhere", one.addr(), two.addr())
        .replace("[cluster.b]\nbackends = [", "[cluster.b]\nconnect_timeout_ms = 0\nbackends = [");
    let answer = proxy.reload(&bad);
    assert_eq!(answer.status, 422, "{}", answer.text());
    let errors: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    let errors: Vec<&str> =
        errors["errors"].as_array().expect("errors").iter().filter_map(|e| e.as_str()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let has = |key: &str| errors.iter().any(|error| error.starts_with(key));
    assert!(has("listener[0].route[0].cluster: unknown cluster \"nowhere\""), "{errors:?}");
    assert!(has("cluster.b.connect_timeout_ms: 0 is outside"), "{errors:?}");
    // The old config serves, at the same version.
    let mut client = connect(proxy.addr()).expect("connect");
    assert_eq!(exchange(&mut client, false).expect("served").1, "one");
    assert_eq!(proxy.config_json()["version"], before);
    let metrics = admin::get(proxy.admin(), "/metrics").text();
    assert!(metrics.contains("ringway_reloads_total{result=\"failed\"} 1"), "{metrics}");
    // A good file after it applies.
    let answer = proxy.reload(&alternating(driver, "127.0.0.1:0", "b", one.addr(), two.addr()));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(exchange(&mut client, false).expect("served").1, "two");
}

/// A port nothing listens on now.
pub(crate) fn free_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr")
}

fn listeners_are_added_and_removed_and_kept_ones_keep_their_socket(driver: Driver) {
    let (one, two) = (named("one"), named("two"));
    let kept = free_port();
    let base = alternating(driver, &kept.to_string(), "a", one.addr(), two.addr());
    let proxy = Reloadable::start(&base);
    // A connection queued on the kept listener across the reload is served.
    let mut early = connect(kept).expect("connect");
    let extra = free_port();
    let added = format!(
        "{base}\n[[listener]]\nname = \"extra\"\naddr = \"{extra}\"\n\n\
         [[listener.route]]\ncluster = \"b\"\n"
    );
    let answer = proxy.reload(&added);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let report: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert_eq!(report["listeners_added"], serde_json::json!(["extra"]));
    let mut client = connect(extra).expect("the added listener accepts");
    assert_eq!(exchange(&mut client, false).expect("served").1, "two");
    assert_eq!(exchange(&mut early, false).expect("served").1, "one");
    drop(client);
    let answer = proxy.reload(&base);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let report: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert_eq!(report["listeners_removed"], serde_json::json!(["extra"]));
    eventually("the removed listener refuses", || TcpStream::connect(extra).is_err());
    assert_eq!(exchange(&mut early, false).expect("served").1, "one");
    assert_eq!(proxy.addr(), kept);
}

fn a_websocket_keeps_echoing_across_reloads(driver: Driver) {
    let origin = websocket_echo();
    let other = named("other");
    let config = |cluster| alternating(driver, "127.0.0.1:0", cluster, origin.addr(), other.addr());
    let proxy = Reloadable::start(&config("a"));
    let (mut socket, switched) = upgrade(proxy.addr());
    assert_eq!(switched.status, 101);
    for round in 1..=5 {
        let cluster = if round % 2 == 1 { "b" } else { "a" };
        let answer = proxy.reload(&config(cluster));
        assert_eq!(answer.status, 200, "{}", answer.text());
        let message = format!("message {round}");
        socket.send(message.as_bytes());
        assert_eq!(socket.read_exact(message.len()), message.as_bytes(), "after reload {round}");
    }
    // New requests follow the last reload (cluster b).
    let mut client = connect(proxy.addr()).expect("connect");
    assert_eq!(exchange(&mut client, false).expect("served").1, "other");
}

/// Backends `one` and `two` in cluster `a`, `two`'s state set by the file when `state` is
/// given; the route goes to `a`, and `extra` follows.
fn two_backends(
    driver: Driver,
    one: SocketAddr,
    two: SocketAddr,
    state: &str,
    extra: &str,
) -> String {
    let two = if state.is_empty() {
        format!("\"{two}\"")
    } else {
        format!("{{ addr = \"{two}\", state = \"{state}\" }}")
    };
    format!(
        "{}[[listener]]\nname = \"public\"\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\n\
         cluster = \"a\"\n\n[cluster.a]\nbackends = [\"{one}\", {two}]\n{extra}\n",
        preamble(driver, 1)
    )
}

fn listener_requests(admin: SocketAddr) -> u64 {
    let stats = admin::get(admin, "/stats");
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).expect("JSON");
    stats["listeners"][0]["requests"].as_u64().unwrap_or(0)
}

fn runtime_states_and_counters_survive_a_reload(driver: Driver) {
    let (one, two) = (named("one"), named("two"));
    let proxy = Reloadable::start(&two_backends(driver, one.addr(), two.addr(), "", ""));
    let path = format!("/backends/a/{}", two.addr());
    assert_eq!(admin::put(proxy.admin(), &path, "draining").status, 200);
    let mut client = connect(proxy.addr()).expect("connect");
    for _ in 0..6 {
        assert_eq!(exchange(&mut client, false).expect("served").1, "one");
    }
    eventually("6 requests counted", || listener_requests(proxy.admin()) == 6);
    // Another cluster joins; `two` stays, and so does its drain and the count.
    let more = format!("[cluster.c]\nbackends = [\"{}\"]\n", one.addr());
    let answer = proxy.reload(&two_backends(driver, one.addr(), two.addr(), "", &more));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let backend: serde_json::Value =
        serde_json::from_slice(&admin::get(proxy.admin(), &path).body).expect("JSON");
    assert_eq!(backend["state"], "draining");
    for _ in 0..4 {
        assert_eq!(exchange(&mut client, false).expect("served").1, "one");
    }
    eventually("10 requests counted", || listener_requests(proxy.admin()) == 10);
    // The file setting the state wins over the admin API's.
    let answer = proxy.reload(&two_backends(driver, one.addr(), two.addr(), "active", ""));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let backend: serde_json::Value =
        serde_json::from_slice(&admin::get(proxy.admin(), &path).body).expect("JSON");
    assert_eq!(backend["state"], "active");
    let bodies: Vec<String> =
        (0..4).map(|_| exchange(&mut client, false).expect("served").1).collect();
    assert!(bodies.iter().any(|body| body == "two"), "{bodies:?}");
}

/// The binary on a file: SIGHUP and `ringway reload` apply it; a bad one is refused with
/// its key by the verb.
fn sighup_and_the_reload_verb_reload_the_file(driver: Driver) {
    use crate::support::process::{BINARY, run};
    let (one, two) = (named("one"), named("two"));
    let (listen, admin_addr) = (free_port(), free_port());
    let config = |cluster| {
        alternating(driver, &listen.to_string(), cluster, one.addr(), two.addr())
            .replace("addr = \"127.0.0.1:0\"", &format!("addr = \"{admin_addr}\""))
    };
    let file = TempFile::new(config("a"));
    let mut child = std::process::Command::new(BINARY)
        .args(["--config", file.arg()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ringway");
    let served = |body: &str| {
        connect(listen).ok().and_then(|mut client| exchange(&mut client, true).ok())
            == Some((200, body.to_owned()))
    };
    eventually("the binary serves", || served("one"));
    std::fs::write(file.arg(), config("b")).expect("rewrite");
    let pid = child.id().to_string();
    let hup = std::process::Command::new("kill").args(["-HUP", &pid]).status().expect("kill");
    assert!(hup.success());
    eventually("SIGHUP applied the file", || served("two"));
    std::fs::write(file.arg(), config("a")).expect("rewrite");
    let admin_arg = admin_addr.to_string();
    let output = run(&["reload", "--admin", &admin_arg]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && out.starts_with("config version 3 applied"), "{out}");
    assert!(served("one"));
    std::fs::write(file.arg(), config("nowhere")).expect("rewrite");
    let output = run(&["reload", "--admin", &admin_arg]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("listener[0].route[0].cluster: unknown cluster"), "{err}");
    assert!(served("one"));
    let term = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(term.success());
    assert!(child.wait().expect("exit").success());
}
