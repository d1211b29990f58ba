//! The HTTP listener end to end (SPEC sections 3 and 6): absolute-form
//! forwarding, CONNECT tunnels, credentials, and every error envelope, each
//! followed by a request that must still be served.

mod common;

use std::time::Duration;

use common::clients::{assert_echoes, authority, http_connect, socks_connect};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn forwards_absolute_form_and_strips_proxy_headers() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let echo: serde_json::Value = proxy
        .client()
        .get(origin.url("/echo?q=1"))
        .header("Connection", "X-Hop")
        .header("X-Hop", "secret")
        .header("Proxy-Connection", "keep-alive")
        .header("X-Kept", "yes")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["uri"], "/echo?q=1", "origin sees origin-form");
    let headers = &echo["headers"];
    assert_eq!(headers["host"], origin.addr.to_string());
    assert_eq!(headers["x-kept"], "yes");
    for gone in ["proxy-authorization", "proxy-connection", "x-hop"] {
        assert!(headers.get(gone).is_none(), "{gone} leaked: {headers}");
    }
}

/// The origin gets one `Host`, the URI's authority, whatever the client
/// sent: none, another, the same twice, or the same then another.
#[tokio::test]
async fn host_is_the_uri_authority_once() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let authority = origin.addr.to_string();
    for sent in [
        String::new(),
        "Host: elsewhere.example\r\n".to_owned(),
        format!("Host: {authority}\r\nHost: {authority}\r\n"),
        format!("Host: {authority}\r\nHost: elsewhere.example\r\n"),
    ] {
        let request = format!(
            "GET {} HTTP/1.1\r\n{sent}Proxy-Authorization: {}\r\nConnection: close\r\n\r\n",
            origin.url("/echo"),
            basic_auth()
        );
        let raw = raw_exchange(proxy.http, request.as_bytes(), WITHIN).await;
        let text = String::from_utf8_lossy(&raw);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let echo: serde_json::Value = serde_json::from_str(body).expect("echo json");
        assert_eq!(echo["headers"]["host"], authority, "sent {sent:?}");
        assert_eq!(echo["host_count"], 1, "sent {sent:?}");
    }
}

#[tokio::test]
async fn streams_bodies_both_ways() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let client = proxy.client();
    let big = client
        .get(origin.url("/bytes/1048576"))
        .send()
        .await
        .expect("send");
    assert_eq!(big.bytes().await.expect("body").len(), 1 << 20);
    let chunked = client
        .get(origin.url("/chunked/300000"))
        .send()
        .await
        .expect("send");
    assert_eq!(chunked.bytes().await.expect("body").len(), 300_000);
    let upload: serde_json::Value = client
        .post(origin.url("/echo"))
        .body(vec![7u8; 200_000])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(upload["body_len"], 200_000);
    assert_eq!(upload["method"], "POST");
}

#[tokio::test]
async fn keeps_client_connections_alive_and_pools_origin_connections() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    for _ in 0..3 {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nProxy-Authorization: {}\r\n\r\n",
            origin.url("/"),
            origin.addr,
            basic_auth()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut buf = vec![0; 4096];
        let n = tokio::time::timeout(WITHIN, stream.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("hello"), "{text}");
    }
    assert_eq!(origin.hits(), 3);
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pooled origin connection served all three"
    );
}

