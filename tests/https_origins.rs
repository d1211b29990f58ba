//! Egress to `https://` origins: an absolute-form `https://` request is
//! classified, admitted and routed like plain HTTP, and pacer opens TLS to
//! the origin itself (directly, or inside a tunnel through the account's
//! upstream), verified against `[tls] extra_roots`.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use common::routes::{custom_config, CREDS};
use common::upstream::{FakeUpstream, TestCa};
use common::{assert_envelope, assert_still_serving, base_config, Origin, Proxy, SECRET};

/// A TLS origin with a certificate of `ca`, answering `secure <path>`.
async fn tls_origin(ca: &TestCa) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = ca.acceptor();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let body = format!("secure {}", request.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// `GET https://127.0.0.1:PORT/path` in absolute-form as `account`.
async fn https_get(proxy: &Proxy, account: &str, origin: SocketAddr, path: &str) -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{SECRET}"));
    let request = format!(
        "GET https://{origin}{path} HTTP/1.1\r\nHost: {origin}\r\nProxy-Authorization: Basic {token}\r\nConnection: close\r\n\r\n"
    );
    common::raw_exchange(proxy.http, request.as_bytes(), Duration::from_secs(15)).await
}

fn body_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_https_origin_is_reached_directly_over_verified_tls() {
    let ca = TestCa::new();
    let origin = tls_origin(&ca).await;
    let proxy = Proxy::start(&format!("{}\n{}", base_config(""), ca.tls_section())).await;
    let raw = https_get(&proxy, "acct-1", origin, "/direct").await;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(body_of(&raw), "secure /direct");
    proxy.stop().await;
}

#[tokio::test]
async fn an_https_origin_is_reached_inside_a_tunnel_through_the_upstream() {
    let ca = TestCa::new();
    let origin = tls_origin(&ca).await;
    let upstream = FakeUpstream::http(CREDS).await;
    let config = custom_config(&upstream.url(), &ca.tls_section());
    let proxy = Proxy::start(&config).await;
    let raw = https_get(&proxy, "routed", origin, "/via").await;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(body_of(&raw), "secure /via");
    assert_eq!(
        upstream.targets(),
        [origin.to_string()],
        "one CONNECT to the origin"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn an_origin_certificate_that_fails_verification_is_a_provider_error() {
    let ca = TestCa::new();
    let origin = tls_origin(&ca).await;
    let plain = Origin::start().await;
    let proxy = Proxy::start(&base_config("")).await;
    let raw = https_get(&proxy, "acct-1", origin, "/x").await;
    assert_envelope(&raw, 502, "errors/provider_error");
    let detail = common::routes::detail(&raw);
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert_still_serving(&proxy, &plain).await;
    proxy.stop().await;
}
