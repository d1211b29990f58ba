//! The tunnel relay: bidirectional copy between client and destination with
//! half-close (EOF on one side shuts down writing on the other), byte counts,
//! and `idle_timeout` when no byte moves either way.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bytes in each copy direction's buffer.
const BUFFER_BYTES: usize = 16 * 1024;

/// How a tunnel ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both sides finished (EOF both ways).
    Closed,
    /// No byte moved for `idle_timeout`.
    Idle,
    /// A socket error on either side.
    Failed(io::Error),
}

/// What a tunnel carried and how it ended.
#[derive(Debug)]
pub struct RelayOutcome {
    /// Bytes from the client to the destination.
    pub up: u64,
    /// Bytes from the destination to the client.
    pub down: u64,
    /// How it ended.
    pub end: RelayEnd,
}

/// Copies both ways until both sides close, one fails, or nothing moves for
/// `idle`.
pub async fn relay<C, D>(client: &mut C, destination: &mut D, idle: Duration) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity {
        epoch: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut client = Metered {
        inner: client,
        read: &up,
        activity: &activity,
    };
    let mut destination = Metered {
        inner: destination,
        read: &down,
        activity: &activity,
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut destination,
        BUFFER_BYTES,
        BUFFER_BYTES,
    );
    let end = tokio::select! {
        result = copy => match result {
            Ok(_) => RelayEnd::Closed,
            Err(err) => RelayEnd::Failed(err),
        },
        () = activity.idle_for(idle) => RelayEnd::Idle,
    };
    RelayOutcome {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
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

/// A stream whose reads are counted and whose traffic marks activity.
struct Metered<'a, S> {
    inner: &'a mut S,
    read: &'a AtomicU64,
    activity: &'a Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut *this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.read.fetch_add(n as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                this.activity.touch();
            }
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_with_half_close_and_counts() {
        let (mut client, mut client_side) = tokio::io::duplex(64);
        let (mut dest_side, mut destination) = tokio::io::duplex(64);
        let relay = tokio::spawn(async move {
            relay(&mut client_side, &mut dest_side, Duration::from_secs(60)).await
        });
        client.write_all(b"hello").await.expect("write");
        client.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        destination.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"hello");
        destination.write_all(b"world!").await.expect("write back");
        destination.shutdown().await.expect("close");
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.expect("read back");
        assert_eq!(back, b"world!");
        let outcome = relay.await.expect("relay task");
        assert!(matches!(outcome.end, RelayEnd::Closed), "{outcome:?}");
        assert_eq!((outcome.up, outcome.down), (5, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_is_cut_after_idle_timeout() {
        let (_client, mut client_side) = tokio::io::duplex(64);
        let (mut dest_side, _destination) = tokio::io::duplex(64);
        let start = Instant::now();
        let outcome = relay(&mut client_side, &mut dest_side, Duration::from_secs(90)).await;
        assert!(matches!(outcome.end, RelayEnd::Idle));
        assert_eq!(start.elapsed(), Duration::from_secs(90));
    }
}
