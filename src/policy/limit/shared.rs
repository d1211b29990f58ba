//! The seam a shared store (a fleet's Redis) plugs into: [`SharedLimiter`]
//! admits and backs off for an account as the local limiter does, and the
//! [`SharedGrant`] it hands out records departure, end and give-back as
//! [`Release`]s (round trips that the request path detaches).
//!
//! The policy logic stays in this layer: which limits apply, pace or
//! reject, `max_wait`. A store implements only counting.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::clock::Clock;
use super::policy::PolicyLimits;
use super::{AccountLimiter, HitKind, Refusal, Release};
use crate::policy::classify::ActionSet;

/// A future a shared limiter returns.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request to admit, as every limiter sees it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The account's id.
    pub account: &'a str,
    /// The account's limiter on this instance (the fallback of a store
    /// that is down, in `local` mode).
    pub local: &'a Arc<AccountLimiter>,
    /// The account's policy.
    pub policy: &'a Arc<PolicyLimits>,
    /// The actions the request matched.
    pub actions: &'a ActionSet,
    /// The limiters' clock.
    pub clock: &'a Clock,
}

impl Request<'_> {
    /// Admits the request by this instance's own limiter.
    pub async fn admit_locally(&self) -> Result<super::Grant, AdmitError> {
        self.local
            .admit(self.policy, self.actions, self.clock)
            .await
            .map(super::Grant::Local)
            .map_err(AdmitError::Refused)
    }

    /// Pauses the request's actions on this instance's own limiter.
    pub async fn back_off_locally(&self, status: u16, pause: Duration) -> Vec<Arc<str>> {
        self.local
            .back_off(self.policy, self.actions, status, pause, self.clock)
            .await
    }
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum AdmitError {
    /// A limit refused it.
    Refused(Refusal),
    /// The shared store could not be asked (and nothing is admitted
    /// unchecked): the detail names it.
    Unavailable(Arc<str>),
}

/// Admission through a store shared by several instances.
pub trait SharedLimiter: Send + Sync + fmt::Debug {
    /// Admits `request`, pacing it if its policy says so, or refuses it.
    fn admit<'a>(&'a self, request: Request<'a>) -> Pending<'a, Result<super::Grant, AdmitError>>;

    /// The origin answered `status`, which the policy's backoff lists:
    /// pauses the request's actions (or `all`) for `pause` on every
    /// instance. Returns the actions whose pause started now.
    fn back_off<'a>(
        &'a self,
        request: Request<'a>,
        status: u16,
        pause: Duration,
    ) -> Pending<'a, Vec<Arc<str>>>;
}

/// What a shared store keeps of one admitted request.
pub trait SharedHold: Send + Sync + fmt::Debug {
    /// The request left pacer: its windows and the gap count it from now.
    fn depart(&mut self) -> Release;
    /// The request is over.
    fn end(self: Box<Self>) -> Release;
    /// The request failed before the origin: its daily-cap and batch
    /// consumption are returned.
    fn give_back(self: Box<Self>) -> Release;
}

/// A request admitted by a shared store.
#[derive(Debug)]
pub struct SharedGrant {
    /// The store's record of it.
    pub hold: Box<dyn SharedHold>,
    /// How long it waited.
    pub waited: Duration,
    /// The limit it last waited for.
    pub held_by: Option<HitKind>,
    /// When its limits allowed it to start (monotonic ns), until its
    /// first departure.
    pub due: Option<u64>,
}

impl Release {
    /// A release still to complete: `pending` runs when awaited or
    /// detached.
    pub fn later(pending: impl Future<Output = ()> + Send + 'static) -> Self {
        Release(Some(Box::pin(pending)))
    }
}
