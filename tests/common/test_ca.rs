//! A test certificate authority made with rcgen: its PEM in a temporary
//! file for `[tls] extra_roots`, and a TLS acceptor with a server
//! certificate for 127.0.0.1 and localhost signed by it.

use std::path::PathBuf;
use std::sync::Arc;

/// A test CA (rcgen) whose PEM lives in a temporary file, for `[tls]
/// extra_roots`, and a server certificate for 127.0.0.1 and localhost.
pub struct TestCa {
    pub pem_path: PathBuf,
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.distinguished_name
            .push(DnType::CommonName, "pacer test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("leaf params");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
        let dir = tempfile::tempdir().expect("temp dir");
        let pem_path = dir.path().join("ca.pem");
        std::fs::write(&pem_path, ca_cert.pem()).expect("write ca");
        TestCa {
            pem_path,
            chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            key: leaf_key.serialize_der(),
            _dir: dir,
        }
    }

    /// `[tls]` with this CA as the extra root.
    pub fn tls_section(&self) -> String {
        format!(
            "[tls]\nextra_roots = [{:?}]\n",
            self.pem_path.display().to_string()
        )
    }

    /// The server certificate chain and its key as PEM files beside the
    /// CA (for a TLS server that reads files, such as redis-server).
    pub fn server_pem_files(&self) -> (PathBuf, PathBuf) {
        let dir = self.pem_path.parent().expect("the CA's folder");
        let chain: String = self
            .chain
            .iter()
            .map(|der| pem("CERTIFICATE", der))
            .collect();
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::write(&cert, chain).expect("write chain");
        std::fs::write(&key, pem("PRIVATE KEY", &self.key)).expect("write key");
        (cert, key)
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor_offering(&[])
    }

    /// An acceptor whose ALPN offers `protocols` (best first).
    pub fn acceptor_offering(&self, protocols: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(self.key.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .expect("server config");
        let mut config = config;
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// `der` as a PEM block labelled `label`.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}
