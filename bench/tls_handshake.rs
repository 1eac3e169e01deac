//! Server-side cost of one full TLS handshake (ECDSA P-256, no resumption) for each rustls
//! crypto provider, TLS 1.3 and 1.2, in memory: the client is the same (ring) in every case
//! and only the server's own calls are timed. This picks the default provider.
//!
//! Also the server's cost of a resumed TLS 1.3 handshake (ticket), per provider.
//!
//! On a shared, noisy machine the times drift; instruction counts do not. With
//! `TLS_HANDSHAKES=N` (and `TLS_PROVIDER=aws-lc-rs|ring`, `TLS_VERSION=1.3|1.2`) the binary
//! runs N full handshakes without criterion, for `valgrind --tool=callgrind`:
//! `perf/tls_provider.sh` runs it for N = 0 and N = 200 and reports the difference.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use ringway::tls::server::{CertificateFiles, ClientAuth, Provider, ServerSettings, ServerTls};
use rustls::{ClientConfig, ClientConnection, ServerConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes an ECDSA P-256 CA and leaf for `bench.test` into a temp directory.
fn certificates() -> (std::path::PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("ringway-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let params = rcgen::CertificateParams::new(vec!["bench.test".to_owned()]).expect("leaf");
    let leaf = params.signed_by(&key, &ca).expect("sign");
    std::fs::write(dir.join("leaf.pem"), leaf.pem()).expect("write leaf");
    std::fs::write(dir.join("leaf.key"), key.serialize_pem()).expect("write key");
    (dir, ca.der().to_vec())
}

fn server(dir: &std::path::Path, provider: Provider, version: &'static str) -> ServerTls {
    let versions = match version {
        "1.2" => vec![&rustls::version::TLS12],
        _ => vec![&rustls::version::TLS13],
    };
    let settings = ServerSettings {
        at: "bench".to_owned(),
        certificates: vec![CertificateFiles {
            cert: dir.join("leaf.pem"),
            key: dir.join("leaf.key"),
            names: Vec::new(),
            ocsp: None,
        }],
        versions,
        cipher_suites: Vec::new(),
        provider,
        client_auth: ClientAuth::Off,
        client_ca: None,
        session_cache_entries: 1000,
        session_tickets: true,
        alpn: vec![b"http/1.1".to_vec()],
    };
    ServerTls::load(settings).expect("server TLS")
}

fn client(ca: &[u8], resume: bool) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca.to_vec())).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// One handshake in memory; returns the time spent in the server's calls.
fn handshake(server: &Arc<rustls::ServerConfig>, client: &Arc<ClientConfig>) -> Duration {
    let name = rustls::pki_types::ServerName::try_from("bench.test").expect("name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client");
    let mut spent = Duration::ZERO;
    let started = Instant::now();
    let mut s = ServerConnection::new(server.clone()).expect("server");
    spent += started.elapsed();
    let mut wire = Vec::new();
    while c.is_handshaking() || s.is_handshaking() || c.wants_write() || s.wants_write() {
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire).expect("client write");
        }
        let started = Instant::now();
        if !wire.is_empty() {
            s.read_tls(&mut wire.as_slice()).expect("server read");
            s.process_new_packets().expect("server process");
        }
        wire.clear();
        while s.wants_write() {
            s.write_tls(&mut wire).expect("server write");
        }
        spent += started.elapsed();
        if !wire.is_empty() {
            c.read_tls(&mut wire.as_slice()).expect("client read");
            c.process_new_packets().expect("client process");
        } else if !c.wants_write() {
            break;
        }
    }
    spent
}

fn bench(criterion: &mut Criterion) {
    let (dir, ca) = certificates();
    let mut group = criterion.benchmark_group("tls_server_handshake");
    group.throughput(Throughput::Elements(1));
    for (provider_name, provider) in [("aws-lc-rs", Provider::AwsLcRs), ("ring", Provider::Ring)] {
        for version in ["1.3", "1.2"] {
            let config = server(&dir, provider, version).for_worker();
            let full = client(&ca, false);
            let id = BenchmarkId::new(format!("full_tls{version}"), provider_name);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| handshake(&config, &full)).sum());
            });
        }
        let config = server(&dir, provider, "1.3").for_worker();
        let resuming = client(&ca, true);
        handshake(&config, &resuming);
        let id = BenchmarkId::new("resumed_tls1.3", provider_name);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| handshake(&config, &resuming)).sum());
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `TLS_HANDSHAKES=N` mode: N full handshakes, nothing else.
fn count_mode(count: &str) {
    let count: u32 = count.parse().expect("TLS_HANDSHAKES is a count");
    let provider = match std::env::var("TLS_PROVIDER").as_deref() {
        Ok("ring") => Provider::Ring,
        _ => Provider::AwsLcRs,
    };
    let version = if std::env::var("TLS_VERSION").as_deref() == Ok("1.2") { "1.2" } else { "1.3" };
    let (dir, ca) = certificates();
    let config = server(&dir, provider, version).for_worker();
    let full = client(&ca, false);
    let spent: Duration = (0..count).map(|_| handshake(&config, &full)).sum();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::hint::black_box(spent);
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(count) = std::env::var("TLS_HANDSHAKES") {
        count_mode(&count);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
