//! The one attempt loop over hops: the account's route plan (in the
//! request's snapshot) hands out hops (direct, its own upstream, or
//! members of its country pool) and takes each attempt's outcome, until
//! one works or the plan gives up with the request's error. A plain HTTP
//! request moves to the next hop only while none of its body has been
//! sent (see [`crate::egress::replay`]).

use std::sync::Arc;

use http::Response;
use hyper::body::Incoming;

use super::Engine;
use crate::egress::error::EgressError;
use crate::egress::forward::ForwardError;
use crate::egress::replay::ReplayableRequest;
use crate::egress::route::{Hop, Router};
use crate::egress::stream::EgressStream;
use crate::egress::target::Target;
use crate::telemetry::context::RequestContext;
use crate::wire::error::ProxyError;

/// What is being sent.
pub enum Attempt<'a> {
    /// A tunnel: a byte stream to the target.
    Tunnel,
    /// A plain HTTP request, kept for the next hop while it can be.
    Request(&'a mut ReplayableRequest),
}

/// What an attempt reached.
pub enum Reached {
    /// The tunnel's destination stream.
    Tunnel(EgressStream),
    /// The origin's response, body still streaming.
    Response(Response<Incoming>),
}

/// Sends `attempt` to `target` over the hops of `account`'s plan (in the
/// request's snapshot), noting the last hop and the attempts in `ctx`.
pub async fn reach(
    engine: &Engine,
    ctx: &mut RequestContext,
    account: &Arc<str>,
    target: &Target,
    attempt: Attempt<'_>,
) -> Result<Reached, ProxyError> {
    let mut tried = Tried::default();
    let router = &ctx.snapshot.router;
    let reached = over_hops(engine, router, account, target, attempt, &mut tried).await;
    ctx.upstream = tried.upstream;
    ctx.attempts = tried.attempts;
    reached
}

/// The last hop tried and how many attempts were made.
#[derive(Default)]
struct Tried {
    upstream: Option<Arc<str>>,
    attempts: u32,
}

async fn over_hops(
    engine: &Engine,
    router: &Router,
    account: &Arc<str>,
    target: &Target,
    mut attempt: Attempt<'_>,
    tried: &mut Tried,
) -> Result<Reached, ProxyError> {
    let mut plan = router.plan(account);
    loop {
        let hop = plan.next_hop()?;
        engine.metrics.upstream_attempt(hop.metric_label());
        tried.upstream = hop.label().cloned();
        tried.attempts = plan.attempts();
        let tried = match &mut attempt {
            Attempt::Tunnel => tunnel_via(engine, &hop, target).await,
            Attempt::Request(request) => {
                let Some(sent) = request.attempt(plan.is_last()) else {
                    return Err(plan.give_up().into());
                };
                forward_via(engine, &hop, sent, target).await
            }
        };
        match tried {
            Ok(reached) => {
                plan.succeeded(&hop);
                return Ok(reached);
            }
            Err(ForwardError::Egress(err)) => {
                engine
                    .metrics
                    .upstream_failure(hop.metric_label(), err.reason());
                plan.failed(&hop, err)?;
            }
            Err(ForwardError::Origin(err)) => return Err(err.into()),
        }
        if let Attempt::Request(request) = &attempt {
            if !request.can_replay() {
                return Err(plan.give_up().into());
            }
        }
    }
}

async fn tunnel_via(engine: &Engine, hop: &Hop, target: &Target) -> Result<Reached, ForwardError> {
    let stream = match hop.upstream() {
        None => engine
            .dialer
            .connect(target)
            .await
            .map(EgressStream::tcp)
            .map_err(EgressError::Direct),
        Some(upstream) => upstream
            .endpoint()
            .tunnel(target)
            .await
            .map_err(EgressError::Upstream),
    };
    stream.map(Reached::Tunnel).map_err(ForwardError::Egress)
}

async fn forward_via(
    engine: &Engine,
    hop: &Hop,
    request: http::Request<crate::egress::replay::AttemptBody>,
    target: &Target,
) -> Result<Reached, ForwardError> {
    let forwarder = match hop.upstream() {
        None => &engine.forwarder,
        Some(upstream) => upstream.forwarder(),
    };
    forwarder
        .forward(request, target)
        .await
        .map(Reached::Response)
}
