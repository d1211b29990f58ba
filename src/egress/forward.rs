//! Plain HTTP forwarding (absolute-form `http://` requests): hop-by-hop
//! headers removed both ways, `Host` set from the request URI, the request
//! sent over a pooled keep-alive connection and the response streamed back.
//! A request that meets a reused connection closing before any byte of its
//! answer goes once more, on a fresh connection (see [`super::reuse`]).
//!
//! Both messages travel as pacer's own HTTP/1.1 (RFC 9110 section 6.2),
//! whatever the client or the origin spoke: an HTTP/1.0 request passed on
//! as it came (its `Connection` header being hop-by-hop) would ask the
//! origin to close after answering, and an HTTP/1.0 answer passed on would
//! close a keep-alive client's connection. Keep-alive is then each hop's
//! own: hyper answers an HTTP/1.0 client as its request asked, and keeps an
//! origin connection only while the origin's answers allow it.
//!
//! Each route has its own [`Forwarder`] (one for direct, one per upstream),
//! so a pooled connection only ever carries its route's requests. Through
//! an HTTP(S) proxy the connection goes to the proxy, requests are written
//! in absolute-form with pacer's `Proxy-Authorization`, and the proxy's
//! answer is passed on as it is, except a 407: that is pacer's credentials
//! being refused, an upstream failure. Through SOCKS5 the connection is a
//! tunnel to the origin.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Scheme;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::error::Elapsed;

use super::connector::{EgressConnector, Way};
use super::dial::Dialer;
use super::error::EgressError;
use super::replay::AttemptBody;
use super::reuse::failed_unanswered_on_reuse;
use super::target::Target;
use super::tls::Peer;
use super::upstream::{EgressSettings, Endpoint, UpstreamError, UpstreamErrorKind};

thread_local! {
    static POOL: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread use pool `index` of every [`Forwarder`] (each
/// ingress thread calls this once, with its own index).
pub fn use_pool(index: usize) {
    POOL.with(|cell| cell.set(index));
}

/// Sends absolute-form requests over one route's connections.
#[derive(Clone)]
pub struct Forwarder {
    /// Connections of any HTTP version.
    any: Clients,
    /// HTTP/1.1 connections only: an upgrade (WebSocket) cannot travel
    /// over HTTP/2.
    http1: Clients,
    response_timeout: Duration,
    /// The upstream this pool goes through; `None` for direct.
    via: Option<Arc<Endpoint>>,
}

/// One kind of connection's clients: a pool per ingress thread (see
/// [`use_pool`]), so a request and its origin connection always run on the
/// same thread; and one that keeps no connection, for the single retry of a
/// request whose pooled connection failed unanswered on reuse.
#[derive(Clone)]
struct Clients {
    pooled: Arc<[Client<EgressConnector, AttemptBody>]>,
    fresh: Client<EgressConnector, AttemptBody>,
}

impl Clients {
    fn new(connector: &EgressConnector, settings: &EgressSettings) -> Self {
        let build = |max_idle: usize| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(settings.idle_timeout)
                .pool_max_idle_per_host(max_idle)
                .http1_preserve_header_case(true)
                .build(connector.clone())
        };
        Clients {
            pooled: (0..settings.pools.max(1))
                .map(|_| build(usize::MAX))
                .collect(),
            fresh: build(0),
        }
    }

    /// The calling ingress thread's pool.
    fn pooled(&self) -> &Client<EgressConnector, AttemptBody> {
        &self.pooled[POOL.with(Cell::get) % self.pooled.len()]
    }
}

/// Why a forwarded request got no response to pass on.
#[derive(Debug)]
pub enum ForwardError {
    /// The route failed (connect, handshake, an upstream's 407): routing
    /// decides whether another upstream is tried.
    Egress(EgressError),
    /// The destination was reached and failed or timed out.
    Origin(OriginError),
}

/// The origin was reached but gave no response to pass on.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// No response head within `idle_timeout`.
    #[error("{target} sent no response within {}", humantime::format_duration(*.after))]
    TimedOut {
        /// `host:port` of the origin.
        target: String,
        /// How long pacer waited.
        after: Duration,
    },
    /// The exchange failed.
    #[error("{target} failed: {reason}")]
    Failed {
        /// `host:port` of the origin.
        target: String,
        /// What hyper reported.
        reason: String,
    },
}

