//! The driver every entry point calls once it has parsed its request and
//! identified the account: classify > admit > route > dial > relay | forward.
//! Upstream routing joins here as it lands; today every account goes direct.

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::accounts::Account;
use crate::app::App;
use crate::classify::RequestShape;
use crate::context::RequestContext;
use crate::error::ProxyError;
use crate::limit::Grant;
use crate::relay::{relay, RelayEnd};
use crate::target::Target;

/// An open tunnel: the destination, and the admission it holds.
#[derive(Debug)]
pub struct Tunnel {
    /// The destination's socket.
    pub destination: TcpStream,
    grant: Grant,
}

/// A forwarded request: the origin's response, and the admission it holds
/// until the response ends.
#[derive(Debug)]
pub struct Forwarded {
    /// The origin's response, body still streaming.
    pub response: Response<Incoming>,
    /// Released when the response is over.
    pub grant: Grant,
}

/// Classifies the request and asks the account's limits for admission.
async fn admit(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    shape: RequestShape<'_>,
) -> Result<Grant, ProxyError> {
    ctx.actions = app.runtime.load().classifier.classify(shape);
    let policy = account.settings.load().policy.clone();
    match account
        .limiter
        .admit(&policy, &ctx.actions, &app.clock)
        .await
    {
        Ok(grant) => {
            ctx.waited = grant.waited();
            ctx.held_by = grant.held_by();
            Ok(grant)
        }
        Err(refusal) => {
            ctx.waited = refusal.waited;
            Err(ProxyError::RateLimited {
                account: account.id.clone(),
                refusal,
            })
        }
    }
}

/// Opens the destination side of a tunnel (HTTP CONNECT or SOCKS5 CONNECT):
/// one request with method `CONNECT`, the target host and no path.
pub async fn open_tunnel(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    target: Target,
) -> Result<Tunnel, ProxyError> {
    app.shutdown.ensure_open()?;
    ctx.account = Some(account.id.clone());
    ctx.target = Some(target.clone());
    let host = target.host_str();
    let shape = RequestShape {
        method: &Method::CONNECT,
        host: &host,
        path: None,
    };
    let grant = admit(app, ctx, account, shape).await?;
    match app.dialer.connect(&target).await {
        Ok(destination) => Ok(Tunnel { destination, grant }),
        Err(err) => {
            grant.give_back();
            Err(err.into())
        }
    }
}

/// Relays an open tunnel until it ends, then writes its access line.
pub async fn run_tunnel<C>(app: &App, mut ctx: RequestContext, client: &mut C, tunnel: Tunnel)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Tunnel {
        mut destination,
        grant,
    } = tunnel;
    let outcome = relay(client, &mut destination, app.settings.idle_timeout).await;
    drop(grant);
    ctx.bytes_up = outcome.up;
    ctx.bytes_down = outcome.down;
    match &outcome.end {
        RelayEnd::Closed => {}
        RelayEnd::Idle => tracing::debug!(id = %ctx.id, "tunnel idle, closed"),
        RelayEnd::Failed(err) => tracing::debug!(id = %ctx.id, %err, "tunnel ended by error"),
    }
    app.finish(&ctx);
}

/// Forwards one plain HTTP request and returns the origin's response.
pub async fn forward(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    request: Request<Incoming>,
    target: Target,
) -> Result<Forwarded, ProxyError> {
    app.shutdown.ensure_open()?;
    ctx.account = Some(account.id.clone());
    ctx.bytes_up = hyper::body::Body::size_hint(request.body())
        .exact()
        .unwrap_or(0);
    ctx.target = Some(target.clone());
    let host = target.host_str();
    let shape = RequestShape {
        method: request.method(),
        host: &host,
        path: Some(request.uri().path()),
    };
    let grant = admit(app, ctx, account, shape).await?;
    match app.forwarder.forward(request, &target).await {
        Ok(response) => Ok(Forwarded { response, grant }),
        Err(err) => {
            if err.never_reached_origin() {
                grant.give_back();
            }
            Err(err)
        }
    }
}
