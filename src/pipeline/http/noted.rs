//! The client stream of an HTTP connection (the listener's socket, or the
//! TLS stream inside an intercepted tunnel): every read and write is noted
//! in the connection's [`ConnActivity`] for the watchdog.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::ClientStream;
use crate::egress::pass::pass_writes;
use crate::pipeline::activity::ConnActivity;

/// A client stream whose reads and writes are noted.
pub struct Noted<S> {
    stream: S,
    activity: Arc<ConnActivity>,
}

impl<S> Noted<S> {
    /// Wraps `stream`.
    pub fn new(stream: S, activity: Arc<ConnActivity>) -> Self {
        Noted { stream, activity }
    }

    /// The stream.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// `polled`, a write to the stream, noted if it wrote anything.
    fn noting(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.activity.on_write();
            }
        }
        polled
    }
}

/// A socket waits for readiness without a buffer.
impl ClientStream for Noted<TcpStream> {
    async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for Noted<TlsStream<S>> {}

impl<S: AsyncRead + Unpin> AsyncRead for Noted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Noted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.noting(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.noting(polled)
    }

    pass_writes!(stream: is_write_vectored, poll_flush, poll_shutdown);
}
