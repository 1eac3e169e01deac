//! Checks the `tls` sections of listeners and clusters and loads their files: a missing
//! file, a bad PEM or a key that does not match its certificate is reported with its key.

use super::bounds::{Bounds, ranged, to_usize};
use super::file::{FileClusterTls, FileListenerTls, FileRedirect};
use super::names::one_of;
use super::{ConfigError, ListenerTls, RouteAction};
use crate::tls::client::{ClientSettings, ClientTls};
use crate::tls::server::{CertificateFiles, ClientAuth, Provider, ServerSettings, ServerTls};
use std::path::PathBuf;
use std::sync::Arc;

/// Sessions each worker caches for resumption by id, by default.
pub(crate) const SESSION_CACHE_ENTRIES: u64 = 10_000;

/// The default provider: aws-lc-rs did more ECDSA P-256 handshakes per second than ring
/// in `perf/` (see README, TLS).
const PROVIDER: Provider = Provider::AwsLcRs;

pub(super) fn listener_tls(
    at: &str,
    file: &FileListenerTls,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<ListenerTls>> {
    let at = format!("{at}.tls");
    let before = errors.len();
    if file.certificates.is_empty() {
        let reason = "no certificates; add certificates = [{ cert = \"FILE\", key = \"FILE\" }]";
        errors.push(ConfigError::invalid(format!("{at}.certificates"), reason));
    }
    let certificates = file
        .certificates
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let names = entry.names.clone().unwrap_or_default();
            for (name_index, name) in names.iter().enumerate() {
                let bare = name.strip_prefix("*.").unwrap_or(name);
                if rustls::pki_types::DnsName::try_from(bare).is_err() {
                    let key = format!("{at}.certificates[{index}].names[{name_index}]");
                    errors.push(ConfigError::invalid(key, format!("{name:?} is not a DNS name")));
                }
            }
            CertificateFiles {
                cert: PathBuf::from(&entry.cert),
                key: PathBuf::from(&entry.key),
                names,
                ocsp: entry.ocsp.as_ref().map(PathBuf::from),
            }
        })
        .collect();
    let hsts = file.hsts.as_deref().and_then(|value| {
        let printable =
            !value.is_empty() && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !printable {
            errors.push(ConfigError::invalid(format!("{at}.hsts"), "must be printable ASCII"));
            return None;
        }
        Some(format!("Strict-Transport-Security: {value}\r\n").into_bytes().into_boxed_slice())
    });
    let settings = ServerSettings {
        versions: versions(&at, file.versions.as_deref(), errors),
        cipher_suites: file.cipher_suites.clone().unwrap_or_default(),
        provider: provider(&format!("{at}.provider"), file.provider.as_deref(), errors),
        client_auth: client_auth(&at, file, errors),
        client_ca: file.client_ca.as_ref().map(PathBuf::from),
        session_cache_entries: to_usize(ranged(
            &format!("{at}.session_cache_entries"),
            file.session_cache_entries,
            Bounds { default: SESSION_CACHE_ENTRIES, min: 0, max: 10_000_000 },
            errors,
        )),
        session_tickets: file.session_tickets.unwrap_or(true),
        alpn: alpn(&format!("{at}.alpn"), file.alpn.as_deref(), errors),
        certificates,
        at,
    };
    if errors.len() > before {
        return None;
    }
    match ServerTls::load(settings) {
        Ok(server) => Some(Arc::new(ListenerTls { server, hsts })),
        Err(problems) => {
            errors
                .extend(problems.into_iter().map(|(at, reason)| ConfigError::invalid(at, reason)));
            None
        }
    }
}

/// The ALPN offer: `h2` and `http/1.1` unless the listener names its own, each once.
fn alpn(at: &str, names: Option<&[String]>, errors: &mut Vec<ConfigError>) -> Vec<Vec<u8>> {
    let Some(names) = names else { return vec![b"h2".to_vec(), b"http/1.1".to_vec()] };
    if names.is_empty() {
        errors.push(ConfigError::invalid(at, "empty list; offer \"h2\", \"http/1.1\" or both"));
    }
    let mut chosen: Vec<Vec<u8>> = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let key = format!("{at}[{index}]");
        match name.as_str() {
            "h2" | "http/1.1" if chosen.contains(&name.as_bytes().to_vec()) => {
                errors.push(ConfigError::invalid(key, format!("{name:?} is listed twice")));
            }
            "h2" | "http/1.1" => chosen.push(name.as_bytes().to_vec()),
            _ => {
                let reason = format!("unknown protocol {name:?}; use \"h2\" or \"http/1.1\"");
                errors.push(ConfigError::invalid(key, reason));
            }
        }
    }
    chosen
}

