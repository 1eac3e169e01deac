//! The backend side of TLS (origination): verification against the system roots or a CA
//! file, the SNI to send, an optional client certificate, and an explicit, loudly logged
//! `insecure_skip_verify` for tests.

use super::UpstreamStream;
use super::server::{Provider, load_certified_key, load_key, load_roots};
use super::stream::TlsStream;
use crate::http::Authority;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::PathBuf;
use std::sync::Arc;

/// A cluster's TLS settings as configured.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The config key, `cluster.NAME.tls`, for messages.
    pub at: String,
    /// CA certificates to trust; `None` means the system roots.
    pub ca: Option<PathBuf>,
    /// The name sent as SNI and verified; `None` means each backend's host.
    pub sni: Option<String>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub insecure_skip_verify: bool,
    pub provider: Provider,
}

/// A cluster's TLS, ready to connect.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub settings: ClientSettings,
    pub config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Reads the files and builds the config, or names the key that is wrong.
    pub fn load(settings: ClientSettings) -> Result<Self, (String, String)> {
        let at = &settings.at;
        let provider = Arc::new(settings.provider.build(&[]).map_err(|r| (at.clone(), r))?);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| (at.clone(), error.to_string()))?;
        let builder = if settings.insecure_skip_verify {
            log::warn!(
                "{at}.insecure_skip_verify = true: backend certificates are NOT verified; \
                 anyone on the path can read and change this traffic"
            );
            let verifier = NoVerification(provider.signature_verification_algorithms);
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        } else {
            let roots = match &settings.ca {
                Some(path) => load_roots(path).map_err(|reason| (format!("{at}.ca"), reason))?,
                None => system_roots().map_err(|reason| (format!("{at}.ca"), reason))?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match &settings.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                // Checked as a pair first, so a mismatch names the key file.
                let certified = load_certified_key(cert, key, &provider)
                    .map_err(|(key, reason)| (format!("{at}.client_{key}"), reason))?;
                let key_der = load_key(key).map_err(|r| (format!("{at}.client_key"), r))?;
                builder
                    .with_client_auth_cert(certified.cert, key_der)
                    .map_err(|error| (format!("{at}.client_key"), error.to_string()))?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { settings, config: Arc::new(config) })
    }

    /// The name to send and verify for a backend written as `host` (`name:port` or an IP).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, String> {
        let name = match &self.settings.sni {
            Some(sni) => sni.as_str(),
            None => host_part(host),
        };
        ServerName::try_from(name.to_owned()).map_err(|error| format!("SNI {name:?}: {error}"))
    }

    /// Runs the handshake on a connected backend stream.
    pub async fn connect(
        &self,
        tcp: monoio::net::TcpStream,
        name: ServerName<'static>,
    ) -> std::io::Result<UpstreamStream> {
        let conn =
            ClientConnection::new(self.config.clone(), name).map_err(std::io::Error::other)?;
        let mut stream = TlsStream::new(tcp, conn);
        stream.handshake().await?;
        Ok(UpstreamStream::Tls(Box::new(stream)))
    }
}

/// `host` without its port ([`Authority`]); an IPv6 literal without its brackets.
fn host_part(host: &str) -> &str {
    // The parsed host is a prefix of `host`, and ASCII, so it ends on a char boundary.
    let len =
        Authority::parse(host.as_bytes()).map_or(host.len(), |authority| authority.host.len());
    let name = &host[..len];
    name.strip_prefix('[').and_then(|literal| literal.strip_suffix(']')).unwrap_or(name)
}

/// The operating system's trusted roots.
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no system root certificates found ({}); set ca = \"FILE\"",
            errors.join("; ")
        ));
    }
    Ok(roots)
}

/// Accepts any backend certificate; still checks the handshake signatures, so the
/// session keys are at least bound to the key the backend presented.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn host_part_drops_the_port_and_brackets() {
        let cases = [
            ("backend.internal:8443", "backend.internal"),
            ("backend.internal", "backend.internal"),
            ("10.0.0.1:443", "10.0.0.1"),
            ("[::1]:443", "::1"),
            ("[::1]", "::1"),
        ];
        for (host, name) in cases {
            assert_eq!(host_part(host), name, "host: {host}");
        }
    }
}
