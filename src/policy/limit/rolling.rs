//! Rolling windows (`A_per_minute`, `A_per_5m`, ...): at most N in every
//! window of length W (plus the policy's `guard`), starting at any instant,
//! counted where the platform sees them: at each request's *departure*
//! (SPEC section 4).
//!
//! A request is admitted before it departs (pacer may still be dialling or
//! handshaking). Until it departs it is *pending*: its departure will be no
//! earlier than any moment the window is looked at, so a pending request
//! counts as the most recent entry of every window it was admitted into.
//! Once it departs it is stamped with its departure time; one that never
//! departs is stamped with its admission time. A newcomer then waits until
//! every slot it needs is free counted from departures; a slot held by a
//! pending request frees no earlier than one window from now, and is looked
//! at again when that request departs.
//!
//! A plain token bucket (burst N, one cell per W/N) admits up to 2N-1 in
//! some window, so two structures are used:
//! - N up to [`LOG_LIMIT`]: an exact sliding log of stamps (kept sorted,
//!   since departures need not come in admission order). It admits exactly
//!   N in a burst, then the next as soon as the oldest stamp leaves the
//!   window; memory is 8 bytes per stamp in the window.
//! - larger N: GCRA with the budget split between burst and refill,
//!   B = ceil(N/2) and emission interval T = ceil(W/(N-B)) (T > W when
//!   N-B = 0), which admits at most B + floor(W/T) <= N in any closed
//!   window of length W with O(1) memory. Each pending request reserves one
//!   cell from now on (the theoretical arrival time is taken as
//!   max(TAT, now) + pending·T); a departure at `d` advances TAT to
//!   max(TAT, d) + T, which leaves that reserved total unchanged, so every
//!   departure recorded at its moment conforms.
//!
//! [`Window::wait`] never changes state, which keeps admission
//! all-or-nothing across limits.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::Duration;

/// The largest N kept as an exact log.
pub const LOG_LIMIT: u32 = 1024;

/// The state of one rolling limit for one account.
#[derive(Debug)]
pub struct Window {
    /// Unique within the account: a grant names the windows it is pending
    /// in by id, whatever policy changes happen before it departs.
    id: u64,
    /// W plus the guard, in nanoseconds.
    length: u64,
    max: u32,
    /// Admitted into this window and not yet departed.
    pending: u32,
    stamps: Stamps,
}

#[derive(Debug)]
enum Stamps {
    /// Exact sliding log, sorted, oldest first.
    Log(VecDeque<u64>),
    /// Split-budget GCRA.
    Gcra(Gcra),
}

/// GCRA on departures: theoretical arrival time, emission interval and
/// tolerance (`(B-1)·T`), in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    tat: u64,
    interval: u64,
    tolerance: u64,
}

impl Gcra {
    fn new(max: NonZeroU32, length: u64) -> Self {
        let (burst, interval) = split_budget(max, length);
        Gcra {
            tat: 0,
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.get() - 1)),
        }
    }

    /// The theoretical arrival time with `pending` cells reserved from `now`.
    fn reserved(&self, now: u64, pending: u32) -> u64 {
        self.tat
            .max(now)
            .saturating_add(self.interval.saturating_mul(u64::from(pending)))
    }

    fn wait(&self, now: u64, pending: u32) -> u64 {
        let conforms_at = self.reserved(now, pending).saturating_sub(self.tolerance);
        conforms_at.saturating_sub(now)
    }

    fn stamp(&mut self, at: u64) {
        self.tat = self.tat.max(at).saturating_add(self.interval);
    }

    fn remaining(&self, now: u64, pending: u32, max: u32) -> u64 {
        let slack = now
            .saturating_add(self.tolerance)
            .checked_sub(self.reserved(now, pending));
        slack.map_or(0, |s| (s / self.interval.max(1) + 1).min(u64::from(max)))
    }
}

impl Window {
    /// A fresh window `id` for at most `max` per `length`.
    pub fn new(id: u64, max: NonZeroU32, length: Duration) -> Self {
        let length = nanos(length);
        let stamps = if max.get() <= LOG_LIMIT {
            Stamps::Log(VecDeque::new())
        } else {
            Stamps::Gcra(Gcra::new(max, length))
        };
        Window {
            id,
            length,
            max: max.get(),
            pending: 0,
            stamps,
        }
    }

    /// The window's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The window's length, guard included.
    pub fn length(&self) -> Duration {
        Duration::from_nanos(self.length)
    }

