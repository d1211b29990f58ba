//! `pacer ca init`: writes a local certificate authority (an ECDSA P-256
//! key and a self-signed CA certificate, valid ten years) for TLS
//! interception. The key file is created readable by its owner only, and
//! existing files are never overwritten.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The certificate file name inside the CA folder.
pub const CERT_FILE: &str = "ca.pem";
/// The private key file name inside the CA folder.
pub const KEY_FILE: &str = "ca.key";

const VALIDITY_DAYS: i64 = 3650;

/// Paths of a freshly written CA.
#[derive(Debug)]
pub struct WrittenCa {
    /// The CA certificate (PEM), to install in clients' trust stores.
    pub cert: PathBuf,
    /// The CA private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// Writes `ca.pem` and `ca.key` into `dir` (created if missing).
pub fn init(dir: &Path) -> anyhow::Result<WrittenCa> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    for path in [&cert_path, &key_path] {
        if path.exists() {
            bail!(
                "{} already exists; remove it first to make a new CA",
                path.display()
            );
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
    name.push(DnType::CommonName, "pacer local interception CA");
    name.push(DnType::OrganizationName, "pacer");
    params.distinguished_name = name;
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
    params
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
        let written = init(dir.path()).expect("init");
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
        let again = init(dir.path());
        assert!(again.is_err(), "an existing CA must not be overwritten");
        assert_eq!(fs::read_to_string(&written.key).expect("key"), key);
    }
}
