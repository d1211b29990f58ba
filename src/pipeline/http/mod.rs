//! HTTP served on any stream: HTTP/1.1 one checked head at a time
//! ([`http1`]), HTTP/2 by hyper alone (inside intercepted tunnels). Each
//! request's client is identified (`Proxy-Authorization`, or the account a
//! bound listener serves), and the request goes to the request entry
//! (absolute-form) or the tunnel entry (CONNECT, relayed once the client
//! upgrades). The listener serves its client sockets here; an intercepted
//! tunnel serves the TLS stream inside.

pub mod exchange;
pub mod http1;
pub mod noted;

pub use self::http1::{serve_http1, ClientStream};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use super::activity::ConnActivity;
use super::close::CloseOut;
use super::request::{self, with_waited, ProxyResponse};
use super::tunnel::Opened;
use super::{authenticate, bound_account, tunnel, Engine};
use crate::egress::prefix::Prefixed;
use crate::egress::target::{Target, TargetError};
use crate::policy::auth::Credentials;
use crate::state::accounts::Account;
use crate::telemetry::context::ListenerKind;
use crate::wire::body::ProxyBody;
use crate::wire::error::ProxyError;
use crate::wire::request_id::RequestId;

/// One client connection as the request path sees it.
pub struct HttpClient {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener it came in on.
    pub listener: ListenerKind,
    /// Set on a bound listener: every client is this account.
    pub bound: Option<Arc<str>>,
    /// Its activity, for the listener's watchdog.
    pub activity: Arc<ConnActivity>,
    /// Whatever the listener keeps for the connection's whole life,
    /// tunnels included (its connection permit).
    pub held: Box<dyn Send + Sync>,
    /// Set inside an intercepted tunnel.
    pub inside: Option<Inside>,
    /// Takes the client's socket back from a CONNECT's upgrade, for the
    /// tunnel relay; a stream that is not a socket gives the upgrade back.
    pub tunnel_socket: SocketOf,
}

/// Takes a plain socket back from an HTTP upgrade (a CONNECT), with the
/// bytes read past the request head, or gives the upgrade back.
pub type SocketOf = fn(Upgraded) -> Result<(Bytes, TcpStream), Upgraded>;

/// The intercepted tunnel a connection runs inside: every request goes to
/// its host over TLS, whatever its own `Host` says.
pub struct Inside {
    /// The tunnel's destination.
    pub target: Target,
    /// The tunnel's id.
    pub tunnel: RequestId,
}

/// Serves HTTP/2 on `io` until the client closes, `cut` resolves (the
/// watchdog), or shutdown ends it after its current requests: each stream
/// is its own request, served concurrently.
pub async fn serve_http2<S>(
    engine: Arc<Engine>,
    io: S,
    client: HttpClient,
    cut: impl Future<Output = ()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Arc::new(client);
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_header_list_size(u32::try_from(engine.settings.max_header_bytes).unwrap_or(u32::MAX))
        .serve_connection(TokioIo::new(io), service_of(&engine, &client));
    tokio::pin!(connection);
    drive(&engine, connection, |c| c.graceful_shutdown(), cut).await;
}

/// The service answering every request of `client`'s connection.
fn service_of(engine: &Arc<Engine>, client: &Arc<HttpClient>) -> ClientService {
    ClientService {
        engine: engine.clone(),
        client: client.clone(),
    }
}

/// Answers each request of one client connection with [`handle`].
struct ClientService {
    engine: Arc<Engine>,
    client: Arc<HttpClient>,
}

impl hyper::service::Service<Request<Incoming>> for ClientService {
    type Response = ProxyResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyResponse, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let (engine, client) = (self.engine.clone(), self.client.clone());
        // Not an async block: one would hold the request once more.
        Box::pin(handle(engine, client, request).map(Ok))
    }
}

/// How a connection's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The connection finished by itself, without error.
    Done,
    /// It failed, `cut` resolved, or shutdown drained it.
    Stopped,
}

/// Runs `connection` until it ends or `cut` resolves; once shutdown
/// begins, asks it to finish gracefully.
async fn drive<C, E>(
    engine: &Engine,
    mut connection: Pin<&mut C>,
    graceful: fn(Pin<&mut C>),
    cut: impl Future<Output = ()>,
) -> Ended
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(cut);
    let mut draining = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                return match ended {
                    Ok(()) if !draining => Ended::Done,
                    _ => Ended::Stopped,
                };
            }
            () = cut.as_mut() => return Ended::Stopped,
            () = engine.shutdown.begun(), if !draining => {
                draining = true;
                graceful(connection.as_mut());
            }
        }
    }
}

