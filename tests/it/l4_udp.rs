//! UDP listeners end to end: flow affinity and round robin across flows, a DNS-like flow
//! that ends after its reply, idle expiry, the flow bound, and UDP health probes.

use crate::support::admin::{lines_of, metrics, sample, stats};
use crate::support::process::TempDir;
use crate::support::{Driver, WAIT, eventually, on_both_drivers, pause, preamble, start_proxy};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A backend that answers each datagram with `tag:` and the datagram.
fn udp_backend(tag: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP backend");
    let addr = socket.local_addr().expect("backend address");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((read, from)) = socket.recv_from(&mut buf) {
            let mut reply = format!("{tag}:").into_bytes();
            reply.extend_from_slice(&buf[..read]);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

/// A client socket of its own port.
fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    socket.set_read_timeout(Some(WAIT)).expect("read timeout");
    socket
}

/// Sends `payload` to `proxy` and returns the reply's text, or `None` when none came
/// within `wait`.
fn ask(socket: &UdpSocket, proxy: SocketAddr, payload: &str, wait: Duration) -> Option<String> {
    socket.set_read_timeout(Some(wait)).expect("read timeout");
    socket.send_to(payload.as_bytes(), proxy).expect("send");
    let mut buf = [0u8; 2048];
    let read = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..read]).into_owned())
}

fn udp_listener(driver: Driver, extra: &str, backends: &[SocketAddr], cluster: &str) -> String {
    let backends: Vec<String> = backends.iter().map(|addr| format!("\"{addr}\"")).collect();
    format!(
        "{}[[listener]]\nname = \"dns\"\naddr = \"127.0.0.1:0\"\nmode = \"udp\"\n\
         cluster = \"dns\"\n{extra}\n[cluster.dns]\nbackends = [{}]\n{cluster}\n",
        preamble(driver, 1),
        backends.join(", ")
    )
}

fn flows_active(admin: SocketAddr, backend: SocketAddr) -> Option<f64> {
    let series = format!("ringway_l4_udp_flows_active{{cluster=\"dns\",backend=\"{backend}\"}}");
    sample(&metrics(admin), &series)
}

/// Every datagram of one client port goes to one backend; new ports take turns.
fn l4_udp_flow_affinity_and_round_robin(driver: Driver) {
    let (a, b) = (udp_backend("A"), udp_backend("B"));
    let proxy = start_proxy(&udp_listener(driver, "", &[a, b], ""));
    let (first, second, third) = (client(), client(), client());
    for round in 0..3 {
        let payload = format!("q{round}");
        assert_eq!(ask(&first, proxy.addr(), &payload, WAIT), Some(format!("A:{payload}")));
        assert_eq!(ask(&second, proxy.addr(), &payload, WAIT), Some(format!("B:{payload}")));
    }
    assert_eq!(ask(&third, proxy.addr(), "x", WAIT).as_deref(), Some("A:x"));
    let admin = proxy.admin_addr();
    eventually("two flows on A, one on B", || {
        flows_active(admin, a) == Some(2.0) && flows_active(admin, b) == Some(1.0)
    });
    let datagrams =
        format!("ringway_l4_datagrams_to_backend_total{{cluster=\"dns\",backend=\"{a}\"}}");
    let replies =
        format!("ringway_l4_datagrams_from_backend_total{{cluster=\"dns\",backend=\"{b}\"}}");
    let bytes = format!("ringway_l4_bytes_from_backend_total{{cluster=\"dns\",backend=\"{b}\"}}");
    eventually("datagrams and bytes are counted", || {
        let text = metrics(admin);
        sample(&text, &datagrams) == Some(4.0)
            && sample(&text, &replies) == Some(3.0)
            && sample(&text, &bytes) == Some(12.0)
    });
    // The dashboard's L4 rows read these from `/stats`.
    let json = stats(admin);
    assert_eq!(json["listeners"][0]["mode"], "udp");
    let l4 = &json["clusters"][0]["backends"][1]["l4"];
    assert_eq!((&l4["datagrams_from_backend"], &l4["flows_active"]), (&3.into(), &1.into()));
}

/// With `responses = 1` a flow ends at its reply: the same client port's next query is a
/// new flow, which round robin gives to the next backend.
fn l4_udp_one_response_flow_ends_after_its_reply(driver: Driver) {
    let (a, b) = (udp_backend("A"), udp_backend("B"));
    let proxy = start_proxy(&udp_listener(driver, "responses = 1\n", &[a, b], ""));
    let socket = client();
    assert_eq!(ask(&socket, proxy.addr(), "q1", WAIT).as_deref(), Some("A:q1"));
    let admin = proxy.admin_addr();
    eventually("the answered flow ended", || flows_active(admin, a) == Some(0.0));
    assert_eq!(ask(&socket, proxy.addr(), "q2", WAIT).as_deref(), Some("B:q2"));
    assert_eq!(ask(&socket, proxy.addr(), "q3", WAIT).as_deref(), Some("A:q3"));
}

