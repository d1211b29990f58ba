//! One account's limiter state and the two operations on it, both under the
//! account's lock: [`LimiterState::check`] decides without changing
//! anything, [`LimiterState::commit`] consumes from every limit that
//! applies. Together they make admission all-or-nothing.

use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use super::backoff::{Pause, Pauses};
use super::clock::Clock;
use super::journal::{Journal, Pending};
use super::policy::{PolicyLimits, Scope};
use super::queue::Queue;
use super::record::UsageRecord;
use super::rolling::Window;
use super::usage::{BatchProgress, BatchUndo, DailyUsage};
use super::{Hit, HitKind};
use crate::policy::classify::ActionSet;

/// What the limits say about a request right now.
#[derive(Debug)]
pub enum Verdict {
    /// Every limit admits it.
    Admit,
    /// A limit that waiting can satisfy holds it: until this monotonic
    /// instant (`None`: until a request of the account ends).
    Wait {
        /// When to look again.
        until: Option<u64>,
        /// The limit that holds it longest.
        hit: Hit,
    },
    /// A daily cap or batch pause: refused at once.
    Refuse(Hit),
}

/// The state of one account's limits.
#[derive(Debug, Default)]
pub struct LimiterState {
    /// The policy `windows` were built for.
    built_for: Option<Arc<PolicyLimits>>,
    windows: Vec<Window>,
    /// The id the next window gets.
    next_window: u64,
    /// The latest departure (or never-departing admission) of a limited
    /// action, for the protection gap.
    last_limited: Option<u64>,
    /// Limited actions admitted and not yet departed.
    limited_pending: u32,
    in_flight: u64,
    /// Requests queued for pacing.
    pub queue: Queue,
    usage: DailyUsage,
    batch: BatchProgress,
    /// Present when usage is persisted.
    journal: Option<Journal>,
    /// Actions the platform paused.
    pauses: Pauses,
}

/// What one admission consumed: to stamp its departure, or to give it
/// back.
#[derive(Debug, Clone)]
pub struct Consumed {
    day_start: i64,
    actions: ActionSet,
    names: Arc<[Arc<str>]>,
    batch: Option<BatchUndo>,
    /// When it was admitted (monotonic ns).
    admitted_at: u64,
    /// The rolling windows it is counted in, by id.
    windows: SmallVec<[u64; 4]>,
    /// Whether it is a limited action (the gap counts it).
    limited: bool,
    /// Whether it departed at least once.
    departed: bool,
}

impl Consumed {
    /// When the request was admitted (monotonic ns).
    pub fn admitted_at(&self) -> u64 {
        self.admitted_at
    }
}

