//! Platform pauses and the pacing queue, on the same bench as the other
//! admission tests.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{advance, Instant};

use super::*;

#[tokio::test(start_paused = true)]
async fn a_platform_pause_refuses_at_once_in_pace_mode_and_consumes_nothing() {
    let mut p = policy(PolicyMode::Pace);
    p.rolling
        .push(rolling("send_per_minute", Scope::Action(SEND), 2, MINUTE));
    let bench = Bench::new(p);
    let paused = bench
        .limiter
        .back_off(
            &bench.policy,
            &set(&[SEND]),
            999,
            Duration::from_secs(5),
            &bench.clock,
        )
        .await;
    assert_eq!(paused, [Arc::<str>::from("send")]);
    let start = Instant::now();
    let refused = bench.admit(&[SEND]).await.expect_err("paused");
    assert_eq!(start.elapsed(), Duration::ZERO, "no pacing through a pause");
    assert_eq!(
        refused.hit.kind,
        HitKind::Backoff {
            pause: Duration::from_secs(5)
        }
    );
    assert_eq!(refused.hit.paused, Some((Arc::from("send"), 999)));
    assert!(bench.admit(&[VIEW]).await.is_ok(), "another action passes");
    advance(Duration::from_secs(5)).await;
    drop(bench.admit(&[SEND]).await.expect("the pause is over"));
    drop(
        bench
            .admit(&[SEND])
            .await
            .expect("the refusal consumed nothing"),
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_to_a_request_of_no_action_pauses_all() {
    let bench = Bench::new(policy(PolicyMode::Reject));
    let pause = Duration::from_secs(2);
    let none = set(&[]);
    let paused = bench
        .limiter
        .back_off(&bench.policy, &none, 429, pause, &bench.clock)
        .await;
    assert_eq!(paused, [Arc::<str>::from("all")]);
    for actions in [&[][..], &[VIEW], &[SEND, VIEW]] {
        let refused = bench.admit(actions).await.expect_err("all is paused");
        assert_eq!(refused.hit.paused, Some((Arc::from("all"), 429)));
        assert_eq!(refused.hit.retry_after, pause);
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_no_waiting_limit_holds_passes_the_queue() {
    let mut p = policy(PolicyMode::Pace);
    p.rolling
        .push(rolling("send_per_minute", Scope::Action(SEND), 1, MINUTE));
    let bench = Arc::new(Bench::new(p));
    drop(bench.admit(&[SEND]).await.expect("first send"));
    let waiting = {
        let bench = bench.clone();
        tokio::spawn(async move { bench.admit(&[SEND]).await.map(|g| g.waited()) })
    };
    tokio::task::yield_now().await;
    let start = Instant::now();
    let view = bench.admit(&[VIEW]).await.expect("a view shares no limit");
    assert_eq!(
        (start.elapsed(), view.waited()),
        (Duration::ZERO, Duration::ZERO)
    );
    let waited = waiting.await.expect("task").expect("the paced send");
    assert!(
        waited > MINUTE && waited < MINUTE + Duration::from_millis(5),
        "{waited:?}"
    );
}
