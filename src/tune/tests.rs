//! Unit tests of the tune rules: made-up host facts and small configs in, findings out.

use super::*;

/// A config made from a template: each field replaces its placeholder.
struct Toml {
    workers: &'static str,
    io: &'static str,
    limits: &'static str,
    backlog: u32,
    pool_idle_max: u32,
    backends: &'static str,
}

impl Default for Toml {
    fn default() -> Self {
        Self {
            workers: "4",
            io: "",
            limits: "connections_max = 1000",
            backlog: 1024,
            pool_idle_max: 32,
            backends: r#""10.0.0.11:8080", "10.0.0.12:8080""#,
        }
    }
}

impl Toml {
    fn parse(&self) -> Config {
        let text = format!(
            "workers = {}\n[io]\n{}\n[limits]\n{}\n[[listener]]\nname = \"public\"\n\
             addr = \"0.0.0.0:8080\"\nbacklog = {}\n[[listener.route]]\ncluster = \"api\"\n\
             [cluster.api]\nbackends = [{}]\npool_idle_max = {}\n",
            self.workers, self.io, self.limits, self.backlog, self.backends, self.pool_idle_max
        );
        Config::parse(&text).unwrap_or_else(|errors| panic!("{errors}\n{text}"))
    }
}

/// A well-tuned host: 4 cores, one node, high limits, a modern kernel with io_uring.
fn host() -> HostFacts {
    HostFacts {
        kernel_release: Some("6.8.0-45-generic".to_owned()),
        cpus_online: vec![0, 1, 2, 3],
        cpus_allowed: vec![0, 1, 2, 3],
        numa_nodes: vec![NumaNode { id: 0, cpus: vec![0, 1, 2, 3] }],
        cpu_quota: None,
        memory_bytes: Some(16 << 30),
        nofile: Some(Rlimit { soft: Some(1 << 20), hard: Some(1 << 20) }),
        memlock: Some(Rlimit { soft: Some(8 << 20), hard: Some(8 << 20) }),
        sysctls: Sysctls {
            nr_open: Some(1 << 20),
            file_max: Some(1 << 40),
            somaxconn: Some(4096),
            tcp_max_syn_backlog: Some(4096),
            tcp_syncookies: Some(1),
            ip_local_port_range: Some((1024, 65535)),
            tcp_tw_reuse: Some(1),
            netdev_max_backlog: Some(1000),
            tcp_fin_timeout: Some(60),
            io_uring_disabled: Some(0),
        },
        softnet_dropped: Some(0),
        io_uring: UringFacts {
            features: vec!["nodrop", "fast_poll"],
            opcodes: OPCODES_REQUIRED.iter().map(|(name, _)| *name).collect(),
            ..UringFacts::default()
        },
    }
}

/// The one finding about `topic`.
fn finding<'a>(findings: &'a [Finding], topic: &str) -> &'a Finding {
    let mut matching = findings.iter().filter(|finding| finding.topic.starts_with(topic));
    let first = matching.next().unwrap_or_else(|| panic!("no finding on {topic}"));
    assert!(matching.next().is_none(), "two findings on {topic}");
    first
}

fn has_set(finding: &Finding, line: &str) -> bool {
    finding.set.iter().any(|set| set.starts_with(line))
}

#[test]
fn a_tuned_host_and_a_capped_config_give_only_ok() {
    let findings = advise(&Toml::default().parse(), &host());
    let loud: Vec<_> = findings.iter().filter(|finding| finding.level != Level::Ok).collect();
    assert!(loud.is_empty(), "{loud:#?}");
    for section in Section::ALL {
        assert!(findings.iter().any(|finding| finding.section == section), "{section:?}");
    }
}

#[test]
fn every_finding_says_what_it_found_and_why_and_a_warning_what_to_set() {
    let mut facts = host();
    facts.nofile = Some(Rlimit { soft: Some(1024), hard: Some(4096) });
    facts.sysctls.somaxconn = Some(128);
    facts.io_uring.setup_error = Some("Operation not permitted".to_owned());
    let config = Toml { workers: "8", io: "driver = \"io_uring\"", ..Toml::default() }.parse();
    for finding in advise(&config, &facts) {
        assert!(!finding.found.is_empty() && !finding.why.is_empty(), "{finding:#?}");
        if finding.level == Level::Warn {
            assert!(!finding.set.is_empty(), "a warning without a remedy: {finding:#?}");
        }
    }
}

