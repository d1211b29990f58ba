//! Opaque tunnels on both relay paths: `splice(2)` between plain sockets
//! (the default) and buffers (`[server] splice_pipes = 0`, which is also
//! what a burst gets when the pipe pool is empty). CONNECT and SOCKS5,
//! direct and through plain-TCP upstream proxies, with bytes the client
//! sent before the tunnel was answered, half-close both ways, and the byte
//! counts in the metrics.

mod common;

use std::time::{Duration, Instant};

use common::clients::*;
use common::routes::CREDS;
use common::upstream::FakeUpstream;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(15);

/// Sent right after the CONNECT request, before its answer.
const EARLY: &[u8] = b"sent before the answer;";

/// The two relay paths: the config line, and whether bytes are spliced.
const PATHS: [(&str, bool); 2] = [("", true), ("splice_pipes = 0", false)];

fn payload() -> Vec<u8> {
    (0..(1u32 << 20) + 17).map(|i| (i % 253) as u8).collect()
}

/// Writes `bytes` then half-closes, while reading everything the tunnel
/// sends back until it closes.
async fn echo_through(stream: TcpStream, bytes: &[u8]) -> Vec<u8> {
    let (mut read, mut write) = tokio::io::split(stream);
    let send = async {
        write.write_all(bytes).await.expect("send");
        write.shutdown().await.expect("half-close");
    };
    let mut back = Vec::new();
    let receive = tokio::time::timeout(WITHIN, read.read_to_end(&mut back));
    let ((), received) = tokio::join!(send, receive);
    received.expect("echo in time").expect("echo");
    back
}

/// A CONNECT to the echo server written in one piece with [`EARLY`].
async fn connect_with_early_bytes(proxy: &Proxy, echo: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    let mut request = format!(
        "CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\nProxy-Authorization: {}\r\n\r\n",
        basic_auth()
    )
    .into_bytes();
    request.extend_from_slice(EARLY);
    stream.write_all(&request).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("head byte"));
    }
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{head:?}");
    stream
}

/// A SOCKS5 greeting, authentication, CONNECT and [`EARLY`] in one write.
async fn socks_with_early_bytes(proxy: &Proxy, echo: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.socks).await.expect("connect");
    let mut hello = vec![5, 1, 2, 1, 6];
    hello.extend_from_slice(b"acct-1");
    hello.push(SECRET.len() as u8);
    hello.extend_from_slice(SECRET.as_bytes());
    hello.extend_from_slice(&[5, 1, 0, 1, 127, 0, 0, 1]);
    hello.extend_from_slice(&echo.port().to_be_bytes());
    hello.extend_from_slice(EARLY);
    stream.write_all(&hello).await.expect("write");
    let mut answers = [0u8; 2 + 2 + 10];
    stream.read_exact(&mut answers).await.expect("answers");
    assert_eq!(&answers[..5], &[5, 2, 1, 0, 5], "auth accepted");
    assert_eq!(answers[5], 0, "CONNECT succeeded");
    stream
}

/// The sample of a series without labels, or of one exact label set.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .filter_map(|value| value.trim().parse::<u64>().ok())
        .sum()
}

/// The metrics once `listener`'s tunnels have moved `total` bytes each
/// way (the close-out runs when a relay ends).
async fn metrics_after(proxy: &Proxy, listener: &str, total: u64) -> String {
    let up = format!("pacer_bytes_total{{listener=\"{listener}\",direction=\"up\"}}");
    let down = format!("pacer_bytes_total{{listener=\"{listener}\",direction=\"down\"}}");
    let deadline = Instant::now() + WITHIN;
    loop {
        let text = proxy.metrics().await;
        if sample(&text, &up) == total && sample(&text, &down) == total {
            return text;
        }
        assert!(Instant::now() < deadline, "bytes counted: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connect_and_socks5_tunnels_on_both_relay_paths() {
    let echo = echo_server().await;
    let sent = payload();
    for (line, spliced) in PATHS {
        let proxy = Proxy::start(&base_config(line)).await;
        let expected = [EARLY, &sent].concat();
        let total = expected.len() as u64;

        let tunnel = connect_with_early_bytes(&proxy, echo).await;
        let back = echo_through(tunnel, &sent).await;
        assert!(back == expected, "CONNECT ({line:?}) changed the bytes");
        let text = metrics_after(&proxy, "http", total).await;
        // The early bytes were read with the request head: they go
        // through a buffer, every other byte through a pipe.
        let want = if spliced {
            2 * total - EARLY.len() as u64
        } else {
            0
        };
        assert_eq!(sample(&text, "pacer_spliced_bytes_total"), want, "{line:?}");

        let tunnel = socks_with_early_bytes(&proxy, echo).await;
        let back = echo_through(tunnel, &sent).await;
        assert!(back == expected, "SOCKS5 ({line:?}) changed the bytes");
        let text = metrics_after(&proxy, "socks5", total).await;
        let want = if spliced { 2 * want } else { 0 };
        assert_eq!(sample(&text, "pacer_spliced_bytes_total"), want, "{line:?}");
        proxy.stop().await;
    }
}

#[tokio::test]
async fn tunnels_through_plain_tcp_upstreams_on_both_relay_paths() {
    let echo = echo_server().await;
    let sent = payload();
    let http = FakeUpstream::http(CREDS).await;
    let socks = FakeUpstream::socks5(CREDS).await;
    for upstream in [&http, &socks] {
        for (line, spliced) in PATHS {
            let config = format!(
                "{}\n[[accounts]]\nid = \"routed\"\nsecret = \"{SECRET}\"\nupstream = \"{}\"\n",
                base_config(line),
                upstream.url()
            );
            let proxy = Proxy::start(&config).await;
            let tunnel = http_connect(&proxy, "routed", &authority(echo))
                .await
                .expect("tunnel through the upstream");
            let back = echo_through(tunnel, &sent).await;
            assert!(back == sent, "through {} ({line:?})", upstream.url());
            let (code, tunnel) = socks_connect(&proxy, "routed", "127.0.0.1", echo.port()).await;
            assert_eq!(code, 0);
            let back = echo_through(tunnel.expect("tunnel"), &sent).await;
            assert!(back == sent, "SOCKS5 through {} ({line:?})", upstream.url());
            let total = sent.len() as u64;
            metrics_after(&proxy, "http", total).await;
            let text = metrics_after(&proxy, "socks5", total).await;
            let want = if spliced { 4 * total } else { 0 };
            let got = sample(&text, "pacer_spliced_bytes_total");
            assert_eq!(got, want, "through {} ({line:?})", upstream.url());
            proxy.stop().await;
        }
    }
}