impl Forwarder {
    /// Direct to origins, dialing with `dialer`, keeping idle connections
    /// for `idle_timeout` and waiting at most that long for a response head.
    pub fn direct(dialer: Dialer, settings: &Arc<EgressSettings>) -> Self {
        Self::new(Way::Direct(dialer), None, settings)
    }

    /// Through the upstream `endpoint`.
    pub fn via(endpoint: Arc<Endpoint>, settings: &Arc<EgressSettings>) -> Self {
        Self::new(Way::Upstream(endpoint.clone()), Some(endpoint), settings)
    }

    fn new(way: Way, via: Option<Arc<Endpoint>>, settings: &Arc<EgressSettings>) -> Self {
        let any = EgressConnector::new(way.clone(), settings.clone(), Peer::Origin);
        let http1 = EgressConnector::new(way, settings.clone(), Peer::OriginHttp1);
        Forwarder {
            any: Clients::new(&any, settings),
            http1: Clients::new(&http1, settings),
            response_timeout: settings.idle_timeout,
            via,
        }
    }

    /// The clients for `request`.
    fn clients(&self, request: &Request<AttemptBody>) -> &Clients {
        match upgrade_of(request.headers()) {
            Some(_) => &self.http1,
            None => &self.any,
        }
    }

    /// Forwards a prepared `request` (see [`prepare_request`]) to `target`
    /// and returns the response head with its body still streaming. When
    /// the pooled connection it was sent on was a reused one that failed
    /// before any byte of the answer, the request from `again` (if it can
    /// still be sent whole) goes once more, on a fresh connection.
    pub async fn forward(
        &self,
        request: Request<AttemptBody>,
        target: &Target,
        again: impl FnOnce() -> Option<Request<AttemptBody>>,
    ) -> Result<Response<Incoming>, ForwardError> {
        let proxy = self.absolute_form_proxy(request.uri());
        let clients = self.clients(&request);
        let mut sent = self.send(clients.pooled(), request, proxy).await;
        if matches!(&sent, Ok(Err(err)) if failed_unanswered_on_reuse(err.connect_info())) {
            if let Some(request) = again() {
                tracing::debug!(%target, "a reused connection closed unanswered; once more on a fresh one");
                sent = self.send(&clients.fresh, request, proxy).await;
            }
        }
        let mut response = match sent {
            Err(_) => {
                return Err(ForwardError::Origin(OriginError::TimedOut {
                    target: target.to_string(),
                    after: self.response_timeout,
                }))
            }
            Ok(Err(err)) => return Err(failure(proxy, err, target)),
            Ok(Ok(response)) => response,
        };
        if let Some(via) = proxy.filter(|_| refused_credentials(&response)) {
            let kind = UpstreamErrorKind::CredentialsRejected("HTTP 407".into());
            let err = UpstreamError::new(via.label(), kind);
            return Err(ForwardError::Egress(EgressError::Upstream(err)));
        }
        let upgrade = upgrade_of(response.headers())
            .filter(|_| response.status() == StatusCode::SWITCHING_PROTOCOLS);
        *response.version_mut() = Version::HTTP_11;
        strip_hop_by_hop(response.headers_mut());
        keep_upgrade(response.headers_mut(), upgrade);
        Ok(response)
    }

    /// Sends `request` with `client`, with pacer's credentials for the
    /// HTTP(S) `proxy` it is written to, if any; waits at most the
    /// response timeout for the answer's head.
    async fn send(
        &self,
        client: &Client<EgressConnector, AttemptBody>,
        mut request: Request<AttemptBody>,
        proxy: Option<&Arc<Endpoint>>,
    ) -> Result<Result<Response<Incoming>, hyper_util::client::legacy::Error>, Elapsed> {
        if let Some(value) = proxy.and_then(|via| via.authorization()) {
            let headers = request.headers_mut();
            headers.insert(header::PROXY_AUTHORIZATION, value.clone());
        }
        tokio::time::timeout(self.response_timeout, client.request(request)).await
    }

