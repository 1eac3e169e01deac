//! `ringway tune`: relates a config to the host it runs on and recommends settings.
//!
//! [`HostFacts::gather`] reads the host (the only I/O here); [`advise`] is a pure function
//! from a [`Config`] and those facts to [`Finding`]s, each with what was found, the exact
//! line to set and the reason; [`Report`] renders them as text or JSON.

mod cores;
mod facts;
mod limits;
mod render;
mod ring;
mod sysctls;
mod uring;

pub use facts::{
    HostFacts, NumaNode, Rlimit, Sysctls, parse_cpu_list, parse_cpu_max, parse_kernel_version,
    parse_softnet_dropped,
};
pub use uring::{OPCODES_OPTIONAL, OPCODES_REQUIRED, UringFacts};

use crate::config::{Config, Workers};
use serde::Serialize;

/// Listening sockets aside, the descriptors a worker holds for itself: its ring, the
/// runtime's eventfd, and a few spare for connects in progress.
const FDS_PER_WORKER: u64 = 4;
/// Descriptors the process holds besides workers: stdio, log files, the admin listener,
/// health-check connections, the control thread.
const FDS_PROCESS: u64 = 64;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Nothing to change.
    Ok,
    /// Worth changing for load; nothing breaks as it is.
    Advise,
    /// Something fails or degrades under the config as written: startup, accepts, connects.
    Warn,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Advise => "ADVISE",
            Self::Warn => "WARN",
        }
    }
}

/// The part of the host a finding is about; the report groups findings by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Cores,
    Limits,
    Sysctls,
    IoUring,
    Memory,
}

impl Section {
    pub const ALL: [Self; 5] =
        [Self::Cores, Self::Limits, Self::Sysctls, Self::IoUring, Self::Memory];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cores => "cores",
            Self::Limits => "limits",
            Self::Sysctls => "sysctls",
            Self::IoUring => "io_uring",
            Self::Memory => "memory",
        }
    }
}

/// One thing checked: what was found, what to set (empty when nothing), and why.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub section: Section,
    pub level: Level,
    /// The knob: a config key, a sysctl, a limit.
    pub topic: String,
    pub found: String,
    /// Exact commands or config lines, each complete on its own.
    pub set: Vec<String>,
    pub why: String,
}

impl Finding {
    fn new(section: Section, level: Level, topic: &str, found: String, why: &str) -> Self {
        let (topic, why) = (topic.to_owned(), why.to_owned());
        Self { section, level, topic, found, set: Vec::new(), why }
    }

    fn set(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.set.extend(lines);
        self
    }
}

/// Numbers derived from the config and the host that several rules share.
#[derive(Debug, Clone)]
struct Plan {
    /// The core each worker pins to, as the runtime resolves `workers`; `None` for a
    /// worker past the usable cores (it runs unpinned).
    worker_cores: Vec<Option<usize>>,
    /// Cores named in `workers = [...]` that this process may not run on.
    cores_missing: Vec<usize>,
    /// The most client connections the caps allow, whole process; `None` without a cap.
    connections: Option<u64>,
    /// The most idle upstream connections all pools keep, all workers together.
    pool_idle_total: u64,
    /// Descriptors besides connections: listening sockets, rings, logs.
    fd_slack: u64,
}

impl Plan {
    fn new(config: &Config, facts: &HostFacts) -> Self {
        let allowed = &facts.cpus_allowed;
        let mut cores_missing = Vec::new();
        let worker_cores: Vec<Option<usize>> = match &config.workers {
            Workers::All if allowed.is_empty() => vec![None],
            Workers::All => allowed.iter().copied().map(Some).collect(),
            Workers::Count(count) => (0..*count).map(|index| allowed.get(index).copied()).collect(),
            Workers::Cores(ids) => {
                cores_missing = ids.iter().copied().filter(|id| !allowed.contains(id)).collect();
                ids.iter().map(|id| Some(*id)).collect()
            }
        };
        let workers = worker_cores.len() as u64;
        let limits = &config.limits;
        let process = (limits.connections_max > 0).then_some(u64::from(limits.connections_max));
        let per_worker = (limits.connections_per_worker_max > 0)
            .then(|| u64::from(limits.connections_per_worker_max) * workers);
        let connections = match (process, per_worker) {
            (Some(process), Some(per_worker)) => Some(process.min(per_worker)),
            (process, per_worker) => process.or(per_worker),
        };
        let pool_idle_total = config
            .clusters
            .iter()
            .map(|cluster| cluster.pool_idle_max as u64 * cluster.backends.len() as u64)
            .sum::<u64>()
            * workers;
        let listeners = config.listeners.len() as u64;
        let fd_slack = workers * (listeners + FDS_PER_WORKER) + FDS_PROCESS;
        Self { worker_cores, cores_missing, connections, pool_idle_total, fd_slack }
    }

    fn workers(&self) -> u64 {
        self.worker_cores.len() as u64
    }
}

/// Everything `ringway tune` says about `config` on a host with `facts`. Pure: the same
/// inputs give the same findings, in section order.
pub fn advise(config: &Config, facts: &HostFacts) -> Vec<Finding> {
    let plan = Plan::new(config, facts);
    let mut findings = cores::findings(config, facts, &plan);
    findings.extend(limits::findings(config, facts, &plan));
    findings.extend(sysctls::findings(config, facts, &plan));
    findings.extend(ring::findings(config, facts, &plan));
    findings.extend(limits::memory(config, facts, &plan));
    findings
}

/// A whole `ringway tune` answer: which config, the host facts, and the findings.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config's file name, or "embedded default".
    pub config: String,
    pub host: HostFacts,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Reads the host and advises on `config`.
    pub fn inspect(config_name: &str, config: &Config) -> Self {
        let host = HostFacts::gather();
        let findings = advise(config, &host);
        Self { config: config_name.to_owned(), host, findings }
    }

    /// Plain text, grouped by section, one aligned block per finding.
    pub fn to_text(&self) -> String {
        render::text(self)
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// The smallest power of two at or above `value` (at least 1).
fn power_of_two_at_least(value: u64) -> u64 {
    value.max(1).checked_next_power_of_two().unwrap_or(u64::MAX)
}

/// `16384` as `16 KiB`, `3.5 GiB` and so on.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A CPU list the way the kernel writes one: `0-3,8`.
fn cpus_text(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "unknown".to_owned();
    }
    let mut parts = Vec::new();
    let mut index = 0;
    while index < cpus.len() {
        let start = cpus[index];
        while index + 1 < cpus.len() && cpus[index + 1] == cpus[index] + 1 {
            index += 1;
        }
        let end = cpus[index];
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        index += 1;
    }
    parts.join(",")
}

/// `value`, or "unknown" when it could not be read.
fn or_unknown<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "unknown".to_owned(), |value| value.to_string())
}

#[cfg(test)]
mod tests;