#[test]
fn somaxconn_below_the_backlog_advises_the_sysctl() {
    let mut facts = host();
    facts.sysctls.somaxconn = Some(128);
    let findings = advise(&Toml::default().parse(), &facts);
    let somaxconn = finding(&findings, "net.core.somaxconn");
    assert_eq!(somaxconn.level, Level::Advise);
    assert!(has_set(somaxconn, "sysctl -w net.core.somaxconn=1024"), "{somaxconn:#?}");
    assert!(somaxconn.why.contains("512 connections"), "4 workers x 128: {}", somaxconn.why);
}

#[test]
fn nofile_below_the_connection_cap_warns_with_ulimit_and_systemd_lines() {
    let mut facts = host();
    facts.nofile = Some(Rlimit { soft: Some(1024), hard: Some(1 << 20) });
    let config = Toml { limits: "connections_max = 10000", ..Toml::default() }.parse();
    let findings = advise(&config, &facts);
    let nofile = finding(&findings, "nofile");
    assert_eq!(nofile.level, Level::Warn);
    assert!(nofile.found.contains("2 x 10000 connections"), "{}", nofile.found);
    assert!(has_set(nofile, "ulimit -n 65536"), "{nofile:#?}");
    assert!(has_set(nofile, "LimitNOFILE=65536"), "{nofile:#?}");
    assert!(!has_set(nofile, "sysctl -w fs.nr_open"), "nr_open is high enough");
}

#[test]
fn nofile_past_nr_open_raises_nr_open_first() {
    let mut facts = host();
    facts.nofile = Some(Rlimit { soft: Some(1024), hard: Some(1024) });
    facts.sysctls.nr_open = Some(1 << 17);
    let config = Toml { limits: "connections_max = 100000", ..Toml::default() }.parse();
    let nofile = finding(&advise(&config, &facts), "nofile").clone();
    assert_eq!(nofile.set[0], "sysctl -w fs.nr_open=262144");
    assert!(has_set(&nofile, "ulimit -n 262144"), "{nofile:#?}");
    assert!(has_set(&nofile, "echo '* - nofile 262144'"), "the hard limit is 1024: {nofile:#?}");
}

#[test]
fn nofile_without_a_cap_advises_a_cap_below_half_the_limit() {
    let mut facts = host();
    facts.nofile = Some(Rlimit { soft: Some(1024), hard: Some(4096) });
    let config = Toml { limits: "", ..Toml::default() }.parse();
    let nofile = finding(&advise(&config, &facts), "nofile").clone();
    assert_eq!(nofile.level, Level::Advise);
    let cap = nofile.set.iter().find(|line| line.starts_with("connections_max = ")).unwrap();
    let cap: u64 = cap.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(cap > 0 && 2 * cap < 1024, "{cap}");
}

#[test]
fn more_workers_than_cores_warns() {
    let findings = advise(&Toml { workers: "8", ..Toml::default() }.parse(), &host());
    let workers = finding(&findings, "workers");
    assert_eq!(workers.level, Level::Warn);
    assert!(has_set(workers, "workers = 4"), "{workers:#?}");
}

#[test]
fn cores_outside_the_affinity_mask_warn_that_startup_fails() {
    let findings = advise(&Toml { workers: "[0, 5]", ..Toml::default() }.parse(), &host());
    let workers = finding(&findings, "workers");
    assert_eq!(workers.level, Level::Warn);
    assert!(workers.why.contains("refuses to start"), "{}", workers.why);
}

#[test]
fn a_cpu_quota_below_the_workers_warns() {
    let mut facts = host();
    facts.cpu_quota = Some(1.5);
    let findings = advise(&Toml { workers: "\"all\"", ..Toml::default() }.parse(), &facts);
    let quota = finding(&findings, "cgroup CPU quota");
    assert_eq!(quota.level, Level::Warn);
    assert!(has_set(quota, "workers = 1"), "{quota:#?}");
}

