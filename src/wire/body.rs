//! The body type of every response pacer sends: its own envelopes and
//! JSON, or an origin's streamed body. A body can carry an end hook `E`
//! (the pipeline's close-out): it is told every data frame's size, and is
//! dropped when the body ends or is abandoned, which is when the request
//! it belongs to is over.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// What a body tells about itself as it streams; dropped when it ends.
pub trait BodyEnd: Send + Unpin + 'static {
    /// `bytes` more went to the client.
    fn sent(&mut self, bytes: usize);
}

/// No end hook (admin answers, envelopes).
#[derive(Debug)]
pub enum NoEnd {}

impl BodyEnd for NoEnd {
    fn sent(&mut self, _: usize) {
        match *self {}
    }
}

/// A response body: empty, one buffer, or an origin's stream.
pub struct ProxyBody<E: BodyEnd = NoEnd> {
    inner: Inner,
    end: Option<E>,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Origin(Incoming),
}

impl<E: BodyEnd> ProxyBody<E> {
    /// No body.
    pub fn empty() -> Self {
        ProxyBody {
            inner: Inner::Empty,
            end: None,
        }
    }

    /// One buffer.
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody {
            inner: Inner::Full(Some(bytes)),
            end: None,
        }
    }

    /// An origin's body, streamed through; `end` is told what goes out and
    /// dropped when the body is over.
    pub fn origin(body: Incoming, end: E) -> Self {
        ProxyBody {
            inner: Inner::Origin(body),
            end: Some(end),
        }
    }

    /// Collects the whole body (tests and small admin bodies).
    pub async fn collect_bytes(self) -> Result<Bytes, hyper::Error> {
        Ok(self.collect().await?.to_bytes())
    }
}

impl<E: BodyEnd> Body for ProxyBody<E> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Origin(body) => Pin::new(body).poll_frame(cx),
        };
        if let (Poll::Ready(Some(Ok(frame))), Some(end)) = (&polled, &mut this.end) {
            if let Some(data) = frame.data_ref() {
                end.sent(data.len());
            }
        }
        if let Poll::Ready(None) = polled {
            this.end = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Origin(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Origin(body) => body.size_hint(),
        }
    }
}
