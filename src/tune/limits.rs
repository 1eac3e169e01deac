//! Limits: open files against the connections the config allows, memlock for io_uring
//! rings, and the memory that connection buffers take.

use super::{
    Finding, HostFacts, Level, Plan, Section, bytes_text, or_unknown, power_of_two_at_least,
};
use crate::config::Config;

/// The nofile soft limit recommended at the least: what systemd-era distributions allow
/// as the hard limit and what most proxies' docs ask for.
const NOFILE_FLOOR: u64 = 65_536;
/// io_uring charges rings to the memory cgroup instead of RLIMIT_MEMLOCK from this kernel on.
const MEMCG_ACCOUNTING_KERNEL: (u32, u32) = (5, 12);
/// Bytes of ring memory per submission entry: a 64-byte SQE, a 4-byte index, and two
/// 16-byte CQEs (the completion queue is twice the submission queue).
const RING_BYTES_PER_ENTRY: u64 = 64 + 4 + 2 * 16;
/// The ring headers, a page each for the two queues.
const RING_BYTES_FIXED: u64 = 2 * 4096;

pub(super) fn findings(config: &Config, facts: &HostFacts, plan: &Plan) -> Vec<Finding> {
    vec![nofile(facts, plan), file_max(facts, plan), memlock(config, facts, plan)]
}

/// Descriptors the config can use at its caps: a client connection and its upstream
/// exchange, each pooled idle connection, and the fixed slack.
fn fds_needed(plan: &Plan, connections: u64) -> u64 {
    2 * connections + plan.pool_idle_total + plan.fd_slack
}

fn limit_text(value: Option<u64>) -> String {
    value.map_or_else(|| "unlimited".to_owned(), |value| value.to_string())
}

fn nofile(facts: &HostFacts, plan: &Plan) -> Finding {
    let topic = "nofile (RLIMIT_NOFILE)";
    let Some(limit) = facts.nofile else {
        let why = "Each client connection takes a descriptor, and its upstream exchange another.";
        return Finding::new(Section::Limits, Level::Advise, topic, "unreadable".to_owned(), why);
    };
    let soft = limit.soft.unwrap_or(u64::MAX);
    let found = format!("soft {}, hard {}", limit_text(limit.soft), limit_text(limit.hard));
    let Some(connections) = plan.connections else {
        // No cap: say where EMFILE starts, and offer a cap just below it.
        let room = soft.saturating_sub(plan.pool_idle_total + plan.fd_slack) / 2;
        let found = format!("{found}; no connection cap, so EMFILE at about {room} clients");
        let level = if soft >= NOFILE_FLOOR { Level::Ok } else { Level::Advise };
        let why = "Each client connection takes a descriptor and its upstream exchange another. \
                   Without limits.connections_max, a surge runs into EMFILE: accept fails for \
                   everyone (ringway pauses 20 ms and retries) instead of refusing the excess. \
                   Raise nofile, then cap connections below half of it.";
        let mut sets = raise_nofile(facts, NOFILE_FLOOR);
        sets.push(format!("connections_max = {}    # in [limits]", room.max(1)));
        let finding = Finding::new(Section::Limits, level, topic, found, why);
        return if level == Level::Ok { finding } else { finding.set(sets) };
    };
    let needed = fds_needed(plan, connections);
    let found = format!(
        "{found}; the config needs up to {needed} (2 x {connections} connections + {} pooled \
         + {} listeners, rings, logs)",
        plan.pool_idle_total, plan.fd_slack
    );
    if soft >= needed {
        let why = "Room for every connection the caps allow, with its upstream exchange.";
        return Finding::new(Section::Limits, Level::Ok, topic, found, why);
    }
    let why = "At the connection cap the process runs out of descriptors first: accept fails \
               with EMFILE and connects to backends fail (502). Each client connection takes one \
               descriptor and its upstream exchange one more.";
    let target = power_of_two_at_least(needed).max(NOFILE_FLOOR);
    Finding::new(Section::Limits, Level::Warn, topic, found, why).set(raise_nofile(facts, target))
}

/// The lines that raise nofile to `target`, with fs.nr_open first when it is the ceiling.
fn raise_nofile(facts: &HostFacts, target: u64) -> Vec<String> {
    let mut sets = Vec::new();
    if facts.sysctls.nr_open.is_some_and(|nr_open| nr_open < target) {
        sets.push(format!("sysctl -w fs.nr_open={target}"));
    }
    sets.push(format!("ulimit -n {target}    # in the shell that starts ringway"));
    sets.push(format!("LimitNOFILE={target}    # systemd unit, [Service]"));
    if facts.nofile.and_then(|limit| limit.hard).is_some_and(|hard| hard < target) {
        // Only root may raise the hard limit; for login sessions, pam_limits sets it.
        sets.push(format!("echo '* - nofile {target}' >> /etc/security/limits.d/90-ringway.conf"));
    }
    sets
}

