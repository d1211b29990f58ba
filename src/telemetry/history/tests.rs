//! The history: buckets that start over when their slot comes round again,
//! refusals by type and limit, the bounded recent list, and counts that
//! stay exact under concurrent adds across a bucket change.

use std::sync::Arc;

use super::*;
use crate::state::snapshot::Snapshot;
use crate::telemetry::context::CLIENT_CLOSED;
use crate::telemetry::testing::{served, snapshot};

/// 2026-11-22T00:00:00Z, at the start of a bucket.
const T0: i64 = 1_763_769_600_000;

fn refused_by(snapshot: &Arc<Snapshot>, account: &str, limit: &str) -> RequestContext {
    let mut ctx = served(snapshot);
    ctx.account = Some(Arc::from(account));
    ctx.status = 429;
    ctx.outcome = "rate_limited";
    ctx.refused_limit = Some(Arc::from(limit));
    ctx
}

fn at(secs: i64) -> i64 {
    T0 + secs * 1000
}

#[test]
fn requests_count_in_the_bucket_of_their_close_oldest_bucket_first() {
    let snapshot = snapshot();
    let history = History::default();
    let ctx = served(&snapshot);
    for secs in [0, 3, 9, 10, 25] {
        history.record(&ctx, &[], at(secs));
    }
    let buckets = history.buckets(at(29));
    assert_eq!(buckets.len(), BUCKETS);
    let last = &buckets[BUCKETS - 1];
    assert_eq!(last.start, (T0 / 1000 + 20) as u64);
    let counts: Vec<u64> = buckets[BUCKETS - 3..].iter().map(|b| b.requests).collect();
    assert_eq!(counts, [3, 1, 1]);
    assert!(buckets.iter().all(|b| b.refusals == 0));
    assert!(buckets
        .windows(2)
        .all(|w| w[1].start == w[0].start + BUCKET_SECS));
}

#[test]
fn a_slot_starts_over_when_its_bucket_comes_round_again() {
    let snapshot = snapshot();
    let history = History::default();
    let ctx = served(&snapshot);
    let refusal = refused_by(&snapshot, "acct-1", "send_message_per_minute");
    history.record(&ctx, &[], at(0));
    history.record(&refusal, &[], at(1));
    let later = WINDOW_SECS as i64;
    assert_eq!(
        history
            .buckets(at(later))
            .iter()
            .map(|b| b.requests)
            .sum::<u64>(),
        0
    );
    history.record(&refusal, &[], at(later + 2));
    let buckets = history.buckets(at(later + 2));
    let last = &buckets[BUCKETS - 1];
    assert_eq!((last.requests, last.refusals), (1, 1));
    assert_eq!(buckets.iter().map(|b| b.requests).sum::<u64>(), 1);
}

#[test]
fn refusals_count_by_type_and_limit_most_first() {
    let snapshot = snapshot();
    let history = History::default();
    for _ in 0..3 {
        history.record(
            &refused_by(&snapshot, "a", "send_message_per_minute"),
            &[],
            at(1),
        );
    }
    history.record(&refused_by(&snapshot, "a", "profiles"), &[], at(2));
    let mut bad_key = served(&snapshot);
    bad_key.status = 407;
    bad_key.outcome = "invalid_credentials";
    history.record(&bad_key, &[], at(3));
    let mut gone = served(&snapshot);
    gone.outcome = CLIENT_CLOSED;
    history.record(&gone, &[], at(4));

    let buckets = history.buckets(at(5));
    let bucket = &buckets[BUCKETS - 1];
    assert_eq!((bucket.requests, bucket.refusals), (6, 5));
    assert_eq!(
        bucket.by_type,
        [("rate_limited", 4), ("invalid_credentials", 1)]
    );
    let by_limit: Vec<(&str, u64)> = bucket.by_limit.iter().map(|(k, n)| (&**k, *n)).collect();
    assert_eq!(by_limit, [("send_message_per_minute", 3), ("profiles", 1)]);
}

#[test]
fn recent_refusals_are_newest_first_filtered_and_bounded() {
    let snapshot = snapshot();
    let history = History::default();
    let mut ctx = refused_by(&snapshot, "a", "profiles");
    history.record(&ctx, &["profiles", "searches"], at(0));
    ctx.account = Some(Arc::from("b"));
    history.record(&ctx, &[], at(1));
    history.record(&served(&snapshot), &[], at(2));

    let (list, by_account) = history.recent(at(3), 10, None);
    let accounts: Vec<Option<&str>> = list.iter().map(|r| r.account.as_deref()).collect();
    assert_eq!(accounts, [Some("b"), Some("a")]);
    let first = &list[1];
    assert_eq!(first.actions, "profiles,searches");
    assert_eq!(first.target, "api.example.com:443");
    assert_eq!((first.method.as_str(), first.status), ("POST", 429));
    assert_eq!(first.limit.as_deref(), Some("profiles"));
    assert_eq!(first.at_ms, at(0));
    assert_eq!(by_account[&Arc::from("a")][&Arc::from("profiles")], 1);

    let (only_a, _) = history.recent(at(3), 10, Some("a"));
    assert_eq!(only_a.len(), 1);
    assert_eq!(history.recent(at(3), 1, None).0.len(), 1);
    let (expired, by_account) = history.recent(at(WINDOW_SECS as i64 + 1), 10, None);
    assert!(expired.is_empty() && by_account.is_empty());

    for n in 0..RECENT + 5 {
        history.record(&ctx, &[], at(10) + n as i64);
    }
    let (all, _) = history.recent(at(20), usize::MAX, None);
    assert_eq!(all.len(), RECENT);
    assert_eq!(all[RECENT - 1].at_ms, at(10) + 5);
}

#[test]
fn concurrent_adds_are_exact_even_as_a_stale_slot_starts_over() {
    let count = Arc::new(StampedCount::default());
    for _ in 0..7 {
        count.add(3);
    }
    let bucket = 3 + BUCKETS as u32;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let count = count.clone();
            std::thread::spawn(move || (0..20_000).for_each(|_| count.add(bucket)))
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(count.get(bucket), 80_000);
    assert_eq!(count.get(3), 0);
    // A late add for the older bucket never resets the newer one.
    count.add(3);
    assert_eq!(count.get(bucket), 80_001);
}
