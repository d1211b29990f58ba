//! Admission (SPEC section 4): every limit of the account's policy that
//! applies to a request must admit it; a refused request consumes nothing.
//!
//! - [`rolling`]: `A_per_…` windows with a hard bound; [`usage`]: daily
//!   counts and batches; [`policy`]: a policy compiled for the hot path;
//!   [`state`]: one account's state with check and commit; [`clock`]: the
//!   injected clock.
//! - `pace` mode: a request held by a rolling window, the protection gap or
//!   `concurrent_limit` waits (on the runtime's timers, never blocking a
//!   thread) up to `max_wait`; an account's waiting requests go through a
//!   fair (FIFO) gate one at a time, and a request arriving while others
//!   wait queues behind them. A paced request then waits a random extra
//!   `0..jitter`. Daily caps and batch pauses always refuse at once, and
//!   `reject` mode refuses whatever would have waited.
//! - [`Limiter`] is the one interface admission goes through: this
//!   instance's [`AccountLimiter`]s, or a store shared by a fleet behind
//!   [`shared::SharedLimiter`]. A [`Grant`] holds the request's concurrency slot until it is
//!   released (its [`Release`] may be asynchronous), is told when the
//!   request departs ([`Grant::depart`]: rolling windows and the gap count
//!   departures, see [`rolling`]), and can give back its daily-cap and
//!   batch consumption. Usage is keyed by action name, and
//!   every time is on the [`clock::Clock`]'s Unix time base, so another
//!   process can check the same windows.

pub mod backoff;
pub mod clock;
mod hit;
pub mod journal;
mod local;
pub mod policy;
mod queue;
pub mod record;
pub mod rolling;
pub mod shared;
pub mod state;
pub mod usage;

#[cfg(test)]
mod tests;

pub use self::hit::{Hit, HitKind, Refusal};
pub use self::local::{AccountLimiter, LocalGrant};
pub use self::shared::{AdmitError, Request, SharedGrant, SharedLimiter};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Where admission is decided.
#[derive(Debug, Clone, Default)]
pub enum Limiter {
    /// By each account's [`AccountLimiter`] on this instance.
    #[default]
    Local,
    /// By a store every instance of a fleet shares.
    Shared(Arc<dyn SharedLimiter>),
}

impl Limiter {
    /// Admits `request`, pacing it if its policy says so, or refuses it.
    pub async fn admit(&self, request: Request<'_>) -> Result<Grant, AdmitError> {
        match self {
            Limiter::Local => request.admit_locally().await,
            Limiter::Shared(store) => store.admit(request).await,
        }
    }

    /// The origin answered `status`, which the policy's backoff lists:
    /// pauses the actions the request matched for `pause`, durably.
    /// Returns the actions whose pause started now.
    pub async fn back_off(
        &self,
        request: Request<'_>,
        status: u16,
        pause: Duration,
    ) -> Vec<Arc<str>> {
        match self {
            Limiter::Local => request.back_off_locally(status, pause).await,
            Limiter::Shared(store) => store.back_off(request, status, pause).await,
        }
    }
}

/// An admitted request or tunnel.
#[derive(Debug)]
pub enum Grant {
    /// Admitted by this instance's limiter.
    Local(LocalGrant),
    /// Admitted by a shared store.
    Shared(SharedGrant),
}

impl Grant {
    /// How long the request waited for admission.
    pub fn waited(&self) -> Duration {
        match self {
            Grant::Local(grant) => grant.waited(),
            Grant::Shared(grant) => grant.waited,
        }
    }

    /// The limit it last waited for, if it was paced.
    pub fn held_by(&self) -> Option<HitKind> {
        match self {
            Grant::Local(grant) => grant.held_by(),
            Grant::Shared(grant) => grant.held_by,
        }
    }

    /// The request left pacer at `at` (on the [`clock::Clock`]'s monotonic base):
    /// its head was written towards the origin or upstream, or its tunnel
    /// opened to the destination. Its rolling windows and the gap count it
    /// from then, never from earlier than its admission; a request sent
    /// again (the next upstream) departs again. Called from the request's
    /// path as it departs: a shared store sends it as one pipelined
    /// command in the returned [`Release`], stamped on the store's clock.
    pub fn depart(&mut self, at: u64) -> Departed {
        match self {
            Grant::Local(grant) => Departed {
                lateness: grant.depart(at),
                release: Release::done(),
            },
            Grant::Shared(grant) => Departed {
                lateness: grant
                    .due
                    .take()
                    .map(|due| Duration::from_nanos(at.saturating_sub(due))),
                release: grant.hold.depart(),
            },
        }
    }

    /// The request or tunnel is over: its concurrency slot is freed.
    pub fn release(self) -> Release {
        match self {
            Grant::Local(grant) => {
                drop(grant);
                Release::done()
            }
            Grant::Shared(grant) => grant.hold.end(),
        }
    }

    /// The request failed before reaching the origin: its daily-cap and
    /// batch consumption are returned, and its slot freed.
    pub fn give_back(self) -> Release {
        match self {
            Grant::Local(grant) => {
                grant.give_back();
                Release::done()
            }
            Grant::Shared(grant) => grant.hold.give_back(),
        }
    }
}

/// A departure recorded.
#[derive(Debug)]
pub struct Departed {
    /// For a paced request's first departure: how long after its limits
    /// allowed it the request left (pacer's own lateness).
    pub lateness: Option<Duration>,
    /// What is left of recording it.
    pub release: Release,
}

/// What is left of a release once it returns: nothing for a local grant,
/// a round trip for a shared store.
#[must_use = "a release must be awaited or detached"]
pub struct Release(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Release {
    /// A release that is complete.
    pub fn done() -> Self {
        Release(None)
    }

    /// Lets the release complete on its own (from a close-out, which must
    /// not wait).
    pub fn detach(self) {
        if let Some(pending) = self.0 {
            tokio::spawn(pending);
        }
    }
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Release(pending)"
        } else {
            "Release(done)"
        })
    }
}
