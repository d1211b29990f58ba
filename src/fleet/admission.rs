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

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::task::JoinHandle;

use super::keys;
use super::{Fleet, FleetError};
use crate::config::{OnUnavailable, PolicyMode};
use crate::policy::limit::policy::PolicyLimits;
use crate::policy::limit::shared::{Pending, SharedHold};
use crate::policy::limit::{
    AdmitError, Grant, Hit, HitKind, Refusal, Release, Request, SharedGrant, SharedLimiter,
};

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

/// What the scripts need of one request: its limits as arguments.
#[derive(Debug)]
struct Plan {
    base: String,
    /// The rolling windows that count it: key, N, span (µs).
    windows: Vec<(String, u32, i64)>,
    /// Index in the policy of each entry of `windows`.
    rules: Vec<usize>,
    /// The gap with the guard (µs), when it counts the request.
    gap_us: i64,
    /// Daily caps that count it: field, cap, index in the policy.
    daily: Vec<(String, u64, usize)>,
    /// The actions it matched, by name.
    names: Vec<Arc<str>>,
    limited: bool,
    concurrency: u64,
    batch: Option<(u64, i64)>,
    day_shift: i64,
}

impl Plan {
    fn new(fleet: &Fleet, request: &Request<'_>) -> Plan {
        let policy = request.policy;
        let actions = request.actions;
        let span = |d: Duration| micros(d.saturating_add(policy.guard));
        let mut windows = Vec::new();
        let mut rules = Vec::new();
        for (i, rule) in policy.rolling.iter().enumerate() {
            if rule.scope.applies(actions) {
                windows.push((
                    keys::window(policy, rule),
                    rule.max.get(),
                    span(rule.window),
                ));
                rules.push(i);
            }
        }
        let limited = !actions.is_empty();
        let names: Vec<Arc<str>> = actions
            .iter()
            .filter_map(|id| policy.action_names.get(usize::from(id.0)).cloned())
            .collect();
        let daily = policy
            .daily
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.scope.applies(actions))
            .map(|(i, rule)| {
                let field = match &rule.action {
                    None => "all".to_owned(),
                    Some(name) => format!("a:{name}"),
                };
                (field, rule.cap, i)
            })
            .collect();
        let reset = policy.day_reset;
        Plan {
            base: keys::account(&fleet.config.key_prefix, request.account),
            windows,
            rules,
            gap_us: policy.gap.filter(|_| limited).map_or(0, span),
            daily,
            names,
            limited,
            concurrency: policy.concurrency.unwrap_or(0),
            batch: policy.batch.map(|b| {
                (
                    b.size,
                    i64::try_from(b.pause.as_millis()).unwrap_or(i64::MAX),
                )
            }),
            day_shift: i64::from(reset.offset_minutes) * 60 - i64::from(reset.minute_of_day) * 60,
        }
    }

    /// Arguments of `scripts/admit.lua`.
    fn admit_args(&self, mode: &str, member: &str, longest_us: i64, lease_us: i64) -> Vec<String> {
        let (batch_size, batch_pause) = self.batch.unwrap_or((0, 0));
        let mut args = vec![
            mode.to_owned(),
            member.to_owned(),
            longest_us.to_string(),
            lease_us.to_string(),
            self.day_shift.to_string(),
            u8::from(self.limited).to_string(),
            self.concurrency.to_string(),
            self.gap_us.to_string(),
            batch_size.to_string(),
            batch_pause.to_string(),
            self.windows.len().to_string(),
        ];
        for (key, max, span) in &self.windows {
            args.extend([key.clone(), max.to_string(), span.to_string()]);
        }
        args.push(self.daily.len().to_string());
        for (field, cap, _) in &self.daily {
            args.extend([field.clone(), cap.to_string()]);
        }
        args.push(self.names.len().to_string());
        args.extend(self.names.iter().map(|n| n.to_string()));
        args
    }
}

/// What one admission call answered.
enum Answer {
    /// Admitted, to start at `start` (Redis µs; `now` was the store's time).
    Admitted(Admitted),
    /// Refused by a limit.
    Refused(Hit),
    /// `concurrent_limit` is full.
    Full,
}

