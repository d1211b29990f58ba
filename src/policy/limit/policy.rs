//! A policy's limits compiled for the hot path: each limit key of SPEC
//! section 2 resolved to the action it counts (by [`ActionId`], or every
//! request for `all`) and grouped by kind.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Backoff, DayReset, LimitKey, LimitValue, Policy, PolicyMode, ALL_ACTION};
use crate::policy::classify::{ActionId, ActionSet, Classifier};

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every request and tunnel (the built-in `all`).
    All,
    /// Requests classified as this action.
    Action(ActionId),
}

impl Scope {
    /// Whether a request with these actions is counted.
    pub fn applies(self, actions: &ActionSet) -> bool {
        match self {
            Scope::All => true,
            Scope::Action(id) => actions.contains(&id),
        }
    }
}

/// `A_per_…`: at most `max` in every window of `window`.
#[derive(Debug, Clone)]
pub struct RollingRule {
    /// The key as written, for headers and details.
    pub key: Arc<str>,
    /// What it counts.
    pub scope: Scope,
    /// N.
    pub max: NonZeroU32,
    /// W.
    pub window: Duration,
}

/// `A_daily_cap` or bare `A`: at most `cap` per calendar day.
#[derive(Debug, Clone)]
pub struct DailyRule {
    /// The key as written.
    pub key: Arc<str>,
    /// What it counts.
    pub scope: Scope,
    /// The action it counts, by name (`None`: every request), as usage is
    /// kept.
    pub action: Option<Arc<str>>,
    /// The cap.
    pub cap: u64,
}

/// `batch` / `batch_hours`.
#[derive(Debug, Clone, Copy)]
pub struct BatchRule {
    /// Limited actions per batch.
    pub size: u64,
    /// The pause after a full batch.
    pub pause: Duration,
}

/// Everything the limiter needs of one policy (plus, later, an account's
/// overrides), built once.
#[derive(Debug)]
pub struct PolicyLimits {
    /// The policy's slug.
    pub slug: Arc<str>,
    /// Pace or reject.
    pub mode: PolicyMode,
    /// Longest a paced request may wait.
    pub max_wait: Duration,
    /// Random extra delay for a paced request.
    pub jitter: Duration,
    /// Margin added to every rolling window and to the gap.
    pub guard: Duration,
    /// When daily caps reset.
    pub day_reset: DayReset,
    /// Rolling windows.
    pub rolling: Vec<RollingRule>,
    /// Daily caps.
    pub daily: Vec<DailyRule>,
    /// `account_protection_seconds`.
    pub gap: Option<Duration>,
    /// `concurrent_limit`.
    pub concurrency: Option<u64>,
    /// `batch` with `batch_hours`.
    pub batch: Option<BatchRule>,
    /// The name of each action id the policy was compiled against.
    pub action_names: Arc<[Arc<str>]>,
    /// Platform feedback, when configured.
    pub backoff: Option<Backoff>,
}

impl PolicyLimits {
    /// Compiles `policy` against the defined actions.
    pub fn new(policy: &Policy, classifier: &Classifier) -> Self {
        let mut limits = PolicyLimits {
            slug: Arc::from(policy.slug.as_str()),
            mode: policy.mode,
            max_wait: policy.max_wait,
            jitter: policy.jitter,
            guard: policy.guard,
            day_reset: policy.day_resets_at,
            rolling: Vec::new(),
            daily: Vec::new(),
            gap: None,
            concurrency: None,
            batch: None,
            action_names: classifier.action_names().clone(),
            backoff: policy.backoff.clone(),
        };
        let mut batch_size = None;
        let mut batch_pause = None;
        for limit in &policy.limits {
            // Every key kind is decided here; validation only ever pairs
            // fractional hours with `batch_hours`, and a count given as
            // hours anyway is taken whole, never dropped.
            let count = whole(limit.value);
            match &limit.key {
                LimitKey::Rolling { action, window } => limits.rolling.push(RollingRule {
                    key: Arc::from(limit.raw_key.as_str()),
                    scope: scope(action, classifier),
                    max: clamp_u32(count),
                    window: *window,
                }),
                LimitKey::DailyCap { action } => limits.daily.push(DailyRule {
                    key: Arc::from(limit.raw_key.as_str()),
                    scope: scope(action, classifier),
                    action: (action != ALL_ACTION).then(|| Arc::from(action.as_str())),
                    cap: count,
                }),
                LimitKey::ProtectionGap => limits.gap = Some(Duration::from_secs(count)),
                LimitKey::ConcurrentLimit => limits.concurrency = Some(count),
                LimitKey::Batch => batch_size = Some(count),
                LimitKey::BatchHours => batch_pause = hours(limit.value),
            }
        }
        if let (Some(size), Some(pause)) = (batch_size, batch_pause) {
            limits.batch = Some(BatchRule { size, pause });
        }
        limits
    }
}

fn scope(action: &str, classifier: &Classifier) -> Scope {
    if action == ALL_ACTION {
        return Scope::All;
    }
    match classifier.id(action) {
        Some(id) => Scope::Action(id),
        // Validation guarantees every named action exists.
        None => Scope::All,
    }
}

fn clamp_u32(n: u64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

/// A count limit's value (at least 1).
fn whole(value: LimitValue) -> u64 {
    match value {
        LimitValue::Count(n) => n,
        LimitValue::Hours(h) => (h.floor() as u64).max(1),
    }
}

fn hours(value: LimitValue) -> Option<Duration> {
    match value {
        LimitValue::Hours(h) => Duration::try_from_secs_f64(h * 3600.0).ok(),
        LimitValue::Count(n) => Some(Duration::from_secs(n.saturating_mul(3600))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActionRule, Limit};

    #[test]
    fn no_limit_is_dropped_whatever_its_value_shape() {
        let rules = [ActionRule {
            name: "send".into(),
            methods: None,
            hosts: None,
            paths: None,
        }];
        let classifier = Classifier::new(&rules).expect("classifier");
        let mut policy = crate::config::parse(
            "[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n[policies.standard_policy]\n",
            &|_| None,
        )
        .expect("config")
        .policies["standard_policy"]
        .clone();
        let limit = |key: LimitKey, raw: &str, value| Limit {
            key,
            raw_key: raw.into(),
            value,
        };
        let minute = Duration::from_secs(60);
        policy.limits = vec![
            limit(
                LimitKey::Rolling {
                    action: "send".into(),
                    window: minute,
                },
                "send_per_minute",
                LimitValue::Hours(2.5),
            ),
            limit(
                LimitKey::DailyCap {
                    action: "send".into(),
                },
                "send",
                LimitValue::Count(4),
            ),
            limit(
                LimitKey::ProtectionGap,
                "account_protection_seconds",
                LimitValue::Count(3),
            ),
            limit(
                LimitKey::ConcurrentLimit,
                "concurrent_limit",
                LimitValue::Hours(1.0),
            ),
            limit(LimitKey::Batch, "batch", LimitValue::Count(5)),
            limit(LimitKey::BatchHours, "batch_hours", LimitValue::Hours(0.5)),
        ];
        let compiled = PolicyLimits::new(&policy, &classifier);
        assert_eq!(compiled.rolling.len(), 1, "a rolling limit given as hours");
        assert_eq!(compiled.rolling[0].max.get(), 2);
        assert_eq!(compiled.daily[0].action.as_deref(), Some("send"));
        assert_eq!(compiled.gap, Some(Duration::from_secs(3)));
        assert_eq!(compiled.concurrency, Some(1));
        let batch = compiled.batch.expect("batch");
        assert_eq!((batch.size, batch.pause), (5, Duration::from_secs(1800)));
    }
}