    /// Applies a new N or length to the same history (a changed limit is
    /// not a fresh window): raising N admits N minus what the window holds,
    /// lowering it admits nothing until the window has drained below the
    /// new N.
    pub fn reshape(&mut self, max: NonZeroU32, length: Duration, now: u64) {
        if max.get() == self.max && nanos(length) == self.length {
            return;
        }
        let held = self.held(now);
        let mut reshaped = Window::new(self.id, max, length);
        reshaped.pending = self.pending;
        let old = std::mem::replace(&mut self.stamps, Stamps::Log(VecDeque::new()));
        match (&mut reshaped.stamps, old) {
            (Stamps::Log(log), Stamps::Log(old)) => *log = old,
            (Stamps::Gcra(gcra), Stamps::Gcra(old)) => {
                // The same fill, in cells of the new interval.
                let cells = old.tat.saturating_sub(now).div_ceil(old.interval.max(1));
                gcra.tat = now.saturating_add(cells.saturating_mul(gcra.interval));
            }
            (Stamps::Gcra(gcra), Stamps::Log(_)) => {
                gcra.tat = now.saturating_add(held.saturating_mul(gcra.interval));
            }
            // Times are not known: the held cells count from now, a full
            // window (never lower).
            (Stamps::Log(log), Stamps::Gcra(_)) => log.extend((0..held).map(|_| now)),
        }
        *self = reshaped;
    }

    /// Stamps departed (or never-departing) requests still in the window,
    /// estimated for a GCRA.
    fn held(&mut self, now: u64) -> u64 {
        match &self.stamps {
            Stamps::Log(_) => {
                self.expire(now);
                match &self.stamps {
                    Stamps::Log(log) => log.len() as u64,
                    Stamps::Gcra(_) => 0,
                }
            }
            Stamps::Gcra(gcra) => gcra.tat.saturating_sub(now).div_ceil(gcra.interval.max(1)),
        }
    }

    /// Forgets stamps that no closed window ending now can contain.
    fn expire(&mut self, now: u64) {
        let Stamps::Log(log) = &mut self.stamps else {
            return;
        };
        while let Some(&oldest) = log.front() {
            if oldest.saturating_add(self.length) < now {
                log.pop_front();
            } else {
                break;
            }
        }
        if log.is_empty() && log.capacity() > 16 {
            *log = VecDeque::new();
        }
    }

    /// Nanoseconds to wait before one more may be admitted (0: now). A
    /// wait behind a pending request is at least a window from now.
    pub fn wait(&mut self, now: u64) -> u64 {
        self.expire(now);
        let (max, pending, length) = (self.max as usize, self.pending as usize, self.length);
        match &self.stamps {
            Stamps::Log(log) if log.len() + pending < max => 0,
            Stamps::Log(_) if pending >= max => length.saturating_add(1),
            Stamps::Log(log) => {
                // The oldest of the N most recent must leave the window:
                // strictly more than one window old.
                let oldest = log[log.len() + pending - max];
                oldest
                    .saturating_add(length)
                    .saturating_add(1)
                    .saturating_sub(now)
            }
            Stamps::Gcra(gcra) => gcra.wait(now, self.pending),
        }
    }

    /// Records one admission, pending until [`Window::depart`] or
    /// [`Window::forfeit`]; call only when [`Window::wait`] is 0.
    pub fn admit(&mut self) {
        self.pending += 1;
    }

    /// A pending request departed at `at` (or ended without departing,
    /// `at` then its admission).
    pub fn depart(&mut self, at: u64) {
        self.pending = self.pending.saturating_sub(1);
        self.stamp(at);
    }

    /// One more stamp at `at`: a request sent again (the next upstream)
    /// may reach the platform twice.
    pub fn stamp(&mut self, at: u64) {
        match &mut self.stamps {
            Stamps::Log(log) => {
                let at_or_after = log.partition_point(|t| *t <= at);
                log.insert(at_or_after, at);
            }
            Stamps::Gcra(gcra) => gcra.stamp(at),
        }
    }

    /// How many more could be admitted right now.
    pub fn remaining(&mut self, now: u64) -> u64 {
        self.expire(now);
        let max = u64::from(self.max);
        match &self.stamps {
            Stamps::Log(log) => max.saturating_sub(log.len() as u64 + u64::from(self.pending)),
            Stamps::Gcra(gcra) => gcra.remaining(now, self.pending, self.max),
        }
    }

    /// How many admissions the window holds now (pending ones included);
    /// `None` for a GCRA, which keeps no count.
    pub fn fill(&mut self, now: u64) -> Option<u64> {
        self.expire(now);
        match &self.stamps {
            Stamps::Log(log) => Some(log.len() as u64 + u64::from(self.pending)),
            Stamps::Gcra(_) => None,
        }
    }

    /// Whether the window holds nothing that could still refuse (it can be
    /// dropped and rebuilt fresh).
    pub fn is_idle(&mut self, now: u64) -> bool {
        if self.pending > 0 {
            return false;
        }
        self.expire(now);
        match &self.stamps {
            Stamps::Log(log) => log.is_empty(),
            Stamps::Gcra(gcra) => gcra.tat <= now,
        }
    }
}

/// Burst and emission interval (ns) for at most `max` per `length` ns.
pub fn split_budget(max: NonZeroU32, length: u64) -> (NonZeroU32, u64) {
    let burst = max.get().div_ceil(2);
    let interval = match u64::from(max.get() - burst) {
        // Nothing to refill within the window: one cell per more than W.
        0 => length.saturating_add(1),
        refill => length.div_ceil(refill),
    };
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    (burst, interval)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
