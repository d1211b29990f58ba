//! The HTTP proxy listener: absolute-form `http://` requests and CONNECT
//! tunnels over HTTP/1.1 keep-alive connections.
//!
//! The first request head is read and checked here (see [`super::head`]);
//! hyper then serves the connection, with a watchdog for later heads and
//! idle keep-alive time (see [`super::conn`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::conn::{watchdog, ClientIo, ConnActivity, Timeouts};
use super::head::{read_first_head, HeadError};
use super::Admission;
use crate::access_log;
use crate::app::App;
use crate::auth::Account;
use crate::body::{Finish, ProxyBody};
use crate::context::{ListenerKind, RequestContext, RequestId};
use crate::egress::EgressStream;
use crate::error::ProxyError;
use crate::pipeline;
use crate::problem;
use crate::target::Target;

/// One client connection of the HTTP listener.
struct HttpConn {
    peer: SocketAddr,
    /// Set on a bound listener: every client is this account.
    account: Option<Arc<Account>>,
    activity: Arc<ConnActivity>,
    /// Held for the connection's life, tunnels included.
    _admission: Admission,
}

/// Serves one client connection until it closes, idles out or shutdown
/// ends it.
pub async fn serve_connection(
    app: Arc<App>,
    mut stream: TcpStream,
    peer: SocketAddr,
    account: Option<Arc<Account>>,
    admission: Admission,
) {
    let prefix = match first_head(&app, &mut stream).await {
        Ok(prefix) => prefix,
        Err(Some(err)) => return refuse_raw(&mut stream, &err).await,
        Err(None) => return,
    };
    if matches!(admission, Admission::Refused(_)) {
        let err = ProxyError::Unavailable("pacer is at its connection limit");
        return refuse_raw(&mut stream, &err).await;
    }
    let conn = Arc::new(HttpConn {
        peer,
        account,
        activity: Arc::new(ConnActivity::new()),
        _admission: admission,
    });
    serve_hyper(app, conn, stream, prefix).await;
}

/// The first head's bytes, or the error to answer with (`None`: the client
/// left without a word).
async fn first_head(app: &App, stream: &mut TcpStream) -> Result<Bytes, Option<ProxyError>> {
    let limit = app.settings.max_header_bytes;
    let timeout = app.settings.header_read_timeout;
    match tokio::time::timeout(timeout, read_first_head(stream, limit)).await {
        Ok(Ok(prefix)) => Ok(prefix),
        Ok(Err(HeadError::Closed)) => Err(None),
        Ok(Err(HeadError::Malformed)) => Err(Some(ProxyError::MalformedRequest(
            "not an HTTP/1 proxy request",
        ))),
        Ok(Err(HeadError::TooLarge)) => Err(Some(ProxyError::HeadersTooLarge { limit })),
        Err(_) => Err(Some(ProxyError::ClientTimeout(timeout))),
    }
}

/// Writes an envelope straight to a socket hyper never saw, then closes it.
async fn refuse_raw(stream: &mut TcpStream, err: &ProxyError) {
    let id = RequestId::next();
    let code = err.wire_code();
    let body = problem::envelope_json(code, Some(&err.to_string()), Some(id));
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\n{}: {id}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        code.status.as_u16(),
        code.status.canonical_reason().unwrap_or(""),
        problem::REQUEST_ID,
        body.len(),
    );
    tracing::debug!(%id, status = code.status.as_u16(), %err, "refused before the request");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