/// An admission's record in the store.
#[derive(Debug, Clone, Copy)]
struct Admitted {
    start: i64,
    now: i64,
    day: i64,
    batch_seq: i64,
    filled: bool,
    last_before: i64,
    /// 1-based index of the window (or, past them, the gap) that placed
    /// the start; 0 for none.
    hold: usize,
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
        OnUnavailable::Local => request
            .local
            .admit(request.policy, request.actions, request.clock)
            .await
            .map(Grant::Local)
            .map_err(AdmitError::Refused),
    }
}

async fn call_admit(
    fleet: &Fleet,
    plan: &Plan,
    args: &[String],
    policy: &PolicyLimits,
) -> Result<Answer, FleetError> {
    let mut invocation = fleet.scripts.admit.key(&plan.base);
    invocation.arg(args);
    let answer: Vec<Value> = fleet.invoke(invocation).await?;
    parse_admit(&answer, plan, policy).ok_or_else(|| bad_answer("admit"))
}

async fn call_confirm(fleet: &Fleet, plan: &Plan, member: &str) -> Result<(i64, i64), FleetError> {
    let mut invocation = fleet.scripts.admit.key(&plan.base);
    invocation.arg(plan.admit_args("confirm", member, 0, 0));
    let answer: Vec<Value> = fleet.invoke(invocation).await?;
    let placed = match answer.as_slice() {
        [_, start, now, ..] => int(start).zip(int(now)),
        _ => None,
    };
    placed.ok_or_else(|| bad_answer("confirm"))
}

pub(super) fn bad_answer(script: &str) -> FleetError {
    FleetError::Redis(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected answer of a fleet script",
        script.to_owned(),
    )))
}

/// Reads `scripts/admit.lua`'s answer in "admit" mode.
fn parse_admit(answer: &[Value], plan: &Plan, policy: &PolicyLimits) -> Option<Answer> {
    let head = int(answer.first()?)?;
    match head {
        1 => {
            let field = |i: usize| answer.get(i).and_then(int);
            Some(Answer::Admitted(Admitted {
                start: field(1)?,
                now: field(2)?,
                day: field(3)?,
                batch_seq: field(4)?,
                filled: field(5)? == 1,
                last_before: field(6)?,
                hold: usize::try_from(field(7)?).ok()?,
            }))
        }
        2 => Some(Answer::Full),
        _ => refused(answer, plan, policy).map(Answer::Refused),
    }
}

/// The limit a refusal names: `{0, kind, index, retry_us, ...}`.
fn refused(answer: &[Value], plan: &Plan, policy: &PolicyLimits) -> Option<Hit> {
    let kind = text(answer.get(1)?)?;
    let retry = |i: usize| -> Option<Duration> {
        let us = int(answer.get(i)?)?;
        Some(Duration::from_micros(u64::try_from(us).unwrap_or(0)))
    };
    match kind.as_str() {
        "window" => {
            let index = usize::try_from(int(answer.get(2)?)?).ok()?;
            Some(window_hit(policy, plan, index, retry(3)?))
        }
        "daily" => {
            let index = usize::try_from(int(answer.get(2)?)?).ok()?;
            let (_, cap, rule) = plan.daily.get(index.checked_sub(1)?)?;
            let key = policy.daily.get(*rule)?.key.clone();
            Some(Hit::reached(HitKind::Daily, key, *cap, retry(3)?))
        }
        "batch" => {
            let rule = policy.batch?;
            Some(Hit::batch(rule.size, rule.pause, retry(3)?))
        }
        "backoff" => {
            let action = Arc::from(text(answer.get(2)?)?);
            let status = u16::try_from(int(answer.get(3)?)?).ok()?;
            let ms = |i: usize| -> Option<Duration> {
                Some(Duration::from_millis(
                    u64::try_from(int(answer.get(i)?)?).unwrap_or(0),
                ))
            };
            Some(Hit::backoff(action, status, ms(4)?, ms(5)?))
        }
        _ => None,
    }
}

/// The rolling window (1-based `index` into the plan's windows) or, past
/// them, the gap that places a request `wait` ahead.
fn window_hit(policy: &PolicyLimits, plan: &Plan, index: usize, wait: Duration) -> Hit {
    let rule = index
        .checked_sub(1)
        .and_then(|i| plan.rules.get(i))
        .and_then(|r| policy.rolling.get(*r));
    match rule {
        Some(rule) => Hit::reached(
            HitKind::Rolling {
                window: rule.window.saturating_add(policy.guard),
            },
            rule.key.clone(),
            u64::from(rule.max.get()),
            wait,
        ),
        None => {
            let gap = policy.gap.unwrap_or_default();
            Hit::gap(gap, gap.saturating_add(policy.guard), wait)
        }
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
            let Request {
                local,
                policy,
                actions,
                clock,
                ..
            } = request;
            local.back_off(policy, actions, status, pause, clock).await
        }
    }
}

