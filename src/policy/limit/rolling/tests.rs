//! Rolling windows against the hard bound, counted at departure: whatever
//! the arrivals and however late each admitted request departs, no closed
//! window of length W holds more than N departures. The same check fails
//! for a plain token bucket.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::*;

const MS: u64 = 1_000_000;
const MINUTE: Duration = Duration::from_secs(60);

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// What the simulation drives: a rolling window, or a token bucket.
trait Limit {
    fn wait(&mut self, now: u64) -> u64;
    fn admit(&mut self);
    fn depart(&mut self, at: u64);
    fn forfeit(&mut self, admitted_at: u64);
}

impl Limit for Window {
    fn wait(&mut self, now: u64) -> u64 {
        Window::wait(self, now)
    }
    fn admit(&mut self) {
        Window::admit(self);
    }
    fn depart(&mut self, at: u64) {
        Window::depart(self, at);
    }
    fn forfeit(&mut self, admitted_at: u64) {
        Window::depart(self, admitted_at);
    }
}

/// Burst N, refilled N per window, consumed at admission: what the SPEC
/// says does not meet the bound.
struct TokenBucket {
    max: f64,
    tokens: f64,
    per_ns: f64,
    last: u64,
}

impl TokenBucket {
    fn new(max: u32, length: u64) -> Self {
        TokenBucket {
            max: f64::from(max),
            tokens: f64::from(max),
            per_ns: f64::from(max) / length as f64,
            last: 0,
        }
    }
}

impl Limit for TokenBucket {
    fn wait(&mut self, now: u64) -> u64 {
        self.tokens = (self.tokens + (now - self.last) as f64 * self.per_ns).min(self.max);
        self.last = now;
        if self.tokens >= 1.0 {
            0
        } else {
            ((1.0 - self.tokens) / self.per_ns).ceil() as u64
        }
    }
    fn admit(&mut self) {
        self.tokens -= 1.0;
    }
    fn depart(&mut self, _: u64) {}
    fn forfeit(&mut self, _: u64) {}
}

/// One arrival: the gap before it (ms), how long after admission it
/// departs (ms), and whether it never departs (failed before the origin).
type Arrival = (u64, u64, bool);

/// A request admitted and not yet departed: when it departs (or would),
/// when it was admitted, and whether it departs at all.
type InFlight = (u64, u64, bool);

/// Departure times of a greedy client arriving as `arrivals` say, with
/// departures recorded at their moment, in time order.
fn departures(limit: &mut impl Limit, arrivals: &[Arrival]) -> Vec<u64> {
    let mut now = 0;
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut departed = Vec::new();
    for (gap, delay, lost) in arrivals {
        now += gap * MS;
        settle(limit, &mut in_flight, now, &mut departed);
        if limit.wait(now) == 0 {
            limit.admit();
            in_flight.push((now + delay * MS, now, !lost));
        }
    }
    settle(limit, &mut in_flight, u64::MAX, &mut departed);
    departed.sort_unstable();
    departed
}

/// Records, in time order, every departure due by `until`.
fn settle(
    limit: &mut impl Limit,
    in_flight: &mut Vec<InFlight>,
    until: u64,
    departed: &mut Vec<u64>,
) {
    in_flight.sort_unstable();
    let due = in_flight.partition_point(|(at, _, _)| *at <= until);
    for (at, admitted, departs) in in_flight.drain(..due) {
        if departs {
            limit.depart(at);
            departed.push(at);
        } else {
            limit.forfeit(admitted);
        }
    }
}

/// The most departures in any closed window of `length` ns.
fn densest(times: &[u64], length: u64) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] <= length)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn arrivals() -> impl Strategy<Value = Vec<Arrival>> {
    proptest::collection::vec(
        (0u64..2_000, 0u64..3_000, proptest::bool::weighted(0.1)),
        1..300,
    )
}

fn bound_holds(
    limit: &mut impl Limit,
    n: u32,
    length: u64,
    arrivals: &[Arrival],
) -> Result<(), TestCaseError> {
    let departed = departures(limit, arrivals);
    prop_assert!(densest(&departed, length) <= n as usize, "{departed:?}");
    Ok(())
}

