//! Client-side helpers for any account: a reqwest client through the HTTP
//! listener, a raw absolute-form GET, a raw CONNECT and a raw SOCKS5
//! CONNECT that report exactly what pacer answered.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{read_until_close, Proxy, SECRET};

const WITHIN: Duration = Duration::from_secs(15);

/// A reqwest client through the HTTP listener as `account` (secret
/// [`SECRET`]).
pub fn client_as(proxy: &Proxy, account: &str) -> reqwest::Client {
    let url = format!("http://{account}:{SECRET}@{}", proxy.http);
    let proxy = reqwest::Proxy::http(url).expect("proxy url");
    reqwest::Client::builder()
        .proxy(proxy)
        .build()
        .expect("client")
}

fn basic(account: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{SECRET}"));
    format!("Basic {token}")
}

/// An absolute-form GET of `url` as `account`, with `Connection: close`;
/// returns the whole raw answer.
pub async fn raw_get(proxy: &Proxy, account: &str, url: &str) -> Vec<u8> {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    let request = format!(
        "GET {url} HTTP/1.1\r\nHost: {host}\r\nProxy-Authorization: {}\r\nConnection: close\r\n\r\n",
        basic(account)
    );
    super::raw_exchange(proxy.http, request.as_bytes(), WITHIN).await
}

/// CONNECT to `target` as `account`: the open tunnel, or pacer's whole
/// raw refusal.
pub async fn http_connect(
    proxy: &Proxy,
    account: &str,
    target: &str,
) -> Result<TcpStream, Vec<u8>> {
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    let request = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {}\r\nConnection: close\r\n\r\n",
        basic(account)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(WITHIN, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return Err(head),
        }
    }
    if head.starts_with(b"HTTP/1.1 200") {
        return Ok(stream);
    }
    head.extend(read_until_close(&mut stream, WITHIN).await);
    Err(head)
}

/// SOCKS5 CONNECT to `host:port` (a domain, or an IPv4 literal) as
/// `account`: the reply code, and the stream when it is 0.
pub async fn socks_connect(
    proxy: &Proxy,
    account: &str,
    host: &str,
    port: u16,
) -> (u8, Option<TcpStream>) {
    let mut stream = TcpStream::connect(proxy.socks).await.expect("connect");
    stream.write_all(&[5, 1, 2]).await.expect("greeting");
    let mut method = [0u8; 2];
    stream.read_exact(&mut method).await.expect("method");
    let mut auth = vec![1, account.len() as u8];
    auth.extend_from_slice(account.as_bytes());
    auth.push(SECRET.len() as u8);
    auth.extend_from_slice(SECRET.as_bytes());
    stream.write_all(&auth).await.expect("auth");
    let mut status = [0u8; 2];
    stream.read_exact(&mut status).await.expect("auth status");
    assert_eq!(status, [1, 0], "pacer accepts {account}");
    stream
        .write_all(&connect_request(host, port))
        .await
        .expect("command");
    let reply = read_reply(&mut stream).await;
    (reply, (reply == 0).then_some(stream))
}

fn connect_request(host: &str, port: u16) -> Vec<u8> {
    let mut request = vec![5, 1, 0];
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            request.extend_from_slice(&[3, host.len() as u8]);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    request
}

async fn read_reply(stream: &mut TcpStream) -> u8 {
    let mut head = [0u8; 4];
    let read = tokio::time::timeout(WITHIN, stream.read_exact(&mut head)).await;
    assert!(matches!(read, Ok(Ok(_))), "no SOCKS5 reply");
    let len = match head[3] {
        4 => 16 + 2,
        _ => 4 + 2,
    };
    let mut rest = vec![0u8; len];
    let _ = stream.read_exact(&mut rest).await;
    head[1]
}

/// Writes `ping` into a tunnel to the echo server and expects it back.
pub async fn assert_echoes(stream: &mut TcpStream) {
    stream.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tokio::time::timeout(WITHIN, stream.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&back, b"ping");
}

/// `127.0.0.1:port` of an address, for CONNECT targets.
pub fn authority(addr: SocketAddr) -> String {
    addr.to_string()
}
