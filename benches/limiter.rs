//! Admission cost and memory, beside governor's bare keyed check measured in
//! the same run.
//!
//! - `pacer_admit_three_limits`: one request (no action, so every `all`
//!   limit applies) admitted under `all_per_hour = 1000000` (pacer's own
//!   departure-aware split-budget GCRA), `all_daily_cap` and
//!   `concurrent_limit`, round-robin over 1,000 to 1,000,000 accounts; the
//!   grant is dropped at once (releasing the concurrency slot).
//! - `pacer_admit_small_window`: the same with `all_per_minute = 8` (the
//!   exact sliding log), mostly refusals once warm.
//! - `governor_keyed_check`: `RateLimiter::keyed` over as many u64 keys,
//!   `check_key` round-robin: the floor for one rolling limit, and the
//!   baseline for how much of the growth with the account count is the
//!   memory the round-robin walks through rather than the algorithm.
//!
//! Before the timings it prints what 100,000 configured accounts hold
//! (live heap, counted by a wrapper around the binary's allocator, and the
//! process's RSS): at rest, once each admitted one request (its windows
//! built), and after the idle sweep (`Snapshot::free_idle`, as the server
//! runs it every minute) once the windows could refuse nothing more, on a
//! paused clock advanced past the window. It fails if the sweep leaves
//! more than 1% of what the active accounts added.
//!
//! `cargo bench --bench limiter`

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use divan::{black_box, Bencher};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pacer::config::{Limit, LimitKey, LimitValue, Policy};
use pacer::policy::classify::{ActionSet, Classifier};
use pacer::policy::limit::clock::Clock;
use pacer::policy::limit::policy::PolicyLimits;
use pacer::policy::limit::AccountLimiter;
use pacer::state::snapshot::Snapshot;
use pacer::state::store::Stored;
use tikv_jemallocator::Jemalloc;

#[path = "support/accounts.rs"]
mod accounts;
#[path = "support/snapshot.rs"]
mod support;

/// The account counts admission is timed at.
const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
/// The accounts the memory figures are taken at.
const MEMORY_ACCOUNTS: usize = 100_000;

/// Counts live heap bytes, allocating with jemalloc like the binary.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to jemalloc; the counter is
// bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { Jemalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { Jemalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { Jemalloc.realloc(ptr, layout, new_size) }
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
    fn new(policy: Arc<PolicyLimits>, accounts: usize) -> Self {
        Fleet {
            accounts: (0..accounts).map(|_| Arc::default()).collect(),
            policy,
            clock: Clock::system(),
            next: AtomicUsize::new(0),
        }
    }

    fn admit_next(&self) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.accounts.len();
        let actions = ActionSet::new();
        let decided =
            self.accounts[i].try_admit(&self.policy, &actions, &self.clock, self.clock.now());
        matches!(decided, Some(Ok(_)))
    }
}

/// Values built on first use and kept for the run, by key (building a
/// million limiters is not what is timed).
type Built<K, V> = LazyLock<Mutex<HashMap<K, Arc<V>>>>;

/// One fleet per (rolling limit, account count).
fn fleet(rolling_key: &'static str, rolling_max: u64, accounts: usize) -> Arc<Fleet> {
    static FLEETS: Built<(&str, usize), Fleet> = LazyLock::new(Mutex::default);
    let mut fleets = FLEETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    fleets
        .entry((rolling_key, accounts))
        .or_insert_with(|| Arc::new(Fleet::new(policy(rolling_key, rolling_max), accounts)))
        .clone()
}

/// A keyed governor limiter over `keys` keys, each checked once.
fn governor(keys: usize) -> Arc<DefaultKeyedRateLimiter<u64>> {
    static LIMITERS: Built<usize, DefaultKeyedRateLimiter<u64>> = LazyLock::new(Mutex::default);
    let mut limiters = LIMITERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    limiters
        .entry(keys)
        .or_insert_with(|| {
            let quota = Quota::per_hour(NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MIN));
            let limiter = RateLimiter::keyed(quota);
            for key in 0..keys as u64 {
                let _ = limiter.check_key(&key);
            }
            Arc::new(limiter)
        })
        .clone()
}

fn main() {
    report_memory();
    divan::main();
}

