//! One account's limiter on this instance: its state behind a lock held
//! only for a check or a commit (never across an await), a fair gate that
//! admits paced requests in arrival order, and the grants it hands out.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::clock::Clock;
use super::journal::Pending;
use super::policy::PolicyLimits;
use super::record::UsageRecord;
use super::state::{Consumed, LimiterState, Verdict};
use super::{usage, Hit, HitKind, Refusal};
use crate::config::PolicyMode;
use crate::policy::classify::ActionSet;

/// The longest a request waits for its account's usage to reach the store,
/// in any mode.
const PERSIST_WAIT: Duration = Duration::from_secs(5);

/// One account's limiter.
#[derive(Debug, Default)]
pub struct AccountLimiter {
    state: Mutex<LimiterState>,
    gate: tokio::sync::Mutex<()>,
    released: Notify,
    /// Woken whenever a snapshot became durable.
    persisted: Notify,
    /// Wakes the usage flusher; present when usage is persisted.
    flush: Option<Arc<Notify>>,
}

/// A request admitted by an [`AccountLimiter`]: holds its concurrency
/// slot until dropped, and is counted in its rolling windows and the gap
/// from its departure ([`LocalGrant::depart`]; from its admission when it
/// gives back, from its end when it ends without a known departure).
#[derive(Debug)]
pub struct LocalGrant {
    limiter: Arc<AccountLimiter>,
    clock: Clock,
    consumed: Consumed,
    waited: Duration,
    held_by: Option<HitKind>,
    /// For a paced request, when its limits allowed it (monotonic ns),
    /// until its first departure.
    due: Option<u64>,
}

impl LocalGrant {
    /// How long the request waited for admission.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    fn consumed_at(&self) -> u64 {
        self.consumed.admitted_at()
    }

    /// The limit it last waited for, if it was paced.
    pub fn held_by(&self) -> Option<HitKind> {
        self.held_by
    }

    /// The request left pacer at `at` (monotonic ns; its head written, its
    /// tunnel open): its rolling windows and the gap count it from then.
    /// Returns, for a paced request's first departure, how late it left
    /// after its limits allowed it.
    pub fn depart(&mut self, at: u64) -> Option<Duration> {
        self.limiter.lock().depart(&mut self.consumed, at);
        self.limiter.released.notify_one();
        self.due
            .take()
            .map(|due| Duration::from_nanos(at.saturating_sub(due)))
    }

    /// The request failed before reaching the origin: its daily-cap and
    /// batch consumption are returned.
    pub fn give_back(mut self) {
        self.limiter.lock().give_back(&mut self.consumed);
    }
}

impl Drop for LocalGrant {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        state.settle(&mut self.consumed, self.clock.now());
        state.release();
        drop(state);
        self.limiter.released.notify_one();
    }
}

impl AccountLimiter {
    /// A limiter whose usage is persisted: `flush` wakes the flusher.
    pub fn journaled(flush: Arc<Notify>) -> Self {
        let mut state = LimiterState::default();
        state.enable_journal();
        AccountLimiter {
            state: Mutex::new(state),
            flush: Some(flush),
            ..AccountLimiter::default()
        }
    }

    /// Usage to persist (if changed since the durable snapshot, or
    /// `always`), with the mark to pass to [`AccountLimiter::durable`].
    pub fn snapshot(&self, always: bool) -> Option<(UsageRecord, Pending)> {
        self.lock().snapshot(always)
    }

    /// A snapshot reached the store: requests waiting on it may go.
    pub fn durable(&self, pending: Pending) {
        self.lock().durable(pending);
        self.released.notify_one();
        self.persisted.notify_waiters();
    }

    /// Pauses the actions a request matched (`all` when none) for `pause`
    /// after the origin answered `status`, and waits (at most
    /// [`PERSIST_WAIT`]) until the pause is durable, so that no restart can
    /// bring it back shorter. Returns the actions whose pause started.
    pub async fn back_off(
        &self,
        policy: &PolicyLimits,
        actions: &ActionSet,
        status: u16,
        pause: Duration,
        clock: &Clock,
    ) -> Vec<Arc<str>> {
        let (started, mark) = self
            .lock()
            .back_off(policy, actions, status, pause, clock.unix_ms());
        let (Some(mark), Some(flusher)) = (mark, &self.flush) else {
            return started;
        };
        let durable = async {
            loop {
                let persisted = self.persisted.notified();
                if self.lock().is_durable(mark) {
                    return;
                }
                flusher.notify_one();
                persisted.await;
            }
        };
        if tokio::time::timeout(PERSIST_WAIT, durable).await.is_err() {
            tracing::warn!("a backoff pause was not persisted in time");
        }
        started
    }

