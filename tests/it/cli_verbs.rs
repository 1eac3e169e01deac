//! The incident verbs against a running proxy, through its admin API: `status`,
//! `backend drain|enable|disable`, `reload`, `top`, and each way they fail (admin not
//! reachable, wrong token, unknown backend, a refused reload), which must say what went
//! wrong and exit non-zero.

use crate::support::origin::{self, Origin};
use crate::support::process::{TempFile, run};
use crate::support::{Driver, eventually, start_proxy, to_origin};
use std::net::TcpListener;
use std::process::Output;

fn text(output: &Output) -> (String, String) {
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    (out, err)
}

#[test]
fn status_backend_and_top_act_on_a_running_proxy() {
    let origin = Origin::start(|_| origin::ok("fine"));
    let proxy = start_proxy(&to_origin(Driver::IoUring, origin.addr(), ""));
    let admin = proxy.admin_addr().to_string();
    let backend = origin.addr().to_string();
    for _ in 0..5 {
        assert_eq!(crate::support::client::Client::connect(proxy.addr()).get("/").status, 200);
    }
    // /stats aggregates on a tick: wait until the requests show.
    eventually("the requests reach /stats", || {
        let (out, _) = text(&run(&["status", "--admin", &admin]));
        out.contains(" 5 requests")
    });
    let output = run(&["status", "--admin", &admin]);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert!(out.contains("WORKER") && out.contains("LISTENER"), "{out}");
    let row = out.lines().find(|line| line.contains(&backend)).expect("the backend's row");
    assert!(row.contains("active") && row.contains("yes"), "{row}");

    let output = run(&["backend", "drain", "app", &backend, "--admin", &admin]);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert!(out.contains("draining"), "{out}");
    let status = text(&run(&["status", "--admin", &admin])).0;
    let row = status.lines().find(|line| line.contains(&backend)).expect("the backend's row");
    assert!(row.contains("draining"), "{row}");
    for (action, state) in [("disable", "disabled"), ("enable", "active")] {
        let output = run(&["backend", action, "app", &backend, "--admin", &admin]);
        assert!(text(&output).0.contains(state), "{action}: {:?}", text(&output));
    }

    let output = run(&["top", "-n", "2", "--interval", "0.2", "--admin", &admin]);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(out.matches("WORKER").count(), 2, "two refreshes: {out}");
    assert!(out.contains("REQ/S"), "{out}");
}

#[test]
fn verbs_say_what_went_wrong() {
    let origin = Origin::start(|_| origin::ok("fine"));
    let config = to_origin(Driver::IoUring, origin.addr(), "")
        .replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n");
    assert!(config.contains("s3cret"), "the preamble changed: {config}");
    let proxy = start_proxy(&config);
    let admin = proxy.admin_addr().to_string();
    let backend = origin.addr().to_string();

    let unknown =
        run(&["backend", "drain", "app", "10.9.9.9:1", "--admin", &admin, "--token", "s3cret"]);
    let (_, err) = text(&unknown);
    assert!(!unknown.status.success());
    assert!(err.contains("404") && err.contains("10.9.9.9:1"), "{err}");

    let wrong = run(&["status", "--admin", &admin, "--token", "guess"]);
    let (_, err) = text(&wrong);
    assert!(!wrong.status.success());
    assert!(err.contains("refused the token (401)"), "{err}");

    // The token from the config named with --config, as an operator runs it.
    let named = config.replacen("addr = \"127.0.0.1:0\"", &format!("addr = \"{admin}\""), 1);
    assert!(named.contains(&admin), "{named}");
    let file = TempFile::new(&named);
    let drained = run(&["--config", file.arg(), "backend", "drain", "app", &backend]);
    let (out, err) = text(&drained);
    assert!(drained.status.success() && out.contains("draining"), "{out} {err}");

    // Nothing listens on a port just freed.
    let free = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let down = run(&["status", "--admin", &free.to_string()]);
    let (_, err) = text(&down);
    assert!(!down.status.success());
    assert!(err.contains("cannot reach the admin API") && err.contains(&free.to_string()), "{err}");
}

/// `ringway reload` reads the certificates again, as SIGHUP does; a broken file is refused
/// with the reason, and the proxy keeps its old certificates.
#[test]
fn reload_rereads_certificates_or_says_why_not() {
    let pki = crate::support::pki::Pki::new("reload verb CA");
    let leaf = pki.leaf("site", "site.test", &["site.test"]);
    let origin = Origin::start(|_| origin::ok("fine"));
    let tls = format!(
        "[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n[[listener.route]]\ncluster = \"app\"\n",
        crate::support::pki::toml_path(&leaf.cert),
        crate::support::pki::toml_path(&leaf.key)
    );
    let config = to_origin(Driver::IoUring, origin.addr(), "");
    let proxy = start_proxy(&format!("{config}\n{tls}"));
    let admin = proxy.admin_addr().to_string();
    let output = run(&["reload", "--admin", &admin]);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(out.trim(), "reloaded the certificates of 1 TLS listeners");

    std::fs::write(&leaf.cert, "not a certificate").expect("break the file");
    let output = run(&["reload", "--admin", &admin]);
    let (_, err) = text(&output);
    assert!(!output.status.success());
    assert!(err.contains("reload refused, nothing changed") && err.contains("PEM"), "{err}");
}
