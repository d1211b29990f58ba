//! Admission on a paused clock: each limit kind, their combination, pacing
//! order, give-back, day rollover and batches.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{advance, Instant};

use super::clock::Clock;
use super::policy::{BatchRule, DailyRule, PolicyLimits, RollingRule, Scope};
use super::{AccountLimiter, HitKind};
use crate::config::{DayReset, PolicyMode};
use crate::policy::classify::{ActionId, ActionSet};

const SEND: ActionId = ActionId(0);
const VIEW: ActionId = ActionId(1);
const MINUTE: Duration = Duration::from_secs(60);
/// 2026-11-22T00:00:00Z.
const MIDNIGHT_MS: i64 = 1_795_305_600_000;

fn policy(mode: PolicyMode) -> PolicyLimits {
    PolicyLimits {
        slug: Arc::from("test"),
        mode,
        max_wait: Duration::from_secs(600),
        jitter: Duration::ZERO,
        guard: Duration::ZERO,
        day_reset: "00:00+00:00".parse().expect("reset"),
        rolling: Vec::new(),
        daily: Vec::new(),
        gap: None,
        concurrency: None,
        batch: None,
        action_names: Arc::from(vec![Arc::from("send"), Arc::from("view")]),
        backoff: None,
    }
}

fn rolling(key: &str, scope: Scope, max: u32, window: Duration) -> RollingRule {
    RollingRule {
        key: Arc::from(key),
        scope,
        max: NonZeroU32::new(max).expect("n"),
        window,
    }
}

fn daily(key: &str, scope: Scope, cap: u64) -> DailyRule {
    let action = match scope {
        Scope::All => None,
        Scope::Action(id) => Some(Arc::from(["send", "view"][usize::from(id.0)])),
    };
    DailyRule {
        key: Arc::from(key),
        scope,
        action,
        cap,
    }
}

fn set(ids: &[ActionId]) -> ActionSet {
    ids.iter().copied().collect()
}

struct Bench {
    limiter: Arc<AccountLimiter>,
    policy: Arc<PolicyLimits>,
    clock: Clock,
}

impl Bench {
    fn new(policy: PolicyLimits) -> Self {
        Bench {
            limiter: Arc::default(),
            policy: Arc::new(policy),
            clock: Clock::starting_at(MIDNIGHT_MS),
        }
    }

    async fn admit(&self, actions: &[ActionId]) -> Result<super::LocalGrant, super::Refusal> {
        self.limiter
            .admit(&self.policy, &set(actions), &self.clock)
            .await
    }
}

