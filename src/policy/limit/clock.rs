//! The limiter's clock: monotonic nanoseconds for rolling windows, gaps and
//! waits (tokio's clock, so tests run on a paused clock), and wall-clock
//! Unix milliseconds for calendar days and batch pauses (which survive a
//! restart). Tests build a clock whose wall time is derived from the tokio
//! clock, so advancing paused time moves both.
//!
//! The monotonic reading is on the Unix time base: nanoseconds since the
//! epoch as the wall clock read them when the clock was made, advanced by
//! monotonic time since. It never jumps with the wall clock, yet a window
//! stamped by one process can be checked against another process's clock
//! (to within their clocks' agreement).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Time for limiters.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
    /// Unix nanoseconds at `epoch`.
    unix_ns_at_epoch: u64,
    wall: Wall,
}

#[derive(Debug, Clone, Copy)]
enum Wall {
    /// The system's real-time clock.
    System,
    /// `unix_ms` at `epoch`, moving with the tokio clock.
    Derived { unix_ms_at_epoch: i64 },
}

impl Clock {
    /// The production clock.
    pub fn system() -> Self {
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Clock {
            epoch: Instant::now(),
            unix_ns_at_epoch: unix_ns,
            wall: Wall::System,
        }
    }

    /// A clock whose wall time is `unix_ms` now and moves only with tokio's
    /// (possibly paused) clock.
    pub fn starting_at(unix_ms: i64) -> Self {
        Clock {
            epoch: Instant::now(),
            unix_ns_at_epoch: u64::try_from(unix_ms)
                .unwrap_or(0)
                .saturating_mul(1_000_000),
            wall: Wall::Derived {
                unix_ms_at_epoch: unix_ms,
            },
        }
    }

    /// Monotonic nanoseconds on the Unix time base.
    pub fn now(&self) -> u64 {
        let elapsed = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.unix_ns_at_epoch.saturating_add(elapsed)
    }

    /// The monotonic reading of a tokio instant (one taken where the
    /// limiter's clock is not at hand, e.g. a request's departure).
    pub fn at(&self, instant: Instant) -> u64 {
        let since = instant.saturating_duration_since(self.epoch);
        let since = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        self.unix_ns_at_epoch.saturating_add(since)
    }

    /// The tokio instant of a monotonic reading, to sleep until.
    pub fn instant_at(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos.saturating_sub(self.unix_ns_at_epoch))
    }

    /// Wall-clock Unix milliseconds.
    pub fn unix_ms(&self) -> i64 {
        match self.wall {
            Wall::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Wall::Derived { unix_ms_at_epoch } => {
                let elapsed = i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX);
                unix_ms_at_epoch.saturating_add(elapsed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn derived_wall_time_moves_with_paused_time() {
        let clock = Clock::starting_at(1_000_000);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.unix_ms(), 1_001_500);
        assert_eq!(clock.now(), 1_001_500 * 1_000_000);
        assert_eq!(clock.instant_at(clock.now()), Instant::now());
        assert_eq!(clock.at(Instant::now()), clock.now());
    }
}
