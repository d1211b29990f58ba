//! The tunnel relay: bidirectional copy between client and destination with
//! half-close (EOF on one side shuts down writing on the other), byte counts,
//! `idle_timeout` when no byte moves either way, and a stop signal from the
//! caller (the account was deleted) that ends it with the counts so far.
//!
//! Each direction holds a 64 KiB buffer only while data is in flight: when
//! a read finds nothing to read and nothing is left to write, the buffer is
//! freed (the read has registered the wake-up). Idle tunnels then hold no
//! relay buffers, and bulk transfers move 64 KiB per system call. Buffers
//! are never zero-filled: reads land in their spare capacity.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;

/// Bytes a direction reads at once while data flows.
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
    /// How it ended.
    pub end: RelayEnd,
}

/// Copies both ways until both sides close, one fails, nothing moves for
/// `idle`, or `stop` resolves.
pub async fn relay<C, D>(
    client: &mut C,
    destination: &mut D,
    idle: Duration,
    stop: impl Future<Output = ()>,
) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity {
        epoch: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let mut up = Pump::default();
    let mut down = Pump::default();
    let copy = poll_fn(|cx| {
        let upward = up.poll(cx, client, destination, &activity);
        let downward = down.poll(cx, destination, client, &activity);
        match (upward, downward) {
            (Poll::Ready(Err(err)), _) | (_, Poll::Ready(Err(err))) => Poll::Ready(Err(err)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    });
    let end = tokio::select! {
        result = copy => match result {
            Ok(()) => RelayEnd::Closed,
            Err(err) => RelayEnd::Failed(err),
        },
        () = activity.idle_for(idle) => RelayEnd::Idle,
        () = stop => RelayEnd::Stopped,
    };
    RelayOutcome {
        up: up.moved,
        down: down.moved,
        end,
    }
}

/// One direction of a tunnel.
#[derive(Default)]
struct Pump {
    /// Present only while data is in flight; `buffer[start..]` is still to
    /// be written. Never zero-filled: reads go into its spare capacity.
    buffer: Option<Vec<u8>>,
    start: usize,
    read_done: bool,
    need_flush: bool,
    finished: bool,
    moved: u64,
}

impl Pump {
    /// Moves what `reader` has to `writer`; ready once the reader's EOF has
    /// been passed on as a shutdown of the writer.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
        activity: &Activity,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.finished {
            return Poll::Ready(Ok(()));
        }
        loop {
            let pending = self.buffer.as_ref().map_or(0, |b| b.len() - self.start);
            if pending == 0 && !self.read_done {
                let buffer = self
                    .buffer
                    .get_or_insert_with(|| Vec::with_capacity(BUFFER_BYTES));
                buffer.clear();
                self.start = 0;
                match poll_read_buf(Pin::new(&mut *reader), cx, buffer) {
                    Poll::Pending => {
                        if self.need_flush {
                            ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        self.buffer = None;
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Ready(Ok(0)) => self.read_done = true,
                    Poll::Ready(Ok(n)) => {
                        self.moved += n as u64;
                        activity.touch();
                    }
                }
            }
            while let Some(unsent) = self.buffer.as_deref().and_then(|b| b.get(self.start..)) {
                if unsent.is_empty() {
                    break;
                }
                let n = ready!(Pin::new(&mut *writer).poll_write(cx, unsent))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.need_flush = true;
                activity.touch();
            }
            if self.read_done {
                ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.finished = true;
                self.buffer = None;
                return Poll::Ready(Ok(()));
            }
        }
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

#[cfg(test)]
mod tests {
    use std::future::pending;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_with_half_close_and_counts() {
        let (mut client, mut client_side) = tokio::io::duplex(64);
        let (mut dest_side, mut destination) = tokio::io::duplex(64);
        let relay = tokio::spawn(async move {
            relay(
                &mut client_side,
                &mut dest_side,
                Duration::from_secs(60),
                pending(),
            )
            .await
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

    #[tokio::test]
    async fn a_megabyte_arrives_whole_and_in_order() {
        let (mut client, mut client_side) = tokio::io::duplex(4096);
        let (mut dest_side, mut destination) = tokio::io::duplex(4096);
        let relay = tokio::spawn(async move {
            relay(
                &mut client_side,
                &mut dest_side,
                Duration::from_secs(60),
                pending(),
            )
            .await
        });
        let sent: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&to_send).await.expect("write");
            client.shutdown().await.expect("half-close");
            client
        });
        let mut got = Vec::new();
        destination.read_to_end(&mut got).await.expect("read");
        assert!(got == sent, "the bytes arrived changed");
        destination.shutdown().await.expect("close");
        drop(writer.await.expect("writer"));
        let outcome = relay.await.expect("relay task");
        assert_eq!((outcome.up, outcome.down), (1 << 20, 0));
    }

    #[tokio::test]
    async fn a_quiet_direction_holds_no_buffer() {
        let (mut client, mut client_side) = tokio::io::duplex(64);
        let (mut dest_side, mut destination) = tokio::io::duplex(64);
        let activity = Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        };
        let mut pump = Pump::default();
        client.write_all(b"hi").await.expect("write");
        let polled =
            poll_fn(|cx| Poll::Ready(pump.poll(cx, &mut client_side, &mut dest_side, &activity)))
                .await;
        assert!(polled.is_pending(), "waits for more");
        assert!(pump.buffer.is_none(), "nothing in flight, no buffer");
        let mut got = [0u8; 2];
        destination.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hi");
        assert_eq!(pump.moved, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_is_cut_after_idle_timeout() {
        let (_client, mut client_side) = tokio::io::duplex(64);
        let (mut dest_side, _destination) = tokio::io::duplex(64);
        let start = Instant::now();
        let outcome = relay(
            &mut client_side,
            &mut dest_side,
            Duration::from_secs(90),
            pending(),
        )
        .await;
        assert!(matches!(outcome.end, RelayEnd::Idle));
        assert_eq!(start.elapsed(), Duration::from_secs(90));
    }
}