#[tokio::test]
async fn connect_tunnels_carry_bytes_both_ways_with_half_close() {
    let echo = echo_server().await;
    // An idle timeout far beyond the read's: only the echo server's close,
    // passed on by pacer, ends the tunnel in time.
    let proxy =
        Proxy::start(&base_config("").replace("idle_timeout = \"3s\"", "idle_timeout = \"60s\""))
            .await;
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    let request = format!(
        "CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\nProxy-Authorization: {}\r\n\r\n",
        basic_auth()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    stream
        .write_all(b"ping through the tunnel")
        .await
        .expect("write");
    stream.shutdown().await.expect("half-close");
    let back = read_until_close(&mut stream, WITHIN).await;
    assert_eq!(back, b"ping through the tunnel");
}

/// Reads a response head byte by byte, up to and including the blank line.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WITHIN, stream.read_u8())
            .await
            .expect("head in time")
            .expect("head byte");
        head.push(byte);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let request = |auth: &str| {
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n",
            origin.url("/")
        )
    };
    let missing = raw_exchange(proxy.http, request("").as_bytes(), WITHIN).await;
    assert_envelope(&missing, 407, "errors/missing_credentials");
    let (_, _, head) = parse_envelope(&missing);
    assert!(
        head.contains("proxy-authenticate: basic realm=\"pacer\""),
        "{head}"
    );
    let wrong = request("Proxy-Authorization: Basic YWNjdC0xOndyb25n\r\n");
    let wrong = raw_exchange(proxy.http, wrong.as_bytes(), WITHIN).await;
    assert_envelope(&wrong, 407, "errors/invalid_credentials");
    assert_eq!(origin.hits(), 0);
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn origin_form_is_a_malformed_request() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let raw = raw_exchange(proxy.http, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", WITHIN).await;
    assert_envelope(&raw, 400, "errors/malformed_request");
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn unreachable_destinations_are_provider_errors() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let dead = closed_port().await;
    assert_get_envelope(
        &proxy,
        format!("http://{dead}/"),
        502,
        "errors/provider_error",
    )
    .await;
    let connect = format!(
        "CONNECT {dead} HTTP/1.1\r\nHost: {dead}\r\nProxy-Authorization: {}\r\nConnection: close\r\n\r\n",
        basic_auth()
    );
    let raw = raw_exchange(proxy.http, connect.as_bytes(), Duration::from_secs(2)).await;
    assert_envelope(&raw, 502, "errors/provider_error");
    let unknown = proxy
        .client()
        .get(format!("http://{}/", unresolvable_name()))
        .send()
        .await
        .expect("answered");
    assert_eq!(unknown.status(), 502);
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn a_destination_that_never_answers_the_handshake_is_a_504() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let (blackhole, _keep) = blackhole().await;
    assert_get_envelope(
        &proxy,
        format!("http://{blackhole}/"),
        504,
        "errors/request_timeout",
    )
    .await;
    assert_still_serving(&proxy, &origin).await;
}

/// A GET through the proxy that must be answered with this envelope.
async fn assert_get_envelope(proxy: &Proxy, url: impl reqwest::IntoUrl, status: u16, kind: &str) {
    let response = proxy.client().get(url).send().await.expect("answered");
    assert_eq!(response.status(), status);
    let json: serde_json::Value = response.json().await.expect("envelope");
    assert_eq!(json["type"], kind, "{json}");
}

/// A loopback address whose SYNs go unanswered: a listener with a full
/// accept queue that never accepts (Linux drops further SYNs), kept open
/// with the connections that fill it while the second value lives.
async fn blackhole() -> (
    std::net::SocketAddr,
    (tokio::net::TcpListener, Vec<TcpStream>),
) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => return (addr, (listener, fillers)),
        }
    }
    panic!(
        "a listen backlog of 0 still took {} connections",
        fillers.len()
    )
}

#[tokio::test]
async fn garbage_and_oversized_heads_get_envelopes() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let garbage = raw_exchange(
        proxy.http,
        b"\x16\x03\x01\x00\xff\x00garbage\r\n\r\n",
        WITHIN,
    )
    .await;
    assert_envelope(&garbage, 400, "errors/malformed_request");
    let mut huge = format!("GET {} HTTP/1.1\r\nX-Big: ", origin.url("/")).into_bytes();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let raw = raw_exchange(proxy.http, &huge, WITHIN).await;
    assert_envelope(&raw, 431, "errors/headers_too_large");
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn a_slow_head_is_cut_off_while_others_are_served() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&base_config("")).await;
    let mut slow = TcpStream::connect(proxy.http).await.expect("connect");
    slow.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nX-Slow: ")
        .await
        .expect("write");
    assert_still_serving(&proxy, &origin).await;
    let answer = read_until_close(&mut slow, WITHIN).await;
    assert_envelope(&answer, 408, "errors/request_timeout");
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_idle_timeout() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\n\r\n",
        origin.url("/"),
        basic_auth()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(WITHIN, stream.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "pacer closes the idle keep-alive connection"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello"),
        "{text}"
    );
    // idle_timeout is 3s in the test config; header_read_timeout (2s) must
    // not be what closed it.
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
}

