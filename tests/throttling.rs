//! Throttling end to end (SPEC section 4 and the 429 envelope of section
//! 6): refusals through the HTTP and SOCKS5 listeners with their status,
//! headers and envelope, pacing, give-back, and the proxy serving on.

mod common;

use std::time::Duration;

use common::clients::client_as;
use common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::TcpStream;

/// Listeners, a `send` action (POST to `/send*` on 127.0.0.1), and `tail`
/// (policies and accounts).
fn config(tail: &str) -> String {
    format!(
        r#"
[server]
connect_timeout = "500ms"

[admin]
addr = "127.0.0.1:0"
api_keys = ["test-admin-key"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[[listeners]]
protocol = "socks5"
addr = "127.0.0.1:0"

[state]
path = "memory"

[[actions]]
name = "send"
methods = ["POST"]
hosts = ["127.0.0.1"]
paths = ["/send*"]

[[actions]]
name = "local"
hosts = ["127.0.0.1", "localhost"]

[policies.standard_policy]

{tail}

[[accounts]]
id = "acct-1"
secret = "{SECRET}"
policy = "limited"

[[accounts]]
id = "acct-2"
secret = "{SECRET}"
"#
    )
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn a_rolling_limit_refuses_with_429_and_the_ratelimit_headers() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(
        "[policies.limited]\nmode = \"reject\"\n[policies.limited.limits]\nsend_per_minute = 2\n",
    ))
    .await;
    let client = proxy.client();
    for _ in 0..2 {
        let ok = client
            .post(origin.url("/send"))
            .body("hi")
            .send()
            .await
            .expect("send");
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let refused = client
        .post(origin.url("/send/x"))
        .body("hi")
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&refused, "retry-after")
        .parse()
        .expect("whole seconds");
    assert!((59..=60).contains(&retry), "{retry}");
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"send_per_minute\";q=2;w=60"
    );
    let state = header(&refused, "ratelimit").to_owned();
    assert_eq!(state, format!("\"send_per_minute\";r=0;t={retry}"));
    assert!(refused.headers().contains_key("x-request-id"));
    let envelope: serde_json::Value = refused.json().await.expect("envelope");
    assert_eq!(envelope["type"], "errors/rate_limited");
    assert_eq!(envelope["status"], 429);
    let detail = envelope["detail"].as_str().expect("detail");
    assert!(
        detail.starts_with("send_per_minute (2) reached for account acct-1; retry in"),
        "{detail}"
    );
    let get = client.get(origin.url("/send")).send().await.expect("get");
    assert_eq!(get.status(), StatusCode::OK, "a GET is not a send");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn a_paced_request_waits_and_says_how_long() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(
        "[policies.limited]\nmode = \"pace\"\nmax_wait = \"10s\"\n[policies.limited.limits]\naccount_protection_seconds = 1\n",
    ))
    .await;
    let client = proxy.client();
    let first = client.get(origin.url("/")).send().await.expect("first");
    assert!(first.headers().get("x-pacer-waited").is_none());
    let second = client.get(origin.url("/")).send().await.expect("second");
    assert_eq!(second.status(), StatusCode::OK);
    let waited: u64 = header(&second, "x-pacer-waited").parse().expect("ms");
    assert!(waited > 0, "a paced response says it waited");
    let arrivals = origin.arrivals();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(900),
        "the origin saw the second request {gap:?} after the first, for a 1 s gap"
    );
}

#[tokio::test]
async fn tunnels_are_one_connect_request_and_refused_with_429_or_0x02() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(
        "[policies.limited]\n[policies.limited.limits]\nlocal_daily_cap = 2\n",
    ))
    .await;
    let connect = format!(
        "CONNECT {} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\nConnection: close\r\n\r\n",
        origin.addr,
        basic_auth()
    );
    let mut tunnel = TcpStream::connect(proxy.http).await.expect("connect");
    tunnel.write_all(connect.as_bytes()).await.expect("write");
    let mut head = [0u8; 12];
    tunnel.read_exact(&mut head).await.expect("head");
    assert_eq!(&head, b"HTTP/1.1 200");
    let port = origin.addr.port();
    let via_socks = socks_get(
        proxy.socks,
        Some(("acct-1", SECRET)),
        "localhost",
        port,
        "/",
    )
    .await;
    assert_eq!(via_socks.as_deref(), Ok("hello"), "second of two");
    let refused = raw_exchange(proxy.http, connect.as_bytes(), Duration::from_secs(5)).await;
    assert_envelope(&refused, 429, "errors/rate_limited");
    let (_, _, head) = parse_envelope(&refused);
    assert!(
        head.contains("ratelimit-policy: \"local_daily_cap\";q=2;w=86400"),
        "{head}"
    );
    let mut socks = TcpStream::connect(proxy.socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut socks, b"acct-1", SECRET.as_bytes()).await,
        0
    );
    assert_eq!(
        socks_command(&mut socks, 1, origin.addr).await,
        0x02,
        "connection not allowed"
    );
}

#[tokio::test]
async fn a_failed_dial_gives_back_the_daily_cap() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(
        "[policies.limited]\n[policies.limited.limits]\nall_daily_cap = 1\n",
    ))
    .await;
    let client = proxy.client();
    let dead = closed_port().await;
    for _ in 0..3 {
        let failed = client
            .get(format!("http://{dead}/"))
            .send()
            .await
            .expect("answered");
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    }
    let ok = client.get(origin.url("/")).send().await.expect("send");
    assert_eq!(ok.status(), StatusCode::OK, "failures consumed nothing");
    let refused = client.get(origin.url("/")).send().await.expect("send");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn concurrent_limit_and_batches_refuse_with_their_keys() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(
        "[policies.limited]\nmode = \"reject\"\n[policies.limited.limits]\nconcurrent_limit = 1\nbatch = 2\nbatch_hours = 0.5\n",
    ))
    .await;
    let client = proxy.client();
    let slow = {
        let client = client.clone();
        let url = origin.url("/slow/1500");
        tokio::spawn(async move { client.get(url).send().await?.text().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = client.get(origin.url("/")).send().await.expect("send");
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&busy, "ratelimit-policy"),
        "\"concurrent_limit\";q=1"
    );
    assert_eq!(slow.await.expect("task").expect("slow"), "slow");
    let second = client
        .get(origin.url("/"))
        .send()
        .await
        .expect("second of the batch");
    assert_eq!(second.status(), StatusCode::OK);
    let paused = client.get(origin.url("/")).send().await.expect("send");
    assert_eq!(paused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&paused, "ratelimit-policy"), "\"batch\";q=2;w=1800");
    assert_eq!(header(&paused, "retry-after"), "1800");
    let still = client.get(origin.url("/")).send().await.expect("send");
    assert_eq!(
        still.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the pause holds"
    );
    assert_eq!(header(&still, "ratelimit-policy"), "\"batch\";q=2;w=1800");
    let other = client_as(&proxy, "acct-2").get(origin.url("/")).send();
    let other = other.await.expect("send");
    assert_eq!(other.status(), StatusCode::OK, "another account is served");
    assert_eq!(other.text().await.expect("body"), "hello");
}
