//! What refused or held a request: the limit, its key and value, and the
//! wait, for the 429 headers, the envelope's detail and metrics.

use std::sync::Arc;
use std::time::Duration;

/// Which kind of limit refused or held a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// A rolling window of this length.
    Rolling {
        /// W plus the policy's guard.
        window: Duration,
    },
    /// A daily cap.
    Daily,
    /// `account_protection_seconds`.
    Gap {
        /// The gap plus the policy's guard.
        span: Duration,
    },
    /// `concurrent_limit`.
    Concurrency,
    /// A batch pause.
    Batch {
        /// `batch_hours`.
        pause: Duration,
    },
    /// Usage must reach the store before more is admitted (see
    /// [`journal`]); not a policy limit, so it is waited for in any mode.
    Persisting,
    /// The platform answered "too fast": the action is paused.
    Backoff {
        /// The whole pause.
        pause: Duration,
    },
}

/// The limit that refused (or held) a request, for headers and details.
#[derive(Debug, Clone)]
pub struct Hit {
    /// What kind of limit.
    pub kind: HitKind,
    /// The limit key as written.
    pub key: Arc<str>,
    /// Its value (N, the cap, the seconds, the batch size).
    pub value: u64,
    /// How many more it would admit now.
    pub remaining: u64,
    /// How long until it could admit (zero if unknown).
    pub retry_after: Duration,
    /// For a backoff: the paused action (`all` when the answer matched no
    /// action) and the origin status that paused it.
    pub paused: Option<(Arc<str>, u16)>,
}

impl Hit {
    /// A limit of `kind` with key `key` and value `value`, nothing left,
    /// admitting again after `retry_after`.
    pub fn reached(kind: HitKind, key: Arc<str>, value: u64, retry_after: Duration) -> Self {
        Hit {
            kind,
            key,
            value,
            remaining: 0,
            retry_after,
            paused: None,
        }
    }

    /// The protection gap of `gap` (`span` with the guard), `left` to go.
    pub fn gap(gap: Duration, span: Duration, left: Duration) -> Self {
        let key = Arc::from("account_protection_seconds");
        Self::reached(HitKind::Gap { span }, key, gap.as_secs(), left)
    }

    /// `action` paused for `pause` after the origin answered `status`,
    /// `left` of it to go.
    pub fn backoff(action: Arc<str>, status: u16, pause: Duration, left: Duration) -> Self {
        Hit {
            paused: Some((action, status)),
            ..Self::reached(HitKind::Backoff { pause }, Arc::from("backoff"), 0, left)
        }
    }

    pub fn concurrency(max: u64) -> Self {
        let key = Arc::from("concurrent_limit");
        Self::reached(HitKind::Concurrency, key, max, Duration::ZERO)
    }

    pub fn batch(size: u64, pause: Duration, left: Duration) -> Self {
        Self::reached(HitKind::Batch { pause }, Arc::from("batch"), size, left)
    }

    pub(super) fn persisting() -> Self {
        Self::reached(HitKind::Persisting, Arc::from("state"), 0, Duration::ZERO)
    }

    /// The period that bounds the limit, for `RateLimit-Policy`'s `w`
    /// (none for `concurrent_limit`).
    pub fn window(&self) -> Option<Duration> {
        match self.kind {
            HitKind::Rolling { window } => Some(window),
            HitKind::Daily => Some(Duration::from_secs(86_400)),
            HitKind::Batch { pause } | HitKind::Backoff { pause } => Some(pause),
            HitKind::Gap { span } => Some(span),
            HitKind::Concurrency | HitKind::Persisting => None,
        }
    }
}

/// A refused request: the limit, and the account it belongs to.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The limit that refused.
    pub hit: Hit,
    /// Whether the request had waited before being refused.
    pub waited: Duration,
}
