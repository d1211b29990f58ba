//! A plain HTTP request kept so that it can be sent again through the next
//! upstream (or once more on a fresh connection of the same route, see
//! [`super::reuse`]), for as long as nothing of its body has been sent; and
//! the moments it departs.
//!
//! "Nothing of the request reached the origin" is read as: hyper has not
//! polled a single frame of the body. The head may have been written to a
//! proxy that then failed; a request without a body (GET) can therefore
//! always move to the next upstream, a request with one only until hyper
//! starts sending it.
//!
//! "The request departed" is read as: hyper asked its body whether it is
//! empty, or how long it is. Both HTTP/1 and HTTP/2 ask exactly when they
//! encode the request's head onto a connection that is ready for it (the
//! length decides the framing), on the connection's own task, so the
//! moment is taken there and handed to the request's path through
//! [`Departures`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What every attempt of one request shares: the body until an attempt
/// takes it, the request's departures, and the body's bytes sent.
struct Exchange {
    body: Mutex<Option<Incoming>>,
    departures: Marks,
    sent: AtomicU64,
}

/// When a request's head was last written towards its origin or upstream.
struct Marks {
    epoch: Instant,
    /// Nanoseconds since `epoch`, plus one, of the last departure not yet
    /// taken; 0 when none.
    last: AtomicU64,
    signal: Notify,
}

impl Marks {
    fn new() -> Self {
        Marks {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            signal: Notify::new(),
        }
    }

    fn mark(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.last.store(since + 1, Ordering::Release);
        self.signal.notify_one();
    }

    fn take(&self) -> Option<Instant> {
        match self.last.swap(0, Ordering::AcqRel) {
            0 => None,
            since => Some(self.epoch + Duration::from_nanos(since - 1)),
        }
    }

    async fn next(&self) -> Instant {
        loop {
            let signalled = self.signal.notified();
            if let Some(at) = self.take() {
                return at;
            }
            signalled.await;
        }
    }
}

/// The request body handed to one attempt.
pub struct AttemptBody {
    exchange: Arc<Exchange>,
    /// The body, once this attempt took it from the shared slot.
    taken: Option<Incoming>,
    /// Whether this attempt's head was written.
    departed: AtomicBool,
}

impl AttemptBody {
    fn body(&mut self) -> Option<&mut Incoming> {
        if self.taken.is_none() {
            self.taken = lock(&self.exchange.body).take();
        }
        self.taken.as_mut()
    }

    /// Reads the body's metadata without taking it out of the slot; hyper
    /// asks as it writes the head: the attempt departs.
    fn peek<T>(&self, f: impl FnOnce(&Incoming) -> T, absent: T) -> T {
        if !self.departed.swap(true, Ordering::Relaxed) {
            self.exchange.departures.mark();
        }
        match &self.taken {
            Some(body) => f(body),
            None => lock(&self.exchange.body).as_ref().map_or(absent, f),
        }
    }
}

fn lock(slot: &Mutex<Option<Incoming>>) -> MutexGuard<'_, Option<Incoming>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Body for AttemptBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match this.body() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => return Poll::Ready(None),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let len = data.len() as u64;
                this.exchange.sent.fetch_add(len, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.peek(Body::is_end_stream, true)
    }

    fn size_hint(&self) -> SizeHint {
        self.peek(Body::size_hint, SizeHint::with_exact(0))
    }
}

/// A request that may be sent more than once.
pub struct ReplayableRequest {
    parts: Option<Parts>,
    exchange: Arc<Exchange>,
}

impl ReplayableRequest {
    /// Keeps `request` for its attempts.
    pub fn new(request: Request<Incoming>) -> Self {
        let (parts, body) = request.into_parts();
        ReplayableRequest {
            parts: Some(parts),
            exchange: Arc::new(Exchange {
                body: Mutex::new(Some(body)),
                departures: Marks::new(),
                sent: AtomicU64::new(0),
            }),
        }
    }

    /// Whether another attempt can still send the whole request.
    pub fn can_replay(&self) -> bool {
        self.parts.is_some() && lock(&self.exchange.body).is_some()
    }

    /// The request's departures, one per attempt whose head was written.
    pub fn departures(&self) -> Departures {
        Departures(self.exchange.clone())
    }

    /// What its attempts send of the body, as they send it.
    pub fn uploaded(&self) -> Uploaded {
        Uploaded(self.exchange.clone())
    }

    /// The request for the next attempt, or `None` once part of the body
    /// has been sent (or a last attempt took it). With `last`, the request
    /// is handed over without a copy and no later attempt is possible.
    pub fn attempt(&mut self, last: bool) -> Option<Request<AttemptBody>> {
        if lock(&self.exchange.body).is_none() {
            return None;
        }
        let body = AttemptBody {
            exchange: self.exchange.clone(),
            taken: None,
            departed: AtomicBool::new(false),
        };
        if last {
            return Some(Request::from_parts(self.parts.take()?, body));
        }
        Some(copy_head(self.parts.as_ref()?, body))
    }
}

/// A request's departures, watched by its path while attempts send it.
pub struct Departures(Arc<Exchange>);

impl Departures {
    /// The last departure not yet taken, if any.
    pub fn take(&self) -> Option<Instant> {
        self.0.departures.take()
    }

    /// Waits for the next departure not yet taken.
    pub async fn next(&self) -> Instant {
        self.0.departures.next().await
    }
}

/// How much of a request's body its attempts have sent (the access line's
/// `bytes_up`).
pub struct Uploaded(Arc<Exchange>);

impl Uploaded {
    /// The body's bytes handed to a connection so far.
    pub fn bytes(&self) -> u64 {
        self.0.sent.load(Ordering::Relaxed)
    }
}

fn copy_head(parts: &Parts, body: AttemptBody) -> Request<AttemptBody> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    // Extensions carry hyper's record of the client's header case.
    *request.extensions_mut() = parts.extensions.clone();
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_departure_is_taken_once_at_the_moment_it_was_marked() {
        let departures = Marks::new();
        assert!(departures.take().is_none());
        tokio::time::advance(Duration::from_millis(7)).await;
        departures.mark();
        let marked = Instant::now();
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(departures.next().await, marked);
        assert!(departures.take().is_none(), "taken once");
    }
}
