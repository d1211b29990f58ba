//! The recent history of traffic that `GET /v1/stats` (and the dashboard)
//! reads: for the last [`WINDOW_SECS`], per [`BUCKET_SECS`] bucket, the
//! requests and tunnels that closed and those refused with an envelope (by
//! envelope type and by the limit key that refused them), and the last
//! [`RECENT`] refusals one by one.
//!
//! Cost on the request path: a request that is served costs one atomic
//! add. Each bucket's count carries the bucket's number in its upper 32
//! bits, so a count belonging to an older bucket is recognised and reset
//! by the first request of the new one, with no lock and no timer. A
//! refusal also takes one short lock to count its type and limit and to
//! overwrite the oldest entry of the recent list, reusing its buffers: no
//! allocation once the list is full.
//!
//! Time is the caller's Unix milliseconds (the engine's clock), so tests
//! drive it. Buckets are wall-clock intervals: should the wall clock be
//! stepped back, the buckets read as empty until it has caught up.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::context::RequestContext;
use crate::wire::request_id::RequestId;

/// Seconds per bucket.
pub const BUCKET_SECS: u64 = 10;
/// Buckets kept: 15 minutes.
pub const BUCKETS: usize = 90;
/// Seconds of history.
pub const WINDOW_SECS: u64 = BUCKET_SECS * BUCKETS as u64;
/// Refusals kept one by one.
pub const RECENT: usize = 1000;

/// The recent history: bucketed counts and the last refusals.
#[derive(Debug)]
pub struct History {
    requests: Box<[StampedCount]>,
    refusals: Mutex<Refusals>,
}

/// A count tagged with the number of the bucket it counts
/// (`bucket << 32 | count`).
#[derive(Debug, Default)]
struct StampedCount(AtomicU64);

impl StampedCount {
    /// Counts one in `bucket`, resetting a count left by an older bucket
    /// of the same slot.
    fn add(&self, bucket: u32) {
        let previous = self.0.fetch_add(1, Ordering::Relaxed);
        if stamp(previous) >= bucket {
            // Counted in its bucket (or, for a request that closed just
            // as the next bucket began, in that one).
            return;
        }
        // The slot held an older bucket: start it over at 1, unless
        // another request already did (then count again there).
        let mut current = previous.wrapping_add(1);
        loop {
            let fresh = u64::from(bucket) << 32 | 1;
            match stamp(current).cmp(&bucket) {
                std::cmp::Ordering::Less => {
                    match self.0.compare_exchange_weak(
                        current,
                        fresh,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return,
                        Err(now) => current = now,
                    }
                }
                std::cmp::Ordering::Equal => {
                    self.0.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                std::cmp::Ordering::Greater => return,
            }
        }
    }

    /// The count of `bucket`, zero if the slot holds another bucket.
    fn get(&self, bucket: u32) -> u64 {
        let value = self.0.load(Ordering::Relaxed);
        if stamp(value) == bucket {
            value & u64::from(u32::MAX)
        } else {
            0
        }
    }
}

fn stamp(value: u64) -> u32 {
    (value >> 32) as u32
}

/// The number of the bucket that holds `unix_ms` (Unix seconds / 10).
fn bucket_of(unix_ms: i64) -> u32 {
    let secs = u64::try_from(unix_ms.div_euclid(1000)).unwrap_or(0);
    u32::try_from(secs / BUCKET_SECS).unwrap_or(u32::MAX)
}

fn slot_of(bucket: u32) -> usize {
    bucket as usize % BUCKETS
}

#[derive(Debug)]
struct Refusals {
    buckets: Vec<RefusalCounts>,
    /// Oldest first.
    recent: VecDeque<Refusal>,
}

/// The refusals of one bucket.
#[derive(Debug, Default)]
struct RefusalCounts {
    bucket: u32,
    total: u64,
    by_type: Vec<(&'static str, u64)>,
    by_limit: Vec<(Arc<str>, u64)>,
}

impl RefusalCounts {
    fn count(&mut self, outcome: &'static str, limit: Option<&Arc<str>>) {
        self.total += 1;
        match self.by_type.iter_mut().find(|(t, _)| *t == outcome) {
            Some((_, n)) => *n += 1,
            None => self.by_type.push((outcome, 1)),
        }
        if let Some(limit) = limit {
            match self.by_limit.iter_mut().find(|(k, _)| k == limit) {
                Some((_, n)) => *n += 1,
                None => self.by_limit.push((limit.clone(), 1)),
            }
        }
    }

    fn restart(&mut self, bucket: u32) {
        self.bucket = bucket;
        self.total = 0;
        self.by_type.clear();
        self.by_limit.clear();
    }
}

/// One refused request or tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Its request id.
    pub id: RequestId,
    /// When it closed, Unix milliseconds.
    pub at_ms: i64,
    /// The listener it came in on.
    pub listener: &'static str,
    /// The account, if it was identified.
    pub account: Option<Arc<str>>,
    /// The actions it matched, comma-separated (empty: none).
    pub actions: String,
    /// The method (`CONNECT` for tunnels), empty if unknown.
    pub method: String,
    /// The destination `host:port`, empty if unknown.
    pub target: String,
    /// The limit key that refused it, for a rate limit.
    pub limit: Option<Arc<str>>,
    /// The envelope type without `errors/`.
    pub outcome: &'static str,
    /// The HTTP status, or the SOCKS5 reply code on the SOCKS5 listener.
    pub status: u16,
}

impl Refusal {
    fn empty() -> Self {
        Refusal {
            id: RequestId::next(),
            at_ms: 0,
            listener: "",
            account: None,
            actions: String::new(),
            method: String::new(),
            target: String::new(),
            limit: None,
            outcome: "",
            status: 0,
        }
    }

