//! Admission cost and memory, beside governor's bare keyed check measured in
//! the same run.
//!
//! - `pacer_admit_three_limits`: one request (no action, so every `all`
//!   limit applies) admitted under `all_per_hour = 1000000` (pacer's own
//!   departure-aware split-budget GCRA), `all_daily_cap` and `concurrent_limit`, round-robin
//!   over 100,000 accounts; the grant is dropped at once (releasing the
//!   concurrency slot).
//! - `pacer_admit_small_window`: the same with `all_per_minute = 8` (the
//!   exact sliding log) over 100,000 accounts, mostly refusals once warm.
//! - `governor_keyed_check`: `RateLimiter::keyed` with 100,000 u64 keys,
//!   `check_key` round-robin: the floor for one rolling limit.
//!
//! Before the timings it prints the heap held per active account (one
//! admitted request each), measured with a counting allocator.
//!
//! `cargo bench --bench limiter`

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use divan::{black_box, Bencher};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pacer::config::{Limit, LimitKey, LimitValue, Policy};
use pacer::policy::classify::{ActionSet, Classifier};
use pacer::policy::limit::clock::Clock;
use pacer::policy::limit::policy::PolicyLimits;
use pacer::policy::limit::AccountLimiter;

const ACCOUNTS: usize = 100_000;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn limit(key: &str, value: u64) -> Limit {
    let parsed = LimitKey::parse::<&str>(key, &[]);
    match parsed {
        Ok(key_parsed) => Limit {
            key: key_parsed,
            raw_key: key.to_owned(),
            value: LimitValue::Count(value),
        },
        Err(err) => panic!("bench limit {key}: {err}"),
    }
}

fn policy(rolling_key: &str, rolling_max: u64) -> Arc<PolicyLimits> {
    let mut policy = Policy::with_defaults("bench");
    policy.mode = pacer::config::PolicyMode::Reject;
    policy.limits = vec![
        limit(rolling_key, rolling_max),
        limit("all_daily_cap", 1_000_000_000_000),
        limit("concurrent_limit", 100),
    ];
    let classifier = match Classifier::new(&[]) {
        Ok(c) => c,
        Err(err) => panic!("{err}"),
    };
    Arc::new(PolicyLimits::new(&policy, &classifier))
}

struct Fleet {
    accounts: Vec<Arc<AccountLimiter>>,
    policy: Arc<PolicyLimits>,
    clock: Clock,
    next: AtomicUsize,
}

impl Fleet {
    fn new(policy: Arc<PolicyLimits>) -> Self {
        Fleet {
            accounts: (0..ACCOUNTS).map(|_| Arc::default()).collect(),
            policy,
            clock: Clock::system(),
            next: AtomicUsize::new(0),
        }
    }

    fn admit_next(&self) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % ACCOUNTS;
        let actions = ActionSet::new();
        let decided =
            self.accounts[i].try_admit(&self.policy, &actions, &self.clock, self.clock.now());
        matches!(decided, Some(Ok(_)))
    }
}

static LARGE: LazyLock<Fleet> = LazyLock::new(|| Fleet::new(policy("all_per_hour", 1_000_000)));
static SMALL: LazyLock<Fleet> = LazyLock::new(|| Fleet::new(policy("all_per_minute", 8)));
static GOVERNOR: LazyLock<DefaultKeyedRateLimiter<u64>> = LazyLock::new(|| {
    let quota = Quota::per_hour(NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MIN));
    let limiter = RateLimiter::keyed(quota);
    for key in 0..ACCOUNTS as u64 {
        let _ = limiter.check_key(&key);
    }
    limiter
});

fn main() {
    report_memory();
    divan::main();
}

/// Heap bytes per account after one admitted request each.
fn report_memory() {
    let mut figures = BTreeMap::new();
    for (name, key, max) in [
        (
            "split GCRA (all_per_hour = 1000000)",
            "all_per_hour",
            1_000_000,
        ),
        ("sliding log (all_per_minute = 8)", "all_per_minute", 8),
    ] {
        let policy = policy(key, max);
        let before = LIVE.load(Ordering::Relaxed);
        let fleet = Fleet::new(policy);
        for _ in 0..ACCOUNTS {
            fleet.admit_next();
        }
        let held = LIVE.load(Ordering::Relaxed) - before;
        figures.insert(name, held / ACCOUNTS as isize);
        drop(fleet);
    }
    for (name, bytes) in figures {
        println!("memory per active account, {name}: {bytes} bytes");
    }
}

#[divan::bench(threads = [1, 2])]
fn pacer_admit_three_limits(bencher: Bencher) {
    let fleet = &*LARGE;
    bencher.bench(|| black_box(fleet.admit_next()));
}

#[divan::bench(threads = [1, 2])]
fn pacer_admit_small_window(bencher: Bencher) {
    let fleet = &*SMALL;
    bencher.bench(|| black_box(fleet.admit_next()));
}

#[divan::bench(threads = [1, 2])]
fn governor_keyed_check(bencher: Bencher) {
    let limiter = &*GOVERNOR;
    let next = AtomicUsize::new(0);
    bencher.bench(|| {
        let key = (next.fetch_add(1, Ordering::Relaxed) % ACCOUNTS) as u64;
        black_box(limiter.check_key(&key).is_ok())
    });
}
