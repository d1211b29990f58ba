//! An account's usage as the whole fleet made it: today's counts, the
//! batch, the platform pauses and the fill of each rolling window, read
//! in one script call (`scripts/usage.lua`) on Redis's clock.

use redis::Value;

use super::value::{bad_answer, int, text};
use super::{keys, Fleet, FleetError};
use crate::policy::limit::backoff::Pause;
use crate::policy::limit::policy::PolicyLimits;
use crate::policy::limit::record::UsageRecord;

/// What the fleet counted for one account.
#[derive(Debug, Clone, Default)]
pub struct FleetUsage {
    /// Today's counts and the batch, as a record (no headroom).
    pub record: UsageRecord,
    /// Admissions in each of the policy's rolling windows, in its order.
    pub fill: Vec<u64>,
    /// Every platform pause (running or not).
    pub pauses: Vec<Pause>,
}

impl Fleet {
    /// `account`'s usage under `policy`, fleet-wide.
    pub async fn usage(
        &self,
        account: &str,
        policy: &PolicyLimits,
    ) -> Result<FleetUsage, FleetError> {
        let reset = policy.day_reset;
        let shift = i64::from(reset.offset_minutes) * 60 - i64::from(reset.minute_of_day) * 60;
        let mut invocation = self
            .scripts
            .usage
            .key(keys::account(&self.config.key_prefix, account));
        invocation.arg(shift).arg(policy.rolling.len());
        for rule in &policy.rolling {
            let span = rule.window.saturating_add(policy.guard);
            invocation
                .arg(keys::window(policy, rule))
                .arg(i64::try_from(span.as_micros()).unwrap_or(i64::MAX));
        }
        let answer: Vec<Value> = self.invoke(invocation).await?;
        parse(&answer).ok_or_else(|| bad_answer("usage"))
    }
}

fn parse(answer: &[Value]) -> Option<FleetUsage> {
    let [day, counts, batch, pauses, fill] = answer else {
        return None;
    };
    let mut record = UsageRecord {
        day_start: int(day)?,
        ..UsageRecord::default()
    };
    for (field, count) in pairs(counts)? {
        let count = u64::try_from(count.parse::<i64>().ok()?).unwrap_or(0);
        match field.strip_prefix("a:") {
            Some(action) => record.actions.push((action.to_owned(), count)),
            None if field == "all" => record.all = count,
            None => {}
        }
    }
    let Value::Array(batch) = batch else {
        return None;
    };
    let at = |i: usize| {
        batch
            .get(i)
            .and_then(text)
            .and_then(|t| t.parse::<i64>().ok())
    };
    record.batch_current = at(0).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    record.batch_paused_until_ms = at(1);
    record.batch_last_at_ms = at(2);
    let pauses = pairs(pauses)?
        .into_iter()
        .filter_map(|(action, value)| pause(action, &value))
        .collect();
    let Value::Array(fill) = fill else {
        return None;
    };
    let fill = fill
        .iter()
        .map(|n| int(n).and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
        .collect();
    Some(FleetUsage {
        record,
        fill,
        pauses,
    })
}

/// A flat field/value list (HGETALL in a script answer).
fn pairs(value: &Value) -> Option<Vec<(String, String)>> {
    let Value::Array(items) = value else {
        return None;
    };
    items
        .chunks(2)
        .map(|pair| match pair {
            [field, value] => Some((text(field)?, text(value)?)),
            _ => None,
        })
        .collect()
}

/// A pause as `scripts/backoff.lua` writes it: `until:since:status`.
fn pause(action: String, value: &str) -> Option<Pause> {
    let mut parts = value.split(':');
    let until_ms = parts.next()?.parse().ok()?;
    let since_ms = parts.next()?.parse().ok()?;
    let status = parts.next()?.parse().ok()?;
    Some(Pause {
        action,
        since_ms,
        until_ms,
        status,
    })
}