    /// Overwrites this entry with `ctx`, reusing its buffers.
    fn fill(&mut self, ctx: &RequestContext, actions: &[&str], at_ms: i64) {
        self.id = ctx.id;
        self.at_ms = at_ms;
        self.listener = ctx.listener.as_str();
        self.account.clone_from(&ctx.account);
        self.actions.clear();
        for (n, action) in actions.iter().enumerate() {
            if n > 0 {
                self.actions.push(',');
            }
            self.actions.push_str(action);
        }
        self.method.clear();
        self.method
            .push_str(ctx.method.as_ref().map_or("", |m| m.as_str()));
        self.target.clear();
        if let Some(target) = &ctx.target {
            let _ = write!(self.target, "{target}");
        }
        self.limit.clone_from(&ctx.refused_limit);
        self.outcome = ctx.outcome;
        self.status = ctx.status;
    }
}

/// The counts of one bucket, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its first second, Unix time.
    pub start: u64,
    /// Requests and tunnels that closed in it.
    pub requests: u64,
    /// Those refused with an envelope.
    pub refusals: u64,
    /// Refusals by envelope type (without `errors/`), most first.
    pub by_type: Vec<(&'static str, u64)>,
    /// Refusals by the limit key that refused, most first.
    pub by_limit: Vec<(Arc<str>, u64)>,
}

/// Refusals per account and limit key among the recent refusals.
pub type ByAccount = BTreeMap<Arc<str>, BTreeMap<Arc<str>, u64>>;

impl Default for History {
    fn default() -> Self {
        History {
            requests: (0..BUCKETS).map(|_| StampedCount::default()).collect(),
            refusals: Mutex::new(Refusals {
                buckets: (0..BUCKETS).map(|_| RefusalCounts::default()).collect(),
                recent: VecDeque::with_capacity(RECENT),
            }),
        }
    }
}

impl History {
    /// Records a request or tunnel that closed at `at_ms` with the actions
    /// `actions`: counted; refused with an envelope, also counted by type
    /// and limit and kept among the recent refusals. One its client
    /// abandoned is counted as a request only.
    pub fn record(&self, ctx: &RequestContext, actions: &[&str], at_ms: i64) {
        let bucket = bucket_of(at_ms);
        self.requests[slot_of(bucket)].add(bucket);
        if !refused(ctx) {
            return;
        }
        let mut refusals = self.lock();
        let counts = &mut refusals.buckets[slot_of(bucket)];
        if counts.bucket < bucket {
            counts.restart(bucket);
        }
        if counts.bucket == bucket {
            counts.count(ctx.outcome, ctx.refused_limit.as_ref());
        }
        let mut entry = if refusals.recent.len() == RECENT {
            refusals.recent.pop_front().unwrap_or_else(Refusal::empty)
        } else {
            Refusal::empty()
        };
        entry.fill(ctx, actions, at_ms);
        refusals.recent.push_back(entry);
    }

    /// The [`BUCKETS`] buckets up to the one holding `now_ms`, oldest
    /// first (the last one still filling).
    pub fn buckets(&self, now_ms: i64) -> Vec<Bucket> {
        let last = bucket_of(now_ms);
        let first = last.saturating_sub(BUCKETS as u32 - 1);
        let refusals = self.lock();
        (first..=last)
            .map(|bucket| {
                let slot = slot_of(bucket);
                let mut read = Bucket {
                    start: u64::from(bucket) * BUCKET_SECS,
                    requests: self.requests[slot].get(bucket),
                    refusals: 0,
                    by_type: Vec::new(),
                    by_limit: Vec::new(),
                };
                let counts = &refusals.buckets[slot];
                if counts.bucket == bucket {
                    read.refusals = counts.total;
                    read.by_type = most_first(counts.by_type.clone());
                    read.by_limit = most_first(counts.by_limit.clone());
                }
                read
            })
            .collect()
    }

    /// At most `limit` of the refusals of the last [`WINDOW_SECS`] before
    /// `now_ms`, newest first, of `account` only if given; and among all
    /// the recent refusals of that window, the count per account and
    /// limit key.
    pub fn recent(
        &self,
        now_ms: i64,
        limit: usize,
        account: Option<&str>,
    ) -> (Vec<Refusal>, ByAccount) {
        let since = now_ms.saturating_sub(WINDOW_SECS as i64 * 1000);
        let refusals = self.lock();
        let in_window = || refusals.recent.iter().rev().filter(|r| r.at_ms > since);
        let list = in_window()
            .filter(|r| account.is_none_or(|a| r.account.as_deref() == Some(a)))
            .take(limit)
            .cloned()
            .collect();
        let mut by_account = ByAccount::new();
        for refusal in in_window() {
            if let (Some(account), Some(key)) = (&refusal.account, &refusal.limit) {
                let per_limit = by_account.entry(account.clone()).or_default();
                *per_limit.entry(key.clone()).or_default() += 1;
            }
        }
        (list, by_account)
    }

    fn lock(&self) -> MutexGuard<'_, Refusals> {
        // The counts stay consistent whatever panicked while holding them.
        self.refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `ctx` was answered with an error envelope.
fn refused(ctx: &RequestContext) -> bool {
    !matches!(ctx.outcome, "ok" | super::context::CLIENT_CLOSED)
}

fn most_first<K: Ord>(mut counts: Vec<(K, u64)>) -> Vec<(K, u64)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

#[cfg(test)]
mod tests;
