//! TLS termination with the real clients `curl` and `openssl s_client` (installed by
//! `.ci/run`): certificates by SNI, TLS 1.2 and 1.3, resumption, client certificates, the
//! HTTP to HTTPS redirect, HSTS and X-Forwarded-Proto, broken handshakes, certificate
//! reload under load, and config errors that name their key. Origination is in
//! `tls_upstream.rs`.

use crate::support::admin;
use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::pki::{Leaf, Pki, toml_path};
use crate::support::{Driver, ProxyHandle, WAIT, on_both_drivers, preamble, start_proxy};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

on_both_drivers!(
    sni_chooses_among_three_names_and_a_default,
    tls12_and_tls13_and_version_limits,
    sessions_resume_by_ticket_and_by_id,
    client_certificates_are_required_when_configured,
    http_redirects_to_https,
    proxied_requests_see_https_and_get_hsts,
    broken_handshakes_do_not_disturb_others,
    certificates_reload_under_load_without_failures,
    ocsp_response_is_stapled,
    sighup_reloads_certificates_in_the_binary,
    server_cipher_suite_order_wins,
    certificate_fits_the_client_signature_schemes,
);

/// `[listener.tls]` lines for `leaves`, the first being the default.
fn tls_table(leaves: &[&Leaf], extra: &str) -> String {
    let entries: Vec<String> = leaves
        .iter()
        .map(|leaf| {
            format!("{{ cert = {}, key = {} }}", toml_path(&leaf.cert), toml_path(&leaf.key))
        })
        .collect();
    format!("[listener.tls]\ncertificates = [{}]\n{extra}\n", entries.join(", "))
}

/// One TLS listener answering `hello` itself.
fn respond_config(driver: Driver, tls: &str) -> String {
    format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n{tls}\n[[listener.route]]\n\
         respond = {{ status = 200, body = \"hello\" }}\n",
        preamble(driver, 1)
    )
}

/// curl over https to `name` (resolved to the proxy), trusting `ca`.
fn curl_https(proxy: SocketAddr, name: &str, ca: &Pki, args: &[&str]) -> Output {
    let port = proxy.port();
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .args(["--cacert", ca.ca().to_str().expect("UTF-8 path")])
        .args(args)
        .arg(format!("https://{name}:{port}/"))
        .output()
        .expect("run curl (.ci/run installs it)")
}

/// `openssl s_client` against `proxy` with `args`, sending `input`; stdout and stderr.
fn s_client(proxy: SocketAddr, args: &[&str], input: &str) -> String {
    let output = crate::support::process::s_client(proxy, args, input.as_bytes());
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const GET_CLOSE: &str = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";

fn sni_chooses_among_three_names_and_a_default(driver: Driver) {
    let pki = Pki::new("sni CA");
    let default = pki.leaf("default", "default.test", &["default.test"]);
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let b = pki.rsa_leaf("b", "b.test", &["b.test"]);
    let wild = pki.leaf("wild", "wild.test", &["*.wild.test"]);
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&default, &a, &b, &wild], "")));
    // curl verifies the name, so success proves the right certificate was chosen.
    for name in ["a.test", "b.test", "x.wild.test", "default.test"] {
        let output = curl_https(proxy.addr(), name, &pki, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        assert_eq!(output.stdout, b"hello", "{name}");
    }
    for (args, expected) in [
        (&["-servername", "b.test"][..], "CN = b.test"),
        (&["-servername", "unknown.test"][..], "CN = default.test"),
        (&["-noservername"][..], "CN = default.test"),
    ] {
        let text = s_client(proxy.addr(), args, GET_CLOSE);
        assert!(
            text.contains(&format!("subject={}", expected.replace(" = ", "=")))
                || text.contains(&format!("s:{expected}")),
            "{args:?}: {text}"
        );
        assert!(text.contains("hello"), "{args:?}: {text}");
    }
}

