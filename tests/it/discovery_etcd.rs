//! Backends from etcd: a real etcd (Debian's `etcd-server`, installed by .ci/run) started
//! by the test on loopback. Instances register under load, one's lease expires and another
//! is deleted: traffic follows each watch event with no failed request.

use crate::support::admin;
use crate::support::load::{Load, count, named, tally};
use crate::support::process::TempDir;
use crate::support::{Driver, eventually, on_both_drivers, preamble, start_proxy, unused_addr};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};

on_both_drivers!(etcd_instances_come_and_go_under_load_with_no_failed_request);

/// An etcd on loopback with its data in a temp folder, killed on drop.
struct Etcd {
    child: Child,
    addr: SocketAddr,
    _data: TempDir,
}

impl Etcd {
    fn start() -> Self {
        let (addr, peer) = (unused_addr(), unused_addr_after(unused_addr()));
        let data = TempDir::new();
        let client = format!("http://{addr}");
        let peer = format!("http://{peer}");
        let child = Command::new("etcd")
            .args(["--name", "it", "--data-dir"])
            .arg(data.join("etcd"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("it={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run etcd (.ci/run installs etcd-server)");
        eventually("etcd listens", || TcpStream::connect(addr).is_ok());
        let etcd = Self { child, addr, _data: data };
        eventually("etcd answers", || etcd.post("/v3/kv/range", r#"{"key":"eA=="}"#).is_some());
        etcd
    }

    /// POSTs `body` to the gateway with curl: the JSON answer, `None` on an error.
    fn post(&self, path: &str, body: &str) -> Option<serde_json::Value> {
        let output = Command::new("curl")
            .args(["-s", "-f", "-X", "POST", "-d", body])
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .expect("run curl");
        output.status.success().then(|| serde_json::from_slice(&output.stdout).ok()).flatten()
    }

    fn put(&self, key: &str, addr: SocketAddr, lease: Option<&str>) {
        let value = format!(r#"{{"addr":"{addr}","weight":1}}"#);
        let mut body = serde_json::json!({ "key": b64(key), "value": b64(&value) });
        if let Some(lease) = lease {
            body["lease"] = serde_json::Value::from(lease);
        }
        self.post("/v3/kv/put", &body.to_string()).expect("put a key");
    }

    /// A lease of `ttl_s` seconds that nobody keeps alive: its id.
    fn lease(&self, ttl_s: u64) -> String {
        let granted = self.post("/v3/lease/grant", &format!(r#"{{"TTL":{ttl_s}}}"#));
        granted.expect("grant a lease")["ID"].as_str().expect("a lease id").to_string()
    }

    fn delete(&self, key: &str) {
        let body = serde_json::json!({ "key": b64(key) }).to_string();
        self.post("/v3/kv/deleterange", &body).expect("delete a key");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Another refusing privileged port than `taken`.
fn unused_addr_after(taken: SocketAddr) -> SocketAddr {
    (taken.port() + 1..1024)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .find(|addr| TcpStream::connect(addr).is_err())
        .expect("a second free privileged port")
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Waits until the load's count for `name` stops growing, and checks it stays put.
fn drained(load: &Load, name: &str) {
    let mut seen = count(&load.snapshot(), name);
    eventually(&format!("{name} stops getting requests"), || {
        load.wait_for(100);
        let now = count(&load.snapshot(), name);
        std::mem::replace(&mut seen, now) == now
    });
    load.wait_for(300);
    assert_eq!(count(&load.snapshot(), name), seen, "{name} got requests after it left");
}

fn etcd_instances_come_and_go_under_load_with_no_failed_request(driver: Driver) {
    let (stays, expires, deleted, joins) =
        (named("stays"), named("expires"), named("deleted"), named("joins"));
    let etcd = Etcd::start();
    // A prefix per driver: the two tests run at once, and must not meet in one etcd.
    let prefix = format!("/svc/{}/", driver.name());
    let key = |name: &str| format!("{prefix}{name}");
    etcd.put(&key("stays"), stays.addr(), None);
    etcd.put(&key("deleted"), deleted.addr(), None);
    let lease = etcd.lease(3);
    etcd.put(&key("expires"), expires.addr(), Some(&lease));
    let toml = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\ndiscover = {{ etcd = \"{}\", prefix = \"{prefix}\" }}\n",
        preamble(driver, 2),
        etcd.addr
    );
    let proxy = start_proxy(&toml);
    eventually("the three instances serve", || {
        let seen = tally(proxy.addr(), 12, "/");
        ["stays", "expires", "deleted"].iter().all(|name| count(&seen, name) > 0)
    });
    let load = Load::start(proxy.addr(), 4, "/");
    load.wait_for(200);
    etcd.put(&key("joins"), joins.addr(), None);
    eventually("the new instance gets traffic", || count(&load.snapshot(), "joins") > 0);
    // Nobody keeps the lease alive: etcd deletes the key when it runs out.
    drained(&load, "expires");
    etcd.delete(&key("deleted"));
    drained(&load, "deleted");
    let report = load.stop();
    assert!(report.failed.is_empty(), "failed requests: {:?}", &report.failed);
    let entry = admin::stats(proxy.admin_addr())["discovery"][0].clone();
    assert_eq!(entry["source"], format!("etcd {} {prefix}", etcd.addr), "{entry}");
    assert_eq!((entry["backends"].as_u64(), entry["last_error"].is_null()), (Some(2), true));
}
