//! The relay between any two streams (TLS on either side, or a platform
//! without `splice(2)`): each direction copies through a 64 KiB buffer
//! held only while data is in flight. When a read finds nothing to read
//! and nothing is left to write, the buffer is freed (the read has
//! registered the wake-up), so idle tunnels hold no relay buffers. Buffers
//! are never zero-filled: reads land in their spare capacity.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use super::{both, Activity, Copied, BUFFER_BYTES};

/// Two streams relayed both ways.
pub struct Streams<C, D> {
    client: C,
    destination: D,
    up: Pump,
    down: Pump,
}

impl<C, D> Streams<C, D>
where
    C: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    /// `client` and `destination`, nothing moved yet.
    pub fn new(client: C, destination: D) -> Self {
        Streams {
            client,
            destination,
            up: Pump::default(),
            down: Pump::default(),
        }
    }

    /// Copies both ways until both sides have closed or one fails.
    pub fn poll(&mut self, cx: &mut Context<'_>, activity: &Activity) -> Poll<io::Result<()>> {
        let upward = self
            .up
            .poll(cx, &mut self.client, &mut self.destination, activity);
        let downward = self
            .down
            .poll(cx, &mut self.destination, &mut self.client, activity);
        both(upward, downward)
    }

    /// What moved so far.
    pub fn copied(&self) -> Copied {
        Copied {
            up: self.up.moved,
            down: self.down.moved,
            spliced: 0,
        }
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

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_quiet_direction_holds_no_buffer() {
        let (mut client, mut client_side) = tokio::io::duplex(64);
        let (mut dest_side, mut destination) = tokio::io::duplex(64);
        let activity = Activity::new();
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
}