fn tls12_and_tls13_and_version_limits(driver: Driver) {
    let pki = Pki::new("versions CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&a], "")));
    let v12 = s_client(proxy.addr(), &["-tls1_2", "-servername", "a.test"], GET_CLOSE);
    assert!(v12.contains("New, TLSv1.2"), "{v12}");
    assert!(v12.contains("hello"), "{v12}");
    let v13 = s_client(proxy.addr(), &["-tls1_3", "-servername", "a.test"], GET_CLOSE);
    assert!(v13.contains("New, TLSv1.3"), "{v13}");
    assert!(v13.contains("hello"), "{v13}");
    drop(proxy);

    let only13 = tls_table(&[&a], "versions = [\"1.3\"]");
    let proxy = start_proxy(&respond_config(driver, &only13));
    let refused = s_client(proxy.addr(), &["-tls1_2", "-servername", "a.test"], GET_CLOSE);
    assert!(!refused.contains("hello"), "{refused}");
    assert!(refused.contains("alert") || refused.contains("Cipher is (NONE)"), "{refused}");
    let v13 = s_client(proxy.addr(), &["-tls1_3", "-servername", "a.test"], GET_CLOSE);
    assert!(v13.contains("hello"), "{v13}");
    drop(proxy);

    // One configured suite is the one negotiated; this listener's ALPN offers http/1.1
    // alone (the default offers h2 first: tests/it/http2.rs).
    let extra = "cipher_suites = [\"TLS13_CHACHA20_POLY1305_SHA256\"]\nalpn = [\"http/1.1\"]";
    let one_suite = tls_table(&[&a], extra);
    let proxy = start_proxy(&respond_config(driver, &one_suite));
    let args = ["-tls1_3", "-servername", "a.test", "-alpn", "h2,http/1.1"];
    let text = s_client(proxy.addr(), &args, GET_CLOSE);
    assert!(text.contains("Cipher is TLS_CHACHA20_POLY1305_SHA256"), "{text}");
    assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
    assert!(text.contains("hello"), "{text}");
}

fn sessions_resume_by_ticket_and_by_id(driver: Driver) {
    let pki = Pki::new("resumption CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&a], "")));
    for (label, version) in
        [("ticket 1.3", &["-tls1_3"][..]), ("id 1.2", &["-tls1_2", "-no_ticket"])]
    {
        let session = pki.path(&format!("session-{}.pem", label.replace([' ', '.'], "-")));
        let session = session.to_str().expect("UTF-8 path");
        let mut args = vec!["-servername", "a.test", "-sess_out", session];
        args.extend_from_slice(version);
        let first = s_client(proxy.addr(), &args, GET_CLOSE);
        assert!(first.contains("New, TLSv1."), "{label} first: {first}");
        let mut args = vec!["-servername", "a.test", "-sess_in", session];
        args.extend_from_slice(version);
        let second = s_client(proxy.addr(), &args, GET_CLOSE);
        assert!(second.contains("Reused, TLSv1."), "{label} second: {second}");
        assert!(second.contains("hello"), "{label}: {second}");
    }
}

fn client_certificates_are_required_when_configured(driver: Driver) {
    let pki = Pki::new("mtls CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let client = pki.leaf("client", "client one", &["client.test"]);
    let stranger_pki = Pki::new("other CA");
    let stranger = stranger_pki.leaf("stranger", "stranger", &["stranger.test"]);
    let ca = toml_path(&pki.ca());
    let proxy =
        start_proxy(&respond_config(driver, &tls_table(&[&a], &format!("client_ca = {ca}"))));
    let path = |path: &std::path::Path| path.to_str().expect("UTF-8 path").to_owned();
    let with_cert = curl_https(
        proxy.addr(),
        "a.test",
        &pki,
        &["--cert", &path(&client.cert), "--key", &path(&client.key)],
    );
    assert!(with_cert.status.success(), "{}", String::from_utf8_lossy(&with_cert.stderr));
    assert_eq!(with_cert.stdout, b"hello");
    let without = curl_https(proxy.addr(), "a.test", &pki, &[]);
    assert!(!without.status.success(), "no client certificate must be refused");
    assert!(without.stdout.is_empty());
    let wrong = curl_https(
        proxy.addr(),
        "a.test",
        &pki,
        &["--cert", &path(&stranger.cert), "--key", &path(&stranger.key)],
    );
    assert!(!wrong.status.success(), "a certificate from another CA must be refused");
    assert!(wrong.stdout.is_empty());
}

fn http_redirects_to_https(driver: Driver) {
    let config = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\n\
         redirect_https = {{ port = 8443 }}\n",
        preamble(driver, 1)
    );
    let proxy = start_proxy(&config);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /a/b?x=1 HTTP/1.1\r\nHost: shop.test:8080\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location"), Some("https://shop.test:8443/a/b?x=1"));
    // Keep-alive survives a redirect.
    client.send(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n");
    assert_eq!(client.response().header("location"), Some("https://shop.test:8443/"));
    client.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400, "no Host: nowhere to redirect to");
}

fn proxied_requests_see_https_and_get_hsts(driver: Driver) {
    let pki = Pki::new("hsts CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let origin = Origin::start(|_| origin::ok("from origin"));
    let tls = tls_table(&[&a], "hsts = \"max-age=31536000; includeSubDomains\"");
    let config = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n{tls}\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        origin.addr()
    );
    let proxy = start_proxy(&config);
    let output = curl_https(proxy.addr(), "a.test", &pki, &["--include"]);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("from origin"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{text}"
    );
    assert_eq!(origin.next_request().header("x-forwarded-proto"), Some("https"));
}

fn broken_handshakes_do_not_disturb_others(driver: Driver) {
    let pki = Pki::new("broken CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&a], "")));
    // A client that stalls half-way through its ClientHello, held open meanwhile.
    let mut stalled = TcpStream::connect(proxy.addr()).expect("connect");
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).expect("partial hello");
    // Garbage instead of a handshake: the proxy closes that connection.
    let mut garbage = TcpStream::connect(proxy.addr()).expect("connect");
    garbage.set_read_timeout(Some(WAIT)).expect("timeout");
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").expect("plain text");
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("hello"), "plain HTTP is not served");
    // A client that gives up mid-handshake: half a ClientHello, then gone.
    let mut quitter = TcpStream::connect(proxy.addr()).expect("connect");
    quitter.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).expect("partial hello");
    drop(quitter);
    for _ in 0..3 {
        let output = curl_https(proxy.addr(), "a.test", &pki, &[]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.stdout, b"hello");
    }
    drop(stalled);
    // Counters are published once a second.
    crate::support::eventually("the failed handshakes are counted", || {
        let failed: f64 = admin::metrics(proxy.admin_addr())
            .lines()
            .filter(|line| line.contains("reason=\"tls_handshake\"") && !line.starts_with('#'))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        failed >= 2.0
    });
}

