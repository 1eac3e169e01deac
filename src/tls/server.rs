//! The listener side of TLS: certificate chains chosen by SNI, protocol versions, cipher
//! suites, ALPN, session resumption (a per-worker cache and rotating ticket keys shared by
//! every worker), client certificates and OCSP stapling.
//!
//! Files are read when the config is validated and again on a certificate reload; each
//! problem names the key it came from.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Which crypto library rustls uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    AwsLcRs,
    Ring,
}

impl Provider {
    /// The provider with only `suites` (by IANA name) when any are given.
    pub fn build(self, suites: &[String]) -> Result<CryptoProvider, String> {
        let mut provider = match self {
            Self::AwsLcRs => rustls::crypto::aws_lc_rs::default_provider(),
            Self::Ring => rustls::crypto::ring::default_provider(),
        };
        if suites.is_empty() {
            return Ok(provider);
        }
        let mut chosen = Vec::new();
        for name in suites {
            let found = provider.cipher_suites.iter().find(|suite| {
                suite.suite().as_str().is_some_and(|known| known.eq_ignore_ascii_case(name))
            });
            match found {
                Some(suite) => chosen.push(*suite),
                None => {
                    let known: Vec<&str> = provider
                        .cipher_suites
                        .iter()
                        .filter_map(|suite| suite.suite().as_str())
                        .collect();
                    return Err(format!("unknown suite {name:?}; known: {}", known.join(", ")));
                }
            }
        }
        provider.cipher_suites = chosen;
        Ok(provider)
    }
}

/// Whether a listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Off,
    /// Asked for and verified when sent; clients without one still get in.
    Optional,
    /// Handshakes without a valid client certificate fail.
    Required,
}

/// One certificate chain and its key, as configured.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names it serves; empty means the DNS names in the certificate.
    pub names: Vec<String>,
    /// A DER OCSP response to staple.
    pub ocsp: Option<PathBuf>,
}

/// A listener's TLS settings as configured: kept so certificates can be reloaded.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The config key, `listener[N].tls`, for messages.
    pub at: String,
    /// The first is the default, for clients with no SNI or an unknown name.
    pub certificates: Vec<CertificateFiles>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    pub cipher_suites: Vec<String>,
    pub provider: Provider,
    pub client_auth: ClientAuth,
    pub client_ca: Option<PathBuf>,
    /// Sessions each worker remembers for resumption by session id (0: none).
    pub session_cache_entries: usize,
    pub session_tickets: bool,
    /// Protocols offered in ALPN, most preferred first (`h2`, `http/1.1`).
    pub alpn: Vec<Vec<u8>>,
}

/// A listener's TLS, ready to accept: the shared config that every worker copies (each
/// with its own session cache), and what is kept across reloads.
pub struct ServerTls {
    pub settings: ServerSettings,
    pub config: Arc<ServerConfig>,
    /// Ticket keys: shared by every worker, so a ticket from one resumes on another; they
    /// rotate every 6 hours and survive certificate reloads.
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    /// When each configured certificate (its leaf) expires, in seconds since the epoch, in
    /// `settings.certificates` order; `None` where the DER walk does not understand it.
    pub expiries: Vec<Option<u64>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads every file and builds the config, or reports each problem with its key.
    pub fn load(settings: ServerSettings) -> Result<Self, Vec<(String, String)>> {
        let ticketer = if settings.session_tickets {
            let made = match settings.provider {
                Provider::AwsLcRs => rustls::crypto::aws_lc_rs::Ticketer::new(),
                Provider::Ring => rustls::crypto::ring::Ticketer::new(),
            };
            let at = format!("{}.session_tickets", settings.at);
            Some(made.map_err(|error| vec![(at, error.to_string())])?)
        } else {
            None
        };
        let config = build_config(&settings, ticketer.clone())?;
        let expiries = expiries(&settings);
        Ok(Self { settings, config, ticketer, expiries })
    }

    /// Reads the certificate files again; the ticket keys stay. On any problem the caller
    /// keeps the old value.
    pub fn reload(&self) -> Result<Self, Vec<(String, String)>> {
        let config = build_config(&self.settings, self.ticketer.clone())?;
        let settings = self.settings.clone();
        let expiries = expiries(&settings);
        Ok(Self { settings, config, ticketer: self.ticketer.clone(), expiries })
    }

    /// This worker's copy, with its own session cache.
    pub fn for_worker(&self) -> Arc<ServerConfig> {
        let mut config = (*self.config).clone();
        let entries = self.settings.session_cache_entries;
        config.session_storage = if entries == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            rustls::server::ServerSessionMemoryCache::new(entries)
        };
        Arc::new(config)
    }
}

/// The expiry of each configured leaf certificate (the files were just read whole by
/// `build_config`, so reading them again cannot fail for a new reason but a race).
fn expiries(settings: &ServerSettings) -> Vec<Option<u64>> {
    let leaf_expiry = |files: &CertificateFiles| {
        let chain = load_certs(&files.cert).ok()?;
        super::expiry::not_after(chain.first()?.as_ref())
    };
    settings.certificates.iter().map(leaf_expiry).collect()
}

