//! Reads the host for `ringway tune`: cores and NUMA nodes, the CPU quota, memory, resource
//! limits, sysctls, softnet drops and io_uring support.
//!
//! Hands on [`HostFacts`]. A value that cannot be read stays `None` (or empty), so the
//! command runs in any container and says what it could not see instead of failing.

use super::uring::{self, UringFacts};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `ringway tune` learned about the host. `None` means the value could not be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostFacts {
    /// The kernel release, as `uname -r` prints it.
    pub kernel_release: Option<String>,
    pub cpus_online: Vec<usize>,
    /// The cores this process may run on (`sched_getaffinity`): what `workers = "all"` uses.
    pub cpus_allowed: Vec<usize>,
    pub numa_nodes: Vec<NumaNode>,
    /// The cgroup v2 CPU quota in CPUs (`cpu.max` quota / period); `None` when unlimited.
    pub cpu_quota: Option<f64>,
    /// Physical memory, or the cgroup's `memory.max` when that is smaller.
    pub memory_bytes: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub nofile: Option<Rlimit>,
    /// `RLIMIT_MEMLOCK`.
    pub memlock: Option<Rlimit>,
    pub sysctls: Sysctls,
    /// Packets dropped because a CPU's input backlog was full, all CPUs, since boot
    /// (the second column of `/proc/net/softnet_stat`).
    pub softnet_dropped: Option<u64>,
    pub io_uring: UringFacts,
}

/// One NUMA node and its CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    pub id: usize,
    pub cpus: Vec<usize>,
}

/// A resource limit; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The sysctls that bound a proxy, as read from `/proc/sys`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sysctls {
    #[serde(rename = "fs.nr_open")]
    pub nr_open: Option<u64>,
    #[serde(rename = "fs.file-max")]
    pub file_max: Option<u64>,
    #[serde(rename = "net.core.somaxconn")]
    pub somaxconn: Option<u64>,
    #[serde(rename = "net.ipv4.tcp_max_syn_backlog")]
    pub tcp_max_syn_backlog: Option<u64>,
    #[serde(rename = "net.ipv4.tcp_syncookies")]
    pub tcp_syncookies: Option<u64>,
    /// The lowest and highest local port `connect()` picks from.
    #[serde(rename = "net.ipv4.ip_local_port_range")]
    pub ip_local_port_range: Option<(u64, u64)>,
    #[serde(rename = "net.ipv4.tcp_tw_reuse")]
    pub tcp_tw_reuse: Option<u64>,
    #[serde(rename = "net.core.netdev_max_backlog")]
    pub netdev_max_backlog: Option<u64>,
    #[serde(rename = "net.ipv4.tcp_fin_timeout")]
    pub tcp_fin_timeout: Option<u64>,
    /// 0: anyone may create rings; 1: only root and `kernel.io_uring_group`; 2: nobody.
    #[serde(rename = "kernel.io_uring_disabled")]
    pub io_uring_disabled: Option<u64>,
}

impl HostFacts {
    /// Reads everything; sets up two small io_uring instances to probe features.
    pub fn gather() -> Self {
        Self {
            kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
            cpus_online: read_trimmed("/sys/devices/system/cpu/online")
                .and_then(|text| parse_cpu_list(&text))
                .unwrap_or_default(),
            cpus_allowed: allowed_cpus(),
            numa_nodes: numa_nodes(),
            cpu_quota: cpu_quota(),
            memory_bytes: memory_bytes(),
            nofile: rlimit(Resource::Nofile),
            memlock: rlimit(Resource::Memlock),
            sysctls: Sysctls::read(),
            softnet_dropped: std::fs::read_to_string("/proc/net/softnet_stat")
                .ok()
                .map(|text| parse_softnet_dropped(&text)),
            io_uring: uring::probe(),
        }
    }

    /// The kernel's major and minor version, from the release string.
    pub fn kernel_version(&self) -> Option<(u32, u32)> {
        self.kernel_release.as_deref().and_then(parse_kernel_version)
    }
}

