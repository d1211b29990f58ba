//! Platform feedback (SPEC section 4): when the origin answers one of the
//! policy's backoff statuses, the actions the request matched (or `all`)
//! are paused for the account before the answer goes back to the client,
//! unchanged. Pauses are kept by the limiter, durably.

use std::time::{Duration, UNIX_EPOCH};

use http::header::RETRY_AFTER;
use http::{HeaderValue, Response};
use hyper::body::Incoming;

use super::Engine;
use crate::policy::limit::backoff::pause_for;
use crate::policy::limit::Request;
use crate::state::accounts::Account;
use crate::telemetry::context::RequestContext;

/// Pauses what `response` asks to pause, if the account's policy listens.
pub async fn heed(
    engine: &Engine,
    ctx: &RequestContext,
    account: &Account,
    response: &Response<Incoming>,
) {
    let status = response.status().as_u16();
    let settings = account.settings.load();
    let policy = &settings.policy;
    let Some(rule) = policy
        .backoff
        .as_ref()
        .filter(|r| r.statuses.contains(&status))
    else {
        return;
    };
    let wall_ms = u64::try_from(engine.clock.unix_ms()).unwrap_or(0);
    let now = UNIX_EPOCH + Duration::from_millis(wall_ms);
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(HeaderValue::as_bytes);
    let pause = pause_for(rule, retry_after, now);
    if pause.is_zero() {
        return;
    }
    let request = Request {
        account: &account.id,
        local: &account.limiter,
        policy,
        actions: &ctx.actions,
        clock: &engine.clock,
    };
    let started = engine.limiter.back_off(request, status, pause).await;
    for action in &started {
        engine.metrics.backoff_pause(action);
        tracing::info!(
            id = %ctx.id,
            account = %account.id,
            action = %action,
            origin_status = status,
            pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            "backoff pause started"
        );
    }
}