    /// The platform pauses running now.
    pub fn pauses(&self, clock: &Clock) -> Vec<super::backoff::Pause> {
        self.lock().pauses(clock.unix_ms())
    }

    /// Admits nothing more (clean shutdown, before the last snapshot).
    pub fn seal(&self) {
        self.lock().seal();
    }

    /// Today's usage and the running batch, brought up to date.
    pub fn usage(
        &self,
        policy: &Arc<PolicyLimits>,
        clock: &Clock,
    ) -> (usage::DailyUsage, usage::BatchProgress) {
        let mut state = self.lock();
        state.sync(policy, clock, clock.unix_ms());
        state.usage()
    }

    /// How many admissions each of `policy`'s rolling windows holds now,
    /// in its order (`None`: a GCRA keeps no count).
    pub fn window_fill(&self, policy: &Arc<PolicyLimits>, clock: &Clock) -> Vec<Option<u64>> {
        let mut state = self.lock();
        state.sync(policy, clock, clock.unix_ms());
        state.window_fill(clock.now())
    }

    /// Restores usage from the store at start-up.
    pub fn restore(&self, record: &UsageRecord, policy: &PolicyLimits, clock: &Clock) {
        self.lock().restore(record, policy, clock.unix_ms());
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        // The state stays consistent across a panic in another request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a request with `actions` under `policy`, pacing it if the
    /// policy says so, or refuses it.
    pub async fn admit(
        self: &Arc<Self>,
        policy: &Arc<PolicyLimits>,
        actions: &ActionSet,
        clock: &Clock,
    ) -> Result<LocalGrant, Refusal> {
        let arrival = clock.now();
        if let Some(decided) = self.try_admit(policy, actions, clock, arrival) {
            return decided;
        }
        let _queued = Queued(self, actions);
        self.paced(policy, actions, clock, arrival).await
    }

    /// The fast path, without waiting: the decision, or `None` when the
    /// request must queue (it is then counted as waiting).
    pub fn try_admit(
        self: &Arc<Self>,
        policy: &Arc<PolicyLimits>,
        actions: &ActionSet,
        clock: &Clock,
        now: u64,
    ) -> Option<Result<LocalGrant, Refusal>> {
        let wall_ms = clock.unix_ms();
        let mut state = self.lock();
        state.sync(policy, clock, wall_ms);
        if !state.contends(policy, actions, now) {
            let verdict = state.check(policy, actions, now, wall_ms);
            self.wake_flusher_for(&verdict);
            match verdict {
                Verdict::Admit => {
                    let at = Moment { now, wall_ms };
                    return Some(Ok(self.commit(&mut state, policy, actions, at, clock)));
                }
                Verdict::Refuse(hit) => return Some(Err(refusal(hit, 0))),
                Verdict::Wait { hit, until } if !can_wait(policy, &hit, now, until) => {
                    return Some(Err(refusal(hit, 0)))
                }
                Verdict::Wait { .. } => {}
            }
        }
        state.queue.enqueue(actions);
        None
    }

    /// The slow path: through the gate in arrival order, then wait.
    async fn paced(
        self: &Arc<Self>,
        policy: &Arc<PolicyLimits>,
        actions: &ActionSet,
        clock: &Clock,
        arrival: u64,
    ) -> Result<LocalGrant, Refusal> {
        let longest = arrival.saturating_add(nanos(policy.max_wait.max(PERSIST_WAIT)));
        let gate = tokio::time::timeout_at(clock.instant_at(longest), self.gate.lock()).await;
        let Ok(_turn) = gate else {
            let hit = self.current_hit(policy, actions, clock);
            return Err(refusal(hit, clock.now() - arrival));
        };
        let mut jittered = false;
        let mut held_by = None;
        // When the wait looked for last was due to end.
        let mut planned = u64::MAX;
        loop {
            let released = self.released.notified();
            let ready = jittered || policy.jitter.is_zero();
            let (verdict, now) = match self.look(policy, actions, clock, ready) {
                Ok(mut grant) => {
                    grant.held_by = held_by;
                    grant.waited = Duration::from_nanos(grant.consumed_at() - arrival);
                    grant.due = Some(planned.min(grant.consumed_at()));
                    return Ok(grant);
                }
                Err(looked) => looked,
            };
            match verdict {
                Verdict::Admit => {
                    jittered = true;
                    let jitter = random_up_to(policy.jitter);
                    planned = now.saturating_add(nanos(jitter));
                    tokio::time::sleep(jitter).await;
                }
                Verdict::Refuse(hit) => return Err(refusal(hit, now - arrival)),
                Verdict::Wait { until, hit } => {
                    held_by = Some(hit.kind);
                    let deadline = deadline(policy, &hit, arrival);
                    if !can_wait(policy, &hit, arrival, until) || now >= deadline {
                        return Err(refusal(hit, now - arrival));
                    }
                    planned = until.unwrap_or(u64::MAX);
                    let wake = clock.instant_at(until.unwrap_or(deadline).min(deadline));
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => {}
                        () = released => {}
                    }
                }
            }
        }
    }

