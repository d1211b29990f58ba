//! One HTTP/1.1 exchange: the client's stream as hyper sees it while it
//! serves one request. The request's head (read and checked by pacer) is
//! replayed first, then the socket, never past the request's end when its
//! head tells where that is: bytes of the next request are kept back, for
//! pacer to read and check. Once the request is over (answered, and on
//! the connection no longer), hyper's next read is an end of stream and
//! its shutdown does nothing, so its connection ends cleanly and gives the
//! stream back with what it had read ahead.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::egress::pass::pass_writes;
use crate::egress::prefix;
use crate::pipeline::activity::ConnActivity;
use crate::wire::head::RequestHead;

/// The client's stream while hyper serves one request on it.
pub struct Exchange<S> {
    io: S,
    /// Bytes read ahead of hyper and not yet given to it.
    ahead: Bytes,
    /// Bytes of this request not yet given to hyper; `None` when the head
    /// does not tell where the request ends (hyper is given everything).
    left: Option<u64>,
    /// Bytes read past the request while it was in flight.
    past: BytesMut,
    activity: Arc<ConnActivity>,
    /// Requests the connection had finished before this exchange.
    finished_before: u32,
    /// Whether hyper was told the stream ended because the request is over.
    handed_back: bool,
}

impl<S> Exchange<S> {
    /// `io`, on which `head` has been read, for hyper to serve that request.
    pub fn new(io: S, head: RequestHead, activity: Arc<ConnActivity>) -> Self {
        // The head just read is the connection's latest activity.
        activity.on_read();
        let left = head.extent();
        Exchange {
            io,
            ahead: head.bytes,
            left,
            past: BytesMut::new(),
            finished_before: activity.finished(),
            activity,
            handed_back: false,
        }
    }

    /// The stream, and the bytes read past the request (`read_buf`: those
    /// hyper read and did not use), once hyper's connection has ended with
    /// the request over; `None` when the connection cannot go on: hyper
    /// ended it itself (no keep-alive), or the request's body was not all
    /// read, so where the next request starts is unknown.
    pub fn next_request(self, read_buf: Bytes) -> Option<(S, Bytes)> {
        let bounded_and_used = match self.left {
            Some(left) => left == 0 && read_buf.is_empty(),
            None => true,
        };
        if !self.handed_back || !bounded_and_used {
            return None;
        }
        let ahead = prefix::joined(read_buf, self.ahead);
        Some((self.io, prefix::joined(ahead, self.past.freeze())))
    }

    /// The stream of a tunnel (the request was a CONNECT), with the bytes
    /// read past its head: `read_buf` (hyper's) first.
    pub fn into_tunnel(self, read_buf: Bytes) -> (Bytes, S) {
        let ahead = prefix::joined(read_buf, self.ahead);
        (prefix::joined(ahead, self.past.freeze()), self.io)
    }

    /// Whether the request is over: one finished since the exchange began,
    /// and none is in flight.
    fn request_over(&self) -> bool {
        self.activity.in_flight() == 0 && self.activity.finished() != self.finished_before
    }

    /// Notes that `n` bytes of the request went to hyper.
    fn gave(&mut self, n: usize) {
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(n as u64);
        }
    }

    /// How many more bytes hyper may be given now.
    fn allowance(&self) -> usize {
        self.left.map_or(usize::MAX, |left| {
            usize::try_from(left).unwrap_or(usize::MAX)
        })
    }
}

impl<S: AsyncRead + Unpin> Exchange<S> {
    /// A read by hyper past the request's end while the request is in
    /// flight: it watches for the client leaving. Bytes that arrive are the
    /// next request's, kept back; hyper waits for the request's end.
    fn poll_past(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ahead.is_empty() || !self.past.is_empty() {
            // The client has sent more: it is still there.
            return Poll::Pending;
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.past) {
            // The client left: hyper sees it, as it would have.
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(())),
            // The bytes wait for pacer.
            Poll::Ready(Ok(_)) | Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Exchange<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // hyper reads again only when woken: the request's end wakes it.
        this.activity.wake_when_idle(cx.waker());
        if this.request_over() {
            this.handed_back = true;
            return Poll::Ready(Ok(()));
        }
        let allowance = this.allowance();
        if allowance == 0 {
            return this.poll_past(cx);
        }
        if !this.ahead.is_empty() {
            let n = allowance.min(this.ahead.len()).min(buf.remaining());
            buf.put_slice(&this.ahead.split_to(n));
            this.gave(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > allowance {
            // The next request began in the same read: keep it back.
            this.past
                .extend_from_slice(&buf.filled()[before + allowance..]);
            buf.set_filled(before + allowance);
        }
        this.gave(read.min(allowance));
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Exchange<S> {
    pass_writes!(io: poll_write, poll_write_vectored, is_write_vectored, poll_flush);

    /// A stream handed back stays open for the next request.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handed_back {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::head::Framing;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn head(bytes: &'static [u8], len: usize, body: Framing) -> RequestHead {
        RequestHead {
            bytes: Bytes::from_static(bytes),
            len,
            body,
        }
    }

    #[tokio::test]
    async fn hyper_gets_the_request_and_the_next_one_is_kept_back() {
        let (client, server) = tokio::io::duplex(1024);
        let activity = Arc::new(ConnActivity::new());
        let first = head(b"POST / HTTP/1.1\r\n\r\nabG", 19, Framing::Length(3));
        let mut exchange = Exchange::new(server, first, activity.clone());
        let mut client = client;
        client.write_all(b"ET / HTTP/1.1\r\n").await.expect("write");
        let mut got = [0u8; 64];
        let mut total = 0;
        activity.request_started();
        while total < 22 {
            total += exchange.read(&mut got[total..]).await.expect("read");
        }
        assert_eq!(&got[..total], b"POST / HTTP/1.1\r\n\r\nabG");
        let mut more = [0u8; 8];
        let pending = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            exchange.read(&mut more),
        );
        assert!(pending.await.is_err(), "hyper waits past the request's end");
        activity.request_finished(false);
        assert_eq!(exchange.read(&mut more).await.expect("read"), 0, "over");
        let (_, next) = exchange.next_request(Bytes::new()).expect("goes on");
        assert_eq!(next, "ET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn an_unread_body_ends_the_connection() {
        let (_client, server) = tokio::io::duplex(64);
        let activity = Arc::new(ConnActivity::new());
        let first = head(b"POST / HTTP/1.1\r\n\r\n", 19, Framing::Length(10));
        let mut exchange = Exchange::new(server, first, activity.clone());
        let mut got = [0u8; 64];
        activity.request_started();
        assert_eq!(exchange.read(&mut got).await.expect("read"), 19);
        activity.request_finished(false);
        assert_eq!(exchange.read(&mut got).await.expect("read"), 0);
        assert!(exchange.next_request(Bytes::new()).is_none());
    }
}