#[test]
fn workers_across_numa_nodes_advise_one_instance_per_node() {
    let mut facts = host();
    facts.numa_nodes =
        vec![NumaNode { id: 0, cpus: vec![0, 1] }, NumaNode { id: 1, cpus: vec![2, 3] }];
    let findings = advise(&Toml::default().parse(), &facts);
    let numa = finding(&findings, "NUMA");
    assert_eq!(numa.level, Level::Advise);
    assert!(has_set(numa, "workers = [2, 3]"), "{numa:#?}");
    let two = advise(&Toml { workers: "2", ..Toml::default() }.parse(), &facts);
    assert_eq!(finding(&two, "NUMA").level, Level::Ok, "the first two cores are on node 0");
}

#[test]
fn memlock_matters_only_before_5_12() {
    let mut facts = host();
    facts.memlock = Some(Rlimit { soft: Some(64 << 10), hard: Some(64 << 10) });
    let config = Toml::default().parse();
    assert_eq!(finding(&advise(&config, &facts), "memlock").level, Level::Ok);
    facts.kernel_release = Some("5.10.0-28-amd64".to_owned());
    let memlock = finding(&advise(&config, &facts), "memlock").clone();
    assert_eq!(memlock.level, Level::Warn);
    assert!(has_set(&memlock, "LimitMEMLOCK=infinity"), "{memlock:#?}");
    facts.memlock = Some(Rlimit { soft: None, hard: None });
    assert_eq!(finding(&advise(&config, &facts), "memlock").level, Level::Ok);
}

#[test]
fn the_driver_follows_whether_rings_can_be_set_up() {
    let mut facts = host();
    let epoll = Toml { io: "driver = \"epoll\"", ..Toml::default() }.parse();
    assert_eq!(finding(&advise(&epoll, &facts), "io.driver").level, Level::Advise);
    facts.io_uring.setup_error = Some("Operation not permitted".to_owned());
    facts.sysctls.io_uring_disabled = Some(2);
    let auto = finding(&advise(&Toml::default().parse(), &facts), "io.driver").clone();
    assert_eq!(auto.level, Level::Advise);
    assert!(has_set(&auto, "sysctl -w kernel.io_uring_disabled=0"), "{auto:#?}");
    let uring = Toml { io: "driver = \"io_uring\"", ..Toml::default() }.parse();
    let forced = finding(&advise(&uring, &facts), "io.driver").clone();
    assert_eq!(forced.level, Level::Warn);
    assert!(has_set(&forced, "driver = \"auto\""), "{forced:#?}");
    assert_eq!(finding(&advise(&epoll, &facts), "io.driver").level, Level::Ok);
}

#[test]
fn a_missing_runtime_opcode_means_no_io_uring() {
    let mut facts = host();
    facts.io_uring.opcodes.retain(|name| *name != "provide_buffers");
    facts.io_uring.opcodes_missing.push("provide_buffers");
    let driver = finding(&advise(&Toml::default().parse(), &facts), "io.driver").clone();
    assert_eq!(driver.level, Level::Advise);
    assert!(driver.found.contains("lack provide_buffers"), "{}", driver.found);
}

#[test]
fn ring_entries_grow_with_connections_per_worker() {
    let config = Toml { limits: "connections_max = 20000", ..Toml::default() }.parse();
    let entries = finding(&advise(&config, &host()), "io.ring_entries").clone();
    assert_eq!(entries.level, Level::Advise);
    assert!(has_set(&entries, "ring_entries = 8192"), "5000 a worker: {entries:#?}");
    let odd = Toml { io: "ring_entries = 1000", ..Toml::default() }.parse();
    let odd = finding(&advise(&odd, &host()), "io.ring_entries").clone();
    assert!(has_set(&odd, "ring_entries = 1024"), "{odd:#?}");
    let huge = Toml { limits: "connections_max = 1000000", ..Toml::default() }.parse();
    let huge = finding(&advise(&huge, &host()), "io.ring_entries").clone();
    assert!(has_set(&huge, "ring_entries = 32768"), "capped: {huge:#?}");
}

