//! Reads and checks the first request head of an HTTP connection before
//! hyper sees it, so that garbage, an oversized head or a slow client get
//! pacer's own envelope (hyper answers those with a bare status line).
//! The bytes read are replayed to hyper unchanged.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most header lines a request head may carry (hyper's default).
pub const MAX_HEADERS: usize = 100;
const READ_CHUNK: usize = 4096;

/// Why the first head could not be taken.
#[derive(Debug)]
pub enum HeadError {
    /// The client closed (or reset) before sending anything.
    Closed,
    /// The bytes are not an HTTP/1 request head.
    Malformed,
    /// The head is larger than the limit, or has too many header lines.
    TooLarge,
}

/// Reads until the end of the first request head (inclusive, plus whatever
/// followed in the same reads) and checks it parses, reading no more than
/// `max_bytes` of head. `stream` is the client's socket (or, in the fuzz
/// targets, any byte source).
pub async fn read_first_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    max_bytes: usize,
) -> Result<Bytes, HeadError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK.min(max_bytes));
    let mut checked_start = false;
    loop {
        if buf.len() >= max_bytes {
            return Err(HeadError::TooLarge);
        }
        // No read takes the buffer past the limit (`reserve` may grow it
        // further).
        let room = max_bytes - buf.len();
        buf.reserve(READ_CHUNK.min(room));
        let scan_from = buf.len().saturating_sub(3);
        let n = match stream.read_buf(&mut (&mut buf).limit(room)).await {
            Ok(n) => n,
            Err(_) if buf.is_empty() => return Err(HeadError::Closed),
            Err(_) => return Err(HeadError::Malformed),
        };
        if n == 0 {
            return Err(if buf.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Malformed
            });
        }
        let complete = head_end(&buf[scan_from..]).is_some();
        if complete || !checked_start {
            // Parse once early, to refuse garbage at once, and once the
            // blank line has arrived; never per byte.
            checked_start = true;
            if check(&buf)? {
                return Ok(buf.freeze());
            }
        }
    }
}

/// Whether `buf` holds a complete, valid head (`Ok(false)`: not yet).
fn check(buf: &[u8]) -> Result<bool, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Ok(true),
        Ok(httparse::Status::Partial) => Ok(false),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

/// The offset just past the first blank line (`\n\n` or `\n\r\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).enumerate().find_map(|(i, w)| match w {
        [b'\n', b'\n'] => Some(i + 2),
        [b'\n', b'\r'] if buf.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn read_from(client_bytes: &'static [u8], max: usize) -> Result<Bytes, HeadError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s.write_all(client_bytes).await;
            let _ = s.shutdown().await;
            s
        });
        let (mut server, _) = listener.accept().await.expect("accept");
        let result = read_first_head(&mut server, max).await;
        drop(client.await);
        result
    }

    #[tokio::test]
    async fn a_whole_head_is_returned_with_what_follows() {
        let bytes = read_from(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nxyz", 1024)
            .await
            .expect("head");
        assert!(bytes.ends_with(b"xyz"));
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        let err = read_from(b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 1024).await;
        assert!(matches!(err, Err(HeadError::Malformed)));
    }

    #[tokio::test]
    async fn an_oversized_head_is_too_large() {
        static BIG: [u8; 4096] = [b'a'; 4096];
        let mut head = b"GET http://a/ HTTP/1.1\r\nX: ".to_vec();
        head.extend_from_slice(&BIG);
        let head: &'static [u8] = Box::leak(head.into_boxed_slice());
        let err = read_from(head, 1024).await;
        assert!(matches!(err, Err(HeadError::TooLarge)));
    }

    #[tokio::test]
    async fn a_head_past_the_limit_is_too_large_whatever_the_reads() {
        // Larger than one read chunk: the buffer grows past the limit, but
        // no read may take the head past it.
        let mut head = b"GET http://a/ HTTP/1.1\r\nX: ".to_vec();
        head.resize(6_400, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let head: &'static [u8] = Box::leak(head.into_boxed_slice());
        let err = read_from(head, 6_000).await;
        assert!(matches!(err, Err(HeadError::TooLarge)), "{err:?}");
    }

    #[tokio::test]
    async fn a_truncated_head_is_malformed_and_silence_is_closed() {
        assert!(matches!(
            read_from(b"GET http://a/ HTTP/1.1\r\n", 1024).await,
            Err(HeadError::Malformed)
        ));
        assert!(matches!(read_from(b"", 1024).await, Err(HeadError::Closed)));
    }

    #[test]
    fn blank_line_detection() {
        assert_eq!(head_end(b"a\r\n\r\nb"), Some(5));
        assert_eq!(head_end(b"a\n\nb"), Some(3));
        assert_eq!(head_end(b"a\r\nb"), None);
    }
}
