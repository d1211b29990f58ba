//! Country pools (SPEC section 5): failover to the next upstream while
//! nothing of the request reached the origin, cooldown of failed upstreams
//! and their return, sticky and round-robin choice, attempt counting, and
//! destinations an upstream could not reach (no failover, no cooldown).

mod common;

use std::time::Duration;

use common::clients::*;
use common::routes::*;
use common::upstream::FakeUpstream;
use common::*;
use pacer::config::UpstreamUrl;
use pacer::egress::route::first_choice;
use tokio::time::Instant;

const COOLDOWN_30S: &str = "failure_cooldown = \"30s\"";

/// Opens a CONNECT tunnel as `routed` and checks it echoes.
async fn tunnel_works(proxy: &Proxy) {
    let echo = echo_server().await;
    let mut tunnel = http_connect(proxy, "routed", &authority(echo))
        .await
        .unwrap_or_else(|raw| panic!("tunnel refused: {}", String::from_utf8_lossy(&raw)));
    assert_echoes(&mut tunnel).await;
}

/// A URL of `dead` (user names vary its identity) that `routed` tries
/// before `live`.
fn first_choice_of_routed(dead: &FakeUpstream, live: &str) -> String {
    let parse = |url: &str| url.parse::<UpstreamUrl>().expect("upstream url");
    (0..1000)
        .map(|i| dead.url_with(&format!("u{i}"), "p"))
        .find(|url| first_choice("routed", &[parse(url), parse(live)]) == Some(0))
        .expect("some user name puts the dead member first")
}

#[tokio::test]
async fn a_pool_with_a_dead_member_succeeds_and_sticks_to_the_live_one() {
    let dead = FakeUpstream::dropping("http").await;
    let live = FakeUpstream::http(None).await;
    let dead_first = first_choice_of_routed(&dead, &live.url());
    let toml = pool_config(&[dead_first, live.url()], COOLDOWN_30S);
    let proxy = Proxy::start(&toml).await;
    let origin = Origin::start().await;
    let client = client_as(&proxy, "routed");
    for _ in 0..3 {
        let body = client.get(origin.url("/")).send().await.expect("get");
        assert_eq!(body.text().await.expect("body"), "hello");
        tunnel_works(&proxy).await;
        let port = origin.addr.port();
        let socks = socks_get(
            proxy.socks,
            Some(("routed", SECRET)),
            "127.0.0.1",
            port,
            "/",
        );
        assert_eq!(socks.await.as_deref(), Ok("hello"));
    }
    assert_eq!(
        dead.connections(),
        1,
        "the first choice was tried once: the account sticks to the live member"
    );
    assert_eq!(live.targets().len(), 9);
}

#[tokio::test]
async fn a_request_with_a_body_moves_on_while_none_of_it_was_sent() {
    let dead = closed_port().await;
    let live = FakeUpstream::http(CREDS).await;
    let urls = [format!("http://u:p@{dead}"), live.url()];
    let proxy = Proxy::start(&pool_config(&urls, "strategy = \"round_robin\"")).await;
    let origin = Origin::start().await;
    let echo: serde_json::Value = client_as(&proxy, "routed")
        .post(origin.url("/echo"))
        .body(vec![7u8; 100_000])
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["body_len"], 100_000);
    assert_eq!(live.targets(), [origin.addr.to_string()]);
}

#[tokio::test]
async fn when_every_member_fails_the_detail_counts_the_attempts() {
    let pool = [
        FakeUpstream::dropping("socks5").await,
        FakeUpstream::dropping("socks5").await,
    ];
    let urls: Vec<String> = pool.iter().map(FakeUpstream::url).collect();
    let proxy = Proxy::start(&pool_config(&urls, COOLDOWN_30S)).await;
    let echo = echo_server().await;
    let raw = http_connect(&proxy, "routed", &authority(echo))
        .await
        .expect_err("all dead");
    assert_envelope(&raw, 502, "errors/proxy_error");
    assert!(
        detail(&raw).contains("2 upstreams tried"),
        "{}",
        detail(&raw)
    );
    let (reply, _) = socks_connect(&proxy, "routed", "127.0.0.1", echo.port()).await;
    assert_eq!(reply, 0x01);
    let raw = http_connect(&proxy, "routed", &authority(echo))
        .await
        .expect_err("cooling");
    assert_envelope(&raw, 502, "errors/proxy_error");
    assert!(
        detail(&raw).contains("0 upstreams tried"),
        "{}",
        detail(&raw)
    );
    let tried: usize = pool.iter().map(FakeUpstream::connections).sum();
    assert_eq!(tried, 2, "each member tried once, then left to cool down");
    assert_still_serving(&proxy, &Origin::start().await).await;
}

#[tokio::test]
async fn max_attempts_bounds_the_members_tried() {
    let mut pool = Vec::new();
    for _ in 0..3 {
        pool.push(FakeUpstream::dropping("http").await);
    }
    let urls: Vec<String> = pool.iter().map(FakeUpstream::url).collect();
    let proxy = Proxy::start(&pool_config(&urls, "max_attempts = 2")).await;
    let echo = echo_server().await;
    let raw = http_connect(&proxy, "routed", &authority(echo))
        .await
        .expect_err("dead");
    assert_envelope(&raw, 502, "errors/proxy_error");
    assert!(
        detail(&raw).contains("2 upstreams tried"),
        "{}",
        detail(&raw)
    );
    assert_eq!(pool.iter().map(FakeUpstream::connections).sum::<usize>(), 2);
}

