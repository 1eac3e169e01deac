//! Sysctls: the accept queues against each listener's backlog, local ports and TIME_WAIT
//! reuse against the upstream pools, and the per-CPU input backlog.

use super::{Finding, HostFacts, Level, Plan, Section, or_unknown};
use crate::config::Config;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Linux keeps a closed connection's port in TIME_WAIT this long (fixed, TCP_TIMEWAIT_LEN).
const TIME_WAIT_SECS: u64 = 60;

pub(super) fn findings(config: &Config, facts: &HostFacts, plan: &Plan) -> Vec<Finding> {
    vec![
        somaxconn(config, facts, plan),
        syn_backlog(config, facts),
        port_range(config, facts, plan),
        tw_reuse(config, facts),
        netdev_backlog(facts),
        fin_timeout(facts),
    ]
}

/// The sysctl line, and the file line that keeps it across reboots. A value with a space
/// is quoted for the shell; sysctl.d files take it bare.
fn sysctl_lines(name: &str, value: &str) -> [String; 2] {
    let quoted = if value.contains(' ') { format!("\"{value}\"") } else { value.to_owned() };
    [
        format!("sysctl -w {name}={quoted}"),
        format!("echo '{name} = {value}' >> /etc/sysctl.d/90-ringway.conf"),
    ]
}

/// The largest backlog any listener asks for, and the first listener asking it.
fn largest_backlog(config: &Config) -> Option<(u64, &str)> {
    config
        .listeners
        .iter()
        .map(|listener| (u64::from(listener.backlog), listener.name.as_str()))
        .reduce(|largest, next| if next.0 > largest.0 { next } else { largest })
}

fn somaxconn(config: &Config, facts: &HostFacts, plan: &Plan) -> Finding {
    let topic = "net.core.somaxconn";
    let somaxconn = facts.sysctls.somaxconn;
    let Some((backlog, name)) = largest_backlog(config) else {
        let found = format!("{}; no listeners", or_unknown(somaxconn));
        return Finding::new(Section::Sysctls, Level::Ok, topic, found, "Nothing listens.");
    };
    let found = format!("{}; listener \"{name}\" asks backlog = {backlog}", or_unknown(somaxconn));
    let Some(somaxconn) = somaxconn.filter(|somaxconn| *somaxconn < backlog) else {
        let why = "Every listener gets the backlog it asks for.";
        return Finding::new(Section::Sysctls, Level::Ok, topic, found, why);
    };
    let why = format!(
        "listen() silently caps the backlog at somaxconn. Each of the {} workers has its own \
         accept queue per listener (SO_REUSEPORT), so the host holds {} connections not yet \
         accepted where the config asks for {}; past that, the kernel drops the handshake and \
         clients retry after a second or more.",
        plan.workers(),
        plan.workers() * somaxconn,
        plan.workers() * backlog
    );
    let finding = Finding::new(Section::Sysctls, Level::Advise, topic, found, &why);
    finding.set(sysctl_lines(topic, &backlog.to_string()))
}

fn syn_backlog(config: &Config, facts: &HostFacts) -> Finding {
    let topic = "net.ipv4.tcp_max_syn_backlog";
    let sysctls = &facts.sysctls;
    let found = format!(
        "{}; tcp_syncookies = {}",
        or_unknown(sysctls.tcp_max_syn_backlog),
        or_unknown(sysctls.tcp_syncookies)
    );
    let backlog = largest_backlog(config).map_or(0, |(backlog, _)| backlog);
    let short = sysctls.tcp_max_syn_backlog.is_some_and(|max| max < backlog);
    if sysctls.tcp_syncookies != Some(0) || !short {
        let why = "The listen backlog bounds half-open connections too. This sysctl only matters \
                   with SYN cookies off: then the kernel drops new SYNs once three quarters of \
                   it is pending.";
        return Finding::new(Section::Sysctls, Level::Ok, topic, found, why);
    }
    let why = "SYN cookies are off, so new SYNs are dropped once three quarters of this many \
               handshakes are pending: a burst of new clients waits a second or more to retry.";
    Finding::new(Section::Sysctls, Level::Advise, topic, found, why)
        .set(sysctl_lines(topic, &backlog.to_string()))
}

/// Idle pooled connections each backend address can hold, all workers and clusters.
fn pool_per_address(config: &Config, plan: &Plan) -> BTreeMap<SocketAddr, u64> {
    let mut per_address = BTreeMap::new();
    for cluster in &config.clusters {
        for backend in &cluster.backends {
            *per_address.entry(backend.addr).or_insert(0) +=
                cluster.pool_idle_max as u64 * plan.workers();
        }
    }
    per_address
}