/// Live heap and RSS, in bytes.
#[derive(Clone, Copy)]
struct Held {
    heap: isize,
    rss: isize,
}

impl Held {
    fn now() -> Self {
        // Resident pages are the second field of /proc/self/statm.
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<isize>().ok())
            .unwrap_or(0);
        Held {
            heap: LIVE.load(Ordering::Relaxed),
            rss: pages * 4096,
        }
    }

    fn minus(self, base: Held) -> Held {
        Held {
            heap: self.heap - base.heap,
            rss: self.rss - base.rss,
        }
    }
}

/// What [`MEMORY_ACCOUNTS`] configured accounts hold at rest, active and
/// after the idle sweep, under each kind of rolling window.
fn report_memory() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    for (name, limit) in [
        (
            "split GCRA (all_per_hour = 1000000)",
            "all_per_hour = 1000000",
        ),
        ("sliding log (all_per_minute = 8)", "all_per_minute = 8"),
    ] {
        runtime.block_on(async {
            let start = Held::now();
            let snapshot = support::build(&accounts_config(limit), &Stored::default());
            let rest = Held::now();
            let clock = Clock::starting_at(1_800_000_000_000);
            let admitted = admit_each(&snapshot, &clock);
            let active = Held::now();
            tokio::time::advance(Duration::from_secs(3601)).await;
            snapshot.free_idle(&clock);
            let idle = Held::now();
            let n = MEMORY_ACCOUNTS as isize;
            let (base, added, left) = (rest.minus(start), active.minus(rest), idle.minus(rest));
            println!(
                "{MEMORY_ACCOUNTS} accounts, {name}: at rest heap {} B/account (RSS {} B); \
                 active ({admitted} admitted) +{} B/account heap (RSS +{}); \
                 after the idle sweep {:+} B/account heap ({:+} B in all; RSS {:+} B in all)",
                base.heap / n,
                base.rss / n,
                added.heap / n,
                added.rss / n,
                left.heap / n,
                left.heap,
                left.rss,
            );
            assert_eq!(admitted, MEMORY_ACCOUNTS, "every account admitted");
            assert!(
                left.heap * 100 <= added.heap,
                "the idle sweep left {} of {} bytes",
                left.heap,
                added.heap
            );
            drop(snapshot);
        });
    }
}

/// A config of [`MEMORY_ACCOUNTS`] accounts on one policy with `limit`.
fn accounts_config(limit: &str) -> String {
    let head = format!(
        "[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n\n\
         [policies.standard_policy]\nmode = \"reject\"\n\
         [policies.standard_policy.limits]\n{limit}\nall_daily_cap = 1000000000\nconcurrent_limit = 100\n"
    );
    accounts::config_with_accounts(&head, MEMORY_ACCOUNTS)
}

/// One request admitted, departed and ended for every account; returns
/// how many were admitted.
fn admit_each(snapshot: &Snapshot, clock: &Clock) -> usize {
    let none = ActionSet::new();
    let mut admitted = 0;
    for account in snapshot.accounts.iter() {
        let policy = account.settings.load().policy.clone();
        if let Some(Ok(mut grant)) = account
            .limiter
            .try_admit(&policy, &none, clock, clock.now())
        {
            grant.depart(clock.now());
            admitted += 1;
        }
    }
    admitted
}

#[divan::bench(threads = [1, 2], args = SIZES)]
fn pacer_admit_three_limits(bencher: Bencher, accounts: usize) {
    let fleet = fleet("all_per_hour", 1_000_000, accounts);
    bencher.bench(|| black_box(fleet.admit_next()));
}

#[divan::bench(threads = [1, 2], args = SIZES)]
fn pacer_admit_small_window(bencher: Bencher, accounts: usize) {
    let fleet = fleet("all_per_minute", 8, accounts);
    bencher.bench(|| black_box(fleet.admit_next()));
}

#[divan::bench(threads = [1, 2], args = SIZES)]
fn governor_keyed_check(bencher: Bencher, keys: usize) {
    let limiter = governor(keys);
    let next = AtomicUsize::new(0);
    bencher.bench(|| {
        let key = (next.fetch_add(1, Ordering::Relaxed) % keys) as u64;
        black_box(limiter.check_key(&key).is_ok())
    });
}
