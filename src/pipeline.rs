//! The driver every entry point calls once it has parsed its request and
//! identified the account: classify > admit > route > dial > relay | forward.
//!
//! Admission happens once per request. Route and dial are one loop: the
//! account's [`crate::route::Plan`] hands out hops (direct, its own
//! upstream, or members of its country pool) and takes each attempt's
//! outcome, until one works or the plan gives up with the request's error.
//! A plain HTTP request moves to the next hop only while none of its body
//! has been sent (see [`crate::replay`]). A request that fails before
//! reaching the origin gives back its daily-cap and batch consumption.

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::accounts::Account;
use crate::app::App;
use crate::classify::RequestShape;
use crate::context::RequestContext;
use crate::egress::{EgressError, EgressStream};
use crate::error::ProxyError;
use crate::forward::{prepare_request, ForwardError};
use crate::limit::Grant;
use crate::relay::{relay, RelayEnd};
use crate::replay::{AttemptBody, ReplayableRequest};
use crate::route::Hop;
use crate::target::Target;

/// An open tunnel: the destination, and the admission it holds.
#[derive(Debug)]
pub struct Tunnel {
    /// The destination side.
    pub destination: EgressStream,
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

/// Gives the grant back when `result` failed before reaching the origin.
fn settle<T>(grant: Grant, result: Result<T, ProxyError>) -> Result<(T, Grant), ProxyError> {
    match result {
        Ok(value) => Ok((value, grant)),
        Err(err) => {
            if err.never_reached_origin() {
                grant.give_back();
            }
            Err(err)
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
    let routed = route_tunnel(app, ctx, account, &target).await;
    let (destination, grant) = settle(grant, routed)?;
    Ok(Tunnel { destination, grant })
}

async fn route_tunnel(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    target: &Target,
) -> Result<EgressStream, ProxyError> {
    let runtime = app.runtime.load_full();
    let mut plan = runtime.router.plan(&account.id);
    loop {
        let hop = plan.next_hop()?;
        note_attempt(app, ctx, &hop, plan.attempts());
        match tunnel_via(app, &hop, target).await {
            Ok(stream) => {
                plan.succeeded(&hop);
                return Ok(stream);
            }
            Err(err) => {
                app.metrics
                    .upstream_failure(hop.metric_label(), err.reason());
                plan.failed(&hop, err)?
            }
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

fn note_attempt(app: &App, ctx: &mut RequestContext, hop: &Hop, attempts: u32) {
    app.metrics.upstream_attempt(hop.metric_label());
    ctx.upstream = hop.label().cloned();
    ctx.attempts = attempts;
}

/// Relays an open tunnel until it ends, then closes it out.
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
    mut request: Request<Incoming>,
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
    prepare_request(&mut request)?;
    let routed = route_request(app, ctx, account, request, &target).await;
    let (response, grant) = settle(grant, routed)?;
    Ok(Forwarded { response, grant })
}

async fn route_request(
    app: &App,
    ctx: &mut RequestContext,
    account: &Account,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<Incoming>, ProxyError> {
    let mut request = ReplayableRequest::new(request);
    let runtime = app.runtime.load_full();
    let mut plan = runtime.router.plan(&account.id);
    loop {
        let hop = plan.next_hop()?;
        note_attempt(app, ctx, &hop, plan.attempts());
        let Some(attempt) = request.attempt(plan.is_last()) else {
            return Err(plan.give_up());
        };
        match forward_via(app, &hop, attempt, target).await {
            Ok(response) => {
                plan.succeeded(&hop);
                return Ok(response);
            }
            Err(ForwardError::Egress(err)) => {
                app.metrics
                    .upstream_failure(hop.metric_label(), err.reason());
                plan.failed(&hop, err)?
            }
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