/// What the fleet keeps of one admitted request, until it ends.
#[derive(Debug)]
struct FleetHold {
    fleet: Arc<Fleet>,
    plan: Arc<Plan>,
    member: String,
    admitted: Admitted,
    /// Renews the concurrency lease while the request lives.
    renew: Option<JoinHandle<()>>,
    /// What is left to tell the store when the hold goes without an end:
    /// `cancel` while it waits for its start, `end` once placed.
    on_drop: Option<&'static str>,
}

impl FleetHold {
    fn new(
        fleet: Arc<Fleet>,
        plan: Arc<Plan>,
        member: String,
        admitted: Admitted,
        lease_us: i64,
    ) -> FleetHold {
        let renew = (plan.concurrency > 0).then(|| {
            let (fleet, plan, member) = (fleet.clone(), plan.clone(), member.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let _ = release(&fleet, &plan, &member, &admitted, "renew", lease_us).await;
                }
            })
        });
        FleetHold {
            fleet,
            plan,
            member,
            admitted,
            renew,
            on_drop: Some("cancel"),
        }
    }

    /// The request starts now: from here on it ends, it is not cancelled.
    fn placed(&mut self) {
        self.on_drop = Some("end");
    }

    /// Gives every consumption back (the request will not start).
    fn cancel(&mut self) {
        self.on_drop = None;
        self.finish("cancel").detach();
    }

    /// Tells the store `what` (`end`, `give_back`, `cancel`) and stops
    /// renewing the lease.
    fn finish(&mut self, what: &'static str) -> Release {
        if let Some(renew) = self.renew.take() {
            renew.abort();
        }
        let (fleet, plan, member, admitted) = (
            self.fleet.clone(),
            self.plan.clone(),
            self.member.clone(),
            self.admitted,
        );
        Release::later(async move {
            if let Err(err) = release(&fleet, &plan, &member, &admitted, what, 0).await {
                tracing::debug!(%err, what, "fleet release not recorded (leases and reservations expire by themselves)");
            }
        })
    }
}

impl SharedHold for FleetHold {
    fn depart(&mut self) -> Release {
        let (fleet, plan, member, admitted) = (
            self.fleet.clone(),
            self.plan.clone(),
            self.member.clone(),
            self.admitted,
        );
        Release::later(async move {
            let _ = release(&fleet, &plan, &member, &admitted, "depart", 0).await;
        })
    }

    fn end(mut self: Box<Self>) -> Release {
        self.on_drop = None;
        self.finish("end")
    }

    fn give_back(mut self: Box<Self>) -> Release {
        self.on_drop = None;
        self.finish("give_back")
    }
}

impl Drop for FleetHold {
    fn drop(&mut self) {
        if let Some(what) = self.on_drop.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                self.finish(what).detach();
            }
        } else if let Some(renew) = self.renew.take() {
            renew.abort();
        }
    }
}

/// Runs `scripts/release.lua` for one grant.
async fn release(
    fleet: &Fleet,
    plan: &Plan,
    member: &str,
    admitted: &Admitted,
    what: &str,
    lease_us: i64,
) -> Result<(), FleetError> {
    let mut invocation = fleet.scripts.release.key(&plan.base);
    invocation
        .arg(what)
        .arg(member)
        .arg(lease_us)
        .arg(admitted.day)
        .arg(admitted.batch_seq)
        .arg(u8::from(admitted.filled))
        .arg(admitted.last_before)
        .arg(plan.windows.len());
    for (key, _, _) in &plan.windows {
        invocation.arg(key);
    }
    invocation.arg(u8::from(plan.gap_us > 0));
    for name in &plan.names {
        invocation.arg(&**name);
    }
    fleet.invoke::<Value>(invocation).await.map(|_| ())
}

/// An integer in a script's answer.
pub(super) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(d) => Some(*d as i64),
        _ => None,
    }
}

/// A string in a script's answer.
pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
