//! Upstream routing end to end (SPEC section 5): loopback upstream proxies
//! of every kind, with and without credentials, reached from both
//! listeners; failover within a country pool, cooldown and recovery; and
//! every failure's envelope and SOCKS5 reply, each followed by a request
//! that must still be served.

mod common;

use common::clients::*;
use common::routes::*;
use common::upstream::{FakeUpstream, TestCa};
use common::*;

/// Plain HTTP, CONNECT and SOCKS5 through `upstream` as account `routed`.
async fn assert_every_path_works(proxy: &Proxy, upstream: &FakeUpstream) {
    let origin = Origin::start().await;
    let client = client_as(proxy, "routed");
    for _ in 0..3 {
        let echo: serde_json::Value = client
            .get(origin.url("/echo"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(echo["uri"], "/echo");
        assert!(
            echo["headers"].get("proxy-authorization").is_none(),
            "{echo}"
        );
    }
    let echo = echo_server().await;
    let mut tunnel = http_connect(proxy, "routed", &authority(echo))
        .await
        .expect("CONNECT tunnel");
    assert_echoes(&mut tunnel).await;
    let port = origin.addr.port();
    let body = socks_get(
        proxy.socks,
        Some(("routed", SECRET)),
        "localhost",
        port,
        "/",
    )
    .await;
    assert_eq!(body.as_deref(), Ok("hello"));
    let targets = upstream.targets();
    assert!(targets.contains(&origin.addr.to_string()), "{targets:?}");
    assert!(targets.contains(&echo.to_string()), "{targets:?}");
    let unresolved = format!("localhost:{port}");
    assert!(
        targets.contains(&unresolved),
        "names go unresolved: {targets:?}"
    );
}

#[tokio::test]
async fn http_upstream_with_credentials_carries_every_path() {
    let upstream = FakeUpstream::http(CREDS).await;
    let proxy = Proxy::start(&custom_config(&upstream.url(), "")).await;
    assert_every_path_works(&proxy, &upstream).await;
    assert_eq!(upstream.targets().len(), 5);
    // Three plain GETs over one pooled connection, plus two tunnels.
    assert_eq!(
        upstream.connections(),
        3,
        "plain HTTP reuses its connection"
    );
}

#[tokio::test]
async fn https_upstream_verified_by_extra_roots() {
    let ca = TestCa::new();
    let upstream = FakeUpstream::https(&ca, CREDS).await;
    let proxy = Proxy::start(&custom_config(&upstream.url(), &ca.tls_section())).await;
    assert_every_path_works(&proxy, &upstream).await;
}

#[tokio::test]
async fn https_upstream_with_an_unknown_certificate_is_a_proxy_error() {
    let ca = TestCa::new();
    let upstream = FakeUpstream::https(&ca, None).await;
    let origin = Origin::start().await;
    let proxy = Proxy::start(&custom_config(&upstream.url(), "")).await;
    let raw = raw_get(&proxy, "routed", &origin.url("/")).await;
    assert_envelope(&raw, 502, "errors/proxy_error");
    assert!(detail(&raw).contains("TLS"), "{}", detail(&raw));
    assert_still_serving(&proxy, &origin).await;
}

#[tokio::test]
async fn socks5_upstream_with_credentials_carries_every_path() {
    let upstream = FakeUpstream::socks5(CREDS).await;
    let proxy = Proxy::start(&custom_config(&upstream.url(), "")).await;
    assert_every_path_works(&proxy, &upstream).await;
}

#[tokio::test]
async fn upstreams_without_credentials_work_too() {
    for upstream in [
        FakeUpstream::http(None).await,
        FakeUpstream::socks5(None).await,
    ] {
        let proxy = Proxy::start(&custom_config(&upstream.url(), "")).await;
        assert_every_path_works(&proxy, &upstream).await;
    }
}

#[tokio::test]
async fn rejected_credentials_are_invalid_proxy_credentials() {
    let ca = TestCa::new();
    let upstreams = [
        FakeUpstream::http(CREDS).await,
        FakeUpstream::https(&ca, CREDS).await,
        FakeUpstream::socks5(CREDS).await,
    ];
    for upstream in upstreams {
        let url = upstream.url_with("up-user", "wrong");
        let proxy = Proxy::start(&custom_config(&url, &ca.tls_section())).await;
        let detail =
            assert_every_path_fails(&proxy, 502, "errors/invalid_proxy_credentials", 0x01).await;
        assert!(!detail.contains("wrong"), "no password in {detail}");
    }
}

#[tokio::test]
async fn a_dead_upstream_is_a_proxy_error() {
    let dead = closed_port().await;
    for scheme in ["http", "socks5"] {
        let proxy = Proxy::start(&custom_config(&format!("{scheme}://u:p@{dead}"), "")).await;
        let detail = assert_every_path_fails(&proxy, 502, "errors/proxy_error", 0x01).await;
        assert!(detail.contains("1 upstream tried"), "{detail}");
    }
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    for scheme in ["socks5", "http"] {
        let silent = FakeUpstream::silent(scheme).await;
        let proxy = Proxy::start(&custom_config(&silent.url(), "")).await;
        // Through an HTTP proxy a plain request only waits for its answer
        // (idle_timeout): also a 504.
        assert_every_path_fails(&proxy, 504, "errors/request_timeout", 0x04).await;
    }
}

#[tokio::test]
async fn an_upstream_that_hangs_up_mid_handshake_is_a_proxy_error() {
    for scheme in ["http", "socks5"] {
        let dropping = FakeUpstream::dropping(scheme).await;
        let proxy = Proxy::start(&custom_config(&dropping.url(), "")).await;
        assert_every_path_fails(&proxy, 502, "errors/proxy_error", 0x01).await;
    }
}