fn versions(
    at: &str,
    names: Option<&[String]>,
    errors: &mut Vec<ConfigError>,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let Some(names) = names else {
        return vec![&rustls::version::TLS13, &rustls::version::TLS12];
    };
    let mut chosen = Vec::new();
    for (index, name) in names.iter().enumerate() {
        match name.as_str() {
            "1.3" => chosen.push(&rustls::version::TLS13),
            "1.2" => chosen.push(&rustls::version::TLS12),
            other => {
                let reason = format!("{other:?} is not a TLS version; use \"1.2\" or \"1.3\"");
                errors.push(ConfigError::invalid(format!("{at}.versions[{index}]"), reason));
            }
        }
    }
    if names.is_empty() {
        errors.push(ConfigError::invalid(format!("{at}.versions"), "empty; list \"1.2\", \"1.3\""));
    }
    chosen
}

fn provider(at: &str, name: Option<&str>, errors: &mut Vec<ConfigError>) -> Provider {
    let name = name.unwrap_or(PROVIDER.as_str());
    Provider::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown provider {name:?}; use {}", one_of(&Provider::names()));
        errors.push(ConfigError::invalid(at, reason));
        PROVIDER
    })
}

fn client_auth(at: &str, file: &FileListenerTls, errors: &mut Vec<ConfigError>) -> ClientAuth {
    let default = if file.client_ca.is_some() { "required" } else { "off" };
    match file.client_auth.as_deref().unwrap_or(default) {
        "off" => ClientAuth::Off,
        "optional" => ClientAuth::Optional,
        "required" => ClientAuth::Required,
        other => {
            let reason =
                format!("unknown mode {other:?}; use \"off\", \"optional\" or \"required\"");
            errors.push(ConfigError::invalid(format!("{at}.client_auth"), reason));
            ClientAuth::Off
        }
    }
}

pub(super) fn cluster_tls(
    at: &str,
    file: &FileClusterTls,
    errors: &mut Vec<ConfigError>,
) -> Option<ClientTls> {
    let at = format!("{at}.tls");
    let client_cert = match (&file.client_cert, &file.client_key) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => {
            let reason = "set both client_cert and client_key, or neither";
            errors.push(ConfigError::invalid(at.clone(), reason));
            return None;
        }
    };
    if let Some(sni) = &file.sni {
        if rustls::pki_types::ServerName::try_from(sni.as_str()).is_err() {
            let reason = format!("{sni:?} is not a DNS name or IP address");
            errors.push(ConfigError::invalid(format!("{at}.sni"), reason));
            return None;
        }
    }
    let settings = ClientSettings {
        ca: file.ca.as_ref().map(PathBuf::from),
        sni: file.sni.clone(),
        client_cert,
        insecure_skip_verify: file.insecure_skip_verify.unwrap_or(false),
        provider: provider(&format!("{at}.provider"), file.provider.as_deref(), errors),
        at,
    };
    match ClientTls::load(settings) {
        Ok(tls) => Some(tls),
        Err((at, reason)) => {
            errors.push(ConfigError::invalid(at, reason));
            None
        }
    }
}

pub(super) fn redirect(
    at: &str,
    file: &FileRedirect,
    errors: &mut Vec<ConfigError>,
) -> RouteAction {
    let status = ranged(
        &format!("{at}.redirect_https.status"),
        file.status,
        Bounds { default: 301, min: 301, max: 308 },
        errors,
    );
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        let reason = format!("{status} is not a redirect; use 301, 302, 303, 307 or 308");
        errors.push(ConfigError::invalid(format!("{at}.redirect_https.status"), reason));
    }
    let port = ranged(
        &format!("{at}.redirect_https.port"),
        file.port,
        Bounds { default: 443, min: 1, max: 65535 },
        errors,
    );
    RouteAction::RedirectHttps {
        status: u16::try_from(status).unwrap_or(301),
        port: u16::try_from(port).unwrap_or(443),
    }
}
