//! LimiterState on a paused clock: idle windows freed and rebuilt.
use std::num::NonZeroU32;

use super::*;
use crate::config::PolicyMode;
use crate::policy::limit::policy::{RollingRule, Scope};

#[tokio::test(start_paused = true)]
async fn idle_windows_are_freed_and_rebuilt_fresh() {
    let clock = Clock::system();
    let policy = Arc::new(PolicyLimits {
        slug: Arc::from("p"),
        mode: PolicyMode::Reject,
        max_wait: Duration::ZERO,
        jitter: Duration::ZERO,
        guard: Duration::ZERO,
        day_reset: "00:00+00:00".parse().expect("reset"),
        rolling: vec![RollingRule {
            key: Arc::from("all_per_minute"),
            scope: Scope::All,
            max: NonZeroU32::MIN,
            window: Duration::from_secs(60),
        }],
        daily: Vec::new(),
        gap: None,
        concurrency: None,
        batch: None,
        action_names: Arc::from(Vec::new()),
        backoff: None,
    });
    let mut state = LimiterState::default();
    let none = ActionSet::new();
    state.sync(&policy, &clock, 0);
    let (mut consumed, _) = state.commit(&policy, &none, clock.now(), 0);
    tokio::time::advance(Duration::from_secs(61)).await;
    state.compact(clock.now());
    assert_eq!(state.windows.len(), 1, "a pending request's window is kept");
    state.depart(&mut consumed, clock.now());
    state.compact(clock.now());
    assert_eq!(state.windows.len(), 1, "a full window is kept");
    tokio::time::advance(Duration::from_secs(61)).await;
    state.compact(clock.now());
    assert!(state.windows.is_empty(), "an idle window is freed");
    state.sync(&policy, &clock, 0);
    assert!(matches!(
        state.check(&policy, &none, clock.now(), 0),
        Verdict::Admit
    ));
    assert_eq!(state.windows.len(), 1, "rebuilt on the next request");
}
