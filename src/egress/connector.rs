//! How a plain-HTTP pool opens new connections: one pool per route, so a
//! pooled connection never carries another route's traffic.
//!
//! For `http://` the connection goes to the origin, or to an `http(s)`
//! proxy (which then gets absolute-form requests), or through a SOCKS5
//! tunnel. For `https://` it is always a tunnel (direct TCP, an HTTP
//! CONNECT or a SOCKS5 CONNECT) with TLS to the origin inside, verified
//! against the system roots and `[tls] extra_roots`.
//!
//! Each connection is [`Watched`], so that a request failing on a reused
//! one can be told apart (see [`super::reuse`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::Scheme;
use http::Uri;
use hyper_util::rt::TokioIo;

use super::dial::{DialError, Dialer};
use super::error::{EgressError, TlsError};
use super::reuse::Watched;
use super::stream::EgressStream;
use super::target::Target;
use super::tls::Peer;
use super::upstream::{EgressSettings, Endpoint};

/// Which way a pool's connections go.
#[derive(Clone)]
pub enum Way {
    /// To the origin itself.
    Direct(Dialer),
    /// Through an upstream proxy.
    Upstream(Arc<Endpoint>),
}

/// The connector of one route's pool.
#[derive(Clone)]
pub struct EgressConnector {
    way: Way,
    settings: Arc<EgressSettings>,
    /// TLS towards `https://` origins ([`Peer::Origin`] or
    /// [`Peer::OriginHttp1`]).
    origin: Peer,
}

impl EgressConnector {
    /// A connector going `way`, speaking TLS to origins as `origin`.
    pub fn new(way: Way, settings: Arc<EgressSettings>, origin: Peer) -> Self {
        EgressConnector {
            way,
            settings,
            origin,
        }
    }

    async fn connect(self, uri: Uri) -> Result<EgressStream, EgressError> {
        let target = Target::from_absolute(&uri)
            .map_err(|_| EgressError::Direct(DialError::bad_uri(&uri)))?;
        if uri.scheme() != Some(&Scheme::HTTPS) {
            return self.plain(&target).await;
        }
        let tunnel = self.tunnel(&target).await?;
        let host = target.host_str();
        match self.settings.tls.connect(self.origin, &host, tunnel).await {
            Ok(tls) => Ok(EgressStream::tls(tls)),
            Err(reason) => Err(EgressError::OriginTls(TlsError {
                target: target.to_string(),
                reason,
            })),
        }
    }

    /// A connection that carries plain HTTP to `target`.
    async fn plain(&self, target: &Target) -> Result<EgressStream, EgressError> {
        match &self.way {
            Way::Direct(dialer) => direct(dialer, target).await,
            Way::Upstream(endpoint) => endpoint
                .connect_for_http(target)
                .await
                .map_err(EgressError::Upstream),
        }
    }

    /// A byte stream to `target` itself.
    async fn tunnel(&self, target: &Target) -> Result<EgressStream, EgressError> {
        match &self.way {
            Way::Direct(dialer) => direct(dialer, target).await,
            Way::Upstream(endpoint) => endpoint.tunnel(target).await.map_err(EgressError::Upstream),
        }
    }
}

async fn direct(dialer: &Dialer, target: &Target) -> Result<EgressStream, EgressError> {
    dialer
        .connect(target)
        .await
        .map(EgressStream::tcp)
        .map_err(EgressError::Direct)
}

/// A pooled connection's stream.
pub type PooledStream = TokioIo<Watched<EgressStream>>;

type ConnectFuture = Pin<Box<dyn Future<Output = Result<PooledStream, EgressError>> + Send>>;

impl tower_service::Service<Uri> for EgressConnector {
    type Response = PooledStream;
    type Error = EgressError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move {
            connector
                .connect(uri)
                .await
                .map(|s| TokioIo::new(Watched::new(s)))
        })
    }
}