fn port_range(config: &Config, facts: &HostFacts, plan: &Plan) -> Finding {
    let topic = "net.ipv4.ip_local_port_range";
    let range = facts.sysctls.ip_local_port_range;
    let range_text = range.map_or_else(
        || "unknown".to_owned(),
        |(low, high)| format!("{low}-{high} ({} ports)", high.saturating_sub(low) + 1),
    );
    let busiest = pool_per_address(config, plan).into_iter().max_by_key(|(_, count)| *count);
    let Some((addr, pooled)) = busiest else {
        let found = format!("{range_text}; no backends");
        return Finding::new(Section::Sysctls, Level::Ok, topic, found, "No upstream connections.");
    };
    let found = format!(
        "{range_text}; up to {pooled} idle pooled connections to {addr} ({} workers x \
         pool_idle_max)",
        plan.workers()
    );
    let why = format!(
        "Every upstream connection to one backend address needs its own local port, and a \
         closed one keeps it for {TIME_WAIT_SECS} s in TIME_WAIT. A worker opens a connection \
         whenever its pool for the backend is empty and closes the extra when more than \
         pool_idle_max come back, so load above the pools churns ports: N new connections a \
         second hold N x {TIME_WAIT_SECS} ports. Keep pool_idle_max near the concurrent \
         requests per worker per backend, and the range wide."
    );
    let ports = range.map(|(low, high)| high.saturating_sub(low) + 1);
    let demand = pooled + plan.connections.unwrap_or(0);
    let level = match ports {
        Some(ports) if pooled > ports => Level::Warn,
        Some(ports) if demand > ports / 2 => Level::Advise,
        _ => Level::Ok,
    };
    let finding = Finding::new(Section::Sysctls, level, topic, found, &why);
    if level == Level::Ok {
        return finding;
    }
    finding.set(sysctl_lines(topic, "1024 65535"))
}

fn tw_reuse(config: &Config, facts: &HostFacts) -> Finding {
    let topic = "net.ipv4.tcp_tw_reuse";
    let value = facts.sysctls.tcp_tw_reuse;
    let backends = config.clusters.iter().flat_map(|cluster| &cluster.backends);
    let remote = backends.clone().filter(|backend| !backend.addr.ip().is_loopback()).count();
    let found = format!("{}; {remote} non-loopback backend(s)", or_unknown(value));
    let why = "Lets connect() take a local port still in TIME_WAIT from an earlier connection \
               when TCP timestamps show it is safe. It applies to outgoing connections only, \
               which for ringway are exactly the upstream ones; 2 (the default) allows it on \
               loopback only.";
    let enough = match value {
        Some(1) => true,
        Some(2) => remote == 0,
        Some(_) => backends.count() == 0,
        None => true,
    };
    if enough {
        return Finding::new(Section::Sysctls, Level::Ok, topic, found, why);
    }
    Finding::new(Section::Sysctls, Level::Advise, topic, found, why).set(sysctl_lines(topic, "1"))
}

fn netdev_backlog(facts: &HostFacts) -> Finding {
    let topic = "net.core.netdev_max_backlog";
    let value = facts.sysctls.netdev_max_backlog;
    let dropped = facts.softnet_dropped;
    let found = format!("{}; softnet drops since boot: {}", or_unknown(value), or_unknown(dropped));
    let why = "Packets a CPU has received but not yet processed queue here, per CPU. The \
               second column of /proc/net/softnet_stat counts drops because it was full.";
    match (value, dropped) {
        (Some(value), Some(dropped)) if dropped > 0 => {
            let target = (value * 2).max(16_384).to_string();
            Finding::new(Section::Sysctls, Level::Advise, topic, found, why)
                .set(sysctl_lines(topic, &target))
        }
        _ => Finding::new(Section::Sysctls, Level::Ok, topic, found, why),
    }
}

fn fin_timeout(facts: &HostFacts) -> Finding {
    let topic = "net.ipv4.tcp_fin_timeout";
    let found = format!("{} s", or_unknown(facts.sysctls.tcp_fin_timeout));
    let why = "How long a closed connection waits in FIN_WAIT_2 for the peer's FIN. It does not \
               shorten TIME_WAIT (fixed at 60 s): tcp_tw_reuse and the port range are what help \
               upstream churn. Lower it (15) only if `ss -tan state fin-wait-2` shows many.";
    Finding::new(Section::Sysctls, Level::Ok, topic, found, why)
}