proptest! {
    #[test]
    fn no_window_ever_holds_more_than_n_departures(
        n in 1u32..12,
        window_ms in 1u64..5_000,
        arrivals in arrivals(),
    ) {
        let length = window_ms * MS;
        let mut log = Window::new(0, nz(n), Duration::from_nanos(length));
        bound_holds(&mut log, n, length, &arrivals)?;
        let mut gcra = Window { stamps: Stamps::Gcra(Gcra::new(nz(n), length)), ..Window::new(0, nz(n), Duration::from_nanos(length)) };
        bound_holds(&mut gcra, n, length, &arrivals)?;
    }

    #[test]
    fn a_log_admits_n_whenever_the_window_is_free(
        n in 1u32..12,
        burst in 1u32..30,
    ) {
        let mut log = Window::new(0, nz(n), MINUTE);
        let admitted = departures(&mut log, &vec![(0, 0, false); burst as usize]);
        prop_assert_eq!(admitted.len(), n.min(burst) as usize);
    }
}

#[test]
fn a_token_bucket_fails_the_same_check() {
    let strategy = (1u32..12, 1u64..5_000, arrivals());
    let found = TestRunner::default().run(&strategy, |(n, window_ms, arrivals)| {
        let length = window_ms * MS;
        bound_holds(&mut TokenBucket::new(n, length), n, length, &arrivals)
    });
    assert!(found.is_err(), "the check must catch a token bucket");
}

#[test]
fn a_log_admits_exactly_n_then_waits_for_the_oldest_departure() {
    let mut window = Window::new(0, nz(3), MINUTE);
    for t in [0, 10, 20] {
        assert_eq!(window.wait(t), 0);
        window.admit();
        window.depart(t);
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

#[test]
fn a_pending_request_holds_its_slot_until_it_departs() {
    let mut window = Window::new(0, nz(1), MINUTE);
    window.admit();
    let minute = nanos(MINUTE);
    assert_eq!(
        window.wait(5 * MS),
        minute + 1,
        "at least a window from now"
    );
    assert_eq!(window.wait(minute * 2), minute + 1, "still pending");
    window.depart(minute * 2);
    assert_eq!(
        window.wait(minute * 2),
        minute + 1,
        "a window from its departure"
    );
    assert_eq!(window.wait(minute * 3 + 1), 0);
}

#[test]
fn departures_out_of_admission_order_stay_sorted() {
    let mut window = Window::new(0, nz(2), MINUTE);
    window.admit();
    window.admit();
    window.depart(50 * MS);
    window.depart(10 * MS);
    let minute = nanos(MINUTE);
    assert_eq!(window.wait(60 * MS), minute + 1 + 10 * MS - 60 * MS);
    assert_eq!(window.remaining(minute + 10 * MS + 1), 1);
}

#[test]
fn a_new_n_applies_to_the_same_history() {
    let minute = nanos(MINUTE);
    let mut window = Window::new(0, nz(5), MINUTE);
    for t in 0..5 {
        window.admit();
        window.depart(t * MS);
    }
    window.reshape(nz(6), MINUTE, 10 * MS);
    assert_eq!(
        window.remaining(10 * MS),
        1,
        "raised: N minus what it holds"
    );
    window.reshape(nz(3), MINUTE, 10 * MS);
    assert_eq!(
        window.remaining(10 * MS),
        0,
        "lowered: nothing until it drains"
    );
    assert_eq!(window.wait(10 * MS), minute + 2 * MS + 1 - 10 * MS);
    let mut gcra = Window::new(0, nz(2000), MINUTE);
    for _ in 0..1000 {
        gcra.admit();
        gcra.depart(0);
    }
    let before = gcra.remaining(0);
    gcra.reshape(nz(4000), MINUTE, 0);
    assert!(
        gcra.remaining(0) > before,
        "a larger GCRA budget admits more"
    );
    gcra.reshape(nz(1000), MINUTE, 0);
    assert_eq!(
        gcra.remaining(0),
        0,
        "the carried fill exceeds the new burst"
    );
    gcra.reshape(nz(10), MINUTE, 0);
    assert_eq!(gcra.remaining(0), 0, "a GCRA's fill carried into a log");
}

#[test]
fn the_split_budget_keeps_the_bound() {
    for n in [1u32, 2, 3, 1025, 5000, 100_000] {
        let (burst, interval) = split_budget(nz(n), nanos(MINUTE));
        let worst = u64::from(burst.get()) + nanos(MINUTE) / interval;
        assert!(worst <= u64::from(n), "n={n}: burst {burst} + W/{interval}");
    }
}
