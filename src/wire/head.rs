//! Reads and checks each HTTP/1 request head before hyper sees it, so that
//! garbage, a head hyper would refuse, an oversized head or a slow client
//! get pacer's own envelope (hyper answers those with a bare status line).
//! A head is checked as hyper will parse it: the request line, the header
//! lines, and the framing of its body (`Content-Length`,
//! `Transfer-Encoding`), which also tells where the request ends. The bytes
//! read are replayed to hyper unchanged.

use bytes::{BufMut, Bytes, BytesMut};
use http::Method;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most header lines a request head may carry (hyper's default).
pub const MAX_HEADERS: usize = 100;
const READ_CHUNK: usize = 4096;
/// The longest request target hyper accepts.
const MAX_TARGET: usize = u16::MAX as usize - 1;
/// The longest body hyper can frame.
const MAX_BODY: u64 = u64::MAX - 2;

/// Why a head could not be taken.
#[derive(Debug)]
pub enum HeadError {
    /// The client closed (or reset) before sending anything.
    Closed,
    /// The bytes are not an HTTP/1 request head pacer serves; the reason,
    /// for the envelope.
    Malformed(&'static str),
    /// The head is larger than the limit, or has too many header lines.
    TooLarge,
}

/// A whole request head, checked.
#[derive(Debug)]
pub struct RequestHead {
    /// The head, and whatever followed it in the same reads.
    pub bytes: Bytes,
    /// The head's own length.
    pub len: usize,
    /// How far the request goes past its head.
    pub body: Framing,
}

/// Where a request ends, as its head tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A body of exactly this many bytes (0: none).
    Length(u64),
    /// A chunked body: its end is found by decoding it.
    Chunked,
    /// The connection changes protocol once answered (CONNECT, `Upgrade`):
    /// what follows the head is not HTTP, or is not known to be.
    Opaque,
}

impl RequestHead {
    /// The bytes that belong to this request, counted from its first byte,
    /// when the head tells (`None` for a chunked or opaque one).
    pub fn extent(&self) -> Option<u64> {
        match self.body {
            Framing::Length(n) => (self.len as u64).checked_add(n),
            Framing::Chunked | Framing::Opaque => None,
        }
    }
}

/// Reads until the end of a request head (inclusive, plus whatever followed
/// in the same reads), starting with `already` (bytes read past the
/// previous request), and checks it, reading no more than `max_bytes` of
/// head. `stream` is the client's socket (or, in the fuzz targets, any byte
/// source).
pub async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    already: Bytes,
    max_bytes: usize,
) -> Result<RequestHead, HeadError> {
    let mut buf = BytesMut::from(already);
    if !buf.is_empty() {
        if let Some(head) = check(&buf)? {
            // Read ahead past the previous request: the same limit holds.
            if head.len > max_bytes {
                return Err(HeadError::TooLarge);
            }
            return Ok(head.with_bytes(buf.freeze()));
        }
    }
    let mut checked_start = !buf.is_empty();
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
            Err(_) => return Err(HeadError::Malformed(TRUNCATED)),
        };
        if n == 0 {
            return Err(if buf.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Malformed(TRUNCATED)
            });
        }
        let complete = head_end(&buf[scan_from..]).is_some();
        if complete || !checked_start {
            // Parse once early, to refuse garbage at once, and once the
            // blank line has arrived; never per byte.
            checked_start = true;
            if let Some(head) = check(&buf)? {
                return Ok(head.with_bytes(buf.freeze()));
            }
        }
    }
}

const TRUNCATED: &str = "the request head ended early";

/// A head checked, before its bytes are attached.
struct Checked {
    len: usize,
    body: Framing,
}

impl Checked {
    fn with_bytes(self, bytes: Bytes) -> RequestHead {
        RequestHead {
            bytes,
            len: self.len,
            body: self.body,
        }
    }
}

/// The head `buf` starts with, checked (`Ok(None)`: not whole yet).
fn check(buf: &[u8]) -> Result<Option<Checked>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed("not an HTTP/1 proxy request")),
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed("not an HTTP/1 proxy request"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("the method is not a token"))?;
    if target.len() > MAX_TARGET {
        return Err(HeadError::TooLarge);
    }
    if http::Uri::try_from(target).is_err() {
        return Err(HeadError::Malformed("the request target is not a URI"));
    }
    let body = framing(&method, version, request.headers)?;
    Ok(Some(Checked { len, body }))
}

