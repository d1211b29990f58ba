//! Replaying bytes that were read ahead of a stream's user: the first
//! request head pacer checked before hyper, what an upstream sent right
//! after answering a CONNECT, or a tunnel's first bytes read to decide on
//! interception ([`Prefixed`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::pass::pass_writes;

/// A stream whose first reads return `prefix`.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }

    /// The bytes not yet read of the prefix, and the stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if replay(&mut this.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    pass_writes!(inner: poll_write, poll_write_vectored, is_write_vectored, poll_flush, poll_shutdown);
}

/// Copies what fits of `prefix` into `buf`; true if anything was copied
/// (the read is then complete). An emptied prefix lets its buffer go.
pub fn replay(prefix: &mut Bytes, buf: &mut ReadBuf<'_>) -> bool {
    if prefix.is_empty() {
        return false;
    }
    let n = prefix.len().min(buf.remaining());
    buf.put_slice(&prefix[..n]);
    prefix.advance(n);
    if prefix.is_empty() {
        *prefix = Bytes::new();
    }
    true
}

/// `first` then `then` as one buffer, copied only when both have bytes.
pub fn joined(first: Bytes, then: Bytes) -> Bytes {
    match (first.is_empty(), then.is_empty()) {
        (_, true) => first,
        (true, false) => then,
        (false, false) => [first, then].concat().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_pieces_then_lets_go() {
        let mut prefix = Bytes::from_static(b"abcdef");
        let mut storage = [0u8; 4];
        let mut buf = ReadBuf::new(&mut storage);
        assert!(replay(&mut prefix, &mut buf));
        assert_eq!(buf.filled(), b"abcd");
        let mut storage = [0u8; 4];
        let mut buf = ReadBuf::new(&mut storage);
        assert!(replay(&mut prefix, &mut buf));
        assert_eq!(buf.filled(), b"ef");
        assert!(!replay(&mut prefix, &mut buf));
    }

    #[test]
    fn joined_keeps_the_order() {
        let (ab, cd) = (Bytes::from_static(b"ab"), Bytes::from_static(b"cd"));
        assert_eq!(joined(ab.clone(), cd.clone()), "abcd");
        assert_eq!(joined(Bytes::new(), cd), "cd");
        assert_eq!(joined(ab, Bytes::new()), "ab");
    }
}
