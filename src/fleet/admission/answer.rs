//! The admission script's two calls ("admit" and "confirm") and what
//! their answers mean: admitted (with the store's record of it), refused
//! by a limit (with the limit), or `concurrent_limit` full.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::plan::Plan;
use crate::fleet::value::{bad_answer, int, text};
use crate::fleet::{Fleet, FleetError};
use crate::policy::limit::policy::PolicyLimits;
use crate::policy::limit::{Hit, HitKind};

/// What one admission call answered.
pub enum Answer {
    /// Admitted, to start at `start` (Redis µs; `now` was the store's time).
    Admitted(Admitted),
    /// Refused by a limit.
    Refused(Hit),
    /// `concurrent_limit` is full.
    Full,
}

/// An admission's record in the store.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    pub(super) start: i64,
    pub(super) now: i64,
    pub(super) day: i64,
    pub(super) batch_seq: i64,
    pub(super) filled: bool,
    pub(super) last_before: i64,
    /// 1-based index of the window (or, past them, the gap) that placed
    /// the start; 0 for none.
    pub(super) hold: usize,
}

pub async fn call_admit(
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

pub async fn call_confirm(
    fleet: &Fleet,
    plan: &Plan,
    member: &str,
) -> Result<(i64, i64), FleetError> {
    let mut invocation = fleet.scripts.admit.key(&plan.base);
    invocation.arg(plan.admit_args("confirm", member, 0, 0));
    let answer: Vec<Value> = fleet.invoke(invocation).await?;
    let placed = match answer.as_slice() {
        [_, start, now, ..] => int(start).zip(int(now)),
        _ => None,
    };
    placed.ok_or_else(|| bad_answer("confirm"))
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
pub fn window_hit(policy: &PolicyLimits, plan: &Plan, index: usize, wait: Duration) -> Hit {
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