impl Sysctls {
    fn read() -> Self {
        Self {
            nr_open: sysctl_u64("fs.nr_open"),
            file_max: sysctl_u64("fs.file-max"),
            somaxconn: sysctl_u64("net.core.somaxconn"),
            tcp_max_syn_backlog: sysctl_u64("net.ipv4.tcp_max_syn_backlog"),
            tcp_syncookies: sysctl_u64("net.ipv4.tcp_syncookies"),
            ip_local_port_range: sysctl("net.ipv4.ip_local_port_range").and_then(|text| {
                let mut parts = text.split_whitespace().map(str::parse::<u64>);
                Some((parts.next()?.ok()?, parts.next()?.ok()?))
            }),
            tcp_tw_reuse: sysctl_u64("net.ipv4.tcp_tw_reuse"),
            netdev_max_backlog: sysctl_u64("net.core.netdev_max_backlog"),
            tcp_fin_timeout: sysctl_u64("net.ipv4.tcp_fin_timeout"),
            io_uring_disabled: sysctl_u64("kernel.io_uring_disabled"),
        }
    }
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|text| text.trim().to_owned())
}

/// A sysctl by its dotted name, read from `/proc/sys`.
fn sysctl(name: &str) -> Option<String> {
    read_trimmed(format!("/proc/sys/{}", name.replace('.', "/")))
}

fn sysctl_u64(name: &str) -> Option<u64> {
    sysctl(name)?.parse().ok()
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (first.parse().ok()?, last.parse::<usize>().ok()?);
                cpus.extend(first..=last);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// `6.8.0-45-generic` is (6, 8).
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Sums the dropped column (the second, in hex) of `/proc/net/softnet_stat`.
pub fn parse_softnet_dropped(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|column| u64::from_str_radix(column, 16).ok())
        .sum()
}

/// The cores `core_affinity` (and so the runtime) sees: the process's affinity mask.
fn allowed_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> =
        core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|core| core.id).collect();
    cpus.sort_unstable();
    cpus
}

fn numa_nodes() -> Vec<NumaNode> {
    let Ok(entries) = std::fs::read_dir("/sys/devices/system/node") else { return Vec::new() };
    let mut nodes: Vec<NumaNode> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let id = name.strip_prefix("node")?.parse().ok()?;
            let cpus = parse_cpu_list(&read_trimmed(entry.path().join("cpulist"))?)?;
            Some(NumaNode { id, cpus })
        })
        .collect();
    nodes.sort_by_key(|node| node.id);
    nodes
}

/// `file` in this process's cgroup v2 folder and in each parent up to the root: a limit
/// set on a parent binds too.
fn cgroup_files(file: &str) -> Vec<String> {
    let Some(cgroup) = std::fs::read_to_string("/proc/self/cgroup").ok() else {
        return Vec::new();
    };
    let Some(path) = cgroup.lines().find_map(|line| line.strip_prefix("0::")) else {
        return Vec::new();
    };
    let mut dir = PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let mut values = Vec::new();
    loop {
        if let Some(value) = read_trimmed(dir.join(file)) {
            values.push(value);
        }
        if dir == Path::new("/sys/fs/cgroup") || !dir.pop() {
            return values;
        }
    }
}

/// The smallest cgroup v2 CPU quota on the way to the root, in CPUs.
fn cpu_quota() -> Option<f64> {
    cgroup_files("cpu.max").iter().filter_map(|text| parse_cpu_max(text)).reduce(f64::min)
}

/// `200000 100000` is 2 CPUs; `max 100000` is no quota.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (period > 0.0).then_some(quota / period)
}

/// MemTotal, or a smaller cgroup `memory.max`.
fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let total = meminfo.as_deref().and_then(|text| {
        let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let cgroup = cgroup_files("memory.max").iter().filter_map(|text| text.parse().ok()).min();
    match (total, cgroup) {
        (Some(total), Some(cgroup)) => Some(total.min(cgroup)),
        (total, cgroup) => total.or(cgroup),
    }
}

#[derive(Debug, Clone, Copy)]
enum Resource {
    Nofile,
    Memlock,
}

#[expect(unsafe_code, reason = "getrlimit has no safe wrapper in std or libc")]
fn rlimit(resource: Resource) -> Option<Rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live, writable `rlimit` for the whole call, and getrlimit
    // writes nothing else.
    let status = unsafe {
        match resource {
            Resource::Nofile => libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            Resource::Memlock => libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit),
        }
    };
    let finite = |value: libc::rlim_t| (value != libc::RLIM_INFINITY).then_some(value);
    (status == 0).then(|| Rlimit { soft: finite(limit.rlim_cur), hard: finite(limit.rlim_max) })
}