/// Every one of many connections idle after one answered GET is closed
/// by `idle_timeout`, even where `header_read_timeout` is longer (the
/// first head's deadline must not outlive the head).
#[tokio::test]
async fn every_idle_connection_closes_at_idle_timeout_not_the_head_deadline() {
    let origin = Origin::start().await;
    let config = base_config("")
        .replace(
            "header_read_timeout = \"2s\"",
            "header_read_timeout = \"30s\"",
        )
        .replace("idle_timeout = \"3s\"", "idle_timeout = \"1s\"");
    let proxy = Proxy::start(&config).await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\n\r\n",
        origin.url("/"),
        basic_auth()
    );
    let http = proxy.http;
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(http).await.expect("connect");
                stream.write_all(request.as_bytes()).await.expect("write");
                let mut answer = Vec::new();
                let closed = tokio::time::timeout(WITHIN, stream.read_to_end(&mut answer)).await;
                (
                    closed.is_ok(),
                    String::from_utf8_lossy(&answer).into_owned(),
                )
            })
        })
        .collect();
    for client in clients {
        let (closed, text) = client.await.expect("client task");
        assert!(
            closed,
            "an idle keep-alive connection outlived idle_timeout"
        );
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("hello"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn over_max_connections_is_service_unavailable() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&base_config("max_connections = 2")).await;
    let first = TcpStream::connect(proxy.http).await.expect("connect");
    let second = TcpStream::connect(proxy.http).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    let raw = raw_exchange(proxy.http, request.as_bytes(), WITHIN).await;
    assert_envelope(&raw, 503, "errors/service_unavailable");
    drop((first, second));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_finishes_in_flight_requests() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let client = proxy.client();
    let url = origin.url("/slow/800");
    let in_flight = tokio::spawn(async move { client.get(url).send().await?.text().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = proxy.http;
    let stopping = tokio::spawn(proxy.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(http).await.is_err(),
        "listener must be closed"
    );
    let body = in_flight
        .await
        .expect("task")
        .expect("in-flight request finished");
    assert_eq!(body, "slow");
    assert!(
        stopping.await.expect("stop task"),
        "drained within the grace period"
    );
}

/// The binary's layout (one runtime per core, each with its own copy of
/// every listener): requests, tunnels on both listeners, then a clean stop
/// that joins the threads.
#[tokio::test]
async fn per_core_ingress_threads_serve_every_door_and_stop() {
    let origin = Origin::start().await;
    let echo = echo_server().await;
    let proxy = Proxy::start_per_core(&base_config("")).await;
    let client = proxy.client();
    for _ in 0..8 {
        let fresh = client.get(origin.url("/")).send().await.expect("send");
        assert_eq!(fresh.text().await.expect("body"), "hello");
    }
    let mut tunnel = http_connect(&proxy, "acct-1", &authority(echo))
        .await
        .expect("CONNECT tunnel");
    assert_echoes(&mut tunnel).await;
    let (reply, socks) = socks_connect(&proxy, "acct-1", "127.0.0.1", echo.port()).await;
    assert_eq!(reply, 0);
    assert_echoes(&mut socks.expect("socks tunnel")).await;
    drop((tunnel, client));
    let drained = tokio::time::timeout(WITHIN, proxy.stop()).await;
    assert_eq!(drained.ok(), Some(true), "stops within the grace period");
}
