//! Destinations (SPEC section 5): a name that is not a host name or an IP
//! literal with a port is refused before anything is dialled or classified
//! (400 `errors/invalid_request`, SOCKS5 reply 0x01); names in other
//! scripts go through IDNA; the URL's authority, never the client's
//! `Host`, is where a request goes.

mod common;

use std::time::Duration;

use common::clients::{http_connect, raw_get};
use common::{
    assert_envelope, assert_still_serving, basic_auth, socks_domain, unresolvable_name, Origin,
    Proxy,
};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn names_that_are_not_host_names_are_invalid_requests() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let refused = http_connect(&proxy, "acct-1", "bad!name.example:443")
        .await
        .expect_err("refused");
    assert_envelope(&refused, 400, "errors/invalid_request");
    let refused = raw_get(&proxy, "acct-1", "http://a..b.example/").await;
    assert_envelope(&refused, 400, "errors/invalid_request");
    let long = format!("{}.example", "a".repeat(250));
    let refused = raw_get(&proxy, "acct-1", &format!("http://{long}/")).await;
    assert_envelope(&refused, 400, "errors/invalid_request");
    assert_still_serving(&proxy, &origin).await;
    proxy.stop().await;
}

#[tokio::test]
async fn socks5_names_are_checked_and_other_scripts_go_through_idna() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    assert_eq!(
        socks_domain(proxy.socks, b"evil\x01.example").await,
        0x01,
        "a control character"
    );
    assert_eq!(
        socks_domain(proxy.socks, b"a b.example").await,
        0x01,
        "a space"
    );
    assert_eq!(
        socks_domain(proxy.socks, &[b'a'; 254]).await,
        0x01,
        "over 253 bytes"
    );
    // Over 63 bytes once converted, so it fails to resolve locally.
    let unicode = format!("bücher{}", unresolvable_name());
    assert_eq!(
        socks_domain(proxy.socks, unicode.as_bytes()).await,
        0x04,
        "accepted as xn--bcher…, which does not resolve"
    );
    assert_still_serving(&proxy, &origin).await;
    proxy.stop().await;
}

#[tokio::test]
async fn the_urls_authority_not_the_host_header_is_the_destination() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: evil.example\r\nProxy-Authorization: {}\r\nConnection: close\r\n\r\n",
        origin.url("/echo"),
        basic_auth()
    );
    let raw = common::raw_exchange(proxy.http, request.as_bytes(), WITHIN).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(&format!("\"host\":\"{}\"", origin.addr)),
        "{text}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn pacer_never_dials_itself_however_it_is_named() {
    let origin = Origin::start().await;
    let proxy = Proxy::default().await;
    let admin = proxy.admin.port();
    for target in [
        format!("127.0.0.1:{admin}"),
        format!("127.0.0.2:{admin}"),
        format!("localhost:{admin}"),
        format!("127.0.0.1:{}", proxy.http.port()),
    ] {
        let refused = http_connect(&proxy, "acct-1", &target)
            .await
            .expect_err(&target);
        assert_envelope(&refused, 403, "errors/insufficient_privileges");
        let detail = common::routes::detail(&refused);
        assert!(
            detail.contains(&target) || detail.contains("localhost"),
            "{detail}"
        );
    }
    let refused = raw_get(
        &proxy,
        "acct-1",
        &format!("http://127.0.0.1:{admin}/metrics"),
    )
    .await;
    assert_envelope(&refused, 403, "errors/insufficient_privileges");
    let (reply, _) =
        common::clients::socks_connect(&proxy, "acct-1", "127.0.0.1", proxy.http.port()).await;
    assert_eq!(reply, 0x02, "SOCKS5: not allowed");
    assert_still_serving(&proxy, &origin).await;
    proxy.stop().await;
}

#[tokio::test]
async fn deny_destinations_takes_networks_and_host_globs() {
    let origin = Origin::start().await;
    let extra = "deny_destinations = [\"127.0.0.64/26\", \"*.blocked.example\"]";
    let proxy = Proxy::start(&common::base_config(extra)).await;
    let refused = http_connect(&proxy, "acct-1", "127.0.0.65:80")
        .await
        .expect_err("refused");
    assert_envelope(&refused, 403, "errors/insufficient_privileges");
    let refused = http_connect(&proxy, "acct-1", "api.blocked.example:443")
        .await
        .expect_err("refused");
    assert_envelope(&refused, 403, "errors/insufficient_privileges");
    assert_still_serving(&proxy, &origin).await;
    proxy.stop().await;
}
