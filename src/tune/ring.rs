//! io_uring: whether rings can be set up and which driver that leaves, the kernel's feature
//! flags and opcodes, SQPOLL, and `io.ring_entries` against the connections per worker.

use super::{Finding, HostFacts, Level, OPCODES_REQUIRED, Plan, Section, or_unknown};
use super::{power_of_two_at_least, uring::OPCODES_OPTIONAL};
use crate::config::{Config, IoDriver};

/// The most entries `io.ring_entries` accepts.
const RING_ENTRIES_MAX: u64 = 32_768;
/// Multishot accept and multishot recv are flags, not opcodes: the probe cannot see them.
const MULTISHOT_ACCEPT_KERNEL: (u32, u32) = (5, 19);
const MULTISHOT_RECV_KERNEL: (u32, u32) = (6, 0);

pub(super) fn findings(config: &Config, facts: &HostFacts, plan: &Plan) -> Vec<Finding> {
    let mut findings = vec![driver(config, facts)];
    if facts.io_uring.is_available() {
        findings.push(features(facts));
        findings.push(opcodes(facts));
        findings.push(sqpoll(facts));
    }
    findings.push(ring_entries(config, plan));
    findings
}

fn driver(config: &Config, facts: &HostFacts) -> Finding {
    let topic = "io.driver";
    let uring = &facts.io_uring;
    let required_missing: Vec<&str> = uring
        .opcodes_missing
        .iter()
        .copied()
        .filter(|name| OPCODES_REQUIRED.iter().any(|(required, _)| required == name))
        .collect();
    let usable = uring.is_available() && required_missing.is_empty();
    let state = match (&uring.setup_error, required_missing.is_empty()) {
        (Some(error), _) => format!("no ring: {error}"),
        (None, true) => "rings work".to_owned(),
        (None, false) => format!("rings work, but lack {}", required_missing.join(", ")),
    };
    let found = format!(
        "driver = \"{}\"; kernel {}; kernel.io_uring_disabled = {}; {state}",
        driver_name(config.io.driver),
        or_unknown(facts.kernel_release.as_deref()),
        or_unknown(facts.sysctls.io_uring_disabled),
    );
    let finding = |level, why| Finding::new(Section::IoUring, level, topic, found.clone(), why);
    let enable = match facts.sysctls.io_uring_disabled {
        Some(disabled) if disabled > 0 => vec!["sysctl -w kernel.io_uring_disabled=0".to_owned()],
        _ => Vec::new(),
    };
    match (config.io.driver, usable) {
        (IoDriver::Auto | IoDriver::IoUring, true) => finding(
            Level::Ok,
            "Workers run on io_uring: one ring per worker, completions instead of readiness.",
        ),
        (IoDriver::Epoll, true) => finding(
            Level::Advise,
            "io_uring works here but the config asks for epoll, which costs a syscall per read \
             and write; \"auto\" uses io_uring and falls back by itself.",
        )
        .set(["driver = \"auto\"    # in [io]".to_owned()]),
        (IoDriver::Auto, false) => finding(
            Level::Advise,
            "Workers fall back to epoll (said once in the log). To get io_uring: allow it \
             (kernel.io_uring_disabled = 0, or add the user to kernel.io_uring_group), and \
             allow io_uring_setup in the container's seccomp profile; many runtimes' default \
             profiles block it.",
        )
        .set(enable),
        (IoDriver::IoUring, false) => finding(
            Level::Warn,
            "driver = \"io_uring\" has no fallback: workers fail to start. Use \"auto\", or \
             allow io_uring (kernel.io_uring_disabled, the seccomp profile).",
        )
        .set(std::iter::once("driver = \"auto\"    # in [io]".to_owned()).chain(enable)),
        (IoDriver::Epoll, false) => {
            finding(Level::Ok, "The config asks for epoll, and io_uring is not available anyway.")
        }
    }
}

fn driver_name(driver: IoDriver) -> &'static str {
    match driver {
        IoDriver::Auto => "auto",
        IoDriver::IoUring => "io_uring",
        IoDriver::Epoll => "epoll",
    }
}