impl LimiterState {
    /// Brings the state up to `policy` and the clock: rolling windows are
    /// rebuilt when the policy changed (kept for rules with the same key and
    /// shape), the day and the batch roll over.
    pub fn sync(&mut self, policy: &Arc<PolicyLimits>, clock: &Clock, wall_ms: i64) {
        let current = self
            .built_for
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, policy));
        if !current || self.windows.len() != policy.rolling.len() {
            self.rebuild_windows(policy, clock);
        }
        self.usage.roll(&policy.day_reset, wall_ms.div_euclid(1000));
        self.batch.roll(wall_ms);
        if let Some(rule) = &policy.batch {
            self.batch.fit(rule, wall_ms);
        }
    }

    /// Windows for `policy`'s rolling rules. A rule with the same scope and
    /// window as one of the previous policy keeps that window's history
    /// (its log is the account's), with the new N and guard applied to it;
    /// any other starts empty.
    fn rebuild_windows(&mut self, policy: &Arc<PolicyLimits>, clock: &Clock) {
        let mut old: Vec<((Scope, Duration), Window)> = match &self.built_for {
            Some(previous) if previous.rolling.len() == self.windows.len() => previous
                .rolling
                .iter()
                .map(|r| (r.scope, r.window))
                .zip(std::mem::take(&mut self.windows))
                .collect(),
            _ => Vec::new(),
        };
        let now = clock.now();
        let mut windows = Vec::with_capacity(policy.rolling.len());
        for rule in &policy.rolling {
            let length = rule.window.saturating_add(policy.guard);
            let window = match old
                .iter()
                .position(|(shape, _)| *shape == (rule.scope, rule.window))
            {
                Some(i) => {
                    let mut kept = old.swap_remove(i).1;
                    kept.reshape(rule.max, length, now);
                    kept
                }
                None => {
                    self.next_window += 1;
                    Window::new(self.next_window, rule.max, length)
                }
            };
            windows.push(window);
        }
        self.windows = windows;
        self.built_for = Some(policy.clone());
    }

    /// Decides about a request with `actions`, changing nothing.
    pub fn check(
        &mut self,
        policy: &PolicyLimits,
        actions: &ActionSet,
        now: u64,
        wall_ms: i64,
    ) -> Verdict {
        if let Some(hit) = self.paused(policy, actions, wall_ms) {
            return Verdict::Refuse(hit);
        }
        if let Some(hit) = self.hard_refusal(policy, actions, wall_ms) {
            return Verdict::Refuse(hit);
        }
        let mut longest: Option<(Option<u64>, Hit)> = None;
        let mut consider = |until: Option<u64>, hit: Hit| {
            let later = match (&longest, until) {
                (None, _) => true,
                (Some((None, _)), _) => false,
                (Some((Some(_), _)), None) => true,
                (Some((Some(old), _)), Some(new)) => new > *old,
            };
            if later {
                longest = Some((until, hit));
            }
        };
        for (rule, window) in policy.rolling.iter().zip(&mut self.windows) {
            if !rule.scope.applies(actions) {
                continue;
            }
            let wait = window.wait(now);
            if wait > 0 {
                let kind = HitKind::Rolling {
                    window: window.length(),
                };
                let max = u64::from(rule.max.get());
                let hit = Hit::reached(kind, rule.key.clone(), max, Duration::from_nanos(wait));
                consider(Some(now + wait), hit);
            }
        }
        if let Some(until) = self.gap_until(policy, actions, now) {
            let gap = policy.gap.unwrap_or_default();
            let span = gap.saturating_add(policy.guard);
            consider(
                Some(until),
                Hit::gap(gap, span, Duration::from_nanos(until - now)),
            );
        }
        if let Some(max) = policy.concurrency {
            if self.in_flight >= max {
                consider(None, Hit::concurrency(max));
            }
        }
        if let Some((until, hit)) = longest {
            return Verdict::Wait { until, hit };
        }
        if self.journal.as_mut().is_some_and(Journal::at_wall) {
            return Verdict::Wait {
                until: None,
                hit: Hit::persisting(),
            };
        }
        Verdict::Admit
    }

    /// Until when the protection gap (with the guard) holds a limited
    /// action: from the last limited departure, or, while one is pending,
    /// at least the gap from now (looked at again when it departs).
    fn gap_until(&self, policy: &PolicyLimits, actions: &ActionSet, now: u64) -> Option<u64> {
        let gap = policy.gap.filter(|_| !actions.is_empty())?;
        let span = nanos(gap.saturating_add(policy.guard));
        let from = if self.limited_pending > 0 {
            now
        } else {
            self.last_limited?
        };
        Some(from.saturating_add(span)).filter(|until| *until > now)
    }

    /// Whether a request with `actions` must queue behind the requests
    /// waiting for pacing: it does when one of them waits for a limit that
    /// admitting the newcomer first would hold longer (a rolling window
    /// with no room for both, the gap, `concurrent_limit`). FIFO holds
    /// among the requests a limit actually holds; anything else passes.
    pub fn contends(&mut self, policy: &PolicyLimits, actions: &ActionSet, now: u64) -> bool {
        let queued = self.queue.len();
        if queued == 0 {
            return false;
        }
        if policy
            .concurrency
            .is_some_and(|max| self.in_flight + queued >= max)
        {
            return true;
        }
        if policy.gap.is_some() && !actions.is_empty() && self.queue.limited() > 0 {
            return true;
        }
        let queue = &self.queue;
        policy
            .rolling
            .iter()
            .zip(&mut self.windows)
            .any(|(rule, window)| {
                let behind = queue.under(rule.scope);
                rule.scope.applies(actions) && behind > 0 && window.remaining(now) <= behind
            })
    }

    /// A running platform pause of one of the request's actions (or of
    /// `all`): refused before any other limit, in both modes.
    fn paused(&self, policy: &PolicyLimits, actions: &ActionSet, wall_ms: i64) -> Option<Hit> {
        let names = names_of(policy, actions);
        let pause = self.pauses.holding(&names, wall_ms)?;
        let left = pause.left(wall_ms)?;
        let action = Arc::from(pause.action.as_str());
        Some(Hit::backoff(action, pause.status, pause.length(), left))
    }

    /// Pauses the actions a request matched (`all` when none) for `pause`
    /// after the origin answered `status`. Returns the actions whose pause
    /// started now, and the journal mark to wait for (with whether a flush
    /// is wanted).
    pub fn back_off(
        &mut self,
        policy: &PolicyLimits,
        actions: &ActionSet,
        status: u16,
        pause: Duration,
        wall_ms: i64,
    ) -> (Vec<Arc<str>>, Option<u64>) {
        let mut paused: Vec<Arc<str>> = actions
            .iter()
            .filter_map(|id| policy.action_names.get(usize::from(id.0)).cloned())
            .collect();
        if paused.is_empty() {
            paused.push(Arc::from(crate::config::ALL_ACTION));
        }
        let until = wall_ms.saturating_add(i64::try_from(pause.as_millis()).unwrap_or(i64::MAX));
        paused.retain(|action| self.pauses.extend(action, status, wall_ms, until));
        let mark = self.journal.as_mut().map(|journal| {
            journal.record();
            journal.mark()
        });
        (paused, mark)
    }

    /// Whether everything up to `mark` is durable (always, unpersisted).
    pub fn is_durable(&self, mark: u64) -> bool {
        self.journal.as_ref().is_none_or(|j| j.is_durable(mark))
    }

    /// The pauses running at `wall_ms`.
    pub fn pauses(&self, wall_ms: i64) -> Vec<Pause> {
        self.pauses.running(wall_ms).cloned().collect()
    }

    /// A daily cap reached or a batch pause running.
    fn hard_refusal(
        &self,
        policy: &PolicyLimits,
        actions: &ActionSet,
        wall_ms: i64,
    ) -> Option<Hit> {
        for rule in &policy.daily {
            if rule.scope.applies(actions) && self.usage.count(rule.action.as_deref()) >= rule.cap {
                let now_secs = wall_ms.div_euclid(1000);
                let reset = policy.day_reset.next_reset_after(now_secs);
                let left = u64::try_from(reset - now_secs).unwrap_or(0);
                let left = Duration::from_secs(left);
                return Some(Hit::reached(
                    HitKind::Daily,
                    rule.key.clone(),
                    rule.cap,
                    left,
                ));
            }
        }
        let rule = policy.batch.as_ref().filter(|_| !actions.is_empty())?;
        let left = self.batch.pause_left(wall_ms)?;
        Some(Hit::batch(rule.size, rule.pause, left))
    }

    /// Consumes one request with `actions` from every limit that applies.
    /// The flag asks for a flush of the usage now.
    pub fn commit(
        &mut self,
        policy: &PolicyLimits,
        actions: &ActionSet,
        now: u64,
        wall_ms: i64,
    ) -> (Consumed, bool) {
        let mut windows = SmallVec::new();
        for (rule, window) in policy.rolling.iter().zip(&mut self.windows) {
            if rule.scope.applies(actions) {
                window.admit();
                windows.push(window.id());
            }
        }
        let limited = !actions.is_empty();
        if limited {
            self.limited_pending += 1;
        }
        self.in_flight += 1;
        self.usage.record(actions, &policy.action_names);
        let batch = match (&policy.batch, limited) {
            (Some(rule), true) => Some(self.batch.record(rule, wall_ms)),
            _ => None,
        };
        let flush = self.journal.as_mut().is_some_and(Journal::record);
        let consumed = Consumed {
            day_start: self.usage.day_start(),
            actions: actions.clone(),
            names: policy.action_names.clone(),
            batch,
            admitted_at: now,
            windows,
            limited,
            departed: false,
        };
        (consumed, flush)
    }

    /// How many admissions each rolling window holds, in the policy's
    /// order (`None`: a GCRA keeps no count).
    pub fn window_fill(&mut self, now: u64) -> Vec<Option<u64>> {
        self.windows.iter_mut().map(|w| w.fill(now)).collect()
    }

    /// The request of `consumed` departed at `at` (never earlier than its
    /// admission): its rolling windows and the gap count it from then. A
    /// request sent again departs again, and is counted again.
    pub fn depart(&mut self, consumed: &mut Consumed, at: u64) {
        let at = at.max(consumed.admitted_at);
        let first = !std::mem::replace(&mut consumed.departed, true);
        self.stamp(consumed, at, first);
    }

    /// The request of `consumed` ended without departing (or without
    /// pacer knowing that it did): it is counted from `at`.
    pub fn settle(&mut self, consumed: &mut Consumed, at: u64) {
        if !std::mem::replace(&mut consumed.departed, true) {
            self.stamp(consumed, at.max(consumed.admitted_at), true);
        }
    }

    fn stamp(&mut self, consumed: &Consumed, at: u64, first: bool) {
        for window in &mut self.windows {
            if consumed.windows.contains(&window.id()) {
                if first {
                    window.depart(at);
                } else {
                    window.stamp(at);
                }
            }
        }
        if consumed.limited {
            if first {
                self.limited_pending = self.limited_pending.saturating_sub(1);
            }
            self.last_limited = self.last_limited.max(Some(at));
        }
    }

    /// Today's usage and the running batch.
    pub fn usage(&self) -> (DailyUsage, BatchProgress) {
        (self.usage.clone(), self.batch)
    }

    /// Keeps this state's usage durable from now on.
    pub fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(Journal::default);
    }

    /// The usage to persist, if anything changed since the durable snapshot
    /// (or `always`).
    pub fn snapshot(&mut self, always: bool) -> Option<(UsageRecord, Pending)> {
        let journal = self.journal.as_mut()?;
        if !always && !journal.is_dirty() {
            return None;
        }
        let pending = journal.begin_snapshot();
        let mut record = UsageRecord {
            headroom: pending.headroom,
            ..UsageRecord::default()
        };
        self.usage.to_record(&mut record);
        record.pauses = self.pauses.to_list();
        self.batch.to_record(&mut record);
        Some((record, pending))
    }

    /// A snapshot is durable.
    pub fn durable(&mut self, pending: Pending) {
        if let Some(journal) = &mut self.journal {
            journal.durable(pending);
        }
    }

    /// No admission from now on (clean shutdown).
    pub fn seal(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.seal();
        }
    }

    /// Usage from the store, at start-up.
    pub fn restore(&mut self, record: &UsageRecord, policy: &PolicyLimits, wall_ms: i64) {
        let now_secs = wall_ms.div_euclid(1000);
        let today = policy.day_reset.day_start(now_secs);
        self.usage = DailyUsage::from_record(record, today, now_secs);
        self.pauses = Pauses::from_list(record.pauses.clone());
        self.batch = BatchProgress::from_record(record, policy.batch.as_ref(), wall_ms);
    }

    /// A request or tunnel ended.
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Takes back the daily-cap and batch consumption of a request that
    /// failed before reaching the origin; its rolling windows and the gap
    /// keep it at its admission.
    pub fn give_back(&mut self, consumed: &mut Consumed) {
        self.settle(consumed, consumed.admitted_at);
        self.usage
            .give_back(consumed.day_start, &consumed.actions, &consumed.names);
        if let Some(undo) = consumed.batch {
            self.batch.give_back(undo);
        }
    }

    /// Frees the rolling windows once none of them could refuse anything
    /// (they are rebuilt fresh on the next request).
    pub fn compact(&mut self, now: u64) {
        if self.queue.is_empty() && self.windows.iter_mut().all(|w| w.is_idle(now)) {
            self.windows = Vec::new();
            self.built_for = None;
        }
    }
}

/// The names of the actions a request matched.
fn names_of<'a>(policy: &'a PolicyLimits, actions: &ActionSet) -> SmallVec<[&'a str; 4]> {
    actions
        .iter()
        .filter_map(|id| policy.action_names.get(usize::from(id.0)).map(|n| &**n))
        .collect()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
