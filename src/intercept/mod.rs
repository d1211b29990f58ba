//! TLS interception (SPEC section 7), the parts that know nothing of
//! requests: the local CA ([`ca`]), leaf certificates kept in an LRU
//! ([`leaf`]), telling a ClientHello from other first bytes ([`sniff`]), and
//! terminating the client's TLS with a leaf for its SNI ([`Interceptor`]).
//! Whether a tunnel is intercepted is decided by the pipeline
//! ([`crate::pipeline::tunnel`]); the requests inside go through the same
//! request entry as plain HTTP.

pub mod ca;
pub mod leaf;
pub mod sniff;

use std::num::NonZeroUsize;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use self::ca::Ca;
use self::leaf::{Leaves, OneLeaf};
use crate::config::MitmConfig;

/// ALPN offered to the client, best first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Terminates clients' TLS with leaves of the local CA.
#[derive(Debug)]
pub struct Interceptor {
    leaves: Leaves,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// Why the client's handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The handshake failed (the client rejected the leaf, or broke off).
    #[error("client TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    /// No leaf could be made for the name.
    #[error("no certificate for {name}: {reason}")]
    Leaf {
        /// The name asked for.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A client's TLS, terminated.
pub struct Accepted<S> {
    /// The decrypted stream.
    pub stream: TlsStream<S>,
    /// The name the leaf was made for (SNI, or the tunnel's host).
    pub name: String,
    /// Whether the client chose HTTP/2.
    pub h2: bool,
}

impl Interceptor {
    /// The interceptor of `[mitm]`, loading its CA.
    pub fn new(config: &MitmConfig) -> anyhow::Result<Self> {
        let ca = Ca::load(&config.ca_cert, &config.ca_key)?;
        let capacity = NonZeroUsize::new(config.leaf_cache).unwrap_or(NonZeroUsize::MIN);
        Ok(Interceptor {
            leaves: Leaves::new(ca, capacity),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// Leaves minted since start.
    pub fn minted(&self) -> u64 {
        self.leaves.minted()
    }

    /// Answers the client's handshake on `io` with a leaf for its SNI, or
    /// for `host` when it sent none.
    pub async fn accept<S>(&self, io: S, host: &str) -> Result<Accepted<S>, AcceptError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
            .await
            .map_err(AcceptError::Handshake)?;
        let name = start
            .client_hello()
            .server_name()
            .map_or_else(|| host.to_owned(), str::to_owned);
        let leaf = self
            .leaves
            .get(&name)
            .await
            .map_err(|reason| AcceptError::Leaf {
                name: name.clone(),
                reason,
            })?;
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| AcceptError::Leaf {
                name: name.clone(),
                reason: err.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(OneLeaf(leaf)));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        let stream = start
            .into_stream(Arc::new(config))
            .await
            .map_err(AcceptError::Handshake)?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(ALPN[0]);
        Ok(Accepted { stream, name, h2 })
    }
}
