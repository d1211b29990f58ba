//! Configs and checks shared by the routing and failover tests: account
//! `routed` on a custom upstream or on a `US` pool, and "every path fails
//! the same way" (plain HTTP, CONNECT, SOCKS5).

use super::clients::*;
use super::*;

pub const CREDS: Option<(&str, &str)> = Some(("up-user", "up-pass"));

/// The base config plus account `routed` with the custom `upstream`.
pub fn custom_config(upstream: &str, extra: &str) -> String {
    format!(
        "{}\n{extra}\n[[accounts]]\nid = \"routed\"\nsecret = \"{SECRET}\"\nupstream = \"{upstream}\"\n",
        base_config("")
    )
}

/// The base config plus account `routed` on country `US`, served by
/// `upstreams`, with `[routing]` settings.
pub fn pool_config(upstreams: &[String], routing: &str) -> String {
    let mut toml = format!(
        "{}\n[routing]\n{routing}\n\n[[accounts]]\nid = \"routed\"\nsecret = \"{SECRET}\"\ncountry = \"US\"\n",
        base_config("")
    );
    for url in upstreams {
        toml.push_str(&format!(
            "\n[[upstreams]]\nurl = \"{url}\"\ncountry = \"US\"\n"
        ));
    }
    toml
}

pub fn detail(raw: &[u8]) -> String {
    let (_, json, _) = parse_envelope(raw);
    json["detail"].as_str().unwrap_or_default().to_owned()
}

/// Every path as `routed` must fail with `status`/`kind`, SOCKS5 `reply`.
pub async fn assert_every_path_fails(proxy: &Proxy, status: u16, kind: &str, reply: u8) -> String {
    let origin = Origin::start().await;
    let echo = echo_server().await;
    let plain = raw_get(proxy, "routed", &origin.url("/")).await;
    assert_envelope(&plain, status, kind);
    let refused = http_connect(proxy, "routed", &authority(echo))
        .await
        .expect_err("refused");
    assert_envelope(&refused, status, kind);
    let (code, _) = socks_connect(proxy, "routed", "127.0.0.1", echo.port()).await;
    assert_eq!(code, reply, "SOCKS5 reply for {kind}");
    assert_still_serving(proxy, &origin).await;
    detail(&refused)
}