#[tokio::test(start_paused = true)]
async fn exactly_n_in_a_window_then_refusal() {
    let mut p = policy(PolicyMode::Reject);
    p.rolling
        .push(rolling("send_per_minute", Scope::Action(SEND), 3, MINUTE));
    let bench = Bench::new(p);
    for _ in 0..3 {
        drop(bench.admit(&[SEND]).await.expect("admitted"));
        advance(Duration::from_secs(1)).await;
    }
    let refused = bench.admit(&[SEND]).await.expect_err("fourth refused");
    assert_eq!(&*refused.hit.key, "send_per_minute");
    assert_eq!(refused.hit.kind, HitKind::Rolling { window: MINUTE });
    // The first left the window 60 s (and a nanosecond) after it entered.
    assert_eq!(
        refused.hit.retry_after,
        Duration::from_secs(57) + Duration::from_nanos(1)
    );
    assert!(
        bench.admit(&[VIEW]).await.is_ok(),
        "other actions are not counted"
    );
    advance(Duration::from_secs(58)).await;
    assert!(bench.admit(&[SEND]).await.is_ok());
    assert!(bench.admit(&[SEND]).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_refusal_consumes_nothing_from_other_limits() {
    let mut p = policy(PolicyMode::Reject);
    p.rolling
        .push(rolling("send_per_minute", Scope::Action(SEND), 1, MINUTE));
    p.rolling
        .push(rolling("all_per_minute", Scope::All, 2, MINUTE));
    p.daily.push(daily("all_daily_cap", Scope::All, 10));
    let bench = Bench::new(p);
    drop(bench.admit(&[SEND]).await.expect("first"));
    for _ in 0..5 {
        let refused = bench.admit(&[SEND]).await.expect_err("send limit");
        assert_eq!(&*refused.hit.key, "send_per_minute");
    }
    drop(
        bench
            .admit(&[VIEW])
            .await
            .expect("all_per_minute still has room"),
    );
    let refused = bench.admit(&[VIEW]).await.expect_err("all limit");
    assert_eq!(&*refused.hit.key, "all_per_minute");
}

#[tokio::test(start_paused = true)]
async fn paced_requests_keep_the_gap_and_their_arrival_order() {
    let mut p = policy(PolicyMode::Pace);
    p.gap = Some(Duration::from_secs(10));
    let bench = Arc::new(Bench::new(p));
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..5 {
        let bench = bench.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let grant = bench.admit(&[SEND]).await.expect("paced, not refused");
            let _ = tx.send((n, start.elapsed(), grant.waited()));
        });
        tokio::task::yield_now().await;
    }
    drop(tx);
    let mut admitted = Vec::new();
    while let Some(entry) = rx.recv().await {
        admitted.push(entry);
    }
    let order: Vec<_> = admitted.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(order, [0, 1, 2, 3, 4], "arrival order");
    for pair in admitted.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= Duration::from_secs(10),
            "{admitted:?}"
        );
    }
    assert_eq!(admitted[4].2, Duration::from_secs(40));
}

