//! A plain HTTP request kept so that it can be sent again through the next
//! upstream, for as long as nothing of its body has been sent.
//!
//! "Nothing of the request reached the origin" is read as: hyper has not
//! polled a single frame of the body. The head may have been written to a
//! proxy that then failed; a request without a body (GET) can therefore
//! always move to the next upstream, a request with one only until hyper
//! starts sending it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The request body handed to one attempt.
pub enum AttemptBody {
    /// The only attempt: the body itself.
    Owned(Incoming),
    /// One of several possible attempts: the body stays in the shared slot
    /// until hyper polls it first.
    Shared {
        slot: Arc<Mutex<Option<Incoming>>>,
        taken: Option<Incoming>,
    },
}

impl AttemptBody {
    fn shared_body(&mut self) -> Option<&mut Incoming> {
        match self {
            AttemptBody::Owned(body) => Some(body),
            AttemptBody::Shared { slot, taken } => {
                if taken.is_none() {
                    *taken = lock(slot).take();
                }
                taken.as_mut()
            }
        }
    }

    /// Reads the body's metadata without taking it out of the slot.
    fn peek<T>(&self, f: impl FnOnce(&Incoming) -> T, absent: T) -> T {
        match self {
            AttemptBody::Owned(body) => f(body),
            AttemptBody::Shared {
                taken: Some(body), ..
            } => f(body),
            AttemptBody::Shared { slot, taken: None } => lock(slot).as_ref().map_or(absent, f),
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
        match self.get_mut().shared_body() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
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
    slot: Arc<Mutex<Option<Incoming>>>,
}

impl ReplayableRequest {
    /// Keeps `request` for its attempts.
    pub fn new(request: Request<Incoming>) -> Self {
        let (parts, body) = request.into_parts();
        ReplayableRequest {
            parts: Some(parts),
            slot: Arc::new(Mutex::new(Some(body))),
        }
    }

    /// Whether another attempt can still send the whole request.
    pub fn can_replay(&self) -> bool {
        self.parts.is_some() && lock(&self.slot).is_some()
    }

    /// The request for the next attempt, or `None` once part of the body
    /// has been sent (or a last attempt took it). With `last`, the request
    /// is handed over without a copy and no later attempt is possible.
    pub fn attempt(&mut self, last: bool) -> Option<Request<AttemptBody>> {
        if last {
            let parts = self.parts.take()?;
            let body = lock(&self.slot).take()?;
            return Some(Request::from_parts(parts, AttemptBody::Owned(body)));
        }
        let parts = self.parts.as_ref()?;
        if lock(&self.slot).is_none() {
            return None;
        }
        let body = AttemptBody::Shared {
            slot: self.slot.clone(),
            taken: None,
        };
        Some(copy_head(parts, body))
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
