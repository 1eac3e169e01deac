//! Cores: workers against the cores this process may use, the cgroup CPU quota, and how
//! the workers fall across NUMA nodes.

use super::{Finding, HostFacts, Level, Plan, Section, cpus_text};
use crate::config::{Config, Workers};

pub(super) fn findings(config: &Config, facts: &HostFacts, plan: &Plan) -> Vec<Finding> {
    let mut findings = vec![workers(config, facts, plan)];
    findings.extend(quota(facts, plan));
    findings.push(numa(facts, plan));
    findings
}

/// `workers` as written in the file.
fn workers_line(workers: &Workers) -> String {
    match workers {
        Workers::All => "workers = \"all\"".to_owned(),
        Workers::Count(count) => format!("workers = {count}"),
        Workers::Cores(ids) => format!("workers = {ids:?}"),
    }
}

fn workers(config: &Config, facts: &HostFacts, plan: &Plan) -> Finding {
    let allowed = &facts.cpus_allowed;
    let count = plan.worker_cores.len();
    let found = format!(
        "{}: {count} worker(s); this process may use cores {} (online: {})",
        workers_line(&config.workers),
        cpus_text(allowed),
        cpus_text(&facts.cpus_online),
    );
    let finding = |level, why| Finding::new(Section::Cores, level, "workers", found.clone(), why);
    if !plan.cores_missing.is_empty() {
        let usable: Vec<usize> = allowed.clone();
        return finding(
            Level::Warn,
            "ringway refuses to start: a worker pins itself to its core, and cores outside \
             this process's affinity mask (taskset, cpuset, the container's CPU set) cannot \
             be pinned.",
        )
        .set([format!("workers = {usable:?}"), "workers = \"all\"".to_owned()]);
    }
    if allowed.is_empty() {
        return finding(
            Level::Advise,
            "The affinity mask could not be read, so workers run unpinned; name the cores \
             with workers = [...] once you know them.",
        );
    }
    if count > allowed.len() {
        return finding(
            Level::Warn,
            "Workers past the usable cores run unpinned and share a core with a pinned one: \
             two event loops on one core take turns, each adding its run time to the other's \
             latency, for no extra throughput.",
        )
        .set([format!("workers = {}", allowed.len()), "workers = \"all\"".to_owned()]);
    }
    let why = if count < allowed.len() {
        "One pinned worker per core. The cores left over serve whatever else runs here (an \
         origin, a load generator, NIC interrupts); with nothing else, use workers = \"all\"."
    } else {
        "One pinned worker per usable core, each with its own ring and listening sockets \
         (SO_REUSEPORT); nothing to change."
    };
    finding(Level::Ok, why)
}

/// The cgroup v2 CPU quota, when one is set.
fn quota(facts: &HostFacts, plan: &Plan) -> Option<Finding> {
    let quota = facts.cpu_quota?;
    let workers = plan.workers();
    let found = format!("cgroup cpu.max allows {quota:.2} CPUs; {workers} worker(s)");
    let topic = "cgroup CPU quota";
    if workers as f64 <= quota + 0.01 {
        let why = "The quota covers one busy core per worker.";
        return Some(Finding::new(Section::Cores, Level::Ok, topic, found, why));
    }
    // The most workers that fit, counted down rather than cast from a float.
    let fit = (1..workers).rev().find(|count| *count as f64 <= quota).unwrap_or(1);
    let why = "Once the cgroup has used its quota for a period (100 ms by default), the kernel \
               stops every worker until the next period: a latency spike for every connection. \
               Run no more busy workers than the quota, or raise the quota (docker --cpus, \
               Kubernetes limits.cpu).";
    let finding = Finding::new(Section::Cores, Level::Warn, topic, found, why);
    Some(finding.set([format!("workers = {fit}")]))
}

fn numa(facts: &HostFacts, plan: &Plan) -> Finding {
    let topic = "NUMA nodes";
    if facts.numa_nodes.len() <= 1 {
        let found = format!("{} node(s)", facts.numa_nodes.len().max(1));
        let why = "One memory node: every worker is local to all memory and devices.";
        return Finding::new(Section::Cores, Level::Ok, topic, found, why);
    }
    let per_node: Vec<(usize, usize)> = facts
        .numa_nodes
        .iter()
        .map(|node| {
            let on_node =
                plan.worker_cores.iter().flatten().filter(|core| node.cpus.contains(core));
            (node.id, on_node.count())
        })
        .collect();
    let used: Vec<String> = per_node
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(id, count)| format!("node{id}: {count}"))
        .collect();
    let found = format!("{} nodes; workers per node: {}", per_node.len(), used.join(", "));
    if used.len() <= 1 {
        let why = "All workers on one node.";
        return Finding::new(Section::Cores, Level::Ok, topic, found, why);
    }
    let why = "Workers share nothing and allocate on their own thread, so their memory stays on \
               their node. What crosses nodes is the network card: packets from a NIC on the \
               other node travel the interconnect. Check /sys/class/net/IFACE/device/numa_node; \
               for the last few percent, run one ringway per node, each on that node's cores.";
    let sets = facts.numa_nodes.iter().map(|node| {
        let cores: Vec<usize> =
            node.cpus.iter().copied().filter(|cpu| facts.cpus_allowed.contains(cpu)).collect();
        format!("workers = {cores:?}    # node{}", node.id)
    });
    Finding::new(Section::Cores, Level::Advise, topic, found, why).set(sets)
}
