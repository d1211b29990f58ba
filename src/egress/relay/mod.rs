//! The tunnel relay: bidirectional copy between client and destination with
//! half-close (EOF on one side shuts down writing on the other), byte counts,
//! `idle_timeout` when no byte moves either way, and a stop signal from the
//! caller (the account was deleted) that ends it with the counts so far.
//!
//! Two ways to copy, chosen per tunnel by [`relay`]:
//! - [`sockets`] (Linux), when both sides are plain TCP sockets (a
//!   direct dial, or an upstream HTTP or SOCKS5 proxy after its handshake):
//!   `splice(2)` through pipes of a bounded per-thread pool ([`pipes`]),
//!   leased only while bytes are in flight, and a buffer for a burst that
//!   finds the pool empty. Bytes a side had read ahead (the rest of a
//!   handshake's read, a proxy's bytes after its answer) go first.
//! - [`buffered`] for anything else (TLS on either side, no `splice(2)`).
//!
//! Either way a direction holds a pipe or a 64 KiB buffer only while data
//! is in flight, so an idle tunnel holds neither.

mod buffered;
#[cfg(target_os = "linux")]
mod pipes;
#[cfg(target_os = "linux")]
mod sockets;

use std::future::{poll_fn, Future};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::prefix::{self, Prefixed};

/// Bytes a direction reads at once through a buffer while data flows.
const BUFFER_BYTES: usize = 64 * 1024;

/// How a tunnel ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both sides finished (EOF both ways).
    Closed,
    /// No byte moved for `idle_timeout`.
    Idle,
    /// A socket error on either side.
    Failed(io::Error),
    /// The caller's stop signal resolved.
    Stopped,
}

/// What a tunnel carried and how it ended.
#[derive(Debug)]
pub struct RelayOutcome {
    /// Bytes from the client to the destination.
    pub up: u64,
    /// Bytes from the destination to the client.
    pub down: u64,
    /// Of `up` and `down` together, the bytes moved by `splice(2)`.
    pub spliced: u64,
    /// How it ended.
    pub end: RelayEnd,
}

/// How tunnels are relayed.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// A tunnel on which no byte moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// Pipes each thread may hold for `splice(2)` (0: copy through buffers).
    pub splice_pipes: usize,
}

/// A stream that can give up its plain TCP socket, with the bytes it had
/// already read from it and not yet handed on (to be sent first).
pub trait IntoSocket: Sized {
    /// The socket and its unread bytes, or the stream itself when it is
    /// not a plain socket (TLS, an HTTP/2 stream, a test pipe).
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self>;
}

impl IntoSocket for TcpStream {
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self> {
        Ok((Bytes::new(), self))
    }
}

/// The SOCKS5 client socket, read through its handshake buffer.
impl IntoSocket for BufReader<TcpStream> {
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self> {
        let buffered = Bytes::copy_from_slice(self.buffer());
        Ok((buffered, self.into_inner()))
    }
}

impl<S: IntoSocket> IntoSocket for Prefixed<S> {
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self> {
        let (prefix, inner) = self.into_parts();
        match inner.into_socket() {
            Ok((unread, socket)) => Ok((prefix::joined(prefix, unread), socket)),
            Err(inner) => Err(Prefixed::new(prefix, inner)),
        }
    }
}

impl<L: IntoSocket, R: IntoSocket> IntoSocket for tokio_util::either::Either<L, R> {
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self> {
        use tokio_util::either::Either;
        match self {
            Either::Left(left) => left.into_socket().map_err(Either::Left),
            Either::Right(right) => right.into_socket().map_err(Either::Right),
        }
    }
}

/// An upgraded HTTP connection hyper would not give back as a socket.
impl IntoSocket for TokioIo<Upgraded> {
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self> {
        Err(self)
    }
}

/// Copies both ways until both sides close, one fails, nothing moves for
/// `settings.idle_timeout`, or `stop` resolves; then both are closed.
pub async fn relay<C, D>(
    client: C,
    destination: D,
    settings: RelaySettings,
    stop: impl Future<Output = ()>,
) -> RelayOutcome
where
    C: IntoSocket + AsyncRead + AsyncWrite + Unpin,
    D: IntoSocket + AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    #[cfg(target_os = "linux")]
    let (client, destination) = match (client.into_socket(), destination.into_socket()) {
        (Ok(client), Ok(destination)) => {
            let mut sockets = sockets::Sockets::new(client, destination);
            let copy = poll_fn(|cx| sockets.poll(cx, settings.splice_pipes, &activity));
            let end = until_end(copy, &activity, settings.idle_timeout, stop).await;
            return sockets.copied().ended(end);
        }
        (client, destination) => (as_stream(client), as_stream(destination)),
    };
    let mut streams = buffered::Streams::new(client, destination);
    let copy = poll_fn(|cx| streams.poll(cx, &activity));
    let end = until_end(copy, &activity, settings.idle_timeout, stop).await;
    streams.copied().ended(end)
}

/// A side that gave up its socket, as a stream again (the other side is
/// not a socket).
#[cfg(target_os = "linux")]
fn as_stream<S>(
    side: Result<(Bytes, TcpStream), S>,
) -> tokio_util::either::Either<Prefixed<TcpStream>, S> {
    use tokio_util::either::Either;
    match side {
        Ok((unread, socket)) => Either::Left(Prefixed::new(unread, socket)),
        Err(stream) => Either::Right(stream),
    }
}

/// How `copy` ended; [`RelayEnd::Idle`] once nothing has moved for `idle`,
/// [`RelayEnd::Stopped`] once `stop` resolves.
async fn until_end(
    copy: impl Future<Output = io::Result<()>>,
    activity: &Activity,
    idle: Duration,
    stop: impl Future<Output = ()>,
) -> RelayEnd {
    tokio::select! {
        result = copy => match result {
            Ok(()) => RelayEnd::Closed,
            Err(err) => RelayEnd::Failed(err),
        },
        () = activity.idle_for(idle) => RelayEnd::Idle,
        () = stop => RelayEnd::Stopped,
    }
}

/// The bytes a relay moved.
#[derive(Debug, Default, Clone, Copy)]
struct Copied {
    up: u64,
    down: u64,
    spliced: u64,
}

impl Copied {
    fn ended(self, end: RelayEnd) -> RelayOutcome {
        RelayOutcome {
            up: self.up,
            down: self.down,
            spliced: self.spliced,
            end,
        }
    }
}

/// Both directions' progress as one: the first error, or ready when both
/// are.
fn both(upward: Poll<io::Result<()>>, downward: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    match (upward, downward) {
        (Poll::Ready(Err(err)), _) | (_, Poll::Ready(Err(err))) => Poll::Ready(Err(err)),
        (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
        _ => Poll::Pending,
    }
}

/// When a byte last moved either way.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.epoch + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests;