#[tokio::test]
async fn a_recovered_upstream_is_used_again_after_its_cooldown() {
    let upstream = FakeUpstream::http(None).await;
    let toml = pool_config(&[upstream.url()], "failure_cooldown = \"1s\"");
    let proxy = Proxy::start(&toml).await;
    upstream.set_healthy(false);
    let echo = echo_server().await;
    let raw = http_connect(&proxy, "routed", &authority(echo))
        .await
        .expect_err("down");
    assert!(
        detail(&raw).contains("1 upstream tried"),
        "{}",
        detail(&raw)
    );
    let failed_at = Instant::now();
    upstream.set_healthy(true);
    let raw = http_connect(&proxy, "routed", &authority(echo))
        .await
        .expect_err("cooling");
    assert!(
        detail(&raw).contains("0 upstreams tried"),
        "{}",
        detail(&raw)
    );
    assert_eq!(upstream.connections(), 1, "not tried while cooling down");
    let deadline = failed_at + Duration::from_secs(10);
    loop {
        if let Ok(mut tunnel) = http_connect(&proxy, "routed", &authority(echo)).await {
            assert_echoes(&mut tunnel).await;
            break;
        }
        assert!(Instant::now() < deadline, "upstream never used again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        failed_at.elapsed() >= Duration::from_millis(500),
        "used again too early"
    );
}

#[tokio::test]
async fn a_sticky_account_stays_on_the_upstream_that_took_over() {
    let pool = [
        FakeUpstream::http(None).await,
        FakeUpstream::http(None).await,
    ];
    let urls: Vec<String> = pool.iter().map(FakeUpstream::url).collect();
    let proxy = Proxy::start(&pool_config(&urls, "failure_cooldown = \"300ms\"")).await;
    for _ in 0..3 {
        tunnel_works(&proxy).await;
    }
    let counts = || pool.iter().map(|u| u.targets().len()).collect::<Vec<_>>();
    let (first, other) = if counts()[0] == 3 { (0, 1) } else { (1, 0) };
    assert_eq!(
        counts()[first],
        3,
        "one upstream for a sticky account: {:?}",
        counts()
    );
    pool[first].set_healthy(false);
    tunnel_works(&proxy).await;
    assert_eq!(counts()[other], 1, "failed over");
    pool[first].set_healthy(true);
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..3 {
        tunnel_works(&proxy).await;
    }
    assert_eq!(
        counts()[other],
        4,
        "stays on the new upstream: {:?}",
        counts()
    );
    assert_eq!(counts()[first], 3);
}

#[tokio::test]
async fn round_robin_alternates() {
    let pool = [
        FakeUpstream::socks5(CREDS).await,
        FakeUpstream::socks5(CREDS).await,
    ];
    let urls: Vec<String> = pool.iter().map(FakeUpstream::url).collect();
    let proxy = Proxy::start(&pool_config(&urls, "strategy = \"round_robin\"")).await;
    for _ in 0..4 {
        tunnel_works(&proxy).await;
    }
    assert_eq!(
        pool.iter().map(|u| u.targets().len()).collect::<Vec<_>>(),
        [2, 2]
    );
}

#[tokio::test]
async fn an_unreachable_destination_is_a_provider_error_without_cooldown() {
    let closed = closed_port().await;
    for upstream in [
        FakeUpstream::http(CREDS).await,
        FakeUpstream::socks5(CREDS).await,
    ] {
        let proxy = Proxy::start(&pool_config(&[upstream.url()], COOLDOWN_30S)).await;
        let raw = http_connect(&proxy, "routed", &authority(closed))
            .await
            .expect_err("closed");
        assert_envelope(&raw, 502, "errors/provider_error");
        let answer = if upstream.url().starts_with("http") {
            "502"
        } else {
            "0x05"
        };
        assert!(detail(&raw).contains(answer), "{}", detail(&raw));
        let (reply, _) = socks_connect(&proxy, "routed", "127.0.0.1", closed.port()).await;
        let want = if answer == "502" { 0x04 } else { 0x05 };
        assert_eq!(reply, want, "SOCKS5 reply through {}", upstream.url());
        tunnel_works(&proxy).await;
    }
}

#[tokio::test]
async fn odd_socks5_reply_codes_never_hurt() {
    let upstream = FakeUpstream::socks5_replying(0x09).await;
    let proxy = Proxy::start(&pool_config(&[upstream.url()], COOLDOWN_30S)).await;
    let detail = assert_every_path_fails(&proxy, 502, "errors/provider_error", 0x01).await;
    assert!(detail.contains("0x09"), "{detail}");
}

#[tokio::test]
async fn a_plain_http_answer_from_the_upstream_passes_through() {
    let upstream = FakeUpstream::http(CREDS).await;
    let proxy = Proxy::start(&pool_config(&[upstream.url()], COOLDOWN_30S)).await;
    let closed = closed_port().await;
    let raw = raw_get(&proxy, "routed", &format!("http://{closed}/")).await;
    let (status, _, head) = parse_envelope(&raw);
    assert_eq!(status, 502);
    assert!(
        !head.contains("problem+json"),
        "the upstream's own answer: {head}"
    );
    tunnel_works(&proxy).await;
}
