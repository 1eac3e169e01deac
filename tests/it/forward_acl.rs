//! The forward proxy's access control and anonymity, with real clients: every rule kind
//! (client networks, domains exact, suffix, regex and from a file, ports, methods, users),
//! destination address rules after resolution (DNS rebinding), `Proxy-Authorization`
//! with 407, and what the origin sees at each anonymity level.

use crate::forward::{LOOPBACK, ask, curl, curl_ok, forward_proxy};
use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::process::TempFile;
use crate::support::{Driver, on_both_drivers};

on_both_drivers!(
    rules_refuse_with_a_page_naming_the_rule,
    destination_addresses_are_checked_after_resolution,
    proxy_authorization_is_required_and_never_forwarded,
    anonymity_levels_and_header_lists,
);

/// A hosts file naming every test host as 127.0.0.1.
fn hosts(names: &[&str]) -> TempFile {
    TempFile::new(names.iter().map(|name| format!("127.0.0.1 {name}\n")).collect::<String>())
}

fn get(proxy: &crate::support::ProxyHandle, url: &str, method: &str) -> (u16, String) {
    let request = format!("{method} {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let response = ask(proxy, &request);
    (response.status, response.text())
}

fn rules_refuse_with_a_page_naming_the_rule(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let port = origin.addr().port();
    let names =
        ["ok.test", "ads.test", "x.ads.test", "tracker7.test", "listed.test", "a.b.listed.test"];
    let hosts = hosts(&names);
    let list = TempFile::new("# blocklist\n.listed.test\n");
    let table = format!(
        "{LOOPBACK}[listener.forward.resolver]\nhosts_file = {:?}\n\
         [[listener.forward.rule]]\nname = \"ads\"\naction = \"deny\"\ndomains = [\".ads.test\"]\n\
         [[listener.forward.rule]]\nname = \"trackers\"\naction = \"deny\"\n\
         domain_regex = [\"^tracker[0-9]+\\\\.\"]\n\
         [[listener.forward.rule]]\nname = \"blocklist\"\naction = \"deny\"\n\
         domain_files = [{:?}]\n\
         [[listener.forward.rule]]\nname = \"no-delete\"\naction = \"deny\"\n\
         methods = [\"DELETE\"]\n\
         [[listener.forward.rule]]\nname = \"only-origin-port\"\naction = \"deny\"\nports = [81]\n\
         [[listener.forward.rule]]\nname = \"no-locals-to-ok\"\naction = \"deny\"\n\
         clients = [\"127.0.0.0/8\"]\ndomains = [\"ok2.test\"]\n",
        hosts.arg(),
        list.arg()
    );
    let proxy = forward_proxy(driver, &table);
    let url = |host: &str| format!("http://{host}:{port}/");
    assert_eq!(get(&proxy, &url("ok.test"), "GET"), (200, "/".to_owned()));
    for (host, method, rule) in [
        ("ads.test", "GET", "ads"),
        ("x.ads.test", "GET", "ads"),
        ("Tracker7.test", "GET", "trackers"),
        ("a.b.listed.test", "GET", "blocklist"),
        ("ok.test", "DELETE", "no-delete"),
        ("ok2.test", "GET", "no-locals-to-ok"),
    ] {
        let (status, page) = get(&proxy, &url(host), method);
        assert_eq!(status, 403, "{method} {host}");
        assert!(page.contains(&format!("access denied by rule \"{rule}\"")), "{host}: {page}");
    }
    let (status, page) = get(&proxy, "http://ok.test:81/", "GET");
    assert_eq!((status, page.contains("only-origin-port")), (403, true));
    // Refused before anything left: the origin saw only the one allowed request.
    assert_eq!(origin.requests().len(), 1);
}

fn destination_addresses_are_checked_after_resolution(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let port = origin.addr().port();
    let hosts = hosts(&["rebind.test"]);
    // No loopback exception: the defaults hold.
    let table = format!(
        "connect_ports = [{port}]\n[listener.forward.resolver]\nhosts_file = {:?}\n",
        hosts.arg()
    );
    let proxy = forward_proxy(driver, &table);
    for url in [
        format!("http://rebind.test:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let (status, page) = get(&proxy, &url, "GET");
        assert_eq!(status, 403, "{url}");
        assert!(page.contains("destination_ip"), "{url}: {page}");
    }
    let connect = format!("CONNECT rebind.test:{port} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ask(&proxy, &connect).status, 403);
    assert_eq!(origin.accepted(), 0, "nothing reached the loopback origin");
}

fn proxy_authorization_is_required_and_never_forwarded(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let port = origin.addr().port();
    let hash = bcrypt::hash("s3cret", 4).expect("a bcrypt hash");
    let users = TempFile::new(format!("alice:{hash}\nbob:{hash}\n"));
    let table = format!(
        "{LOOPBACK}auth_file = {:?}\nauth_realm = \"office\"\n\
         [[listener.forward.rule]]\nname = \"bob-stays-home\"\naction = \"deny\"\n\
         users = [\"bob\"]\n",
        users.arg()
    );
    let proxy = forward_proxy(driver, &table);
    let url = format!("http://127.0.0.1:{port}/private");
    let mut client = Client::connect(proxy.addr());
    client.send(format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let challenged = client.response();
    assert_eq!(challenged.status, 407);
    assert_eq!(challenged.header("proxy-authenticate"), Some("Basic realm=\"office\""));
    // The same connection goes on with credentials, as browsers do after a 407.
    client.send(
        format!(
            "GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(client.response().status, 407, "alice:wrong");
    let via = format!("http://{}", proxy.addr());
    let body = curl_ok(&["-x", &via, "--proxy-user", "alice:s3cret", &url, &url]);
    assert_eq!(body, "/private/private");
    let seen = origin.next_request();
    assert_eq!(seen.header("proxy-authorization"), None, "credentials for the proxy stay here");
    let bob =
        curl(&["-x", &via, "--proxy-user", "bob:s3cret", "--write-out", "%{http_code}", &url]);
    let bob = String::from_utf8_lossy(&bob.stdout).into_owned();
    assert!(bob.contains("bob-stays-home") && bob.ends_with("403"), "{bob}");
}

/// Every Via value the origin got, in order.
fn vias(request: &origin::Request) -> Vec<&str> {
    let lines = request.head.headers.iter();
    lines.filter(|(name, _)| name.eq_ignore_ascii_case("via")).map(|(_, value)| &**value).collect()
}

fn anonymity_levels_and_header_lists(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let port = origin.addr().port();
    let request = format!(
        "GET http://127.0.0.1:{port}/a HTTP/1.1\r\nHost: x\r\nVia: 1.1 inner\r\n\
         X-Forwarded-For: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\nFrom: me@example.test\r\n\
         User-Agent: leaky/1.0\r\nProxy-Connection: keep-alive\r\n\r\n"
    );
    let seen_at = |level: &str| {
        let table = format!(
            "{LOOPBACK}anonymity = \"{level}\"\nheader_remove = [\"From\"]\n\
             header_replace = {{ \"User-Agent\" = \"Mozilla/5.0 (ringway)\" }}\n"
        );
        let proxy = forward_proxy(driver, &table);
        assert_eq!(ask(&proxy, &request).status, 200, "{level}");
        origin.next_request()
    };
    let transparent = seen_at("transparent");
    assert_eq!(transparent.header("x-forwarded-for"), Some("10.9.9.9, 127.0.0.1"));
    assert_eq!(vias(&transparent), ["1.1 inner", "1.1 ringway"]);
    let anonymous = seen_at("anonymous");
    assert_eq!(anonymous.header("x-forwarded-for"), None);
    assert_eq!(vias(&anonymous), ["1.1 inner", "1.1 ringway"]);
    let elite = seen_at("elite");
    for name in ["x-forwarded-for", "via", "forwarded"] {
        assert_eq!(elite.header(name), None, "elite leaves no {name}");
    }
    for seen in [&transparent, &anonymous, &elite] {
        assert_eq!(seen.header("from"), None);
        assert_eq!(seen.header("user-agent"), Some("Mozilla/5.0 (ringway)"));
        assert_eq!(seen.header("proxy-connection"), None);
        assert_eq!(seen.header("host"), Some(&*format!("127.0.0.1:{port}")));
    }
}