/// A flow with no datagram for the idle timeout ends: the same port's next datagram is a
/// new flow, given to the next backend; before the timeout it stays on its backend.
fn l4_udp_idle_flow_expires(driver: Driver) {
    let (a, b) = (udp_backend("A"), udp_backend("B"));
    let proxy = start_proxy(&udp_listener(driver, "idle_timeout_ms = 400\n", &[a, b], ""));
    let socket = client();
    assert_eq!(ask(&socket, proxy.addr(), "q1", WAIT).as_deref(), Some("A:q1"));
    pause(Duration::from_millis(100));
    assert_eq!(ask(&socket, proxy.addr(), "q2", WAIT).as_deref(), Some("A:q2"));
    pause(Duration::from_millis(700));
    assert_eq!(ask(&socket, proxy.addr(), "q3", WAIT).as_deref(), Some("B:q3"));
    let admin = proxy.admin_addr();
    eventually("only the new flow is open", || {
        flows_active(admin, a) == Some(0.0) && flows_active(admin, b) == Some(1.0)
    });
}

/// Each flow writes one access-log line when it ends: the client, `UDP` and the close
/// reason (`answered` after its `responses`, `idle_timeout`), the bytes each way, the
/// backend.
fn l4_udp_flows_write_access_log_lines(driver: Driver) {
    let backend = udp_backend("A");
    let dir = TempDir::new();
    let log = dir.join("access.log");
    let extra = "access_log = \"combined\"\nresponses = 2\nidle_timeout_ms = 300\n";
    let access_log = format!("[access_log]\npath = \"{}\"\n", log.display());
    let proxy = start_proxy(&udp_listener(driver, extra, &[backend], &access_log));
    let (answered, idle) = (client(), client());
    assert_eq!(ask(&answered, proxy.addr(), "q1", WAIT).as_deref(), Some("A:q1"));
    assert_eq!(ask(&answered, proxy.addr(), "q22", WAIT).as_deref(), Some("A:q22"));
    assert_eq!(ask(&idle, proxy.addr(), "x", WAIT).as_deref(), Some("A:x"));
    let mut lines = Vec::new();
    eventually("two flow lines", || {
        lines = lines_of(&log);
        lines.len() >= 2
    });
    assert_eq!(lines.len(), 2, "{lines:#?}");
    // Replies are `A:` and the query: 4 + 5 bytes back for 2 + 3 bytes sent.
    for (line, expected) in [
        (&lines[0], "\"UDP - answered\" 200 9 \"-\" \"-\""),
        (&lines[1], "\"UDP - idle_timeout\" 200 3 \"-\" \"-\""),
    ] {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.contains(expected), "{expected} not in {line}");
    }
    assert!(lines[0].ends_with(&format!(" up={backend} in=5")), "{}", lines[0]);
    assert!(lines[1].ends_with(&format!(" up={backend} in=1")), "{}", lines[1]);
}

/// Past `flows_max` a new client's datagram is dropped and counted; open flows go on.
fn l4_udp_flow_bound_drops_new_flows(driver: Driver) {
    let backend = udp_backend("A");
    let proxy = start_proxy(&udp_listener(driver, "flows_max = 2\n", &[backend], ""));
    let (first, second, third) = (client(), client(), client());
    assert_eq!(ask(&first, proxy.addr(), "1", WAIT).as_deref(), Some("A:1"));
    assert_eq!(ask(&second, proxy.addr(), "2", WAIT).as_deref(), Some("A:2"));
    assert_eq!(ask(&third, proxy.addr(), "3", Duration::from_millis(300)), None);
    let series = "ringway_rejected_total{listener=\"dns\",reason=\"flow_limit\"}";
    eventually("the dropped flow is counted", || {
        sample(&metrics(proxy.admin_addr()), series) == Some(1.0)
    });
    assert_eq!(ask(&first, proxy.addr(), "4", WAIT).as_deref(), Some("A:4"));
}

/// A UDP probe finds the backend whose port is closed (ICMP port unreachable) down, and
/// every flow goes to the one that answers.
fn l4_udp_health_probe_takes_a_dead_backend_out(driver: Driver) {
    let dead = UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let live = udp_backend("LIVE");
    let check = "[cluster.dns.health_check]\nkind = \"udp\"\nsend = \"ping\"\n\
                 interval_ms = 50\ntimeout_ms = 500\nfall = 1\n";
    let proxy = start_proxy(&udp_listener(driver, "", &[dead, live], check));
    let up = |backend: SocketAddr| {
        format!("ringway_backend_up{{cluster=\"dns\",backend=\"{backend}\"}}")
    };
    // Both read 0 until the workers first publish: wait for the live one to read 1 too.
    eventually("the dead backend is down, the live one up", || {
        let text = metrics(proxy.admin_addr());
        sample(&text, &up(dead)) == Some(0.0) && sample(&text, &up(live)) == Some(1.0)
    });
    for round in 0..4 {
        let payload = format!("q{round}");
        let reply = ask(&client(), proxy.addr(), &payload, WAIT);
        assert_eq!(reply, Some(format!("LIVE:{payload}")));
    }
}

on_both_drivers!(
    l4_udp_flow_affinity_and_round_robin,
    l4_udp_one_response_flow_ends_after_its_reply,
    l4_udp_idle_flow_expires,
    l4_udp_flow_bound_drops_new_flows,
    l4_udp_flows_write_access_log_lines,
    l4_udp_health_probe_takes_a_dead_backend_out,
);
