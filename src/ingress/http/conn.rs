//! The client socket as hyper sees it: first the bytes already read while
//! checking the first head, then the socket; every read and write is noted
//! in the connection's [`ConnActivity`] for the watchdog.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::egress::prefix;
use crate::pipeline::activity::ConnActivity;

/// The client socket as hyper sees it: first the bytes already read while
/// checking the first head, then the socket; every read and write is noted.
pub struct ClientIo {
    prefix: Bytes,
    stream: TcpStream,
    activity: Arc<ConnActivity>,
}

impl ClientIo {
    /// Wraps `stream`, replaying `prefix` first.
    pub fn new(stream: TcpStream, prefix: Bytes, activity: Arc<ConnActivity>) -> Self {
        ClientIo {
            prefix,
            stream,
            activity,
        }
    }

    /// A CONNECT's client socket, back from hyper's upgrade: the bytes
    /// hyper had read past the head, then what is left of those read
    /// ahead of hyper, then the socket.
    pub fn of_tunnel(upgraded: Upgraded) -> Result<(Bytes, TcpStream), Upgraded> {
        let parts = upgraded.downcast::<TokioIo<ClientIo>>()?;
        let ClientIo { prefix, stream, .. } = parts.io.into_inner();
        Ok((prefix::joined(parts.read_buf, prefix), stream))
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if prefix::replay(&mut this.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                this.activity.on_write();
            }
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                this.activity.on_write();
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
