//! HTTP and HTTPS proxies: the CONNECT handshake for tunnels, and the
//! `Proxy-Authorization: Basic` value sent with CONNECT and with every
//! absolute-form request (plain HTTP goes through the pooled client in
//! [`crate::egress::forward`], whose connections to the proxy are marked proxied so
//! hyper writes absolute-form targets).
//!
//! The handshake is written here rather than with hyper-util's `Tunnel`:
//! the envelope needs the proxy's status (`Tunnel` reports only
//! "unsuccessful"), and bytes a proxy sends right after its `200` are kept
//! and replayed (`Tunnel` drops them).

use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::{DestinationAnswer, UpstreamError, UpstreamErrorKind};
use crate::config::UpstreamUrl;
use crate::egress::target::Target;

/// Largest CONNECT answer head accepted.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Header lines accepted in a CONNECT answer.
const MAX_ANSWER_HEADERS: usize = 64;

/// `Basic base64(user:password)` for a proxy URL with a user name, marked
/// sensitive so hyper never logs it.
pub fn basic_credentials(url: &UpstreamUrl) -> Option<HeaderValue> {
    let user = url.username.as_deref()?;
    let password = url.password.as_ref().map_or("", |p| p.expose());
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Asks the proxy on `stream` to open a tunnel to `target`. On success,
/// returns the bytes the proxy sent after its answer head.
pub async fn connect<S>(
    stream: &mut S,
    target: &Target,
    authorization: Option<&HeaderValue>,
    upstream: &Arc<str>,
) -> Result<Bytes, UpstreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = connect_request(target, authorization);
    let written = async {
        stream.write_all(&request).await?;
        stream.flush().await
    };
    written
        .await
        .map_err(|err| UpstreamError::broken(upstream, format!("CONNECT not sent: {err}")))?;
    let (status, leftover) = read_answer(stream, upstream).await?;
    classify(status, leftover, target, upstream)
}

fn connect_request(target: &Target, authorization: Option<&HeaderValue>) -> Vec<u8> {
    let authority = target.to_string();
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(value) = authorization {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// Reads the answer head; returns its status and whatever followed it.
async fn read_answer<S>(stream: &mut S, upstream: &Arc<str>) -> Result<(u16, Bytes), UpstreamError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if buf.len() >= MAX_ANSWER_BYTES {
            return Err(UpstreamError::broken(
                upstream,
                "CONNECT answer head is too large",
            ));
        }
        let n = stream.read_buf(&mut buf).await.map_err(|err| {
            UpstreamError::broken(upstream, format!("CONNECT answer not read: {err}"))
        })?;
        if n == 0 {
            return Err(UpstreamError::broken(
                upstream,
                "closed the connection during the CONNECT handshake",
            ));
        }
        if let Some((status, head_len)) = parse_head(&buf, upstream)? {
            let leftover = buf.split_off(head_len).freeze();
            return Ok((status, leftover));
        }
    }
}

/// `Some((status, head length))` once the head is complete.
fn parse_head(buf: &[u8], upstream: &Arc<str>) -> Result<Option<(u16, usize)>, UpstreamError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            Ok(Some((status, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(UpstreamError::broken(
            upstream,
            "answered the CONNECT with something that is not HTTP",
        )),
    }
}

fn classify(
    status: u16,
    leftover: Bytes,
    target: &Target,
    upstream: &Arc<str>,
) -> Result<Bytes, UpstreamError> {
    match status {
        200..=299 => Ok(leftover),
        407 => Err(UpstreamError::new(
            upstream,
            UpstreamErrorKind::CredentialsRejected("HTTP 407".into()),
        )),
        _ => Err(UpstreamError::new(
            upstream,
            UpstreamErrorKind::Destination {
                target: target.to_string(),
                answer: DestinationAnswer::HttpStatus(status),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> Arc<str> {
        Arc::from("proxy:3128")
    }

    /// Runs the handshake against a scripted proxy answer; returns the
    /// result and what the proxy received.
    async fn handshake(answer: &'static [u8]) -> (Result<Bytes, UpstreamError>, String) {
        let (mut ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let proxy = tokio::spawn(async move {
            let mut got = vec![0u8; 4096];
            let n = theirs.read(&mut got).await.expect("read request");
            theirs.write_all(answer).await.expect("answer");
            drop(theirs);
            String::from_utf8_lossy(&got[..n]).into_owned()
        });
        let url: UpstreamUrl = "http://us%40er:pa:ss@proxy:3128".parse().expect("url");
        let auth = basic_credentials(&url);
        let target = Target::new("example.com", 443);
        let result = connect(&mut ours, &target, auth.as_ref(), &label()).await;
        (result, proxy.await.expect("proxy"))
    }

    #[tokio::test]
    async fn success_keeps_the_bytes_after_the_head() {
        let (result, request) =
            handshake(b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0").await;
        assert_eq!(result.expect("tunnel"), Bytes::from_static(b"SSH-2.0"));
        assert!(request.starts_with("CONNECT example.com:443 HTTP/1.1\r\n"));
        assert!(request.contains("Host: example.com:443\r\n"));
        // base64("us@er:pa:ss")
        assert!(request.contains("Proxy-Authorization: Basic dXNAZXI6cGE6c3M=\r\n"));
    }

    #[tokio::test]
    async fn answers_are_classified() {
        let (result, _) = handshake(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
        let err = result.expect_err("407");
        assert!(matches!(
            err.kind,
            UpstreamErrorKind::CredentialsRejected(_)
        ));
        let (result, _) = handshake(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await;
        let err = result.expect_err("502");
        assert!(!err.is_upstream_failure());
        assert!(err.to_string().contains("CONNECT answered 502"), "{err}");
        let (result, _) = handshake(b"HTTP/1.1 200 OK\r\n").await;
        assert!(result.expect_err("cut").is_upstream_failure());
        let (result, _) = handshake(b"\x05\x00garbage\r\n\r\n").await;
        assert!(result.expect_err("garbage").is_upstream_failure());
    }

    #[test]
    fn no_user_no_header() {
        let url: UpstreamUrl = "http://proxy:3128".parse().expect("url");
        assert!(basic_credentials(&url).is_none());
    }
}
