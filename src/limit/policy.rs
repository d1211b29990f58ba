//! A policy's limits compiled for the hot path: each limit key of SPEC
//! section 2 resolved to the action it counts (by [`ActionId`], or every
//! request for `all`) and grouped by kind.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::classify::{ActionId, ActionSet, Classifier};
use crate::config::{DayReset, LimitKey, LimitValue, Policy, PolicyMode, ALL_ACTION};

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
}

impl PolicyLimits {
    /// Compiles `policy` against the defined actions.
    pub fn new(policy: &Policy, classifier: &Classifier) -> Self {
        let mut limits = PolicyLimits {
            slug: Arc::from(policy.slug.as_str()),
            mode: policy.mode,
            max_wait: policy.max_wait,
            jitter: policy.jitter,
            day_reset: policy.day_resets_at,
            rolling: Vec::new(),
            daily: Vec::new(),
            gap: None,
            concurrency: None,
            batch: None,
        };
        let mut batch_size = None;
        let mut batch_pause = None;
        for limit in &policy.limits {
            match (&limit.key, limit.value) {
                (LimitKey::Rolling { action, window }, LimitValue::Count(n)) => {
                    limits.rolling.push(RollingRule {
                        key: Arc::from(limit.raw_key.as_str()),
                        scope: scope(action, classifier),
                        max: clamp_u32(n),
                        window: *window,
                    })
                }
                (LimitKey::DailyCap { action }, LimitValue::Count(n)) => {
                    limits.daily.push(DailyRule {
                        key: Arc::from(limit.raw_key.as_str()),
                        scope: scope(action, classifier),
                        cap: n,
                    })
                }
                (LimitKey::ProtectionGap, LimitValue::Count(s)) => {
                    limits.gap = Some(Duration::from_secs(s))
                }
                (LimitKey::ConcurrentLimit, LimitValue::Count(n)) => limits.concurrency = Some(n),
                (LimitKey::Batch, LimitValue::Count(n)) => batch_size = Some(n),
                (LimitKey::BatchHours, value) => batch_pause = hours(value),
                (_, _) => {}
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

fn hours(value: LimitValue) -> Option<Duration> {
    match value {
        LimitValue::Hours(h) => Duration::try_from_secs_f64(h * 3600.0).ok(),
        LimitValue::Count(n) => Some(Duration::from_secs(n.saturating_mul(3600))),
    }
}