#[test]
fn pools_larger_than_the_port_range_warn() {
    let mut facts = host();
    facts.sysctls.ip_local_port_range = Some((60000, 60999));
    let config = Toml { pool_idle_max: 512, ..Toml::default() }.parse();
    let ports = finding(&advise(&config, &facts), "net.ipv4.ip_local_port_range").clone();
    assert_eq!(ports.level, Level::Warn, "4 x 512 idle > 1000 ports");
    assert!(has_set(&ports, "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\""));
    let file_line = "echo 'net.ipv4.ip_local_port_range = 1024 65535' >> /etc/sysctl.d/";
    assert!(has_set(&ports, file_line), "{ports:#?}");
}

#[test]
fn tw_reuse_2_is_enough_for_loopback_backends_only() {
    let mut facts = host();
    facts.sysctls.tcp_tw_reuse = Some(2);
    let remote =
        finding(&advise(&Toml::default().parse(), &facts), "net.ipv4.tcp_tw_reuse").clone();
    assert_eq!(remote.level, Level::Advise);
    assert!(has_set(&remote, "sysctl -w net.ipv4.tcp_tw_reuse=1"));
    let local = Toml { backends: r#""127.0.0.1:9001""#, ..Toml::default() }.parse();
    assert_eq!(finding(&advise(&local, &facts), "net.ipv4.tcp_tw_reuse").level, Level::Ok);
}

#[test]
fn syn_backlog_matters_only_without_syncookies() {
    let mut facts = host();
    facts.sysctls.tcp_max_syn_backlog = Some(128);
    let config = Toml::default().parse();
    assert_eq!(finding(&advise(&config, &facts), "net.ipv4.tcp_max").level, Level::Ok);
    facts.sysctls.tcp_syncookies = Some(0);
    assert_eq!(finding(&advise(&config, &facts), "net.ipv4.tcp_max").level, Level::Advise);
}

#[test]
fn softnet_drops_advise_a_larger_netdev_backlog() {
    let mut facts = host();
    facts.softnet_dropped = Some(42);
    let netdev = finding(&advise(&Toml::default().parse(), &facts), "net.core.netdev").clone();
    assert_eq!(netdev.level, Level::Advise);
    assert!(has_set(&netdev, "sysctl -w net.core.netdev_max_backlog=16384"));
}

#[test]
fn buffers_past_half_of_memory_warn() {
    let mut facts = host();
    facts.memory_bytes = Some(1 << 30);
    let config = Toml { limits: "connections_max = 100000", ..Toml::default() }.parse();
    let buffers = finding(&advise(&config, &facts), "io.buffer_bytes").clone();
    assert_eq!(buffers.level, Level::Warn, "2 x 16 KiB x 100000 = 3 GiB: {buffers:#?}");
    assert!(has_set(&buffers, "connections_max = 8192"), "{buffers:#?}");
}

#[test]
fn parsers_read_kernel_formats() {
    assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
    assert_eq!(parse_cpu_list(""), Some(vec![]));
    assert_eq!(parse_cpu_list("0-x"), None);
    assert_eq!(parse_kernel_version("6.8.0-45-generic"), Some((6, 8)));
    assert_eq!(parse_kernel_version("5.10"), Some((5, 10)));
    assert_eq!(parse_cpu_max("max 100000"), None);
    assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
    let softnet = "0000a 00000002 00000000\n0000b 00000010 00000000\n";
    assert_eq!(parse_softnet_dropped(softnet), 18);
    assert_eq!(cpus_text(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
    assert_eq!(bytes_text(16384), "16 KiB");
    assert_eq!(bytes_text(1536), "1.5 KiB");
}

#[test]
fn the_report_renders_as_text_and_as_json() {
    let config = Toml::default().parse();
    let host = host();
    let report = Report { config: "test".to_owned(), findings: advise(&config, &host), host };
    let text = report.to_text();
    for section in ["== cores ==", "== limits ==", "== sysctls ==", "== io_uring =="] {
        assert!(text.contains(section), "{text}");
    }
    assert!(text.lines().all(|line| line.len() <= 100), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["host"]["sysctls"]["net.core.somaxconn"], 4096);
    assert_eq!(json["findings"][0]["level"], "OK");
}
