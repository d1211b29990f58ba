//! Every request head on an HTTP connection is pacer's to read (SPEC
//! sections 3 and 6): a head hyper would refuse, the first or a later one
//! on a keep-alive connection, sent on its own or pipelined behind another,
//! gets pacer's envelope, never a bare status line; and pipelined requests
//! are each answered, in order.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(10);

/// Heads hyper parses and refuses with its own bare 400, each with the
/// envelope pacer answers instead.
fn refused_heads(origin: &Origin) -> Vec<(String, u16, &'static str)> {
    let url = origin.url("/");
    let auth = basic_auth();
    let malformed = "errors/malformed_request";
    vec![
        (
            format!("GET {url} HTTP/1.1\r\nProxy-Authorization: {auth}\r\nContent-Length: abc\r\n\r\n"),
            400,
            malformed,
        ),
        (
            format!("POST {url} HTTP/1.1\r\nProxy-Authorization: {auth}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
            400,
            malformed,
        ),
        (
            format!("POST {url} HTTP/1.1\r\nProxy-Authorization: {auth}\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400,
            malformed,
        ),
        (
            format!("GET http:///x HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"),
            400,
            malformed,
        ),
        ("\x16\x03\x01\x00\x7f\x00garbage\r\n\r\n".to_owned(), 400, malformed),
        (
            format!(
                "GET {url} HTTP/1.1\r\nProxy-Authorization: {auth}\r\nX-Big: {}\r\n\r\n",
                "a".repeat(70_000)
            ),
            431,
            "errors/headers_too_large",
        ),
    ]
}

fn good_request(origin: &Origin, path: &str) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\n\r\n",
        origin.url(path),
        basic_auth()
    )
}

/// Reads one response (head, and a `Content-Length` body) off `stream`.
async fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("read head");
            assert_eq!(n, 1, "closed mid-head: {:?}", String::from_utf8_lossy(&raw));
            raw.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.expect("read body");
        raw.extend_from_slice(&body);
        raw
    };
    tokio::time::timeout(WITHIN, read)
        .await
        .expect("a response in time")
}

fn assert_hello(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello"),
        "{text}"
    );
}

#[tokio::test]
async fn a_first_head_hyper_would_refuse_gets_an_envelope() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    for (head, status, kind) in refused_heads(&origin) {
        let raw = raw_exchange(proxy.http, head.as_bytes(), WITHIN).await;
        assert_envelope(&raw, status, kind);
        assert_still_serving(&proxy, &origin).await;
    }
}

#[tokio::test]
async fn a_later_head_on_a_keep_alive_connection_gets_an_envelope() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    for (head, status, kind) in refused_heads(&origin) {
        let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
        for _ in 0..2 {
            stream
                .write_all(good_request(&origin, "/").as_bytes())
                .await
                .expect("write");
            assert_hello(&read_response(&mut stream).await);
        }
        stream.write_all(head.as_bytes()).await.expect("write");
        let raw = read_until_close(&mut stream, WITHIN).await;
        assert_envelope(&raw, status, kind);
    }
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn a_bad_head_pipelined_behind_a_good_one_gets_an_envelope_after_its_answer() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    for (head, status, kind) in refused_heads(&origin) {
        let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
        let both = format!("{}{head}", good_request(&origin, "/"));
        stream.write_all(both.as_bytes()).await.expect("write");
        assert_hello(&read_response(&mut stream).await);
        let raw = read_until_close(&mut stream, WITHIN).await;
        assert_envelope(&raw, status, kind);
    }
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    let auth = basic_auth();
    let post = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {auth}\r\nContent-Length: 5\r\n\r\nabcde",
        origin.url("/echo")
    );
    let all = format!(
        "{}{post}{}",
        good_request(&origin, "/bytes/3"),
        good_request(&origin, "/")
    );
    stream.write_all(all.as_bytes()).await.expect("write");
    let first = String::from_utf8_lossy(&read_response(&mut stream).await).into_owned();
    assert!(first.ends_with("\r\n\r\nxxx"), "{first}");
    let echo = String::from_utf8_lossy(&read_response(&mut stream).await).into_owned();
    assert!(echo.contains("\"body_len\":5"), "{echo}");
    assert_hello(&read_response(&mut stream).await);
    // And the connection goes on.
    stream
        .write_all(good_request(&origin, "/").as_bytes())
        .await
        .expect("write");
    assert_hello(&read_response(&mut stream).await);
}

#[tokio::test]
async fn a_chunked_upload_keeps_its_connection() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    let post = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        origin.url("/echo"),
        basic_auth()
    );
    stream.write_all(post.as_bytes()).await.expect("write");
    let echo = String::from_utf8_lossy(&read_response(&mut stream).await).into_owned();
    assert!(echo.contains("\"body_len\":5"), "{echo}");
    stream
        .write_all(good_request(&origin, "/").as_bytes())
        .await
        .expect("write");
    assert_hello(&read_response(&mut stream).await);
}

#[tokio::test]
async fn a_refused_upload_sent_whole_keeps_its_connection() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    // No credentials: 407 before the body is read; the body is then
    // drained and the next request is served on the same connection.
    let post = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde",
        origin.url("/echo")
    );
    stream.write_all(post.as_bytes()).await.expect("write");
    assert_envelope(
        &read_response(&mut stream).await,
        407,
        "errors/missing_credentials",
    );
    stream
        .write_all(good_request(&origin, "/").as_bytes())
        .await
        .expect("write");
    assert_hello(&read_response(&mut stream).await);
}

#[tokio::test]
async fn a_later_head_that_never_ends_gets_a_timeout_envelope() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    stream
        .write_all(good_request(&origin, "/").as_bytes())
        .await
        .expect("write");
    assert_hello(&read_response(&mut stream).await);
    stream
        .write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nX-Slow: ")
        .await
        .expect("write");
    let raw = read_until_close(&mut stream, WITHIN).await;
    assert_envelope(&raw, 408, "errors/request_timeout");
    assert_still_serving(&proxy, &origin).await;
}
