//! Activity of one HTTP client connection, and the watchdog that enforces
//! `header_read_timeout` on request heads and `idle_timeout` on keep-alive
//! time with no request, and on a response whose body stalls: once a
//! response head has gone out, a connection on which no byte moves for
//! `idle_timeout` is cut, so a stalled origin never pins the request (and
//! its `concurrent_limit` slot) forever. A request waiting for admission or
//! for the origin's response head is bounded by `max_wait` and the
//! response timeout instead.
//!
//! The socket wrapper that notes reads and writes is the listener's; the
//! request path notes when a request starts, answers and ends.
//!
//! hyper's own header-read timer is not used: it starts as soon as hyper
//! waits for a head, so it would close idle keep-alive connections after
//! `header_read_timeout` instead of `idle_timeout`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

const NO_HEAD: u64 = u64::MAX;

/// Activity of one client connection, shared by its socket wrapper, its
/// request handler and its watchdog.
#[derive(Debug)]
pub struct ConnActivity {
    epoch: Instant,
    last_activity_ms: AtomicU64,
    head_started_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Responses in flight whose head has gone out.
    streaming: AtomicU32,
}

impl ConnActivity {
    /// A connection accepted now, whose first head is being read.
    pub fn new() -> Self {
        ConnActivity {
            epoch: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            streaming: AtomicU32::new(0),
        }
    }

    /// A connection accepted now whose first head the listener has already
    /// read whole: only `idle_timeout` bounds it until hyper has parsed
    /// that head (no head deadline, which would run from the accept and
    /// hold a connection that idles after its first request for up to
    /// `header_read_timeout`, however short `idle_timeout` is).
    pub fn first_head_read() -> Self {
        ConnActivity {
            head_started_ms: AtomicU64::new(NO_HEAD),
            ..Self::new()
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Bytes arrived from the client.
    pub fn on_read(&self) {
        let now = self.now_ms();
        self.last_activity_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started_ms.compare_exchange(
                NO_HEAD,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Bytes went to the client.
    pub fn on_write(&self) {
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head was parsed: it is in flight until its response ends.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    /// The request's response head is going out; its body streams.
    pub fn response_started(&self) {
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Relaxed);
        self.streaming.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended (answered, its body over, or abandoned); `streamed`
    /// says whether [`ConnActivity::response_started`] was called for it.
    pub fn request_finished(&self, streamed: bool) {
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Relaxed);
        if streamed {
            self.streaming.fetch_sub(1, Ordering::Relaxed);
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The next instant the watchdog must look again, or why the connection
    /// must be cut now.
    fn next_check(&self, limits: &Timeouts) -> Result<Instant, Expired> {
        let now = self.now_ms();
        let deadline_ms = if self.streaming.load(Ordering::Relaxed) > 0 {
            let deadline = self.last_activity_ms.load(Ordering::Relaxed) + millis(limits.idle);
            if now >= deadline {
                return Err(Expired::Stalled);
            }
            deadline
        } else if self.in_flight.load(Ordering::Relaxed) > 0 {
            now + millis(limits.idle)
        } else {
            let head = self.head_started_ms.load(Ordering::Relaxed);
            if head != NO_HEAD {
                let deadline = head + millis(limits.header_read);
                if now >= deadline {
                    return Err(Expired::HeaderRead);
                }
                deadline
            } else {
                let deadline = self.last_activity_ms.load(Ordering::Relaxed) + millis(limits.idle);
                if now >= deadline {
                    return Err(Expired::Idle);
                }
                deadline
            }
        };
        Ok(self.epoch + Duration::from_millis(deadline_ms))
    }
}

impl Default for ConnActivity {
    fn default() -> Self {
        Self::new()
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX / 2)
}

/// The two client-side deadlines the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Deadline for a whole request head, from its first byte.
    pub header_read: Duration,
    /// Deadline for a keep-alive connection with no request in flight.
    pub idle: Duration,
}

/// Why the watchdog cut a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request head took longer than `header_read_timeout`.
    HeaderRead,
    /// No request for `idle_timeout`.
    Idle,
    /// A response's body moved no byte for `idle_timeout`.
    Stalled,
}

/// Resolves when the connection has been idle, or stuck in a head, too long.
pub async fn watchdog(activity: &ConnActivity, limits: Timeouts) -> Expired {
    loop {
        match activity.next_check(&limits) {
            Ok(at) => tokio::time::sleep_until(at).await,
            Err(expired) => return expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(90),
    };

    #[tokio::test(start_paused = true)]
    async fn first_head_is_bounded_by_header_read_timeout() {
        let activity = ConnActivity::new();
        let start = Instant::now();
        assert_eq!(watchdog(&activity, LIMITS).await, Expired::HeaderRead);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_waits_for_idle_timeout() {
        let activity = ConnActivity::new();
        activity.request_started();
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.request_finished(false);
        let start = Instant::now();
        assert_eq!(watchdog(&activity, LIMITS).await, Expired::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_for_its_answer_is_never_idle() {
        let activity = ConnActivity::new();
        activity.request_started();
        let cut = tokio::time::timeout(Duration::from_secs(1000), watchdog(&activity, LIMITS));
        assert!(cut.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_response_body_is_cut_after_idle_timeout() {
        let activity = ConnActivity::new();
        activity.request_started();
        activity.response_started();
        tokio::time::advance(Duration::from_secs(60)).await;
        activity.on_write();
        let start = Instant::now();
        assert_eq!(watchdog(&activity, LIMITS).await, Expired::Stalled);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(90),
            "from the last byte"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_first_head_read_by_the_listener_only_idle_timeout_counts() {
        let short_idle = Timeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(2),
        };
        let activity = std::sync::Arc::new(ConnActivity::first_head_read());
        let start = Instant::now();
        // The watchdog looks before hyper has parsed the head.
        let watch = tokio::spawn({
            let activity = activity.clone();
            async move { watchdog(&activity, short_idle).await }
        });
        tokio::task::yield_now().await;
        activity.request_started();
        tokio::time::advance(Duration::from_millis(100)).await;
        activity.request_finished(false);
        assert_eq!(watch.await.ok(), Some(Expired::Idle));
        assert_eq!(start.elapsed(), Duration::from_millis(2100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_head_starts_its_timer_at_its_first_byte() {
        let activity = ConnActivity::new();
        activity.request_started();
        activity.request_finished(false);
        tokio::time::advance(Duration::from_secs(50)).await;
        activity.on_read();
        let start = Instant::now();
        assert_eq!(watchdog(&activity, LIMITS).await, Expired::HeaderRead);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }
}