    /// One look at the limits for the request at the head of the queue:
    /// committed if admissible and `ready`, else the verdict and the time.
    fn look(
        self: &Arc<Self>,
        policy: &Arc<PolicyLimits>,
        actions: &ActionSet,
        clock: &Clock,
        ready: bool,
    ) -> Result<LocalGrant, (Verdict, u64)> {
        let at = Moment {
            now: clock.now(),
            wall_ms: clock.unix_ms(),
        };
        let mut state = self.lock();
        state.sync(policy, clock, at.wall_ms);
        let verdict = state.check(policy, actions, at.now, at.wall_ms);
        self.wake_flusher_for(&verdict);
        if ready && matches!(verdict, Verdict::Admit) {
            return Ok(self.commit(&mut state, policy, actions, at, clock));
        }
        Err((verdict, at.now))
    }

    /// A request waits for its usage to be durable: the flusher is woken
    /// (a quiet account has no lease until a snapshot grants one).
    fn wake_flusher_for(&self, verdict: &Verdict) {
        if let (Verdict::Wait { hit, .. }, Some(flusher)) = (verdict, &self.flush) {
            if hit.kind == HitKind::Persisting {
                flusher.notify_one();
            }
        }
    }

    /// Consumes from every limit at `at` and hands out the grant.
    fn commit(
        self: &Arc<Self>,
        state: &mut LimiterState,
        policy: &PolicyLimits,
        actions: &ActionSet,
        at: Moment,
        clock: &Clock,
    ) -> LocalGrant {
        let (consumed, flush) = state.commit(policy, actions, at.now, at.wall_ms);
        if let (true, Some(flusher)) = (flush, &self.flush) {
            flusher.notify_one();
        }
        LocalGrant {
            limiter: self.clone(),
            clock: *clock,
            consumed,
            waited: Duration::ZERO,
            held_by: None,
            due: None,
        }
    }

    /// The limit holding a request now (for a refusal after queueing).
    fn current_hit(&self, policy: &Arc<PolicyLimits>, actions: &ActionSet, clock: &Clock) -> Hit {
        let mut state = self.lock();
        match state.check(policy, actions, clock.now(), clock.unix_ms()) {
            Verdict::Wait { hit, .. } | Verdict::Refuse(hit) => hit,
            // Admissible now, but others are ahead in the queue: the
            // concurrency of the queue itself held it.
            Verdict::Admit => Hit::concurrency(policy.concurrency.unwrap_or(1)),
        }
    }

    /// Frees idle rolling windows (called by the periodic sweep).
    pub fn compact(&self, clock: &Clock) {
        self.lock().compact(clock.now());
    }
}

/// One reading of both clocks, shared by a check and its commit.
#[derive(Debug, Clone, Copy)]
struct Moment {
    now: u64,
    wall_ms: i64,
}

/// Keeps a request in its account's pacing queue while it is on the slow
/// path.
struct Queued<'a>(&'a AccountLimiter, &'a ActionSet);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.lock().queue.dequeue(self.1);
    }
}

/// Whether a wait until `until` for `hit` fits the policy (waiting for the
/// store always does).
fn can_wait(policy: &PolicyLimits, hit: &Hit, arrival: u64, until: Option<u64>) -> bool {
    if hit.kind == HitKind::Persisting {
        return true;
    }
    if policy.mode == PolicyMode::Reject || policy.max_wait.is_zero() {
        return false;
    }
    until.is_none_or(|until| until <= arrival.saturating_add(nanos(policy.max_wait)))
}

/// When a queued request gives up waiting for `hit`.
fn deadline(policy: &PolicyLimits, hit: &Hit, arrival: u64) -> u64 {
    let limit = if hit.kind == HitKind::Persisting {
        policy.max_wait.max(PERSIST_WAIT)
    } else {
        policy.max_wait
    };
    arrival.saturating_add(nanos(limit))
}

fn refusal(hit: Hit, waited: u64) -> Refusal {
    Refusal {
        hit,
        waited: Duration::from_nanos(waited),
    }
}

fn random_up_to(max: Duration) -> Duration {
    Duration::from_nanos(fastrand::u64(0..=nanos(max)))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