fn features(facts: &HostFacts) -> Finding {
    let uring = &facts.io_uring;
    let mut found = uring.features.join(" ");
    if !uring.features_missing.is_empty() {
        found.push_str(&format!("; missing: {}", uring.features_missing.join(" ")));
    }
    let topic = "io_uring features";
    if uring.features_missing.contains(&"fast_poll") {
        let why = "Without fast_poll (Linux 5.7) a receive on an empty socket is handed to an \
                   io-wq kernel thread instead of waiting on poll: slower than epoll for a proxy.";
        return Finding::new(Section::IoUring, Level::Advise, topic, found, why)
            .set(["driver = \"epoll\"    # in [io]".to_owned()]);
    }
    let why = "fast_poll: a receive on an empty socket waits on poll inside the kernel, no \
               thread. nodrop: completions are never lost when the completion queue is full.";
    Finding::new(Section::IoUring, Level::Ok, topic, found, why)
}

fn opcodes(facts: &HostFacts) -> Finding {
    let uring = &facts.io_uring;
    let topic = "io_uring opcodes";
    if let Some(error) = &uring.probe_error {
        let found = format!("the kernel cannot be asked (IORING_REGISTER_PROBE: {error})");
        let why = "Kernels before 5.6 have no probe; monoio then falls back to epoll.";
        return Finding::new(Section::IoUring, Level::Advise, topic, found, why);
    }
    let optional = |name: &&str| OPCODES_OPTIONAL.iter().any(|(optional, _)| optional == name);
    let required_count = uring.opcodes.iter().filter(|name| !optional(name)).count();
    let extras: Vec<&str> = uring.opcodes.iter().copied().filter(optional).collect();
    let version = facts.kernel_version();
    let since = |kernel: (u32, u32)| match version {
        Some(version) if version >= kernel => "yes",
        Some(_) => "no",
        None => "unknown",
    };
    let found = format!(
        "{required_count} of {} that the runtime needs; also: {}; missing: {}; multishot \
         accept {}, multishot recv {} (by kernel version)",
        OPCODES_REQUIRED.len(),
        if extras.is_empty() { "none".to_owned() } else { extras.join(" ") },
        if uring.opcodes_missing.is_empty() {
            "none".to_owned()
        } else {
            uring.opcodes_missing.join(" ")
        },
        since(MULTISHOT_ACCEPT_KERNEL),
        since(MULTISHOT_RECV_KERNEL),
    );
    let why = "monoio needs the first list and falls back to epoll without it. ringway does \
               not use splice, zero-copy send or multishot operations today; they are listed \
               for planning.";
    Finding::new(Section::IoUring, Level::Ok, topic, found, why)
}

fn sqpoll(facts: &HostFacts) -> Finding {
    let found = match &facts.io_uring.sqpoll_error {
        None => "an SQPOLL ring can be set up".to_owned(),
        Some(error) => format!("an SQPOLL ring cannot be set up: {error}"),
    };
    let why = "ringway does not use SQPOLL. A kernel thread that polls the submission queue saves \
               the io_uring_enter call per loop turn, but spins a core of its own per ring; with \
               one busy worker pinned per core, those threads compete with the workers for the \
               same cores, and a busy loop already batches its submissions.";
    Finding::new(Section::IoUring, Level::Ok, "SQPOLL", found, why)
}

fn ring_entries(config: &Config, plan: &Plan) -> Finding {
    let topic = "io.ring_entries";
    let entries = u64::from(config.io.ring_entries);
    let rounded = power_of_two_at_least(entries);
    let per_worker = plan.connections.map(|connections| connections.div_ceil(plan.workers()));
    let found = match per_worker {
        Some(per_worker) => {
            format!(
                "{entries} (completion queue {}); up to {per_worker} connections a worker",
                2 * rounded
            )
        }
        None => format!("{entries} (completion queue {}); connections uncapped", 2 * rounded),
    };
    let why = "The completion queue holds twice ring_entries. Each connection has about two \
               operations in flight (the client read and the upstream read or write), so a \
               worker with more connections than ring_entries can see a burst of completions \
               overflow the queue; the kernel then parks them on a slow list.";
    let target = per_worker.map_or(rounded, power_of_two_at_least);
    let target = target.clamp(rounded, RING_ENTRIES_MAX);
    if target > rounded || rounded != entries {
        let why = if rounded == entries {
            why.to_owned()
        } else {
            format!("The kernel rounds ring_entries up to a power of two ({rounded}). {why}")
        };
        return Finding::new(Section::IoUring, Level::Advise, topic, found, &why)
            .set([format!("ring_entries = {target}    # in [io]")]);
    }
    Finding::new(Section::IoUring, Level::Ok, topic, found, why)
}
