//! The CLI verbs an operator uses during an incident, over the admin API: `status`,
//! `backend drain|enable|disable`, `reload`, and `top`. Each finds the admin API from the config
//! (`[admin] addr` and `token`) or from flags, and says plainly what went wrong (not
//! reachable, wrong token, unknown backend) with a non-zero exit.

mod admin;
mod status;

pub use admin::AdminApi;

use crate::config::Config;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// What `backend` does to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendAction {
    /// No new requests; in-flight ones finish.
    Drain,
    /// Back in rotation.
    Enable,
    /// Out of rotation, as for maintenance.
    Disable,
}

impl BackendAction {
    fn state(self) -> &'static str {
        match self {
            Self::Drain => "draining",
            Self::Enable => "active",
            Self::Disable => "disabled",
        }
    }
}

/// The admin API of `config`, with `addr` and `token` from flags taking precedence. A
/// listener on every address (`0.0.0.0`, `::`) is reached on loopback.
pub fn admin_api(
    config: &Config,
    addr: Option<SocketAddr>,
    token: Option<String>,
) -> Result<AdminApi, String> {
    let addr = match (addr, config.admin.addr) {
        (Some(addr), _) => addr,
        (None, Some(addr)) => addr,
        (None, None) => {
            return Err("the config has no admin listener ([admin] enabled = false); pass \
                        --admin ADDR"
                .to_owned());
        }
    };
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    Ok(AdminApi { addr, token: token.or_else(|| config.admin.token.clone()) })
}

/// `ringway status`: one view of workers, listeners, clusters and backends.
pub fn status(api: &AdminApi, out: &mut impl Write) -> Result<(), String> {
    let stats = stats(api)?;
    out.write_all(status::render(&stats, None).as_bytes()).map_err(|error| error.to_string())
}

/// `ringway backend ACTION CLUSTER BACKEND`: sets the backend's state on every worker and
/// prints the backend as the proxy now reports it.
pub fn backend(
    api: &AdminApi,
    action: BackendAction,
    cluster: &str,
    backend: &str,
    out: &mut impl Write,
) -> Result<(), String> {
    let path = format!("/backends/{}/{}", escape(cluster), escape(backend));
    let body = format!("{{\"state\":\"{}\"}}", action.state());
    let answer = api.expect_ok(api.request("PUT", &path, &body)?)?;
    let report: serde_json::Value = serde_json::from_str(&answer)
        .map_err(|error| format!("the admin API sent JSON that does not parse: {error}"))?;
    let _ = writeln!(
        out,
        "{cluster} {backend}: {} (up: {}, in flight: {})",
        report["state"].as_str().unwrap_or("?"),
        report["up"],
        report["in_flight"]
    );
    Ok(())
}

/// `ringway reload`: what SIGHUP does, through the admin API (`POST /config/reload`): the
/// config file read again and applied, certificates included, all or nothing. A refusal
/// (422) is an error that lists every problem, and the running config stays. A proxy whose
/// config came from no file (409) reads its TLS certificates again (`POST /tls/reload`).
pub fn reload(api: &AdminApi, out: &mut impl Write) -> Result<(), String> {
    let answer = api.request("POST", "/config/reload", "")?;
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).ok();
    match answer.status {
        409 => return reload_tls(api, out),
        422 => {
            let errors = json(&answer.body)
                .and_then(|value| value["errors"].as_array().cloned())
                .map(|errors| {
                    let lines = errors.iter().filter_map(|error| error.as_str());
                    lines.map(|line| format!("\n  {line}")).collect::<String>()
                })
                .unwrap_or(answer.body);
            return Err(format!("reload refused, nothing changed:{errors}"));
        }
        _ => {}
    }
    let body = api.expect_ok(answer)?;
    let value =
        json(&body).ok_or_else(|| format!("the admin API answered a reload with {body:?}"))?;
    let version = &value["version"];
    let _ =
        writeln!(out, "config version {} applied (hash {})", version["number"], version["hash"]);
    for line in value["needs_restart"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}", line.as_str().unwrap_or_default());
    }
    Ok(())
}

/// Reads the TLS certificates again (`POST /tls/reload`).
fn reload_tls(api: &AdminApi, out: &mut impl Write) -> Result<(), String> {
    let answer = api.request("POST", "/tls/reload", "")?;
    if answer.status == 422 {
        let reason = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|value| value["error"].as_str().map(str::to_owned))
            .unwrap_or(answer.body);
        return Err(format!("reload refused, nothing changed: {reason}"));
    }
    let body = api.expect_ok(answer)?;
    let reloaded = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value["reloaded"].as_u64())
        .ok_or_else(|| format!("the admin API answered a reload with {body:?}"))?;
    let _ = writeln!(out, "reloaded the certificates of {reloaded} TLS listeners");
    Ok(())
}

/// `ringway top`: the status view with rates, redrawn every `interval`, `count` times (or
/// until interrupted).
pub fn top(
    api: &AdminApi,
    interval: Duration,
    count: Option<u64>,
    out: &mut impl Write,
) -> Result<(), String> {
    let redraw = std::io::stdout().is_terminal();
    let mut before = stats(api)?;
    let mut drawn = 0;
    while count.is_none_or(|count| drawn < count) {
        #[expect(clippy::disallowed_methods, reason = "the CLI is no worker: it may block")]
        std::thread::sleep(interval);
        let now = stats(api)?;
        let rates = status::Rates::between(&before, &now);
        let mut frame = String::new();
        if redraw {
            // Home and clear: the view replaces the last one, as top does.
            frame.push_str("\x1b[H\x1b[2J");
        }
        frame.push_str(&status::render(&now, Some(&rates)));
        out.write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|error| error.to_string())?;
        before = now;
        drawn += 1;
    }
    Ok(())
}

fn stats(api: &AdminApi) -> Result<serde_json::Value, String> {
    let body = api.get("/stats")?;
    serde_json::from_str(&body).map_err(|error| format!("/stats is not JSON: {error}"))
}

/// Percent-encodes what a path segment cannot hold as it is.
fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_admin_api_from_the_config_or_the_flags() {
        let config = Config::parse(
            "[admin]\naddr = \"0.0.0.0:9911\"\ntoken = \"from-config\"\n\n\
             [[listener]]\naddr = \"127.0.0.1:0\"\n\
             [[listener.route]]\nrespond = { status = 200 }\n",
        )
        .expect("a config");
        let api = admin_api(&config, None, None).expect("an admin API");
        assert_eq!(api.addr, "127.0.0.1:9911".parse().expect("addr"));
        assert_eq!(api.token.as_deref(), Some("from-config"));
        let flag = "10.1.2.3:7000".parse().expect("addr");
        let api = admin_api(&config, Some(flag), Some("flag".to_owned())).expect("an admin API");
        assert_eq!((api.addr, api.token.as_deref()), (flag, Some("flag")));
        let off = Config::parse(
            "[admin]\nenabled = false\n\n[[listener]]\naddr = \"127.0.0.1:0\"\n\
             [[listener.route]]\nrespond = { status = 200 }\n",
        )
        .expect("a config");
        let error = admin_api(&off, None, None).expect_err("no admin listener");
        assert!(error.contains("enabled = false"), "{error}");
    }

    #[test]
    fn escapes_path_segments() {
        assert_eq!(escape("127.0.0.1:9001"), "127.0.0.1:9001");
        assert_eq!(escape("a b/c"), "a%20b%2Fc");
    }
}
