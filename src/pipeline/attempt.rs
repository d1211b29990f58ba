//! The one attempt loop over hops: the account's route plan (in the
//! request's snapshot) hands out hops (direct, its own upstream, or
//! members of its country pool) and takes each attempt's outcome, until
//! one works or the plan gives up with the request's error. A plain HTTP
//! request moves to the next hop only while none of its body has been
//! sent (see [`crate::egress::replay`]); on one hop it is sent once more,
//! on a fresh connection, when a reused pooled connection failed before
//! any byte of its answer (see [`crate::egress::reuse`]).
//!
//! Departures are told to the request's grant as they happen (rolling
//! windows and the gap count them, SPEC section 4): a tunnel departs when
//! it is open to its destination, a plain request each time its head is
//! written towards the origin or upstream.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::close::CloseOut;
use super::Engine;
use crate::egress::error::EgressError;
use crate::egress::forward::ForwardError;
use crate::egress::replay::{AttemptBody, Departures, ReplayableRequest};
use crate::egress::route::{Hop, Router};
use crate::egress::stream::EgressStream;
use crate::egress::target::Target;
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
/// request's snapshot), noting the last hop and the attempts in the
/// request's context and its departures on its grant.
pub async fn reach(
    engine: &Engine,
    close: &mut CloseOut,
    account: &Arc<str>,
    target: &Target,
    attempt: Attempt<'_>,
) -> Result<Reached, ProxyError> {
    let mut tried = Tried::default();
    let snapshot = close.ctx.snapshot.clone();
    let hops = Hops {
        engine,
        router: &snapshot.router,
        account,
        target,
    };
    let reached = hops.over(close, attempt, &mut tried).await;
    close.ctx.upstream = tried.upstream;
    close.ctx.attempts = tried.attempts;
    reached
}

/// Where an attempt loop goes.
struct Hops<'a> {
    engine: &'a Engine,
    router: &'a Router,
    account: &'a Arc<str>,
    target: &'a Target,
}

/// The last hop tried and how many attempts were made.
#[derive(Default)]
struct Tried {
    upstream: Option<Arc<str>>,
    attempts: u32,
}

impl Hops<'_> {
    async fn over(
        &self,
        close: &mut CloseOut,
        mut attempt: Attempt<'_>,
        tried: &mut Tried,
    ) -> Result<Reached, ProxyError> {
        let engine = self.engine;
        let mut plan = self.router.plan(self.account);
        loop {
            let hop = plan.next_hop()?;
            engine.metrics.upstream_attempt(hop.metric_label());
            tried.upstream = hop.label().cloned();
            tried.attempts = plan.attempts();
            let tried = match &mut attempt {
                Attempt::Tunnel => {
                    // Boxed: a plain request's future would otherwise be
                    // as large as a tunnel's opening.
                    let opened = Box::pin(tunnel_via(engine, &hop, self.target)).await;
                    if opened.is_ok() {
                        close.departed(tokio::time::Instant::now());
                    }
                    opened
                }
                Attempt::Request(request) => {
                    // Kept (not handed over on the last hop) for a retry
                    // on a fresh connection.
                    let Some(sent) = request.attempt(false) else {
                        return Err(plan.give_up().into());
                    };
                    let departures = request.departures();
                    let last = plan.is_last();
                    let again = || request.attempt(last);
                    let forwarded = pin!(forward_via(engine, &hop, sent, again, self.target));
                    noting_departures(close, &departures, forwarded).await
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
}

/// Runs `sending` to its end, telling the request's grant of each
/// departure as it happens (not only once the answer is in: a waiting
/// request may be held by this one's departure). `sending` comes pinned:
/// an `async fn` given a future by value holds it twice.
async fn noting_departures<T>(
    close: &mut CloseOut,
    departures: &Departures,
    mut sending: Pin<&mut impl Future<Output = T>>,
) -> T {
    loop {
        tokio::select! {
            biased;
            at = departures.next() => close.departed(at),
            done = &mut sending => {
                if let Some(at) = departures.take() {
                    close.departed(at);
                }
                return done;
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

/// Forwards `request` through `hop`; `again` is the request once more,
/// for a retry on a fresh connection (see [`crate::egress::reuse`]).
async fn forward_via(
    engine: &Engine,
    hop: &Hop,
    request: Request<AttemptBody>,
    again: impl FnOnce() -> Option<Request<AttemptBody>>,
    target: &Target,
) -> Result<Reached, ForwardError> {
    let forwarder = match hop.upstream() {
        None => &engine.forwarder,
        Some(upstream) => upstream.forwarder(),
    };
    forwarder
        .forward(request, target, again)
        .await
        .map(Reached::Response)
}
