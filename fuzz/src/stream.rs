//! [`Scripted`]: a client socket in memory. Reads hand out the script in
//! chunks of a size the fuzzer picks, then either end of file or silence
//! (a client that stays connected and says nothing more); writes are kept
//! for the target to look at.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes of pacer's answer kept.
const KEPT: usize = 64 * 1024;

/// What the client does once its script is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Closes its side: reads see end of file.
    Eof,
    /// Stays connected, silent: reads wait (for one of pacer's timeouts).
    Silent,
}

/// A client socket whose reads are a script.
pub struct Scripted {
    script: Vec<u8>,
    read: usize,
    chunk: usize,
    end: End,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Scripted {
    /// Hands out `script` at most `chunk` bytes a read (at least one).
    pub fn new(script: &[u8], chunk: usize, end: End) -> Self {
        Scripted {
            script: script.to_vec(),
            read: 0,
            chunk: chunk.max(1),
            end,
            written: Arc::default(),
        }
    }

    /// What pacer writes, readable after the stream is handed over.
    pub fn answer(&self) -> Arc<Mutex<Vec<u8>>> {
        self.written.clone()
    }
}

/// The chunk size and end a target's flag byte picks: the low six bits
/// are the chunk (0 meaning the whole script), bit 6 the end.
pub fn from_flags(flags: u8, script: &[u8]) -> Scripted {
    let chunk = match usize::from(flags & 0x3f) {
        0 => script.len(),
        n => n,
    };
    let end = if flags & 0x40 == 0 {
        End::Eof
    } else {
        End::Silent
    };
    Scripted::new(script, chunk, end)
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let left = &this.script[this.read..];
        if left.is_empty() {
            return match this.end {
                End::Eof => Poll::Ready(Ok(())),
                // Never woken: only a timer of pacer's can move on.
                End::Silent => Poll::Pending,
            };
        }
        let n = left.len().min(this.chunk).min(buf.remaining());
        buf.put_slice(&left[..n]);
        this.read += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let room = KEPT.saturating_sub(written.len());
        written.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