fn build_config(
    settings: &ServerSettings,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
) -> Result<Arc<ServerConfig>, Vec<(String, String)>> {
    let at = &settings.at;
    let provider = settings
        .provider
        .build(&settings.cipher_suites)
        .map_err(|reason| vec![(format!("{at}.cipher_suites"), reason)])?;
    let provider = Arc::new(provider);
    let resolver = SniResolver::load(settings, &provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.versions)
        .map_err(|error| vec![(format!("{at}.versions"), error.to_string())])?;
    let builder = match client_verifier(settings, &provider) {
        Ok(Some(verifier)) => builder.with_client_cert_verifier(verifier),
        Ok(None) => builder.with_no_client_auth(),
        Err(problem) => return Err(vec![problem]),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    // The configured suite order is the operator's preference (strongest, or fastest on
    // this hardware, first): it wins over the client's, as nginx's
    // `ssl_prefer_server_ciphers on` and HAProxy's default do.
    config.ignore_client_order = true;
    config.alpn_protocols.clone_from(&settings.alpn);
    if let Some(ticketer) = ticketer {
        config.ticketer = ticketer;
    }
    Ok(Arc::new(config))
}

fn client_verifier(
    settings: &ServerSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, (String, String)> {
    let at = format!("{}.client_ca", settings.at);
    let path = match (&settings.client_ca, settings.client_auth) {
        (_, ClientAuth::Off) => return Ok(None),
        (None, _) => return Err((at, "client_auth needs a client_ca file".to_owned())),
        (Some(path), _) => path,
    };
    let roots = load_roots(path).map_err(|reason| (at.clone(), reason))?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match settings.client_auth {
        ClientAuth::Optional => builder.allow_unauthenticated(),
        ClientAuth::Off | ClientAuth::Required => builder,
    };
    builder.build().map(Some).map_err(|error| (at, error.to_string()))
}

/// CA certificates from a PEM file, as trust anchors.
pub fn load_roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let certs = load_certs(path)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|error| format!("{}: not a usable CA certificate: {error}", path.display()))?;
    }
    Ok(roots)
}

/// Every certificate in a PEM file; none is an error.
pub fn load_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs = certs.map_err(|error| format!("{shown}: bad PEM: {error}"))?;
    if certs.is_empty() {
        return Err(format!("{shown}: no PEM CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|error| format!("{shown}: no usable PEM private key: {error}"))
}

/// A chain and key loaded and checked against each other.
pub fn load_certified_key(
    cert: &std::path::Path,
    key: &std::path::Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, (&'static str, String)> {
    let chain = load_certs(cert).map_err(|reason| ("cert", reason))?;
    let key_der = load_key(key).map_err(|reason| ("key", reason))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|error| ("key", format!("{}: unsupported private key: {error}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        let reason =
            format!("{} does not match the certificate in {}", key.display(), cert.display());
        ("key", reason)
    })?;
    Ok(certified)
}

/// Picks a certificate by SNI: exact name, then `*.parent`, then the default. Several
/// certificates for one name (RSA and ECDSA) are told apart by the client's signature
/// schemes, and only a certificate the client can verify is chosen: when none for the name
/// fits, a fitting default is served, and when no default fits either the resolver refuses,
/// so rustls ends the handshake with an alert before its ServerHello instead of failing
/// after it.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    default: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn load(
        settings: &ServerSettings,
        provider: &CryptoProvider,
    ) -> Result<Self, Vec<(String, String)>> {
        let mut resolver =
            Self { exact: HashMap::new(), wildcard: HashMap::new(), default: Vec::new() };
        let mut problems = Vec::new();
        for (index, files) in settings.certificates.iter().enumerate() {
            let at = format!("{}.certificates[{index}]", settings.at);
            match load_entry(&at, files, provider) {
                Ok((key, names)) => resolver.add(index, key, names),
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() { Ok(resolver) } else { Err(problems) }
    }

    fn add(&mut self, index: usize, key: Arc<CertifiedKey>, names: Vec<String>) {
        // The first entry is the default for clients with no SNI or an unknown name.
        if index == 0 {
            self.default.push(key.clone());
        }
        for name in names {
            let table = match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_owned()),
                None => self.exact.entry(name),
            };
            table.or_default().push(key.clone());
        }
    }

    /// The certificates that may answer `name`, best match first: exact, then wildcard.
    fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Arc<CertifiedKey>> {
        let exact = self.exact.get(name).into_iter().flatten();
        let parent = name.split_once('.').map(|(_, parent)| parent);
        let wildcard = parent.and_then(|parent| self.wildcard.get(parent)).into_iter().flatten();
        exact.chain(wildcard)
    }
}

/// The first of `candidates` whose key can sign with one of the client's `schemes`.
fn fitting<'a>(
    mut candidates: impl Iterator<Item = &'a Arc<CertifiedKey>>,
    schemes: &[rustls::SignatureScheme],
) -> Option<Arc<CertifiedKey>> {
    candidates.find(|candidate| candidate.key.choose_scheme(schemes).is_some()).cloned()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        let named = hello.server_name().and_then(|name| {
            let name = name.to_ascii_lowercase();
            fitting(self.named(&name), schemes)
        });
        // `None` makes rustls refuse with an alert before it sends its ServerHello.
        named.or_else(|| fitting(self.default.iter(), schemes))
    }
}

/// Loads one `certificates` entry: its key pair, OCSP response and names.
fn load_entry(
    at: &str,
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Vec<String>), (String, String)> {
    let mut certified = load_certified_key(&files.cert, &files.key, provider)
        .map_err(|(key, reason)| (format!("{at}.{key}"), reason))?;
    if let Some(path) = &files.ocsp {
        let ocsp = std::fs::read(path).map_err(|error| {
            (format!("{at}.ocsp"), format!("cannot read {}: {error}", path.display()))
        })?;
        certified.ocsp = Some(ocsp);
    }
    let names = if files.names.is_empty() {
        let end_entity = webpki::EndEntityCert::try_from(&certified.cert[0]).map_err(|error| {
            (format!("{at}.cert"), format!("{}: {error:?}", files.cert.display()))
        })?;
        end_entity.valid_dns_names().map(str::to_ascii_lowercase).collect()
    } else {
        files.names.iter().map(|name| name.to_ascii_lowercase()).collect()
    };
    Ok((Arc::new(certified), names))
}