async fn serve_hyper(app: Arc<App>, conn: Arc<HttpConn>, stream: TcpStream, prefix: Bytes) {
    let io = TokioIo::new(ClientIo::new(stream, prefix, conn.activity.clone()));
    let timeouts = Timeouts {
        header_read: app.settings.header_read_timeout,
        idle: app.settings.idle_timeout,
    };
    let activity = conn.activity.clone();
    let service_app = app.clone();
    let service = service_fn(move |request| {
        let app = service_app.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(&app, &conn, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .max_buf_size(app.settings.max_header_bytes.max(8192))
        .preserve_header_case(true)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => break,
            expired = watchdog(&activity, timeouts) => {
                tracing::debug!(?expired, "client connection cut by watchdog");
                break;
            }
            () = app.shutdown.begun(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a request turned into.
enum Outcome {
    /// A plain request forwarded; the origin's response.
    Forwarded(Response<Incoming>),
    /// A CONNECT whose destination is open; relay once the client upgrades.
    Tunnel {
        destination: EgressStream,
        upgrade: OnUpgrade,
    },
}

/// Answers one request: the origin's response, a tunnel's 200, or an
/// envelope.
async fn handle(
    app: &Arc<App>,
    conn: &Arc<HttpConn>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    conn.activity.request_started();
    let mut ctx = RequestContext::new(ListenerKind::Http, conn.peer, request.method().clone());
    match proxy(app, conn, &mut ctx, request).await {
        Ok(Outcome::Forwarded(response)) => {
            ctx.status = response.status().as_u16();
            let finish = Finish::new(ctx, conn.activity.clone());
            response.map(|body| ProxyBody::origin(body, finish))
        }
        Ok(Outcome::Tunnel {
            destination,
            upgrade,
        }) => {
            ctx.status = StatusCode::OK.as_u16();
            conn.activity.request_finished();
            spawn_tunnel(app.clone(), conn.clone(), ctx, destination, upgrade);
            Response::new(ProxyBody::empty())
        }
        Err(err) => {
            conn.activity.request_finished();
            let code = err.wire_code();
            ctx.status = code.status.as_u16();
            access_log::record(&ctx);
            let mut response = problem::response(
                code,
                Some(&err.to_string()),
                Some(ctx.id),
                err.closes_connection(),
            );
            if matches!(
                err,
                ProxyError::MissingCredentials | ProxyError::InvalidCredentials
            ) {
                response.headers_mut().insert(
                    http::header::PROXY_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"pacer\""),
                );
            }
            response
        }
    }
}

/// Parses the request, identifies the account and hands it to the pipeline.
async fn proxy(
    app: &App,
    conn: &HttpConn,
    ctx: &mut RequestContext,
    mut request: Request<Incoming>,
) -> Result<Outcome, ProxyError> {
    let is_connect = request.method() == Method::CONNECT;
    let target = if is_connect {
        Target::from_connect(request.uri()).ok_or(ProxyError::MalformedRequest(
            "CONNECT needs a host:port target",
        ))?
    } else {
        Target::from_absolute_http(request.uri()).ok_or(ProxyError::MalformedRequest(
            "a proxy request needs an absolute http:// URI",
        ))?
    };
    ctx.target = Some(target.clone());
    let account = match &conn.account {
        Some(bound) => bound.clone(),
        None => app
            .accounts
            .authenticate_basic(request.headers().get(http::header::PROXY_AUTHORIZATION))?,
    };
    if is_connect {
        let destination = pipeline::open_tunnel(app, ctx, &account, target).await?;
        let upgrade = hyper::upgrade::on(&mut request);
        return Ok(Outcome::Tunnel {
            destination,
            upgrade,
        });
    }
    let response = pipeline::forward(app, ctx, &account, request, target).await?;
    Ok(Outcome::Forwarded(response))
}

fn spawn_tunnel(
    app: Arc<App>,
    conn: Arc<HttpConn>,
    ctx: RequestContext,
    destination: EgressStream,
    upgrade: OnUpgrade,
) {
    let tracker = app.shutdown.clone();
    tracker.spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                pipeline::run_tunnel(&app, ctx, &mut client, destination).await;
            }
            Err(err) => {
                tracing::debug!(id = %ctx.id, %err, "client left before the tunnel opened");
                access_log::record(&ctx);
            }
        }
        drop(conn);
    });
}
