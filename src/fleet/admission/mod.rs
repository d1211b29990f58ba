//! Admission through the fleet store: [`FleetLimiter`] is the
//! [`SharedLimiter`] the request path calls in fleet mode.
//!
//! One admission is one script call (`scripts/admit.lua`) that checks
//! every limit that applies and commits all of them or none, on Redis's
//! clock. A request that must wait gets the earliest start every limit
//! allows, reserved at once (so starts follow the order reservations were
//! made, whichever instance holds them); at its start it confirms the
//! place against the departures recorded since, and may be moved later,
//! never past `max_wait`. `concurrent_limit` slots are leases renewed
//! while the request lives. The store down: refused (`refuse`) or
//! admitted by this instance's own limiter (`local`).
//!
//! - `plan`: a request's limits as script arguments;
//! - `answer`: the admission script's calls and answers;
//! - `hold`: an admitted request's record until it ends (departure, end,
//!   give-back, cancel, lease renewal).

mod answer;
mod hold;
mod plan;

use std::sync::Arc;
use std::time::Duration;

use self::answer::{call_admit, call_confirm, window_hit, Answer};
use self::hold::FleetHold;
use self::plan::Plan;
use super::{Fleet, FleetError};
use crate::config::{OnUnavailable, PolicyMode};
use crate::policy::limit::shared::Pending;
use crate::policy::limit::{AdmitError, Grant, Hit, Refusal, Request, SharedGrant, SharedLimiter};

/// How often a request held by `concurrent_limit` looks again.
const CONCURRENCY_POLL: Duration = Duration::from_millis(25);
/// How often a live request renews its concurrency lease.
const LEASE_RENEW: Duration = Duration::from_secs(2);
/// A lease lasts this plus the fleet's timeout: an instance that dies
/// loses its slots within `2 × timeout + 5 s` (SPEC section 10).
const LEASE_BASE: Duration = Duration::from_secs(5);
/// A confirmed start this close to now goes at once.
const START_TOLERANCE_US: i64 = 1_000;

/// The fleet's limiter.
#[derive(Debug, Clone)]
pub struct FleetLimiter(pub Arc<Fleet>);

impl SharedLimiter for FleetLimiter {
    fn admit<'a>(&'a self, request: Request<'a>) -> Pending<'a, Result<Grant, AdmitError>> {
        Box::pin(admit(&self.0, request))
    }

    fn back_off<'a>(
        &'a self,
        request: Request<'a>,
        status: u16,
        pause: Duration,
    ) -> Pending<'a, Vec<Arc<str>>> {
        Box::pin(back_off(&self.0, request, status, pause))
    }
}

async fn admit(fleet: &Arc<Fleet>, request: Request<'_>) -> Result<Grant, AdmitError> {
    let clock = request.clock;
    let policy = request.policy;
    let arrival = clock.now();
    let longest = if policy.mode == PolicyMode::Reject {
        Duration::ZERO
    } else {
        policy.max_wait
    };
    let plan = Arc::new(Plan::new(fleet, &request));
    let member = fleet.grant_id();
    let lease_us = micros(LEASE_BASE + fleet.config.timeout);
    loop {
        let waited = Duration::from_nanos(clock.now().saturating_sub(arrival));
        let left = micros(longest.saturating_sub(waited));
        let args = plan.admit_args("admit", &member, left, lease_us);
        let answer = match call_admit(fleet, &plan, &args, policy).await {
            Ok(answer) => answer,
            Err(err) => return unavailable(fleet, &request, err).await,
        };
        match answer {
            Answer::Admitted(admitted) => {
                let hold = FleetHold::new(fleet.clone(), plan.clone(), member, admitted, lease_us);
                return placed(fleet, &request, hold, arrival, longest).await;
            }
            Answer::Refused(hit) => {
                return Err(AdmitError::Refused(Refusal { hit, waited }));
            }
            Answer::Full => {
                if waited + CONCURRENCY_POLL > longest {
                    let hit = Hit::concurrency(plan.concurrency);
                    return Err(AdmitError::Refused(Refusal { hit, waited }));
                }
                tokio::time::sleep(CONCURRENCY_POLL).await;
            }
        }
    }
}

/// Waits for an admitted request's start, confirming it against the
/// departures recorded meanwhile; refuses (and gives everything back) when
/// the start moves past `max_wait`.
async fn placed(
    fleet: &Arc<Fleet>,
    request: &Request<'_>,
    mut hold: FleetHold,
    arrival: u64,
    longest: Duration,
) -> Result<Grant, AdmitError> {
    let clock = request.clock;
    let policy = request.policy;
    let mut admitted = hold.admitted;
    let mut held_by = None;
    let mut due = None;
    while admitted.start - admitted.now > START_TOLERANCE_US {
        let wait = Duration::from_micros(u64::try_from(admitted.start - admitted.now).unwrap_or(0));
        let hit = window_hit(policy, &hold.plan, admitted.hold, wait);
        held_by = Some(hit.kind);
        let waited = Duration::from_nanos(clock.now().saturating_sub(arrival));
        if waited + wait > longest + Duration::from_millis(1) {
            hold.cancel();
            return Err(AdmitError::Refused(Refusal { hit, waited }));
        }
        due = Some(clock.now().saturating_add(nanos(wait)));
        tokio::time::sleep(wait).await;
        match call_confirm(fleet, &hold.plan, &hold.member).await {
            Ok((start, now)) => {
                admitted.start = start;
                admitted.now = now;
            }
            Err(err) => {
                hold.cancel();
                return unavailable(fleet, request, err).await;
            }
        }
    }
    if held_by.is_some() && !policy.jitter.is_zero() {
        let jitter = Duration::from_nanos(fastrand::u64(0..=nanos(policy.jitter)));
        tokio::time::sleep(jitter).await;
    }
    hold.admitted = admitted;
    hold.placed();
    Ok(Grant::Shared(SharedGrant {
        waited: Duration::from_nanos(clock.now().saturating_sub(arrival)),
        held_by,
        due,
        hold: Box::new(hold),
    }))
}

/// The store could not be asked: refused (`refuse`), or admitted by this
/// instance's own limits (`local`).
async fn unavailable(
    fleet: &Fleet,
    request: &Request<'_>,
    err: FleetError,
) -> Result<Grant, AdmitError> {
    match fleet.on_unavailable() {
        OnUnavailable::Refuse => Err(AdmitError::Unavailable(Arc::from(format!(
            "the fleet store (Redis) cannot admit requests now ({err}); nothing is admitted unchecked"
        )))),
        OnUnavailable::Local => request.admit_locally().await,
    }
}

/// Pauses the request's actions (or `all`) on every instance; when the
/// store cannot be reached, on this instance at least.
async fn back_off(
    fleet: &Fleet,
    request: Request<'_>,
    status: u16,
    pause: Duration,
) -> Vec<Arc<str>> {
    let plan = Plan::new(fleet, &request);
    let mut names: Vec<String> = plan.names.iter().map(|n| n.to_string()).collect();
    if names.is_empty() {
        names.push(crate::config::ALL_ACTION.to_owned());
    }
    let mut invocation = fleet.scripts.backoff.key(&plan.base);
    invocation
        .arg(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX))
        .arg(status)
        .arg(&names);
    match fleet.invoke::<Vec<String>>(invocation).await {
        Ok(started) => started.into_iter().map(Arc::from).collect(),
        Err(err) => {
            tracing::warn!(%err, account = request.account, "backoff pause kept on this instance only");
            request.back_off_locally(status, pause).await
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