/// A blocking rustls client trusting `ca`: one GET per connection (full handshakes).
fn rustls_get(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    let name = rustls::pki_types::ServerName::try_from("a.test").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.write_all(GET_CLOSE.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // The proxy may close without close_notify after Connection: close.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(error) => return Err(format!("read: {error}")),
    }
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(format!("bad response {:?}", String::from_utf8_lossy(&response)));
    }
    let leaf = stream.conn.peer_certificates().and_then(|certs| certs.first().cloned());
    leaf.map(|cert| cert.to_vec()).ok_or_else(|| "no peer certificate".to_owned())
}

fn der_of(path: &std::path::Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let cert = rustls::pki_types::CertificateDer::from_pem_file(path).expect("leaf PEM");
    cert.to_vec()
}

/// Starts `threads` loops of one-request connections; returns (stop, ok, failed).
fn load(
    proxy: &ProxyHandle,
    config: &Arc<rustls::ClientConfig>,
    threads: usize,
) -> (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicUsize>, Vec<std::thread::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let handles = (0..threads)
        .map(|_| {
            let (stop, ok, failed, config) =
                (stop.clone(), ok.clone(), failed.clone(), config.clone());
            let addr = proxy.addr();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match rustls_get(addr, &config) {
                        Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(error) => {
                            eprintln!("load request failed: {error}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        })
        .collect();
    (stop, ok, failed, handles)
}

fn certificates_reload_under_load_without_failures(driver: Driver) {
    let pki = Pki::new("reload CA");
    let first = pki.leaf("live", "first", &["a.test"]);
    let first_der = der_of(&first.cert);
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&first], "")));
    let config = pki.client_config(false);
    assert_eq!(rustls_get(proxy.addr(), &config).expect("first GET"), first_der);
    let (stop, ok, failed, handles) = load(&proxy, &config, 2);
    crate::support::eventually("load is running", || ok.load(Ordering::SeqCst) > 20);

    // New files in place, then a reload through the admin API.
    let second = pki.leaf("staged", "second", &["a.test"]);
    std::fs::copy(&second.cert, &first.cert).expect("replace cert");
    std::fs::copy(&second.key, &first.key).expect("replace key");
    let reload = admin::request(proxy.admin_addr(), "POST", "/tls/reload", &[], "");
    assert_eq!(reload.status, 200, "{}", reload.text());
    let second_der = der_of(&second.cert);
    crate::support::eventually("new handshakes use the new certificate", || {
        rustls_get(proxy.addr(), &config).is_ok_and(|der| der == second_der)
    });

    // A key that does not match: refused, and the certificate in use stays.
    let stray = pki.leaf("stray", "stray", &["a.test"]);
    std::fs::copy(&stray.key, &first.key).expect("replace key with a stray one");
    let refused = admin::request(proxy.admin_addr(), "POST", "/tls/reload", &[], "");
    assert_eq!(refused.status, 422);
    let message = refused.text();
    assert!(message.contains("listener[0].tls.certificates[0].key"), "{message}");
    assert!(message.contains("does not match"), "{message}");
    let before = ok.load(Ordering::SeqCst);
    crate::support::eventually("more requests after the refused reload", || {
        ok.load(Ordering::SeqCst) > before + 20
    });
    assert_eq!(rustls_get(proxy.addr(), &config).expect("GET after refusal"), second_der);

    stop.store(true, Ordering::SeqCst);
    for handle in handles {
        handle.join().expect("load thread");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "requests failed during the reloads");
    assert!(ok.load(Ordering::SeqCst) > 40);
}

#[test]
fn config_errors_name_the_key() {
    let pki = Pki::new("errors CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let b = pki.leaf("b", "b.test", &["b.test"]);
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write garbage");
    let missing = pki.path("missing.pem");
    let entry = |cert: &std::path::Path, key: &std::path::Path| {
        format!("{{ cert = {}, key = {} }}", toml_path(cert), toml_path(key))
    };
    let config = format!(
        "[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [{}, {}, {}]\n\
         versions = [\"1.1\"]\n[[listener.route]]\nrespond = {{ status = 200 }}\n",
        entry(&missing, &a.key),
        entry(&a.cert, &b.key),
        entry(&garbage, &a.key),
    );
    let errors = ringway::config::Config::parse(&config).expect_err("bad TLS files").to_string();
    let expected = "listener[0].tls.versions[0]: \"1.1\" is not a TLS version";
    assert!(errors.contains(expected), "{expected:?} in\n{errors}");
    let config = config.replace("versions = [\"1.1\"]\n", "");
    let errors = ringway::config::Config::parse(&config).expect_err("bad TLS files").to_string();
    for expected in [
        "listener[0].tls.certificates[0].cert: cannot read",
        "listener[0].tls.certificates[1].key: ",
        "does not match the certificate in",
        "listener[0].tls.certificates[2].cert: ",
        "no PEM CERTIFICATE block",
    ] {
        assert!(errors.contains(expected), "{expected:?} in\n{errors}");
    }
    let bogus_suite = format!(
        "[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [{}]\n\
         cipher_suites = [\"TLS_BOGUS\"]\n[[listener.route]]\nrespond = {{ status = 200 }}\n",
        entry(&a.cert, &a.key)
    );
    let errors = ringway::config::Config::parse(&bogus_suite).expect_err("bad suite").to_string();
    assert!(
        errors.contains("listener[0].tls.cipher_suites: unknown suite \"TLS_BOGUS\""),
        "{errors}"
    );
    let none = "[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\nclient_auth = \"maybe\"\n\
                [[listener.route]]\nrespond = { status = 200 }\n";
    let errors = ringway::config::Config::parse(none).expect_err("no certificates").to_string();
    assert!(errors.contains("listener[0].tls.certificates: no certificates"), "{errors}");
    assert!(errors.contains("listener[0].tls.client_auth: unknown mode \"maybe\""), "{errors}");
}

/// Runs openssl with `args` in `dir`; fails the test unless it exits 0.
fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "openssl {args:?}: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ocsp_response_is_stapled(driver: Driver) {
    let pki = Pki::new("ocsp CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    let dir = pki.path("");
    // A real OCSP response for the leaf, signed by the CA, made by `openssl ocsp`.
    let serial = openssl(&dir, &["x509", "-in", "a.pem", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=");
    let index = format!("V\t300101000000Z\t\t{serial}\tunknown\t/CN=a.test\n");
    std::fs::write(pki.path("index.txt"), index).expect("write the OCSP index");
    openssl(
        &dir,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-issuer",
            "ca.pem",
            "-cert",
            "a.pem",
            "-respout",
            "a.ocsp",
            "-ndays",
            "1",
        ],
    );
    let tls = format!(
        "[listener.tls]\ncertificates = [{{ cert = {}, key = {}, ocsp = {} }}]\n",
        toml_path(&a.cert),
        toml_path(&a.key),
        toml_path(&pki.path("a.ocsp"))
    );
    let proxy = start_proxy(&respond_config(driver, &tls));
    let text = s_client(proxy.addr(), &["-status", "-servername", "a.test"], GET_CLOSE);
    assert!(text.contains("OCSP Response Status: successful"), "{text}");
    assert!(text.contains("Cert Status: good"), "{text}");
    assert!(text.contains("hello"), "{text}");
}

fn sighup_reloads_certificates_in_the_binary(driver: Driver) {
    let pki = Pki::new("sighup CA");
    let live = pki.leaf("live", "first", &["a.test"]);
    let mut running =
        crate::support::process::Running::start(&respond_config(driver, &tls_table(&[&live], "")));
    let config = pki.client_config(false);
    assert_eq!(rustls_get(running.addr, &config).expect("first GET"), der_of(&live.cert));
    let second = pki.leaf("staged", "second", &["a.test"]);
    std::fs::copy(&second.cert, &live.cert).expect("replace cert");
    std::fs::copy(&second.key, &live.key).expect("replace key");
    let pid = running.pid().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().expect("run kill");
    assert!(status.success());
    let second_der = der_of(&second.cert);
    crate::support::eventually("SIGHUP loads the new certificate", || {
        rustls_get(running.addr, &config).is_ok_and(|der| der == second_der)
    });
    assert!(running.terminate().success(), "the proxy still exits cleanly after SIGHUP");
}

fn server_cipher_suite_order_wins(driver: Driver) {
    let pki = Pki::new("suite order CA");
    let a = pki.leaf("a", "a.test", &["a.test"]);
    // The server's order, each version's first choice first.
    let suites = "cipher_suites = [\"TLS13_AES_128_GCM_SHA256\", \"TLS13_AES_256_GCM_SHA384\", \
                  \"TLS13_CHACHA20_POLY1305_SHA256\", \
                  \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\", \
                  \"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\", \
                  \"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\"]";
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&a], suites)));
    // The client offers the same suites in the opposite order.
    let reversed13 = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
    let args = ["-tls1_3", "-servername", "a.test", "-ciphersuites", reversed13];
    let text = s_client(proxy.addr(), &args, GET_CLOSE);
    assert!(text.contains("Cipher is TLS_AES_128_GCM_SHA256"), "TLS 1.3: {text}");
    assert!(text.contains("hello"), "{text}");
    let reversed12 = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:\
                      ECDHE-ECDSA-AES128-GCM-SHA256";
    let args = ["-tls1_2", "-servername", "a.test", "-cipher", reversed12];
    let text = s_client(proxy.addr(), &args, GET_CLOSE);
    assert!(text.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"), "TLS 1.2: {text}");
    assert!(text.contains("hello"), "{text}");
}

