//! Egress through upstream proxies (SPEC section 5): reaching a proxy
//! (TCP, then TLS for `https`), speaking its protocol with its credentials,
//! all bounded by `server.connect_timeout`, and classifying every failure
//! as an [`UpstreamError`].
//!
//! - [`Endpoint`]: one proxy and how to dial through it, for a tunnel
//!   ([`Endpoint::tunnel`]) or for the plain-HTTP pool
//!   ([`Endpoint::connect_for_http`]).
//! - Which upstream a request uses is [`super::route`]'s job.
//! - `http`: CONNECT; `socks5`: the SOCKS5 client; TLS is [`super::tls`].

mod error;
pub mod http;
pub mod socks5;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::http::HeaderValue;

pub use error::{DestinationAnswer, UpstreamError, UpstreamErrorKind};

use super::dial::connect_tcp;
use super::stream::EgressStream;
use super::target::Target;
use super::tls::{Peer, TlsClient};
use crate::config::{UpstreamScheme, UpstreamUrl};

/// What every upstream dial shares.
#[derive(Debug)]
pub struct EgressSettings {
    /// Bound on connect + TLS + proxy handshake.
    pub connect_timeout: Duration,
    /// Idle time of pooled plain-HTTP connections, and the wait for a
    /// response head.
    pub idle_timeout: Duration,
    /// TLS to `https` proxies.
    pub tls: TlsClient,
    /// Plain-HTTP pools per route: one per ingress thread.
    pub pools: usize,
}

/// One upstream proxy, ready to dial.
#[derive(Debug)]
pub struct Endpoint {
    url: UpstreamUrl,
    label: Arc<str>,
    authorization: Option<HeaderValue>,
    settings: Arc<EgressSettings>,
}

impl Endpoint {
    /// The endpoint of `url`.
    pub fn new(url: UpstreamUrl, settings: Arc<EgressSettings>) -> Self {
        let authorization = match url.scheme {
            UpstreamScheme::Http | UpstreamScheme::Https => http::basic_credentials(&url),
            UpstreamScheme::Socks5 => None,
        };
        Endpoint {
            label: Arc::from(url.authority()),
            url,
            authorization,
            settings,
        }
    }

    /// `host:port` of the proxy, without credentials: what logs show.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// The proxy's URL (its `Display` masks the password).
    pub fn url(&self) -> &UpstreamUrl {
        &self.url
    }

    /// The `Proxy-Authorization` value each absolute-form request must
    /// carry (HTTP and HTTPS proxies with a user name).
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// Whether plain HTTP goes to this proxy in absolute-form (HTTP and
    /// HTTPS proxies) rather than through a tunnel (SOCKS5).
    pub fn speaks_http(&self) -> bool {
        match self.url.scheme {
            UpstreamScheme::Http | UpstreamScheme::Https => true,
            UpstreamScheme::Socks5 => false,
        }
    }

    /// Opens a tunnel to `target` through the proxy (HTTP CONNECT or SOCKS5
    /// CONNECT).
    pub async fn tunnel(&self, target: &Target) -> Result<EgressStream, UpstreamError> {
        self.bounded(self.open_tunnel(target)).await
    }

    /// A new connection for plain HTTP to `target`: to the proxy itself for
    /// HTTP(S) proxies (requests then go in absolute-form), a tunnel to the
    /// origin for SOCKS5.
    pub async fn connect_for_http(&self, target: &Target) -> Result<EgressStream, UpstreamError> {
        if self.speaks_http() {
            let stream = self.bounded(self.reach_proxy()).await?;
            Ok(stream.to_http_proxy())
        } else {
            self.tunnel(target).await
        }
    }

    async fn bounded<T>(
        &self,
        attempt: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        let limit = self.settings.connect_timeout;
        match tokio::time::timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::new(
                &self.label,
                UpstreamErrorKind::TimedOut(limit),
            )),
        }
    }

    async fn open_tunnel(&self, target: &Target) -> Result<EgressStream, UpstreamError> {
        let mut stream = self.reach_proxy().await?;
        match self.url.scheme {
            UpstreamScheme::Http | UpstreamScheme::Https => {
                let auth = self.authorization.as_ref();
                let leftover = http::connect(&mut stream, target, auth, &self.label).await?;
                Ok(stream.with_prefix(leftover))
            }
            UpstreamScheme::Socks5 => socks5::connect(stream, target, &self.url, &self.label).await,
        }
    }

    /// TCP to the proxy, then TLS for `https`.
    async fn reach_proxy(&self) -> Result<EgressStream, UpstreamError> {
        let proxy = Target::new(&self.url.host, self.url.port);
        let tcp = connect_tcp(&proxy)
            .await
            .map_err(|err| UpstreamError::connect(&self.label, &err))?;
        match self.url.scheme {
            UpstreamScheme::Https => {
                let tcp = EgressStream::tcp(tcp);
                let tls = self
                    .settings
                    .tls
                    .connect(Peer::Proxy, &self.url.host, tcp)
                    .await;
                tls.map(EgressStream::tls)
                    .map_err(|reason| UpstreamError::broken(&self.label, reason))
            }
            UpstreamScheme::Http | UpstreamScheme::Socks5 => Ok(EgressStream::tcp(tcp)),
        }
    }
}
