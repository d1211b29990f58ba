//! A request's limits as the scripts take them: the rolling windows, the
//! gap, the daily caps, the batch and `concurrent_limit` that count it.

use std::sync::Arc;
use std::time::Duration;

use super::micros;
use crate::fleet::{keys, Fleet};
use crate::policy::limit::Request;

/// What the scripts need of one request: its limits as arguments.
#[derive(Debug)]
pub struct Plan {
    pub(super) base: String,
    /// The rolling windows that count it: key, N, span (µs).
    pub(super) windows: Vec<(String, u32, i64)>,
    /// Index in the policy of each entry of `windows`.
    pub(super) rules: Vec<usize>,
    /// The gap with the guard (µs), when it counts the request.
    pub(super) gap_us: i64,
    /// Daily caps that count it: field, cap, index in the policy.
    pub(super) daily: Vec<(String, u64, usize)>,
    /// The actions it matched, by name.
    pub(super) names: Vec<Arc<str>>,
    pub(super) limited: bool,
    pub(super) concurrency: u64,
    pub(super) batch: Option<(u64, i64)>,
    pub(super) day_shift: i64,
}

impl Plan {
    pub fn new(fleet: &Fleet, request: &Request<'_>) -> Plan {
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
    pub fn admit_args(
        &self,
        mode: &str,
        member: &str,
        longest_us: i64,
        lease_us: i64,
    ) -> Vec<String> {
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
