//! Rolling windows (`A_per_minute`, `A_per_5m`, ...): at most N admitted in
//! every window of length W, starting at any instant (SPEC section 2).
//!
//! A plain token bucket (GCRA with burst N, one cell per W/N) admits up to
//! 2N-1 in some window, so two structures are used:
//! - N up to [`LOG_LIMIT`]: an exact sliding log of admission times. It
//!   admits exactly N in a burst, then the next as soon as the oldest leaves
//!   the window; memory is 8 bytes per admission in the window.
//! - larger N: governor's GCRA with the budget split between burst and
//!   refill, B = ceil(N/2) and emission interval T = ceil(W/(N-B)) (T > W
//!   when N-B = 0). GCRA
//!   admits at most B + floor(W/T) <= N in any closed window of length W,
//!   with O(1) memory, at the price of a burst of only N/2.
//!
//! Both only consume on [`Window::admit`]; [`Window::wait`] never changes
//! state, which keeps admission all-or-nothing across limits.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use super::clock::Clock;

/// The largest N kept as an exact log.
pub const LOG_LIMIT: u32 = 1024;

/// The state of one rolling limit for one account.
#[derive(Debug)]
pub enum Window {
    /// Exact sliding log.
    Log(SlidingLog),
    /// Split-budget GCRA.
    Gcra(GcraWindow),
}

impl Window {
    /// A fresh window for at most `max` per `length`.
    pub fn new(max: NonZeroU32, length: Duration, clock: &Clock) -> Self {
        if max.get() <= LOG_LIMIT {
            Window::Log(SlidingLog::new(max, length))
        } else {
            Window::Gcra(GcraWindow::new(max, length, clock))
        }
    }

    /// Nanoseconds to wait before one more may be admitted (0: now).
    pub fn wait(&mut self, now: u64) -> u64 {
        match self {
            Window::Log(log) => log.wait(now),
            Window::Gcra(gcra) => gcra.wait(),
        }
    }

    /// Records one admission; call only when [`Window::wait`] is 0.
    pub fn admit(&mut self, now: u64) {
        match self {
            Window::Log(log) => log.admit(now),
            Window::Gcra(gcra) => gcra.admit(),
        }
    }

    /// How many more could be admitted right now.
    pub fn remaining(&mut self, now: u64) -> u64 {
        match self {
            Window::Log(log) => log.remaining(now),
            Window::Gcra(gcra) => u64::from(gcra.wait() == 0),
        }
    }

    /// How many admissions the window holds now; `None` for a token
    /// bucket, which keeps no count.
    pub fn held(&mut self, now: u64) -> Option<u64> {
        match self {
            Window::Log(log) => {
                log.expire(now);
                Some(log.times.len() as u64)
            }
            Window::Gcra(_) => None,
        }
    }

    /// Whether the window holds nothing that could still refuse (it can be
    /// dropped and rebuilt fresh).
    pub fn is_idle(&mut self, now: u64) -> bool {
        match self {
            Window::Log(log) => log.remaining(now) == u64::from(log.max),
            Window::Gcra(gcra) => gcra.is_idle(now),
        }
    }
}

/// Admission times within the last window, oldest first.
#[derive(Debug)]
pub struct SlidingLog {
    max: u32,
    length: u64,
    times: VecDeque<u64>,
}

impl SlidingLog {
    fn new(max: NonZeroU32, length: Duration) -> Self {
        SlidingLog {
            max: max.get(),
            length: nanos(length),
            times: VecDeque::new(),
        }
    }

    /// Forgets admissions that no closed window ending now can contain.
    fn expire(&mut self, now: u64) {
        while let Some(&oldest) = self.times.front() {
            if oldest.saturating_add(self.length) < now {
                self.times.pop_front();
            } else {
                break;
            }
        }
        if self.times.is_empty() && self.times.capacity() > 16 {
            self.times = VecDeque::new();
        }
    }

    fn wait(&mut self, now: u64) -> u64 {
        self.expire(now);
        if self.times.len() < self.max as usize {
            return 0;
        }
        // The slot frees once the oldest is strictly more than one window old.
        let oldest = self.times.front().copied().unwrap_or(now);
        (oldest + self.length + 1).saturating_sub(now)
    }

    fn admit(&mut self, now: u64) {
        self.times.push_back(now);
    }

    fn remaining(&mut self, now: u64) -> u64 {
        self.expire(now);
        u64::from(self.max).saturating_sub(self.times.len() as u64)
    }
}

/// GCRA state shared between governor's limiter and the peek/rollback code.
#[derive(Debug, Clone, Default)]
struct TatCell(Arc<AtomicU64>);

impl StateStore for TatCell {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Callers hold the account's lock: no concurrent update can race.
        let previous = self.0.load(Ordering::Acquire);
        let (result, next) = f(std::num::NonZeroU64::new(previous).map(|n| n.get().into()))?;
        self.0.store(next.into(), Ordering::Release);
        Ok(result)
    }
}

