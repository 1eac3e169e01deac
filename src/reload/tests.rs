//! What a reload keeps, reports and changes, on config values alone.

use super::*;

fn parse(text: &str) -> Config {
    Config::parse(text).expect("config")
}

const OLD: &str = r#"
workers = 2
[[listener]]
name = "a"
addr = "127.0.0.1:18001"
[[listener.route]]
cluster = "x"
[[listener]]
name = "b"
addr = "127.0.0.1:18002"
[[listener.route]]
cluster = "x"
[cluster.x]
backends = ["127.0.0.1:1", "127.0.0.1:2", { addr = "127.0.0.1:3", state = "draining" }]
"#;

#[test]
fn restart_only_settings_keep_their_running_values_and_are_reported() {
    let old = parse(OLD);
    let new = parse(&OLD.replace("workers = 2", "workers = 3\n[io]\nring_entries = 512"));
    let prepared = prepare(&old, new, |_, _| None);
    assert_eq!(prepared.config.workers, old.workers);
    assert_eq!(prepared.config.io.ring_entries, old.io.ring_entries);
    assert_eq!(
        prepared.needs_restart,
        vec![
            "workers: needs restart; the running value stays".to_owned(),
            "io.ring_entries: needs restart; the running value stays".to_owned(),
        ]
    );
    assert!(prepared.added.is_empty() && prepared.removed.is_empty());
}

#[test]
fn runtime_backend_states_stay_unless_the_file_sets_one() {
    let old = parse(OLD);
    let new = parse(OLD);
    // The admin API drained :1 and enabled :3; the file sets :3 draining again.
    let prepared = prepare(&old, new, |cluster, backend| {
        assert_eq!(cluster, "x");
        match backend {
            "127.0.0.1:1" => Some(BackendState::Draining),
            _ => Some(BackendState::Active),
        }
    });
    let states: Vec<BackendState> =
        prepared.config.clusters[0].backends.iter().map(|backend| backend.state).collect();
    assert_eq!(states, [BackendState::Draining, BackendState::Active, BackendState::Draining]);
}

#[test]
fn listeners_are_kept_by_name_and_address() {
    let old = parse(OLD);
    let text = OLD.replace("18002", "18003").replace("name = \"a\"", "name = \"c\"");
    let prepared = prepare(&old, parse(&text), |_, _| None);
    assert_eq!(prepared.added, vec![0, 1]);
    assert_eq!(prepared.removed, vec!["a".to_owned(), "b".to_owned()]);
    let prepared = prepare(&old, parse(OLD), |_, _| None);
    assert!(prepared.added.is_empty() && prepared.removed.is_empty());
}

#[test]
fn the_hash_names_the_file() {
    assert_eq!(file_hash("a"), "ca978112ca1bbdca");
    assert_ne!(file_hash("a"), file_hash("b"));
}
