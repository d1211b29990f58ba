//! The driver every entry point calls once it has parsed its request and
//! identified the account: classify > admit > route > dial > relay | forward.
//! Classification, admission and upstream routing join here as they land;
//! today every account goes direct.

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::access_log;
use crate::app::App;
use crate::auth::Account;
use crate::context::RequestContext;
use crate::error::ProxyError;
use crate::relay::{relay, RelayEnd};
use crate::target::Target;

/// Opens the destination side of a tunnel (HTTP CONNECT or SOCKS5 CONNECT).
pub async fn open_tunnel(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    target: Target,
) -> Result<TcpStream, ProxyError> {
    app.shutdown.ensure_open()?;
    ctx.account = Some(account.id.clone());
    ctx.target = Some(target.clone());
    Ok(app.dialer.connect(&target).await?)
}

/// Relays an open tunnel until it ends, then writes its access line.
pub async fn run_tunnel<C>(
    app: &App,
    mut ctx: RequestContext,
    client: &mut C,
    destination: TcpStream,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut destination = destination;
    let outcome = relay(client, &mut destination, app.settings.idle_timeout).await;
    ctx.bytes_up = outcome.up;
    ctx.bytes_down = outcome.down;
    match &outcome.end {
        RelayEnd::Closed => {}
        RelayEnd::Idle => tracing::debug!(id = %ctx.id, "tunnel idle, closed"),
        RelayEnd::Failed(err) => tracing::debug!(id = %ctx.id, %err, "tunnel ended by error"),
    }
    access_log::record(&ctx);
}

/// Forwards one plain HTTP request and returns the origin's response.
pub async fn forward(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    request: Request<Incoming>,
    target: Target,
) -> Result<Response<Incoming>, ProxyError> {
    app.shutdown.ensure_open()?;
    ctx.account = Some(account.id.clone());
    ctx.bytes_up = hyper::body::Body::size_hint(request.body())
        .exact()
        .unwrap_or(0);
    ctx.target = Some(target.clone());
    app.forwarder.forward(request, &target).await
}