/// Accepts any server certificate but verifies handshake signatures, and offers only ECDSA
/// signature schemes: a client that cannot check an RSA signature.
#[derive(Debug)]
struct EcdsaOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EcdsaOnly {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        // Which certificate is served is the question here, not whether it names the host.
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, signature, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, signature, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// A TLS 1.3 handshake for `name` from an [`EcdsaOnly`] client: the served leaf, or the
/// error and whether a ServerHello came before it.
fn ecdsa_only_handshake(addr: SocketAddr, name: &str) -> Result<Vec<u8>, (String, bool)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EcdsaOnly(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("a DNS name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("a session");
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("a read timeout");
    while conn.is_handshaking() {
        if let Err(error) = conn.complete_io(&mut tcp) {
            return Err((error.to_string(), conn.negotiated_cipher_suite().is_some()));
        }
    }
    let leaf = conn.peer_certificates().and_then(|certs| certs.first().cloned());
    Ok(leaf.expect("a peer certificate").to_vec())
}

fn certificate_fits_the_client_signature_schemes(driver: Driver) {
    let pki = Pki::new("schemes CA");
    let default = pki.leaf("default", "default.test", &["default.test"]);
    let legacy = pki.rsa_leaf("legacy", "legacy.test", &["legacy.test"]);
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&default, &legacy], "")));
    // Clients that take RSA still get the name's own certificate.
    let output = curl_https(proxy.addr(), "legacy.test", &pki, &[]);
    assert_eq!(output.stdout, b"hello", "{}", String::from_utf8_lossy(&output.stderr));
    // The only certificate for the name is RSA: the ECDSA default is served instead.
    let served = ecdsa_only_handshake(proxy.addr(), "legacy.test")
        .unwrap_or_else(|failure| panic!("handshake (error, after ServerHello): {failure:?}"));
    assert!(served == der_of(&default.cert), "not the default ECDSA certificate");
    drop(proxy);

    // No certificate fits at all: refused with an alert before the ServerHello.
    let proxy = start_proxy(&respond_config(driver, &tls_table(&[&legacy], "")));
    let (error, server_hello) =
        ecdsa_only_handshake(proxy.addr(), "legacy.test").expect_err("no certificate fits");
    assert!(!server_hello, "the server said hello before failing: {error}");
    assert!(error.contains("AccessDenied"), "{error}");
}
