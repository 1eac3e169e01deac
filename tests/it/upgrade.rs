//! Binary upgrade (issue 13): SIGUSR2 makes the running binary start itself again and hand
//! its listening sockets over (SCM_RIGHTS). Under keep-alive and one-request-per-connection
//! load with a connect probe, 5 upgrades in a row lose nothing and each old process exits
//! 0 after draining; a new binary that cannot start leaves the old one serving.

use crate::reload::{connect, exchange, free_port, start_load, stop_load};
use crate::support::load::named;
use crate::support::process::{BINARY, TempFile};
use crate::support::{Driver, admin, eventually, on_both_drivers, pause, preamble};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

on_both_drivers!(
    five_upgrades_under_load_lose_nothing,
    a_new_binary_that_fails_leaves_the_old_serving
);

/// Two workers, one listener at `listen` to `backend`, the admin API at `admin`.
fn config(driver: Driver, listen: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> String {
    let preamble =
        preamble(driver, 2).replace("addr = \"127.0.0.1:0\"", &format!("addr = \"{admin}\""));
    format!(
        "{preamble}[[listener]]\nname = \"public\"\naddr = \"{listen}\"\n\n\
         [[listener.route]]\ncluster = \"a\"\n\n[cluster.a]\nbackends = [\"{backend}\"]\n"
    )
}

/// The binary on `file`, its output discarded.
fn spawn(file: &TempFile) -> Child {
    Command::new(BINARY)
        .args(["--config", file.arg()])
        .env("RINGWAY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringway")
}

/// The pid of the process whose admin API answers at `admin`.
fn admin_pid(admin: SocketAddr) -> Option<u64> {
    let response =
        std::net::TcpStream::connect(admin).ok().map(|_| admin::get(admin, "/config"))?;
    let config: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    config["version"]["pid"].as_u64()
}

fn signal(pid: u64, name: &str) {
    let status = Command::new("kill").args([name, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {name} {pid}");
}

/// Waits for process `pid` (a child, or an orphan this process reaps as subreaper) and
/// returns its exit code.
fn wait_exit(pid: u64) -> Option<i32> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid");
    let waited = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    waited.expect("waitpid").and_then(|(_, status)| status.exit_status())
}

fn five_upgrades_under_load_lose_nothing(driver: Driver) {
    // Each old process is the parent of the next and exits first: its orphan comes to
    // this process, which reaps it and reads its exit code.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let one = named("one");
    let (listen, admin) = (free_port(), free_port());
    let file = TempFile::new(config(driver, listen, admin, one.addr()));
    let mut first = spawn(&file);
    eventually("the binary serves", || admin_pid(admin).is_some());
    let stop = Arc::new(AtomicBool::new(false));
    let loads = start_load(listen, &stop);
    let mut pid = u64::from(first.id());
    // Each upgrade happens under load that has been running for a while.
    pause(Duration::from_millis(200));
    signal(pid, "-USR2");
    let code = first.wait().expect("wait").code();
    assert_eq!(code, Some(0), "upgrade 1: the old process exits 0 after draining");
    for round in 1..=5 {
        if round > 1 {
            pause(Duration::from_millis(200));
            signal(pid, "-USR2");
            assert_eq!(wait_exit(pid), Some(0), "upgrade {round}: the old process exits 0");
        }
        let next = admin_pid(admin).expect("the new process answers");
        assert_ne!(next, pid, "upgrade {round}");
        pid = next;
    }
    let [done, failed, refused] = stop_load(loads, &stop);
    eprintln!(
        "{driver:?}: 5 upgrades, {done} requests and connects, {failed} failed, {refused} refused"
    );
    assert_eq!((failed, refused), (0, 0), "failed requests and refused connects");
    assert!(done > 200, "the load ran: {done}");
    signal(pid, "-TERM");
    assert_eq!(wait_exit(pid), Some(0));
}

fn a_new_binary_that_fails_leaves_the_old_serving(driver: Driver) {
    let one = named("one");
    let (listen, admin) = (free_port(), free_port());
    let good = config(driver, listen, admin, one.addr());
    let file = TempFile::new(&good);
    let mut child = spawn(&file);
    eventually("the binary serves", || admin_pid(admin).is_some());
    let pid = u64::from(child.id());
    // The new process reads this and exits 1 before it takes anything over.
    std::fs::write(file.arg(), good.replace("[cluster.a]", "[cluster.b]")).expect("break");
    let stop = Arc::new(AtomicBool::new(false));
    let loads = start_load(listen, &stop);
    signal(pid, "-USR2");
    // The old process notices the exit within its poll interval and keeps serving.
    pause(Duration::from_millis(1500));
    let [done, failed, refused] = stop_load(loads, &stop);
    assert_eq!((failed, refused), (0, 0), "{done} done");
    assert_eq!(admin_pid(admin), Some(pid), "the old process still serves");
    let mut client = connect(listen).expect("connect");
    assert_eq!(exchange(&mut client, true).expect("served").1, "one");
    signal(pid, "-TERM");
    assert!(child.wait().expect("exit").success());
}