/// A split-budget GCRA window on governor.
pub struct GcraWindow {
    limiter: RateLimiter<NotKeyed, TatCell, Clock, NoOpMiddleware<Nanos>>,
    tat: TatCell,
    clock: Clock,
    /// Time for a drained window to refill completely.
    refill: u64,
    last_admit: u64,
}

impl std::fmt::Debug for GcraWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcraWindow")
            .field("tat", &self.tat)
            .finish()
    }
}

/// Burst and emission interval for at most `max` per `length`.
pub fn split_budget(max: NonZeroU32, length: Duration) -> (NonZeroU32, Duration) {
    let burst = max.get().div_ceil(2);
    let interval = match u64::from(max.get() - burst) {
        // Nothing to refill within the window: one cell per more than W.
        0 => nanos(length).saturating_add(1),
        refill => nanos(length).div_ceil(refill),
    };
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    (burst, Duration::from_nanos(interval))
}

impl GcraWindow {
    fn new(max: NonZeroU32, length: Duration, clock: &Clock) -> Self {
        let (burst, interval) = split_budget(max, length);
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN))
            .allow_burst(burst);
        let tat = TatCell::default();
        GcraWindow {
            limiter: RateLimiter::new(quota, tat.clone(), *clock),
            tat,
            clock: *clock,
            refill: nanos(interval).saturating_mul(u64::from(burst.get())),
            last_admit: 0,
        }
    }

    /// Checks without consuming: governor's check, then the old state back.
    fn wait(&self) -> u64 {
        let saved = self.tat.0.load(Ordering::Acquire);
        let outcome = self.limiter.check();
        self.tat.0.store(saved, Ordering::Release);
        match outcome {
            Ok(()) => 0,
            Err(not_until) => {
                let now = governor::clock::Clock::now(&self.clock);
                u64::try_from(not_until.wait_time_from(now).as_nanos().max(1)).unwrap_or(u64::MAX)
            }
        }
    }

    fn admit(&mut self) {
        let _ = self.limiter.check();
        self.last_admit = self.clock.now();
    }

    fn is_idle(&self, now: u64) -> bool {
        now.saturating_sub(self.last_admit) > self.refill
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    #[test]
    fn a_log_admits_exactly_n_then_waits_for_the_oldest() {
        let clock = Clock::system();
        let mut window = Window::new(nz(3), MINUTE, &clock);
        for t in [0, 10, 20] {
            assert_eq!(window.wait(t), 0);
            window.admit(t);
        }
        let minute = nanos(MINUTE);
        assert_eq!(window.wait(30), minute + 1 - 30);
        assert_eq!(
            window.wait(minute),
            1,
            "the closed window [0, W] still holds 3"
        );
        assert_eq!(window.wait(minute + 1), 0);
    }

    /// Admission times of a greedy client arriving after each gap (ms),
    /// on a paused clock.
    fn run(make: impl FnOnce(&Clock) -> Window, gaps: &[u64]) -> Vec<u64> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let clock = Clock::system();
            let mut window = make(&clock);
            let mut admitted = Vec::new();
            for gap in gaps {
                tokio::time::advance(Duration::from_millis(*gap)).await;
                let now = clock.now();
                if window.wait(now) == 0 {
                    window.admit(now);
                    admitted.push(now);
                }
            }
            admitted
        })
    }

    /// The most admissions in any closed window of `length`.
    fn densest(admitted: &[u64], length: Duration) -> usize {
        let length = nanos(length);
        (0..admitted.len())
            .map(|i| {
                admitted[i..]
                    .iter()
                    .take_while(|t| **t - admitted[i] <= length)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    proptest::proptest! {
        #[test]
        fn no_window_ever_holds_more_than_n(
            n in 1u32..12,
            window_ms in 1u64..5_000,
            gaps in proptest::collection::vec(0u64..2_000, 1..300),
        ) {
            let length = Duration::from_millis(window_ms);
            let log = run(|_| Window::Log(SlidingLog::new(nz(n), length)), &gaps);
            proptest::prop_assert!(densest(&log, length) <= n as usize);
            let gcra = run(|clock| Window::Gcra(GcraWindow::new(nz(n), length, clock)), &gaps);
            proptest::prop_assert!(densest(&gcra, length) <= n as usize);
        }

        #[test]
        fn a_log_admits_n_whenever_the_window_is_free(
            n in 1u32..12,
            burst in 1u32..30,
        ) {
            let log = |_: &Clock| Window::Log(SlidingLog::new(nz(n), MINUTE));
            let admitted = run(log, &vec![0; burst as usize]);
            proptest::prop_assert_eq!(admitted.len(), n.min(burst) as usize);
        }
    }

    #[test]
    fn the_split_budget_keeps_the_bound() {
        for n in [1u32, 2, 3, 1025, 5000, 100_000] {
            let (burst, interval) = split_budget(nz(n), MINUTE);
            let worst = u64::from(burst.get()) + nanos(MINUTE) / nanos(interval);
            assert!(
                worst <= u64::from(n),
                "n={n}: burst {burst} + {MINUTE:?}/{interval:?}"
            );
        }
    }
}
