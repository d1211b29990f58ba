//! Whether a pooled HTTP/1 connection failed on reuse before any byte of
//! its answer: the one failure after which a request is sent once more, on
//! a fresh connection (see [`crate::egress::forward`]).
//!
//! A connection the origin (or HTTP proxy) closed while it sat idle in the
//! pool can be handed to a request in the moment before its close is
//! seen; the request then fails though nothing is wrong with the origin.
//! The connection's own bytes tell that case apart: HTTP/1 exchanges on a
//! connection take turns (hyper does not pipeline), so a write after bytes
//! were read begins a reuse, and a reuse that reads nothing before failing
//! was never answered. [`Watched`] notes this on the connection's stream,
//! and hyper-util hands the note back with a failed request's connection
//! info (a [`Connected`] extra).
//!
//! hyper-util retries by itself only a request hyper gave back unwritten
//! (`retry_canceled_requests`: the close was seen before the write);
//! once the head is written, the failure is the caller's to judge.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Extensions;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::pass::pass_writes;

/// Bytes were read since the current exchange began.
const ANSWERED: u8 = 1;
/// The current exchange is not the connection's first.
const REUSED: u8 = 2;

/// The exchanges of one connection, shared by its stream and the
/// connection info of its requests.
#[derive(Clone, Default)]
pub struct Wear(Arc<AtomicU8>);

impl Wear {
    fn read(&self) {
        if self.0.load(Ordering::Relaxed) & ANSWERED == 0 {
            self.0.fetch_or(ANSWERED, Ordering::Relaxed);
        }
    }

    /// A write after an answer: the next exchange, on a reused connection.
    fn write(&self) {
        if self.0.load(Ordering::Relaxed) & ANSWERED != 0 {
            self.0.store(REUSED, Ordering::Relaxed);
        }
    }

    /// The current exchange reuses the connection and got no byte back.
    fn unanswered_reuse(&self) -> bool {
        self.0.load(Ordering::Relaxed) == REUSED
    }
}

/// Whether the connection `connected` describes (hyper-util's connection
/// info of a failed request) was a reused HTTP/1 connection that closed or
/// broke before any byte of the answer.
pub fn failed_unanswered_on_reuse(connected: Option<&Connected>) -> bool {
    let Some(connected) = connected else {
        return false;
    };
    let mut extras = Extensions::new();
    connected.get_extras(&mut extras);
    extras.get::<Wear>().is_some_and(Wear::unanswered_reuse)
}

/// A pooled connection's stream, noting its exchanges in a [`Wear`].
pub struct Watched<S> {
    inner: S,
    wear: Wear,
}

impl<S> Watched<S> {
    /// Watches `inner` from its first exchange on.
    pub fn new(inner: S) -> Self {
        Watched {
            inner,
            wear: Wear::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.wear.read();
        }
        polled
    }
}

/// Any write counts, even one that fails: hyper has begun the next
/// exchange.
impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wear.write();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wear.write();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    pass_writes!(inner: is_write_vectored, poll_flush, poll_shutdown);
}

/// HTTP/1 connections carry their [`Wear`]; an HTTP/2 one multiplexes
/// its requests, so its bytes say nothing about one of them.
impl<S: Connection> Connection for Watched<S> {
    fn connected(&self) -> Connected {
        let connected = self.inner.connected();
        if connected.is_negotiated_h2() {
            return connected;
        }
        connected.extra(self.wear.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(wear: &Wear) -> bool {
        let connected = Connected::new().extra(wear.clone());
        failed_unanswered_on_reuse(Some(&connected))
    }

    #[test]
    fn only_a_reuse_without_an_answer_byte_is_an_unanswered_reuse() {
        let wear = Wear::default();
        wear.write();
        assert!(!failed(&wear), "the first exchange");
        wear.read();
        assert!(!failed(&wear), "answered");
        wear.write();
        assert!(failed(&wear), "reused, nothing read yet");
        wear.write();
        assert!(failed(&wear), "more of the same request");
        wear.read();
        assert!(!failed(&wear), "the reuse was answered");
        assert!(!failed_unanswered_on_reuse(Some(&Connected::new())));
        assert!(!failed_unanswered_on_reuse(None));
    }
}
