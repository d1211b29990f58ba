//! `GET /v1/stats` (recent traffic and refusals, for the dashboard and any
//! client) and the dashboard's files under `/ui` over real HTTP: shapes,
//! what is counted for whom, parameters and their errors, keys, and the
//! page's security headers.

mod common;

use common::clients::client_as;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const KEY: &str = "test-admin-key";

/// acct-1 may send once a minute (`send`, refused beyond); acct-2 is free.
fn config() -> String {
    format!(
        r#"
[admin]
addr = "127.0.0.1:0"
api_keys = ["{KEY}"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[state]
path = "memory"

[[actions]]
name = "send"
methods = ["POST"]
hosts = ["127.0.0.1"]

[policies.standard_policy]
mode = "reject"
[policies.standard_policy.limits]
send_per_minute = 1

[[accounts]]
id = "acct-1"
secret = "{SECRET}"

[[accounts]]
id = "acct-2"
secret = "{SECRET}"
"#
    )
}

async fn stats(proxy: &Proxy, query: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{}/v1/stats{query}", proxy.admin))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("admin answers");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

fn sum(stats: &Value, field: &str) -> u64 {
    let buckets = stats["buckets"].as_array().expect("buckets");
    buckets
        .iter()
        .map(|b| b[field].as_u64().expect(field))
        .sum()
}

#[tokio::test]
async fn stats_count_requests_and_refusals_by_type_limit_and_account() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config()).await;
    let (status, empty) = stats(&proxy, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["bucket_seconds"], 10);
    assert_eq!(empty["window_seconds"], 900);
    let buckets = empty["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 90);
    let starts: Vec<u64> = buckets
        .iter()
        .map(|b| b["start"].as_u64().expect("start"))
        .collect();
    assert!(starts.windows(2).all(|w| w[1] == w[0] + 10), "{starts:?}");
    assert_eq!(sum(&empty, "requests"), 0);
    assert_eq!(empty["recent_refusals"], serde_json::json!([]));

    let client = proxy.client();
    let send = || client.post(origin.url("/echo")).send();
    assert_eq!(send().await.expect("first").status(), 200);
    assert_eq!(send().await.expect("second").status(), 429);
    let stranger = client_as(&proxy, "nobody");
    assert_eq!(
        stranger
            .get(origin.url("/"))
            .send()
            .await
            .expect("bad key")
            .status(),
        407
    );
    let other = client_as(&proxy, "acct-2");
    assert_eq!(
        other
            .post(origin.url("/echo"))
            .send()
            .await
            .expect("acct-2")
            .status(),
        200
    );

    let (_, seen) = stats(&proxy, "").await;
    assert_eq!(sum(&seen, "requests"), 4);
    assert_eq!(sum(&seen, "refusals"), 2);
    let by = |map: &str, key: &str| -> u64 {
        seen["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .filter_map(|b| b[map][key].as_u64())
            .sum()
    };
    assert_eq!(by("by_type", "errors/rate_limited"), 1);
    assert_eq!(by("by_type", "errors/invalid_credentials"), 1);
    assert_eq!(by("by_limit", "send_per_minute"), 1);

    let recent = seen["recent_refusals"].as_array().expect("recent");
    assert_eq!(recent.len(), 2);
    let (newest, limited) = (&recent[0], &recent[1]);
    assert_eq!(newest["type"], "errors/invalid_credentials");
    assert_eq!(newest["account"], Value::Null);
    assert_eq!(newest["status"], 407);
    assert_eq!(limited["account"], "acct-1");
    assert_eq!(limited["actions"], serde_json::json!(["send"]));
    assert_eq!(limited["method"], "POST");
    assert_eq!(limited["target"], origin.addr.to_string());
    assert_eq!(limited["limit"], "send_per_minute");
    assert_eq!(limited["status"], 429);
    assert_eq!(limited["listener"], "http");
    assert!(limited["id"].as_str().expect("id").starts_with("req_"));
    assert!(limited["at"].as_str().expect("at").ends_with('Z'));
    assert_eq!(
        seen["refusals_by_account"],
        serde_json::json!({"acct-1": {"send_per_minute": 1}})
    );

    let (_, only) = stats(&proxy, "?account=acct-1&recent=5").await;
    assert_eq!(only["recent_refusals"].as_array().expect("recent").len(), 1);
    let (_, none) = stats(&proxy, "?recent=0").await;
    assert_eq!(none["recent_refusals"], serde_json::json!([]));
    assert_eq!(
        sum(&none, "requests"),
        4,
        "stats are not counted as traffic"
    );
}

#[tokio::test]
async fn stats_need_a_key_and_recent_from_0_to_1000() {
    let proxy = Proxy::start(&config()).await;
    let url = format!("http://{}/v1/stats", proxy.admin);
    let bare = reqwest::get(&url).await.expect("answers");
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let body: Value = bare.json().await.expect("envelope");
    assert_eq!(body["type"], "errors/missing_credentials");

    let (status, body) = stats(&proxy, "?recent=lots").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "errors/invalid_parameters");
    assert!(body["detail"].as_str().expect("detail").contains("recent"));
    let (status, body) = stats(&proxy, "?recent=1001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "errors/limit_too_high");
    let (status, _) = stats(&proxy, "?recent=1000").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_dashboard_is_served_without_a_key_under_a_strict_policy() {
    let proxy = Proxy::start(&config()).await;
    let get = |path: &str| reqwest::get(format!("http://{}{path}", proxy.admin));
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let response = get(path).await.expect("answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{csp}"
        );
        assert!(csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
    }

    // The page names only its own files: nothing from another address.
    let page = get("/ui").await.expect("page").text().await.expect("text");
    let references: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.contains("://") || part.starts_with("//"))
        .collect();
    assert!(references.is_empty(), "{references:?}");
    for asset in ["/ui/app.js", "/ui/style.css", "/ui/icon.svg"] {
        assert!(page.contains(asset), "{asset}");
    }

    let missing = get("/ui/secrets.txt").await.expect("answers");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.expect("envelope");
    assert_eq!(body["type"], "errors/resource_not_found");
    assert_eq!(
        get("/healthz").await.expect("health").status(),
        StatusCode::OK
    );
}
