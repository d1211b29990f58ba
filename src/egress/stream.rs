//! The destination side of a request, whichever way it leaves: an
//! [`EgressStream`], plain TCP or TLS over another egress stream (to an
//! `https` proxy, to an `https://` origin, or to an origin inside a tunnel
//! through a proxy), replaying any bytes a proxy sent right after its
//! CONNECT answer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::relay::IntoSocket;
use super::{prefix, replay};

/// A connection towards the destination: direct, or through an upstream.
pub struct EgressStream {
    transport: Transport,
    /// Bytes already read past a proxy's CONNECT answer, read first.
    prefix: Bytes,
    /// Whether requests on it go to an HTTP proxy (absolute-form).
    to_http_proxy: bool,
}

enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<EgressStream>>),
}

impl EgressStream {
    /// A plain TCP connection.
    pub fn tcp(stream: TcpStream) -> Self {
        Self::new(Transport::Tcp(stream))
    }

    /// A TLS connection over another egress stream.
    pub fn tls(stream: TlsStream<EgressStream>) -> Self {
        Self::new(Transport::Tls(Box::new(stream)))
    }

    fn new(transport: Transport) -> Self {
        EgressStream {
            transport,
            prefix: Bytes::new(),
            to_http_proxy: false,
        }
    }

    /// This stream, with `prefix` to be read before the socket.
    pub fn with_prefix(mut self, prefix: Bytes) -> Self {
        self.prefix = prefix;
        self
    }

    /// Marks the stream as leading to an HTTP proxy: hyper then sends
    /// absolute-form request targets.
    pub fn to_http_proxy(mut self) -> Self {
        self.to_http_proxy = true;
        self
    }

    /// The local address of the socket (a SOCKS5 reply's BND.ADDR).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket().local_addr()
    }

    fn socket(&self) -> &TcpStream {
        match &self.transport {
            Transport::Tcp(tcp) => tcp,
            Transport::Tls(tls) => tls.get_ref().0.socket(),
        }
    }
}

impl fmt::Debug for EgressStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.transport {
            Transport::Tcp(_) => "tcp",
            Transport::Tls(_) => "tls",
        };
        f.debug_struct("EgressStream")
            .field("transport", &kind)
            .field("prefix", &self.prefix.len())
            .finish()
    }
}

impl AsyncRead for EgressStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if prefix::replay(&mut this.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        match &mut this.transport {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EgressStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Tcp(s) => written(Pin::new(s).poll_write(cx, buf)),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Tcp(s) => written(Pin::new(s).poll_write_vectored(cx, bufs)),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.transport {
            Transport::Tcp(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Notes a write that reached the socket (see [`replay::socket_written`]);
/// the TLS transport's bytes reach it through the TCP stream beneath.
fn written(polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
    if let Poll::Ready(Ok(1..)) = polled {
        replay::socket_written();
    }
    polled
}

/// A plain TCP connection gives up its socket, with a proxy's bytes after
/// its CONNECT answer; TLS keeps its stream.
impl IntoSocket for EgressStream {
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self> {
        match self.transport {
            Transport::Tcp(socket) => Ok((self.prefix, socket)),
            Transport::Tls(_) => Err(self),
        }
    }
}

impl Connection for EgressStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new().proxy(self.to_http_proxy);
        match &self.transport {
            Transport::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                connected.negotiated_h2()
            }
            Transport::Tls(_) | Transport::Tcp(_) => connected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn the_prefix_is_read_before_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.write_all(b" world").await.expect("write");
        });
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut stream = EgressStream::tcp(tcp).with_prefix(Bytes::from_static(b"hello"));
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"hello world");
        server.await.expect("server");
        assert!(!stream.connected().is_proxied());
        assert!(stream.to_http_proxy().connected().is_proxied());
    }
}
