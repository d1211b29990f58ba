//! The local certificate authority of TLS interception: `pacer ca init`
//! writes one (an ECDSA P-256 key and a self-signed CA certificate, valid
//! ten years, named for pacer and the host); the key file is created
//! readable by its owner only, and an existing pair is overwritten only
//! with `--force`. [`Ca::load`] reads it back, and [`Ca::mint`] signs a
//! leaf certificate for a host name or IP address.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

/// The certificate file name inside the CA folder.
pub const CERT_FILE: &str = "ca.pem";
/// The private key file name inside the CA folder.
pub const KEY_FILE: &str = "ca.key";

const VALIDITY_DAYS: i64 = 3650;
/// How long a minted leaf is valid (it is minted again after a restart).
const LEAF_DAYS: i64 = 30;

/// Paths of a freshly written CA.
#[derive(Debug)]
pub struct WrittenCa {
    /// The CA certificate (PEM), to install in clients' trust stores.
    pub cert: PathBuf,
    /// The CA private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// Writes `ca.pem` and `ca.key` into `dir` (created if missing); an
/// existing pair is replaced only when `force`.
pub fn init(dir: &Path, force: bool) -> anyhow::Result<WrittenCa> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    for path in [&cert_path, &key_path] {
        if path.exists() && !force {
            bail!(
                "{} already exists; pass --force to replace the CA",
                path.display()
            );
        }
        if path.exists() {
            fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = KeyPair::generate().context("cannot generate the CA key")?;
    let cert = ca_params(OffsetDateTime::from(SystemTime::now()))
        .self_signed(&key)
        .context("cannot sign the CA certificate")?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(WrittenCa {
        cert: cert_path,
        key: key_path,
    })
}

fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut name = DistinguishedName::new();
    let host = hostname();
    name.push(
        DnType::CommonName,
        format!("pacer interception CA ({host})"),
    );
    name.push(DnType::OrganizationName, "pacer");
    params.distinguished_name = name;
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
    params
}

/// This machine's name, for the CA's name.
fn hostname() -> String {
    fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A loaded CA, ready to sign leaves.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

impl Ca {
    /// Reads the CA certificate and key (PEM) written by [`init`].
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Ca> {
        let cert_pem = fs::read_to_string(cert)
            .with_context(|| format!("cannot read the CA certificate {}", cert.display()))?;
        let key_pem = fs::read_to_string(key)
            .with_context(|| format!("cannot read the CA key {}", key.display()))?;
        let key_pair = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("{} is not a usable private key", key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key_pair)
            .with_context(|| format!("{} is not a usable CA certificate", cert.display()))?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .with_context(|| format!("{} is not PEM", cert.display()))?;
        Ok(Ca {
            issuer,
            cert: der,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// A leaf for `host` (a DNS name, or an IP address, which gets an IP
    /// SAN), signed by this CA, with the CA in its chain.
    pub fn mint(&self, host: &str) -> anyhow::Result<CertifiedKey> {
        let key = KeyPair::generate().context("cannot generate a leaf key")?;
        let mut params = CertificateParams::new(vec![host.to_owned()])
            .with_context(|| format!("`{host}` cannot be a certificate name"))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::from(SystemTime::now());
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(LEAF_DAYS);
        let leaf = params
            .signed_by(&key, &self.issuer)
            .context("cannot sign a leaf certificate")?;
        let chain = vec![leaf.der().clone(), self.cert.clone()];
        let private = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        CertifiedKey::from_der(chain, private, &self.provider).context("unusable leaf")
    }
}

/// Creates `path` (failing if it exists) with `mode` and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_once_with_a_private_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = init(dir.path(), false).expect("init");
        let cert = fs::read_to_string(&written.cert).expect("cert");
        let key = fs::read_to_string(&written.key).expect("key");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&written.key)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = init(dir.path(), false);
        assert!(again.is_err(), "an existing CA must not be overwritten");
        assert_eq!(fs::read_to_string(&written.key).expect("key"), key);
        init(dir.path(), true).expect("--force replaces it");
        assert_ne!(fs::read_to_string(&written.key).expect("key"), key);
    }

    #[test]
    fn a_loaded_ca_mints_leaves_for_names_and_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = init(dir.path(), false).expect("init");
        let ca = Ca::load(&written.cert, &written.key).expect("load");
        for host in ["api.example.com", "127.0.0.1", "::1"] {
            let leaf = ca.mint(host).expect("leaf");
            assert_eq!(leaf.cert.len(), 2, "leaf and CA");
        }
        assert!(Ca::load(&dir.path().join("missing.pem"), &written.key).is_err());
    }
}
