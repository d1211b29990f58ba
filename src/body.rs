//! The body type of every response the HTTP listener sends: pacer's own
//! envelopes or an origin's streamed body. When a forwarded response ends
//! (or the client goes away) it closes out the request: bytes counted, the
//! connection's in-flight count released, the access line written.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::app::App;
use crate::context::RequestContext;
use crate::limit::Grant;
use crate::listener::conn::ConnActivity;

/// A response body: empty, one buffer, or an origin's stream.
pub struct ProxyBody {
    inner: Inner,
    finish: Option<Finish>,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Origin(Incoming),
}

/// What happens when a forwarded response is over.
pub struct Finish {
    app: Arc<App>,
    ctx: RequestContext,
    conn: Arc<ConnActivity>,
    grant: Option<Grant>,
}

impl Finish {
    /// Closes out `ctx` on `conn` and releases `grant` when dropped.
    pub fn new(app: Arc<App>, ctx: RequestContext, conn: Arc<ConnActivity>, grant: Grant) -> Self {
        Finish {
            app,
            ctx,
            conn,
            grant: Some(grant),
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        drop(self.grant.take());
        self.conn.request_finished();
        self.app.finish(&self.ctx);
    }
}

impl ProxyBody {
    /// No body.
    pub fn empty() -> Self {
        ProxyBody {
            inner: Inner::Empty,
            finish: None,
        }
    }

    /// One buffer.
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody {
            inner: Inner::Full(Some(bytes)),
            finish: None,
        }
    }

    /// An origin's body, streamed through; `finish` runs when it ends.
    pub fn origin(body: Incoming, finish: Finish) -> Self {
        ProxyBody {
            inner: Inner::Origin(body),
            finish: Some(finish),
        }
    }

    /// Collects the whole body (tests and small admin bodies).
    pub async fn collect_bytes(self) -> Result<Bytes, hyper::Error> {
        Ok(self.collect().await?.to_bytes())
    }
}

impl Body for ProxyBody {
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
        if let (Poll::Ready(Some(Ok(frame))), Some(finish)) = (&polled, &mut this.finish) {
            if let Some(data) = frame.data_ref() {
                finish.ctx.bytes_down += data.len() as u64;
            }
        }
        if let Poll::Ready(None) = polled {
            this.finish = None;
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