/// The framing of the request's body, refusing what hyper would refuse:
/// a `Content-Length` that is not a number, two different ones, a
/// `Transfer-Encoding` whose last coding is not `chunked`, or one in an
/// HTTP/1.0 request.
fn framing(
    method: &Method,
    version: u8,
    headers: &[httparse::Header<'_>],
) -> Result<Framing, HeadError> {
    let mut length = None;
    let mut chunked = None;
    let mut upgrade = method == Method::CONNECT;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = digits(header.value)
                .ok_or(HeadError::Malformed("Content-Length is not a length"))?;
            if length.is_some_and(|seen| seen != n) {
                return Err(HeadError::Malformed("two different Content-Length values"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if version == 0 {
                return Err(HeadError::Malformed(
                    "an HTTP/1.0 request cannot carry Transfer-Encoding",
                ));
            }
            chunked = Some(last_coding_is_chunked(header.value));
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = version == 1;
        }
    }
    match chunked {
        Some(false) => Err(HeadError::Malformed(
            "a Transfer-Encoding other than chunked",
        )),
        _ if upgrade => Ok(Framing::Opaque),
        Some(true) => Ok(Framing::Chunked),
        None => Ok(Framing::Length(length.unwrap_or(0))),
    }
}

/// A decimal length: digits only, no sign, within what hyper frames.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |n, &b| {
            let digit = (b as char).to_digit(10)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
        .filter(|&n| n <= MAX_BODY)
}

fn last_coding_is_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
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

    async fn read_from(client_bytes: &'static [u8], max: usize) -> Result<RequestHead, HeadError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s.write_all(client_bytes).await;
            let _ = s.shutdown().await;
            s
        });
        let (mut server, _) = listener.accept().await.expect("accept");
        let result = read_head(&mut server, Bytes::new(), max).await;
        drop(client.await);
        result
    }

    #[tokio::test]
    async fn a_whole_head_is_returned_with_what_follows() {
        let bytes = read_from(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nxyz", 1024)
            .await
            .expect("head");
        assert!(bytes.bytes.ends_with(b"xyz"));
        assert_eq!(bytes.len, 35);
        assert_eq!(bytes.body, Framing::Length(0));
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        let err = read_from(b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 1024).await;
        assert!(matches!(err, Err(HeadError::Malformed(_))));
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
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(read_from(b"", 1024).await, Err(HeadError::Closed)));
    }

    fn checked(head: &str) -> Result<Framing, HeadError> {
        match check(head.as_bytes()) {
            Ok(Some(checked)) => Ok(checked.body),
            Ok(None) => panic!("{head:?} is whole"),
            Err(err) => Err(err),
        }
    }

    #[test]
    fn heads_hyper_would_refuse_are_malformed() {
        for head in [
            "GET http://a/ HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET http:///x HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(checked(head), Err(HeadError::Malformed(_))),
                "{head:?}"
            );
        }
    }

    #[test]
    fn the_framing_says_where_the_request_ends() {
        let cases = [
            ("GET http://a/ HTTP/1.1\r\n\r\n", Framing::Length(0)),
            (
                "POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
                Framing::Length(5),
            ),
            (
                "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Framing::Chunked,
            ),
            ("CONNECT a:443 HTTP/1.1\r\n\r\n", Framing::Opaque),
            (
                "GET http://a/ HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                Framing::Opaque,
            ),
            (
                "GET http://a/ HTTP/1.0\r\nUpgrade: websocket\r\n\r\n",
                Framing::Length(0),
            ),
        ];
        for (head, framing) in cases {
            assert_eq!(checked(head).ok(), Some(framing), "{head:?}");
        }
    }

    #[tokio::test]
    async fn bytes_read_ahead_are_the_start_of_the_next_head() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s.write_all(b"Host: a\r\n\r\n").await;
            s
        });
        let (mut server, _) = listener.accept().await.expect("accept");
        let already = Bytes::from_static(b"GET http://a/ HTTP/1.1\r\n");
        let head = read_head(&mut server, already, 1024).await.expect("head");
        assert_eq!(head.len, head.bytes.len());
        drop(client.await);
        let whole = Bytes::from_static(b"GET http://a/ HTTP/1.1\r\n\r\n");
        let oversized = read_head(&mut server, whole, 8).await;
        assert!(matches!(oversized, Err(HeadError::TooLarge)));
    }

    #[test]
    fn blank_line_detection() {
        assert_eq!(head_end(b"a\r\n\r\nb"), Some(5));
        assert_eq!(head_end(b"a\n\nb"), Some(3));
        assert_eq!(head_end(b"a\r\nb"), None);
    }
}
