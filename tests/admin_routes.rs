//! `PATCH /v1/accounts/{id}` (SPEC section 8): a custom proxy is tried
//! before it is saved, then carries the account's next requests; a country
//! or an IP address moves the account to a managed pool. Only loopback is
//! reached: the probe target is a loopback origin.

mod common;

use common::clients::*;
use common::routes::*;
use common::upstream::FakeUpstream;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const KEY: &str = "test-admin-key";

/// Account `routed` going direct, a `US` pool of `pool`, and the probe
/// aimed at `origin`.
fn config(origin: &Origin, pool: &FakeUpstream) -> String {
    format!(
        "{}\n[routing]\nprobe_target = \"{}\"\n\n[[upstreams]]\nurl = \"{}\"\ncountry = \"US\"\n\n[[accounts]]\nid = \"routed\"\nsecret = \"{SECRET}\"\n",
        base_config(""),
        origin.addr,
        pool.url()
    )
}

async fn patch(proxy: &Proxy, account: &str, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .patch(format!("http://{}/v1/accounts/{account}", proxy.admin))
        .header("X-API-KEY", KEY)
        .json(&body)
        .send()
        .await
        .expect("admin answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn proxy_body(upstream: &FakeUpstream, user: &str, pass: &str) -> Value {
    json!({"proxy": {"protocol": "socks5", "host": "127.0.0.1", "port": upstream.addr.port(),
                     "username": user, "password": pass}})
}

#[tokio::test]
async fn a_custom_proxy_is_tried_then_carries_the_next_request() {
    let origin = Origin::start().await;
    let pool = FakeUpstream::http(None).await;
    let proxy = Proxy::start(&config(&origin, &pool)).await;
    let custom = FakeUpstream::socks5(CREDS).await;

    let refused = patch(&proxy, "routed", proxy_body(&custom, "up-user", "wrong")).await;
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED, "{}", refused.1);
    assert_eq!(refused.1["type"], "errors/invalid_proxy_credentials");
    let dead = closed_port().await;
    let unreachable = patch(
        &proxy,
        "routed",
        json!({"proxy": {"protocol": "http", "host": "127.0.0.1", "port": dead.port()}}),
    )
    .await;
    assert_eq!(unreachable.0, StatusCode::BAD_GATEWAY);
    assert_eq!(unreachable.1["type"], "errors/proxy_error");
    let bad_protocol = patch(
        &proxy,
        "routed",
        json!({"proxy": {"protocol": "ftp", "host": "127.0.0.1", "port": 21}}),
    )
    .await;
    assert_eq!(bad_protocol.1["type"], "errors/invalid_parameters");
    let no_port = patch(
        &proxy,
        "routed",
        json!({"proxy": {"protocol": "socks5", "host": "127.0.0.1"}}),
    )
    .await;
    assert_eq!(no_port.1["type"], "errors/missing_parameters");

    let direct = client_as(&proxy, "routed")
        .get(origin.url("/"))
        .send()
        .await
        .expect("direct");
    assert_eq!(direct.status(), StatusCode::OK);
    assert_eq!(custom.connections(), 1, "only the refused probe so far");

    let (status, answer) = patch(&proxy, "routed", proxy_body(&custom, "up-user", "up-pass")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"object": "AccountPatched", "account_id": "routed"})
    );
    let before = custom.connections();
    let via = client_as(&proxy, "routed")
        .get(origin.url("/"))
        .send()
        .await
        .expect("via proxy");
    assert_eq!(via.status(), StatusCode::OK);
    assert!(
        custom.connections() > before,
        "the next request went through the new proxy"
    );

    let view: Value = reqwest::Client::new()
        .get(format!("http://{}/v1/accounts/routed", proxy.admin))
        .header("X-API-KEY", KEY)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(view["upstream"], view["route"]["upstream"]);
    let shown = view["upstream"].as_str().expect("upstream shown");
    assert!(
        shown.contains("127.0.0.1") && !shown.contains("up-pass"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_country_or_an_address_moves_the_account_to_a_pool() {
    let origin = Origin::start().await;
    let pool = FakeUpstream::http(None).await;
    let proxy = Proxy::start(&config(&origin, &pool)).await;

    let no_pool = patch(&proxy, "routed", json!({"country": "FR"})).await;
    assert_eq!(no_pool.0, StatusCode::BAD_REQUEST);
    assert_eq!(no_pool.1["type"], "errors/invalid_parameters");
    let not_a_code = patch(&proxy, "routed", json!({"country": "USA"})).await;
    assert_eq!(not_a_code.1["type"], "errors/invalid_parameters");
    let private = patch(&proxy, "routed", json!({"ip": "10.1.2.3"})).await;
    assert_eq!(
        private.1["type"], "errors/invalid_parameters",
        "{}",
        private.1
    );
    let nothing = patch(&proxy, "routed", json!({})).await;
    assert_eq!(nothing.1["type"], "errors/missing_parameters");
    let unknown = patch(&proxy, "nobody", json!({"country": "US"})).await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);

    let (status, _) = patch(&proxy, "routed", json!({"ip": "8.8.8.8"})).await;
    assert_eq!(status, StatusCode::OK, "8.8.8.8 is registered in the US");
    let ok = client_as(&proxy, "routed")
        .get(origin.url("/"))
        .send()
        .await
        .expect("via pool");
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(pool.connections() > 0, "the US pool carried it");
    let metrics = metrics(&proxy).await;
    let series = format!(
        "pacer_upstream_attempts_total{{upstream=\"{}\"}} 1",
        pool.addr
    );
    assert!(metrics.contains(&series), "{metrics}");
    let (status, _) = patch(&proxy, "routed", json!({"country": "us"})).await;
    assert_eq!(status, StatusCode::OK, "lower case is accepted");
}

async fn metrics(proxy: &Proxy) -> String {
    proxy.metrics().await
}