#[tokio::test(start_paused = true)]
async fn requests_matching_only_all_are_not_held_by_the_gap_or_batch() {
    let mut p = policy(PolicyMode::Reject);
    p.gap = Some(Duration::from_secs(10));
    p.batch = Some(BatchRule {
        size: 1,
        pause: Duration::from_secs(3600),
    });
    let bench = Bench::new(p);
    assert!(bench.admit(&[SEND]).await.is_ok());
    let refused = bench.admit(&[SEND]).await.expect_err("batch paused");
    assert_eq!(&*refused.hit.key, "batch");
    assert!(bench.admit(&[]).await.is_ok(), "not a limited action");
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_max_wait_is_refused_at_once() {
    let mut p = policy(PolicyMode::Pace);
    p.rolling.push(rolling(
        "send_per_hour",
        Scope::Action(SEND),
        1,
        Duration::from_secs(3600),
    ));
    p.max_wait = Duration::from_secs(30);
    let bench = Bench::new(p);
    drop(bench.admit(&[SEND]).await.expect("first"));
    let start = Instant::now();
    let refused = bench.admit(&[SEND]).await.expect_err("too long to wait");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(refused.hit.retry_after > Duration::from_secs(3599));
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_held_for_the_life_of_the_grant() {
    let mut p = policy(PolicyMode::Pace);
    p.concurrency = Some(1);
    let bench = Arc::new(Bench::new(p));
    let first = bench.admit(&[]).await.expect("first");
    let waiter = {
        let bench = bench.clone();
        tokio::spawn(async move { bench.admit(&[]).await.map(|g| g.waited()) })
    };
    tokio::task::yield_now().await;
    advance(Duration::from_secs(5)).await;
    assert!(!waiter.is_finished());
    drop(first);
    let waited = waiter.await.expect("task").expect("admitted after release");
    assert_eq!(waited, Duration::from_secs(5));

    let mut reject = policy(PolicyMode::Reject);
    reject.concurrency = Some(1);
    let bench = Bench::new(reject);
    let _held = bench.admit(&[]).await.expect("first");
    let refused = bench.admit(&[]).await.expect_err("second");
    assert_eq!(refused.hit.kind, HitKind::Concurrency);
    assert_eq!(refused.hit.window(), None);
}

#[tokio::test(start_paused = true)]
async fn give_back_returns_daily_and_batch_consumption() {
    let mut p = policy(PolicyMode::Reject);
    p.daily.push(daily("send", Scope::Action(SEND), 2));
    p.batch = Some(BatchRule {
        size: 2,
        pause: Duration::from_secs(3600),
    });
    let bench = Bench::new(p);
    bench.admit(&[SEND]).await.expect("first").give_back();
    bench.admit(&[SEND]).await.expect("second").give_back();
    drop(bench.admit(&[SEND]).await.expect("third"));
    drop(bench.admit(&[SEND]).await.expect("fourth"));
    let refused = bench.admit(&[SEND]).await.expect_err("cap");
    assert_eq!(refused.hit.kind, HitKind::Daily);
}

#[tokio::test(start_paused = true)]
async fn daily_caps_roll_over_at_day_resets_at_with_an_offset() {
    let mut p = policy(PolicyMode::Pace);
    p.daily
        .push(daily("send_daily_cap", Scope::Action(SEND), 1));
    // 04:00 at UTC+02:00 is 02:00 UTC.
    p.day_reset = "04:00+02:00".parse::<DayReset>().expect("reset");
    let bench = Bench::new(p);
    advance(Duration::from_secs(3600)).await; // 01:00 UTC
    drop(bench.admit(&[SEND]).await.expect("first"));
    let refused = bench
        .admit(&[SEND])
        .await
        .expect_err("cap, even in pace mode");
    assert_eq!(refused.hit.retry_after, Duration::from_secs(3600));
    assert_eq!(refused.hit.window(), Some(Duration::from_secs(86_400)));
    advance(Duration::from_secs(3599)).await;
    assert!(
        bench.admit(&[SEND]).await.is_err(),
        "one second before the reset"
    );
    advance(Duration::from_secs(1)).await;
    assert!(bench.admit(&[SEND]).await.is_ok(), "a new day at 02:00 UTC");
}

#[tokio::test(start_paused = true)]
async fn a_batch_pauses_then_resumes() {
    let mut p = policy(PolicyMode::Pace);
    p.batch = Some(BatchRule {
        size: 3,
        pause: Duration::from_secs(900),
    });
    let bench = Bench::new(p);
    for _ in 0..3 {
        drop(bench.admit(&[SEND]).await.expect("in batch"));
    }
    let refused = bench.admit(&[SEND]).await.expect_err("paused");
    assert_eq!(
        refused.hit.kind,
        HitKind::Batch {
            pause: Duration::from_secs(900)
        }
    );
    assert_eq!(refused.hit.retry_after, Duration::from_secs(900));
    advance(Duration::from_secs(900)).await;
    for _ in 0..3 {
        drop(bench.admit(&[SEND]).await.expect("next batch"));
    }
    assert!(bench.admit(&[SEND]).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn jitter_adds_at_most_its_bound_to_a_paced_wait() {
    let mut p = policy(PolicyMode::Pace);
    p.gap = Some(Duration::from_secs(10));
    p.jitter = Duration::from_secs(5);
    let bench = Bench::new(p);
    drop(bench.admit(&[SEND]).await.expect("first"));
    let waited = bench.admit(&[SEND]).await.expect("paced").waited();
    assert!(
        waited >= Duration::from_secs(10) && waited <= Duration::from_secs(15),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_policy_change_keeps_windows_of_unchanged_limits() {
    let mut p = policy(PolicyMode::Reject);
    p.rolling
        .push(rolling("send_per_minute", Scope::Action(SEND), 1, MINUTE));
    let mut bench = Bench::new(p);
    drop(bench.admit(&[SEND]).await.expect("first"));
    let mut changed = policy(PolicyMode::Reject);
    changed
        .rolling
        .push(rolling("send_per_minute", Scope::Action(SEND), 1, MINUTE));
    changed
        .rolling
        .push(rolling("all_per_minute", Scope::All, 5, MINUTE));
    bench.policy = Arc::new(changed);
    let refused = bench.admit(&[SEND]).await.expect_err("carried over");
    assert_eq!(&*refused.hit.key, "send_per_minute");
}

#[path = "tests/feedback_and_queue/tests.rs"]
mod feedback_and_queue;