    /// The HTTP(S) proxy a request to `uri` is written to in absolute-form,
    /// if any (an `https://` request goes through a tunnel instead).
    fn absolute_form_proxy(&self, uri: &Uri) -> Option<&Arc<Endpoint>> {
        let via = self.via.as_ref()?;
        (via.speaks_http() && uri.scheme() == Some(&Scheme::HTTP)).then_some(via)
    }
}

/// A 407: the HTTP proxy refused pacer's credentials.
fn refused_credentials(response: &Response<Incoming>) -> bool {
    response.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED
}

/// What went wrong, from hyper's error chain: the connector's own error,
/// else a broken HTTP proxy (`proxy`, the one the request was written to),
/// else the origin (directly or behind a tunnel).
fn failure(
    proxy: Option<&Arc<Endpoint>>,
    err: hyper_util::client::legacy::Error,
    target: &Target,
) -> ForwardError {
    let mut client_side = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(current) = source {
        if let Some(egress) = current.downcast_ref::<EgressError>() {
            return ForwardError::Egress(egress.clone_for_wire());
        }
        // hyper's "user" errors: the client's upload failed, not the peer.
        client_side |= current
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user);
        source = current.source();
    }
    match proxy {
        Some(via) if !client_side => {
            let reason = format!("no response to a forwarded request: {err}");
            ForwardError::Egress(EgressError::Upstream(UpstreamError::broken(
                via.label(),
                reason,
            )))
        }
        Some(_) | None => ForwardError::Origin(OriginError::Failed {
            target: target.to_string(),
            reason: err.to_string(),
        }),
    }
}

/// The request URI names no host that can be sent as `Host`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request URI has no usable host")]
pub struct NoHost;

/// Removes what must not reach the origin, sets `Host` from the URI (RFC
/// 9112 section 3.2.2) and makes the request pacer's own HTTP/1.1.
pub fn prepare_request(request: &mut Request<Incoming>) -> Result<(), NoHost> {
    *request.version_mut() = Version::HTTP_11;
    let upgrade = upgrade_of(request.headers());
    strip_hop_by_hop(request.headers_mut());
    keep_upgrade(request.headers_mut(), upgrade);
    let host = host_of(request.uri()).ok_or(NoHost)?;
    // Most clients already send the URI's authority once: nothing to
    // rebuild then.
    let mut sent = request.headers().get_all(header::HOST).iter();
    let same = sent.next().map(HeaderValue::as_bytes) == Some(host.as_bytes());
    if !same || sent.next().is_some() {
        let value = HeaderValue::from_str(host).map_err(|_| NoHost)?;
        request.headers_mut().insert(header::HOST, value);
    }
    Ok(())
}

/// The `host[:port]` of an absolute URI, without user information.
fn host_of(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?.as_str();
    Some(
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, after)| after),
    )
}

/// Headers that only concern one hop (RFC 9110 section 7.6.1), plus the
/// proxy credentials, which are consumed here.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// The protocol an HTTP/1.1 message asks to upgrade to (`Upgrade`, named
/// by `Connection: upgrade`), e.g. a WebSocket handshake.
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asked
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts an upgrade back after the hop-by-hop headers went: it is the one
/// hop-by-hop exchange that must reach the other side.
fn keep_upgrade(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    if let Some(protocol) = upgrade {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Removes hop-by-hop headers, including every field `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_tokens_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("X-Foo, close"));
        headers.insert("x-foo", HeaderValue::from_static("1"));
        headers.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        headers.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn host_comes_from_the_uri() {
        let uri: Uri = "http://Example.com:8080/a?b".parse().expect("uri");
        assert_eq!(host_of(&uri), Some("Example.com:8080"));
    }
}