/// Answers one request: the origin's response, a tunnel's 200, or an
/// envelope.
async fn handle(
    engine: Arc<Engine>,
    client: Arc<HttpClient>,
    mut request: Request<Incoming>,
) -> ProxyResponse {
    let (engine, client) = (&engine, &client);
    let mut close = CloseOut::new(engine.clone(), engine.context(client.listener, client.peer));
    close.on_connection(client.activity.clone());
    close.ctx.method = Some(request.method().clone());
    if let Some(inside) = &client.inside {
        close.ctx.intercepted = Some(inside.tunnel);
        if let Err(err) = to_origin(&mut request, &inside.target) {
            return request::refuse(close, &err);
        }
    }
    let target = match target_of(&request) {
        Ok(target) => target,
        Err(err) => return request::refuse(close, &err),
    };
    close.ctx.target = Some(target.clone());
    let account = match identify(engine, &mut close, client, &request).await {
        Ok(account) => account,
        Err(err) => return request::refuse(close, &err),
    };
    if request.method() == Method::CONNECT && client.inside.is_none() {
        // Boxed: a plain request's future would otherwise be as large as
        // a tunnel's.
        return Box::pin(connect(engine, close, client, account, request, target)).await;
    }
    request::serve(engine, close, &account, request, target).await
}

/// Makes the request's URI absolute `https://` to the tunnel's `target`
/// (the request line inside a tunnel is origin-form).
fn to_origin(request: &mut Request<Incoming>, target: &Target) -> Result<(), ProxyError> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri = http::Uri::builder()
        .scheme(http::uri::Scheme::HTTPS)
        .authority(target.to_string())
        .path_and_query(path)
        .build()
        .map_err(|_| ProxyError::MalformedRequest("the request target is not a path"))?;
    if request.method() == Method::CONNECT {
        return Err(ProxyError::MalformedRequest(
            "CONNECT is not served inside an intercepted tunnel",
        ));
    }
    *request.uri_mut() = uri;
    // Towards the origin the version is the pool's to choose (HTTP/2 when
    // the origin's ALPN offers it).
    *request.version_mut() = http::Version::HTTP_11;
    Ok(())
}

/// Where the request goes: a CONNECT authority, or an absolute URI.
fn target_of(request: &Request<Incoming>) -> Result<Target, ProxyError> {
    let (target, malformed) = if request.method() == Method::CONNECT {
        let target = Target::from_connect(request.uri());
        (target, "CONNECT needs a host:port target")
    } else {
        let target = Target::from_absolute(request.uri());
        (
            target,
            "a proxy request needs an absolute http:// or https:// URI",
        )
    };
    target.map_err(|err| match err {
        TargetError::Malformed => ProxyError::MalformedRequest(malformed),
        TargetError::BadName(name) => ProxyError::BadDestination(name),
    })
}

/// The account of the request: the bound one, or its credentials'.
async fn identify(
    engine: &Engine,
    close: &mut CloseOut,
    client: &HttpClient,
    request: &Request<Incoming>,
) -> Result<Arc<Account>, ProxyError> {
    let account = match &client.bound {
        Some(id) => bound_account(&mut close.ctx, id)?,
        None => {
            let header = request.headers().get(http::header::PROXY_AUTHORIZATION);
            let credentials = Credentials::from_basic(header)?;
            authenticate(engine, &mut close.ctx, &credentials).await?
        }
    };
    Ok(account)
}

/// A CONNECT: the destination opened, answered 200, relayed once the
/// client upgrades.
async fn connect(
    engine: &Arc<Engine>,
    mut close: CloseOut,
    client: &Arc<HttpClient>,
    account: Arc<Account>,
    mut request: Request<Incoming>,
    target: Target,
) -> ProxyResponse {
    match tunnel::open(engine, &mut close, &account, &target).await {
        Ok(opened) => {
            close.ctx.succeeded(StatusCode::OK.as_u16());
            let waited = close.ctx.waited;
            let upgrade = hyper::upgrade::on(&mut request);
            spawn_relay(engine, client.clone(), close, upgrade, account, opened);
            with_waited(Response::new(ProxyBody::empty()), waited)
        }
        Err(err) => request::refuse(close, &err),
    }
}

/// Relays the tunnel once the client has upgraded: on the client's socket
/// when the connection gives it up (with the bytes read past the CONNECT
/// head sent first), else on hyper's upgraded stream. Combinators, not an
/// `async` block: the relay then takes the place of the upgrade's state in
/// the task instead of sitting beside the values moved into it.
fn spawn_relay(
    engine: &Engine,
    client: Arc<HttpClient>,
    close: CloseOut,
    upgrade: OnUpgrade,
    account: Arc<Account>,
    opened: Opened,
) {
    let socket_of = client.tunnel_socket;
    let relayed = upgrade.then(move |upgraded| match upgraded {
        Ok(upgraded) => {
            let stream = match socket_of(upgraded) {
                Ok((unread, socket)) => Either::Left(Prefixed::new(unread, socket)),
                Err(upgraded) => Either::Right(TokioIo::new(upgraded)),
            };
            Either::Left(tunnel::relay(close, stream, account, opened))
        }
        Err(err) => {
            tracing::debug!(id = %close.ctx.id, %err, "client left before the tunnel opened");
            Either::Right(std::future::ready(()))
        }
    });
    // The connection (its permit) is held until the tunnel ends.
    engine.shutdown.spawn(relayed.map(move |()| drop(client)));
}
