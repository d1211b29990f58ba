//! Plain HTTP forwarding (absolute-form `http://` requests): hop-by-hop
//! headers removed both ways, `Host` set from the request URI, the request
//! sent over a pooled keep-alive connection to the origin, and the response
//! streamed back.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::dial::{DialError, Dialer};
use crate::error::ProxyError;
use crate::target::Target;

/// Sends absolute-form requests to origins over pooled connections.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<DirectConnector, Incoming>,
    response_timeout: Duration,
}

impl Forwarder {
    /// A forwarder dialing with `dialer`, keeping idle origin connections
    /// for `idle_timeout` and waiting at most that long for a response head.
    pub fn new(dialer: Dialer, idle_timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle_timeout)
            .http1_preserve_header_case(true)
            .build(DirectConnector { dialer });
        Forwarder {
            client,
            response_timeout: idle_timeout,
        }
    }

    /// Forwards `request` to `target` and returns the origin's response head
    /// with its body still streaming.
    pub async fn forward(
        &self,
        mut request: Request<Incoming>,
        target: &Target,
    ) -> Result<Response<Incoming>, ProxyError> {
        prepare_request(&mut request)?;
        let sent = tokio::time::timeout(self.response_timeout, self.client.request(request));
        let mut response = match sent.await {
            Err(_) => {
                return Err(ProxyError::OriginTimeout {
                    target: target.to_string(),
                    after: self.response_timeout,
                })
            }
            Ok(Err(err)) => return Err(origin_error(err, target)),
            Ok(Ok(response)) => response,
        };
        strip_hop_by_hop(response.headers_mut());
        Ok(response)
    }
}

/// Removes what must not reach the origin and sets `Host` from the URI
/// (RFC 9112 section 3.2.2).
fn prepare_request(request: &mut Request<Incoming>) -> Result<(), ProxyError> {
    strip_hop_by_hop(request.headers_mut());
    let host = host_header(request.uri()).ok_or(ProxyError::MalformedRequest(
        "request URI has no usable host",
    ))?;
    request.headers_mut().insert(header::HOST, host);
    Ok(())
}

fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let authority = uri.authority()?;
    let host_port = match authority.as_str().rsplit_once('@') {
        Some((_, after)) => after,
        None => authority.as_str(),
    };
    HeaderValue::from_str(host_port).ok()
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

/// What went wrong talking to the origin, from hyper's error chain.
fn origin_error(err: hyper_util::client::legacy::Error, target: &Target) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(current) = source {
        if let Some(dial) = current.downcast_ref::<DialError>() {
            return ProxyError::Destination(dial.clone_for_wire());
        }
        source = current.source();
    }
    ProxyError::OriginFailed {
        target: target.to_string(),
        reason: err.to_string(),
    }
}

/// The pool's connector: every new origin connection goes through the
/// shared [`Dialer`], so it obeys `connect_timeout` and reports
/// [`DialError`]s.
#[derive(Clone)]
struct DirectConnector {
    dialer: Dialer,
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, DialError>> + Send>>;

impl tower_service::Service<Uri> for DirectConnector {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dialer = self.dialer.clone();
        Box::pin(async move {
            let target =
                Target::from_absolute_http(&uri).ok_or_else(|| DialError::bad_uri(&uri))?;
            dialer.connect(&target).await.map(TokioIo::new)
        })
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
        assert_eq!(host_header(&uri).expect("host"), "Example.com:8080");
    }
}
