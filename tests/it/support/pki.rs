//! Test certificates made with rcgen at test time: a CA, leaf certificates signed by it
//! (ECDSA P-256 or RSA), written as PEM files into a directory removed on drop.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of PEM files and the CA that signed them.
pub(crate) struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// A leaf written to disk.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Pki {
    /// A fresh directory with a CA certificate in `ca.pem`, common name `cn`.
    pub(crate) fn new(cn: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let next = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ringway-pki-{}-{next}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make the PKI directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("CA key");
        std::fs::write(dir.join("ca.key"), key.serialize_pem()).expect("write ca.key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
        Self { dir, ca }
    }

    /// The CA certificate's PEM file.
    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A path inside the directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A rustls client config (ring) trusting this CA; `resume: false` makes every
    /// connection a full handshake.
    pub(crate) fn client_config(&self, resume: bool) -> std::sync::Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(self.ca()).expect("read ca.pem");
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.expect("CA PEM")).expect("add the CA");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        std::sync::Arc::new(config)
    }

    /// An ECDSA P-256 leaf for `names` with common name `cn`, as `file.pem` and `file.key`.
    pub(crate) fn leaf(&self, file: &str, cn: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        self.write_leaf(file, cn, names, &key)
    }

    /// An RSA-2048 leaf, otherwise like [`Pki::leaf`].
    pub(crate) fn rsa_leaf(&self, file: &str, cn: &str, names: &[&str]) -> Leaf {
        // ring signs with RSA but cannot make RSA keys: openssl makes the key.
        let output = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .expect("run openssl (.ci/run installs it)");
        assert!(output.status.success(), "openssl genpkey failed");
        let pem = String::from_utf8(output.stdout).expect("PEM is text");
        let key =
            KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("RSA key");
        self.write_leaf(file, cn, names, &key)
    }

    fn write_leaf(&self, file: &str, cn: &str, names: &[&str], key: &KeyPair) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(key, &self.ca).expect("sign the leaf");
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write the leaf");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write the key");
        leaf
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as a TOML string value.
pub(crate) fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().expect("UTF-8 temp path"))
}
