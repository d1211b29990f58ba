//! A pool member: its upstream, its cooldown and its attempt counts. The
//! cooldown and the counts are one state that a reload (or a fleet's
//! runtime change) shares between the old router and the new one, by the
//! upstream's identity: a failure a request still on the old snapshot
//! notes is seen by the new one too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use super::{stable_hash, Router, Upstream};
use crate::config::{CountryCode, UpstreamUrl};
use crate::egress::upstream::EgressSettings;

/// One upstream of a pool, with its cooldown.
pub struct Member {
    pub(super) upstream: Arc<Upstream>,
    pub(super) country: CountryCode,
    pub(super) identity: u64,
    /// Since pacer started (shared with the routers before and after).
    pub(super) state: Arc<MemberState>,
}

/// What a pool member has been through: when its cooldown ends, the
/// attempts through it and how many failed.
#[derive(Default)]
pub(super) struct MemberState {
    cooling_until: Mutex<Option<Instant>>,
    pub(super) attempts: AtomicU64,
    pub(super) failures: AtomicU64,
}

/// A pool member as `GET /v1/upstreams` shows it.
pub struct MemberView {
    /// The upstream's URL (its password masked when formatted).
    pub url: UpstreamUrl,
    /// The pool it serves.
    pub country: CountryCode,
    /// Until when it sits out, if it does.
    pub cooling_until: Option<Instant>,
    /// Attempts through it since start.
    pub attempts: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Accounts whose sticky choice it is.
    pub accounts: usize,
}

impl Member {
    pub(super) fn new(
        url: &UpstreamUrl,
        country: CountryCode,
        settings: &Arc<EgressSettings>,
        previous: Option<&Router>,
    ) -> Self {
        let identity = identity(url);
        // A cooldown running survives a reload, so an upstream that
        // failed is not tried again early.
        let state = previous
            .and_then(|router| router.member(identity))
            .map(|m| m.state.clone())
            .unwrap_or_default();
        Member {
            upstream: Arc::new(Upstream::new(url.clone(), settings)),
            country,
            identity,
            state,
        }
    }

    pub(super) fn attempted(&self) {
        self.state.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self) {
        self.state.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn cooling_until(&self, now: Instant) -> Option<Instant> {
        let until = *self
            .state
            .cooling_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.filter(|until| *until > now)
    }

    /// The upstream.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    pub(super) fn available(&self, now: Instant) -> bool {
        self.cooling_until(now).is_none()
    }

    pub(super) fn cool_down(&self, until: Instant) {
        let mut slot = self
            .state
            .cooling_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(until);
    }
}

/// What identifies an upstream across restarts and config edits: scheme,
/// user and address (never the password).
pub(super) fn identity(url: &UpstreamUrl) -> u64 {
    let user = url.username.as_deref().unwrap_or("");
    let text = format!("{}://{user}@{}", url.scheme.as_str(), url.authority());
    stable_hash(text.as_bytes())
}
