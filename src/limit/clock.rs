//! The limiter's clock: monotonic nanoseconds for rolling windows, gaps and
//! waits (tokio's clock, so tests run on a paused clock), and wall-clock
//! Unix milliseconds for calendar days and batch pauses (which survive a
//! restart). Tests build a clock whose wall time is derived from the tokio
//! clock, so advancing paused time moves both.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::nanos::Nanos;
use tokio::time::Instant;

/// Time for limiters.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
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
        Clock {
            epoch: Instant::now(),
            wall: Wall::System,
        }
    }

    /// A clock whose wall time is `unix_ms` now and moves only with tokio's
    /// (possibly paused) clock.
    pub fn starting_at(unix_ms: i64) -> Self {
        Clock {
            epoch: Instant::now(),
            wall: Wall::Derived {
                unix_ms_at_epoch: unix_ms,
            },
        }
    }

    /// Monotonic nanoseconds since the clock was made.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The tokio instant of a monotonic reading, to sleep until.
    pub fn instant_at(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
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

impl governor::clock::Clock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Clock::now(self))
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
        assert_eq!(clock.now(), 1_500_000_000);
        assert_eq!(clock.instant_at(clock.now()), Instant::now());
    }
}
