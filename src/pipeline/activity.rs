//! Activity of one HTTP client connection, and the watchdog that enforces
//! `idle_timeout` on keep-alive time with no request, and on a response
//! whose body stalls: once a response head has gone out, a connection on
//! which no byte moves for `idle_timeout` is cut, so a stalled origin never
//! pins the request (and its `concurrent_limit` slot) forever. A request
//! waiting for admission or for the origin's response head is bounded by
//! `max_wait` and the response timeout instead. HTTP/1 request heads are
//! read by pacer itself, within `header_read_timeout`
//! ([`super::http`]).
//!
//! The socket wrapper that notes reads and writes is the listener's; the
//! request path notes when a request starts, answers and ends.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::Waker;
use std::time::Duration;

use futures_util::task::AtomicWaker;

use tokio::time::Instant;

/// Activity of one client connection, shared by its socket wrapper, its
/// request handler and its watchdog.
#[derive(Debug)]
pub struct ConnActivity {
    epoch: Instant,
    last_activity_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Requests finished so far (wrapping).
    finished: AtomicU32,
    /// Responses in flight whose head has gone out.
    streaming: AtomicU32,
    /// Woken when the last request in flight ends (the HTTP/1 exchange
    /// waiting to hand the connection back).
    on_idle: AtomicWaker,
}

impl ConnActivity {
    /// A connection accepted now.
    pub fn new() -> Self {
        ConnActivity {
            epoch: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            streaming: AtomicU32::new(0),
            on_idle: AtomicWaker::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Bytes arrived from the client.
    pub fn on_read(&self) {
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes went to the client.
    pub fn on_write(&self) {
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head was parsed: it is in flight until its response ends.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
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
        self.finished.fetch_add(1, Ordering::Relaxed);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.on_idle.wake();
        }
    }

    /// Wakes `waker` when no request is in flight any more (registered
    /// before looking, so that no end is missed).
    pub fn wake_when_idle(&self, waker: &Waker) {
        self.on_idle.register(waker);
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests finished so far (a count that wraps: compare for change).
    pub fn finished(&self) -> u32 {
        self.finished.load(Ordering::Relaxed)
    }

    /// The next instant the watchdog must look again, or why the connection
    /// must be cut now.
    fn next_check(&self, idle: Duration) -> Result<Instant, Expired> {
        let now = self.now_ms();
        let deadline_ms = if self.streaming.load(Ordering::Relaxed) > 0 {
            let deadline = self.last_activity_ms.load(Ordering::Relaxed) + millis(idle);
            if now >= deadline {
                return Err(Expired::Stalled);
            }
            deadline
        } else if self.in_flight.load(Ordering::Relaxed) > 0 {
            now + millis(idle)
        } else {
            let deadline = self.last_activity_ms.load(Ordering::Relaxed) + millis(idle);
            if now >= deadline {
                return Err(Expired::Idle);
            }
            deadline
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

/// Why the watchdog cut a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No request for `idle_timeout`.
    Idle,
    /// A response's body moved no byte for `idle_timeout`.
    Stalled,
}

/// Resolves when the connection has been idle, or its response stalled,
/// for `idle` (the listener's `idle_timeout`).
pub async fn watchdog(activity: &ConnActivity, idle: Duration) -> Expired {
    loop {
        match activity.next_check(idle) {
            Ok(at) => tokio::time::sleep_until(at).await,
            Err(expired) => return expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(90);

    #[tokio::test(start_paused = true)]
    async fn keep_alive_waits_for_idle_timeout() {
        let activity = ConnActivity::new();
        activity.request_started();
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.request_finished(false);
        let start = Instant::now();
        assert_eq!(watchdog(&activity, IDLE).await, Expired::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_for_its_answer_is_never_idle() {
        let activity = ConnActivity::new();
        activity.request_started();
        let cut = tokio::time::timeout(Duration::from_secs(1000), watchdog(&activity, IDLE));
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
        assert_eq!(watchdog(&activity, IDLE).await, Expired::Stalled);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(90),
            "from the last byte"
        );
    }

    #[tokio::test]
    async fn finished_requests_are_counted() {
        let activity = ConnActivity::new();
        let before = activity.finished();
        activity.request_started();
        assert_eq!((activity.in_flight(), activity.finished()), (1, before));
        activity.request_finished(false);
        assert_eq!((activity.in_flight(), activity.finished()), (0, before + 1));
    }
}