fn file_max(facts: &HostFacts, plan: &Plan) -> Finding {
    let topic = "fs.file-max";
    let needed = plan.connections.map(|connections| fds_needed(plan, connections));
    let needs = needed.map_or_else(
        || "no connection cap".to_owned(),
        |needed| format!("this process needs up to {needed}"),
    );
    let found = format!("{}; {needs}", or_unknown(facts.sysctls.file_max));
    let why = "The open-file limit of the whole system, shared with every other process.";
    match (facts.sysctls.file_max, needed) {
        (Some(file_max), Some(needed)) if file_max < needed => {
            let target = power_of_two_at_least(needed * 2);
            Finding::new(Section::Limits, Level::Warn, topic, found, why)
                .set([format!("sysctl -w fs.file-max={target}")])
        }
        _ => Finding::new(Section::Limits, Level::Ok, topic, found, why),
    }
}

fn memlock(config: &Config, facts: &HostFacts, plan: &Plan) -> Finding {
    let topic = "memlock (RLIMIT_MEMLOCK)";
    let bytes = |value: Option<u64>| value.map_or_else(|| "unlimited".to_owned(), bytes_text);
    let limit = facts.memlock.map_or_else(
        || "unreadable".to_owned(),
        |limit| format!("soft {}, hard {}", bytes(limit.soft), bytes(limit.hard)),
    );
    let kernel = facts.kernel_version();
    if kernel.is_some_and(|version| version >= MEMCG_ACCOUNTING_KERNEL) {
        let found = format!("{limit}; kernel {}", or_unknown(facts.kernel_release.as_deref()));
        let why = "Since Linux 5.12 io_uring charges ring memory to the memory cgroup, not to \
                   RLIMIT_MEMLOCK: memlock does not limit ringway's rings here.";
        return Finding::new(Section::Limits, Level::Ok, topic, found, why);
    }
    let entries = power_of_two_at_least(u64::from(config.io.ring_entries));
    let needed = plan.workers() * (entries * RING_BYTES_PER_ENTRY + RING_BYTES_FIXED);
    let found = format!(
        "{limit}; kernel {}; {} ring(s) of {entries} entries need about {}",
        or_unknown(facts.kernel_release.as_deref()),
        plan.workers(),
        bytes_text(needed)
    );
    let soft = facts.memlock.and_then(|limit| limit.soft);
    if facts.memlock.is_some() && soft.is_none_or(|soft| soft >= needed) {
        let why = "Before Linux 5.12 rings count against RLIMIT_MEMLOCK; these fit.";
        return Finding::new(Section::Limits, Level::Ok, topic, found, why);
    }
    let why = "Before Linux 5.12 every ring's queues count against RLIMIT_MEMLOCK (unless the \
               process has CAP_IPC_LOCK): a worker whose ring does not fit fails to start with \
               ENOMEM. Raise memlock, or lower io.ring_entries.";
    let level = if kernel.is_some() { Level::Warn } else { Level::Advise };
    Finding::new(Section::Limits, level, topic, found, why).set([
        "ulimit -l unlimited    # in the shell that starts ringway".to_owned(),
        "LimitMEMLOCK=infinity    # systemd unit, [Service]".to_owned(),
    ])
}

/// Memory that connection buffers take at the caps, against the host's memory.
pub(super) fn memory(config: &Config, facts: &HostFacts, plan: &Plan) -> Vec<Finding> {
    let topic = "io.buffer_bytes";
    let buffer = config.io.buffer_bytes as u64;
    let per_connection = 2 * buffer;
    let memory = or_unknown(facts.memory_bytes.map(bytes_text));
    let Some(connections) = plan.connections else {
        let found = format!(
            "{} buffers: up to {} a connection, {} per 10,000; memory {memory}",
            bytes_text(buffer),
            bytes_text(per_connection),
            bytes_text(per_connection * 10_000)
        );
        let why = "A client connection holds one buffer while open (idle keep-alive too) and \
                   one more while an exchange waits on its backend. Larger buffers mean fewer \
                   reads per megabyte of body; smaller ones fit more idle connections.";
        return vec![Finding::new(Section::Memory, Level::Ok, topic, found, why)];
    };
    let total = per_connection * connections;
    let found = format!(
        "{} buffers x 2 x {connections} connections = up to {}; memory {memory}",
        bytes_text(buffer),
        bytes_text(total)
    );
    let level = match facts.memory_bytes {
        Some(memory) if total > memory / 2 => Level::Warn,
        Some(memory) if total > memory / 4 => Level::Advise,
        _ => Level::Ok,
    };
    let why = "A client connection holds one buffer while open and one more while an exchange \
               waits on its backend. At the cap, buffers should take at most a quarter of \
               memory, leaving the rest to the kernel's socket buffers and page cache.";
    let finding = Finding::new(Section::Memory, level, topic, found, why);
    let Some(memory) = facts.memory_bytes.filter(|_| level != Level::Ok) else {
        return vec![finding];
    };
    let fit_connections = memory / 4 / per_connection;
    let fit_buffer = (memory / 4 / (2 * connections)).max(1);
    let mut sets = Vec::new();
    if fit_buffer >= 4096 {
        sets.push(format!("buffer_bytes = {}    # in [io]", 1u64 << fit_buffer.ilog2()));
    }
    sets.push(format!("connections_max = {fit_connections}    # in [limits]"));
    vec![finding.set(sets)]
}
