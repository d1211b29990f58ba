//! Replaying bytes that were read ahead of a stream's user: the first
//! request head pacer checked before hyper, or what an upstream sent right
//! after answering a CONNECT.

use bytes::{Buf, Bytes};
use tokio::io::ReadBuf;

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
}
