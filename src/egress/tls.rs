//! The TLS client of egress, over any stream: to `https` upstream proxies
//! and to `https://` origins (directly, or inside a tunnel through a
//! proxy). A rustls client on the *ring* provider (never aws-lc-rs),
//! verifying the peer against the system roots (rustls-native-certs) plus
//! every certificate of the PEM files in `[tls] extra_roots`.
//!
//! The extra roots are read when pacer starts, so a missing or empty file
//! stops it with a clear error. The system store is read once, on the
//! blocking pool: [`TlsClient::preload`] starts that at start-up, and a
//! connection that comes first waits for it without blocking its thread.
//! A machine without a system store still works with `extra_roots` alone.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OnceCell;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::TlsConfig;

/// The TLS client of upstream connections.
#[derive(Debug)]
pub struct TlsClient {
    extra_roots: Arc<[CertificateDer<'static>]>,
    config: OnceCell<Result<Configs, String>>,
}

/// Who is on the other side of a TLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// An `https` upstream proxy (no ALPN: pacer speaks HTTP/1.1 to it).
    Proxy,
    /// An `https://` origin: ALPN offers `h2` and `http/1.1`.
    Origin,
    /// An `https://` origin that must speak HTTP/1.1 (an upgrade).
    OriginHttp1,
}

/// One client config per kind of peer, on the same roots.
#[derive(Debug, Clone)]
struct Configs {
    proxy: Arc<ClientConfig>,
    origin: Arc<ClientConfig>,
    origin_http1: Arc<ClientConfig>,
}

/// ALPN offered to origins, best first.
const ORIGIN_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl TlsClient {
    /// Reads every PEM file of `[tls] extra_roots`; each must hold at least
    /// one certificate.
    pub fn new(tls: &TlsConfig) -> anyhow::Result<Self> {
        let mut extra_roots = Vec::new();
        for path in &tls.extra_roots {
            extra_roots.extend(read_pem_certs(path)?);
        }
        Ok(TlsClient {
            extra_roots: extra_roots.into(),
            config: OnceCell::new(),
        })
    }

    /// Loads the roots now, on the blocking pool (call once at start-up).
    pub async fn preload(&self) {
        let _ = self.config().await;
    }

    /// Whether the roots are loaded.
    pub fn is_loaded(&self) -> bool {
        self.config.initialized()
    }

    /// Runs the TLS handshake with `host` (a name or an IP address) over
    /// `tcp`. The error says why, for the envelope's detail.
    pub async fn connect<S>(
        &self,
        peer: Peer,
        host: &str,
        stream: S,
    ) -> Result<TlsStream<S>, String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let configs = self.config().await?;
        let config = match peer {
            Peer::Proxy => configs.proxy,
            Peer::Origin => configs.origin,
            Peer::OriginHttp1 => configs.origin_http1,
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
        TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|err| format!("TLS handshake failed: {err}"))
    }

    async fn config(&self) -> Result<Configs, String> {
        let roots = self.extra_roots.clone();
        self.config
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || build_config(&roots))
                    .await
                    .unwrap_or_else(|err| Err(format!("loading root certificates failed: {err}")))
            })
            .await
            .clone()
    }
}

fn read_pem_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read [tls] extra_roots file {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("[tls] extra_roots file {} is not PEM", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "[tls] extra_roots file {} holds no certificate",
            path.display()
        );
    }
    Ok(certs)
}

fn build_config(extra_roots: &[CertificateDer<'static>]) -> Result<Configs, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::warn!(%err, "could not load a system root certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates loaded");
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|err| format!("an extra_roots certificate is unusable: {err}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS client setup failed: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut origin = config.clone();
    origin.alpn_protocols = ORIGIN_ALPN.iter().map(|p| p.to_vec()).collect();
    let mut origin_http1 = config.clone();
    origin_http1.alpn_protocols = vec![ORIGIN_ALPN[1].to_vec()];
    Ok(Configs {
        proxy: Arc::new(config),
        origin: Arc::new(origin),
        origin_http1: Arc::new(origin_http1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn extra_roots_must_exist_and_hold_certificates() {
        let missing = TlsConfig {
            extra_roots: vec![PathBuf::from("/nonexistent/roots.pem")],
        };
        let err = TlsClient::new(&missing).expect_err("missing file");
        assert!(err.to_string().contains("cannot read"), "{err}");
        let dir = std::env::temp_dir().join(format!("pacer-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = TlsClient::new(&TlsConfig {
            extra_roots: vec![empty],
        })
        .expect_err("no certificate");
        assert!(err.to_string().contains("holds no certificate"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_ca_from_rcgen_is_accepted_and_preloaded() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("cert");
        let dir = std::env::temp_dir().join(format!("pacer-tls-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("ca.pem");
        std::fs::write(&path, cert.pem()).expect("write");
        let client = TlsClient::new(&TlsConfig {
            extra_roots: vec![path],
        })
        .expect("client");
        assert_eq!(client.extra_roots.len(), 1);
        assert!(!client.is_loaded(), "nothing is read before start-up asks");
        client.preload().await;
        assert!(client.is_loaded());
        assert!(client.config().await.is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
