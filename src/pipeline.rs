//! The driver every entry point calls once it has parsed its request and
//! identified the account: classify > admit > route > dial > relay | forward.
//! Classification and admission join here as they land.
//!
//! Route and dial are one loop: the account's [`crate::route::Plan`] hands
//! out hops (direct, its own upstream, or members of its country pool) and
//! takes each attempt's outcome, until one works or the plan gives up with
//! the request's error. A plain HTTP request moves to the next hop only
//! while none of its body has been sent (see [`crate::replay`]).

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::access_log;
use crate::app::App;
use crate::auth::Account;
use crate::context::RequestContext;
use crate::egress::{EgressError, EgressStream};
use crate::error::ProxyError;
use crate::forward::{prepare_request, ForwardError};
use crate::relay::{relay, RelayEnd};
use crate::replay::{AttemptBody, ReplayableRequest};
use crate::route::Hop;
use crate::target::Target;

/// Opens the destination side of a tunnel (HTTP CONNECT or SOCKS5 CONNECT).
pub async fn open_tunnel(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    target: Target,
) -> Result<EgressStream, ProxyError> {
    app.shutdown.ensure_open()?;
    ctx.account = Some(account.id.clone());
    ctx.target = Some(target.clone());
    let mut plan = app.router.plan(&account.id);
    loop {
        let hop = plan.next_hop()?;
        note_attempt(ctx, &hop, plan.attempts());
        match tunnel_via(app, &hop, &target).await {
            Ok(stream) => {
                plan.succeeded(&hop);
                return Ok(stream);
            }
            Err(err) => plan.failed(&hop, err)?,
        }
    }
}

async fn tunnel_via(app: &App, hop: &Hop, target: &Target) -> Result<EgressStream, EgressError> {
    match hop.upstream() {
        None => match app.dialer.connect(target).await {
            Ok(tcp) => Ok(EgressStream::tcp(tcp)),
            Err(err) => Err(EgressError::Direct(err)),
        },
        Some(upstream) => upstream
            .endpoint()
            .tunnel(target)
            .await
            .map_err(EgressError::Upstream),
    }
}

fn note_attempt(ctx: &mut RequestContext, hop: &Hop, attempts: u32) {
    ctx.upstream = hop.label().cloned();
    ctx.attempts = attempts;
}

/// Relays an open tunnel until it ends, then writes its access line.
pub async fn run_tunnel<C>(
    app: &App,
    mut ctx: RequestContext,
    client: &mut C,
    destination: EgressStream,
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
    mut request: Request<Incoming>,
    target: Target,
) -> Result<Response<Incoming>, ProxyError> {
    app.shutdown.ensure_open()?;
    ctx.account = Some(account.id.clone());
    ctx.bytes_up = hyper::body::Body::size_hint(request.body())
        .exact()
        .unwrap_or(0);
    ctx.target = Some(target.clone());
    prepare_request(&mut request)?;
    let mut request = ReplayableRequest::new(request);
    let mut plan = app.router.plan(&account.id);
    loop {
        let hop = plan.next_hop()?;
        note_attempt(ctx, &hop, plan.attempts());
        let Some(attempt) = request.attempt(plan.is_last()) else {
            return Err(plan.give_up());
        };
        match forward_via(app, &hop, attempt, &target).await {
            Ok(response) => {
                plan.succeeded(&hop);
                return Ok(response);
            }
            Err(ForwardError::Egress(err)) => plan.failed(&hop, err)?,
            Err(ForwardError::Final(err)) => return Err(err),
        }
        if !request.can_replay() {
            return Err(plan.give_up());
        }
    }
}

async fn forward_via(
    app: &App,
    hop: &Hop,
    request: Request<AttemptBody>,
    target: &Target,
) -> Result<Response<Incoming>, ForwardError> {
    let forwarder = match hop.upstream() {
        None => &app.forwarder,
        Some(upstream) => upstream.forwarder(),
    };
    forwarder.forward(request, target).await
}
