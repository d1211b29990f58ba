//! A pool member: its upstream, its cooldown and its attempt counts (both
//! of which a reload carries over, by the upstream's identity).

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
    pub(super) cooling_until: Mutex<Option<Instant>>,
    /// Since pacer started (carried over by reloads).
    pub(super) stats: Arc<MemberStats>,
}

/// Attempts through a pool member and how many failed.
#[derive(Default)]
pub(super) struct MemberStats {
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
        let before = previous.and_then(|router| router.member(identity));
        let stats = before.map(|m| m.stats.clone()).unwrap_or_default();
        // A cooldown running survives a reload (or a fleet's runtime
        // change), so an upstream that failed is not tried again early.
        let cooling = before.and_then(|m| m.cooling_until(Instant::now()));
        Member {
            upstream: Arc::new(Upstream::new(url.clone(), settings)),
            country,
            identity,
            cooling_until: Mutex::new(cooling),
            stats,
        }
    }

    pub(super) fn attempted(&self) {
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self) {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn cooling_until(&self, now: Instant) -> Option<Instant> {
        let until = *self
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
