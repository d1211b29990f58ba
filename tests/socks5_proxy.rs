//! The SOCKS5 listener end to end: RFC 1929 auth, bound (no-auth) listeners,
//! CONNECT to IPv4, IPv6 and domain targets, reply codes for every failure,
//! and bad input, each followed by a request that must still be served.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(10);

const ACCT: Option<(&str, &str)> = Some(("acct-1", SECRET));

#[tokio::test]
async fn password_auth_and_domain_or_ip_targets() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let port = origin.addr.port();
    let by_name = socks_get(proxy.socks, ACCT, "localhost", port, "/").await;
    assert_eq!(by_name.as_deref(), Ok("hello"));
    let by_ip = socks_get(proxy.socks, ACCT, "127.0.0.1", port, "/").await;
    assert_eq!(by_ip.as_deref(), Ok("hello"));
}

#[tokio::test]
async fn ipv6_targets() {
    let origin = Origin::start_v6().await;
    let proxy = Proxy::default().await;
    let body = socks_get(proxy.socks, ACCT, "::1", origin.addr.port(), "/").await;
    assert_eq!(body.as_deref(), Ok("hello"));
}

#[tokio::test]
async fn a_bound_listener_needs_no_credentials() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let port = origin.addr.port();
    let body = socks_get(proxy.bound_socks, None, "127.0.0.1", port, "/").await;
    assert_eq!(body.as_deref(), Ok("hello"));
    let mut raw = TcpStream::connect(proxy.bound_socks)
        .await
        .expect("connect");
    raw.write_all(&[5, 1, 2]).await.expect("greeting");
    let mut reply = [0u8; 2];
    raw.read_exact(&mut reply).await.expect("method reply");
    assert_eq!(reply, [5, 0xff], "a bound listener offers only no-auth");
}

#[tokio::test]
async fn wrong_credentials_get_status_1_and_a_closed_connection() {
    let origin = Origin::start().await;
    // A handshake timeout far beyond the read's: only pacer's own close
    // after the refusal ends the connection in time.
    let toml = base_config("").replace(
        "header_read_timeout = \"2s\"",
        "header_read_timeout = \"60s\"",
    );
    let proxy = Proxy::start(&toml).await;
    for (user, pass) in [
        (&b"acct-1"[..], &b"wrong"[..]),
        (b"nobody", SECRET.as_bytes()),
    ] {
        let mut stream = TcpStream::connect(proxy.socks).await.expect("connect");
        assert_eq!(socks_authenticate(&mut stream, user, pass).await, 1);
        assert!(read_until_close(&mut stream, WITHIN).await.is_empty());
    }
    let mut no_method = TcpStream::connect(proxy.socks).await.expect("connect");
    no_method.write_all(&[5, 1, 0]).await.expect("greeting");
    let mut reply = [0u8; 2];
    no_method.read_exact(&mut reply).await.expect("reply");
    assert_eq!(
        reply,
        [5, 0xff],
        "no-auth is not offered on an unbound listener"
    );
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn connect_replies_follow_the_spec() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let mut ok = TcpStream::connect(proxy.socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut ok, b"acct-1", SECRET.as_bytes()).await,
        0
    );
    assert_eq!(socks_command(&mut ok, 1, origin.addr).await, 0);
    let mut bind = TcpStream::connect(proxy.socks).await.expect("connect");
    socks_authenticate(&mut bind, b"acct-1", SECRET.as_bytes()).await;
    assert_eq!(socks_command(&mut bind, 2, origin.addr).await, 0x07, "BIND");
    let mut udp = TcpStream::connect(proxy.socks).await.expect("connect");
    socks_authenticate(&mut udp, b"acct-1", SECRET.as_bytes()).await;
    assert_eq!(
        socks_command(&mut udp, 3, origin.addr).await,
        0x07,
        "UDP ASSOCIATE"
    );
    let mut refused = TcpStream::connect(proxy.socks).await.expect("connect");
    socks_authenticate(&mut refused, b"acct-1", SECRET.as_bytes()).await;
    assert_eq!(
        socks_command(&mut refused, 1, closed_port().await).await,
        0x05
    );
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn unresolvable_domains_are_host_unreachable() {
    let proxy = Proxy::default().await;
    let mut stream = TcpStream::connect(proxy.socks).await.expect("connect");
    socks_authenticate(&mut stream, b"acct-1", SECRET.as_bytes()).await;
    let name = unresolvable_name();
    let mut request = vec![5, 1, 0, 3, name.len() as u8];
    request.extend_from_slice(name.as_bytes());
    request.extend_from_slice(&80u16.to_be_bytes());
    stream.write_all(&request).await.expect("command");
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply, [5, 0x04]);
}

#[tokio::test]
async fn garbage_and_truncated_handshakes_do_not_hurt() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let garbage = raw_exchange(proxy.socks, b"GET / HTTP/1.1\r\n\r\n", WITHIN).await;
    assert!(garbage.len() <= 2, "{garbage:?}");
    let mut truncated = TcpStream::connect(proxy.socks).await.expect("connect");
    truncated
        .write_all(&[5, 2, 2])
        .await
        .expect("half a greeting");
    drop(truncated);
    let mut cut = TcpStream::connect(proxy.socks).await.expect("connect");
    socks_authenticate(&mut cut, b"acct-1", SECRET.as_bytes()).await;
    cut.write_all(&[5, 1, 0, 1, 127])
        .await
        .expect("half a command");
    drop(cut);
    let mut silent = TcpStream::connect(proxy.socks).await.expect("connect");
    let closed = read_until_close(&mut silent, WITHIN).await;
    assert!(
        closed.is_empty(),
        "a silent client is dropped after the handshake timeout"
    );
    let body = socks_get(proxy.socks, ACCT, "localhost", origin.addr.port(), "/").await;
    assert_eq!(body.as_deref(), Ok("hello"));
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn over_max_connections_connect_gets_general_failure() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&base_config("max_connections = 1")).await;
    let holder = TcpStream::connect(proxy.http).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(proxy.socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut over, b"acct-1", SECRET.as_bytes()).await,
        0
    );
    assert_eq!(socks_command(&mut over, 1, origin.addr).await, 0x01);
    drop(holder);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = socks_get(proxy.socks, ACCT, "localhost", origin.addr.port(), "/").await;
    assert_eq!(body.as_deref(), Ok("hello"));
}
