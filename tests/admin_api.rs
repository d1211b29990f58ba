//! The admin API over real HTTP (SPEC section 8): keys, every endpoint's
//! shape and errors, changes that apply to the account's next request only,
//! persistence of changes, metrics, and reload (also under traffic).

mod common;

use std::time::Duration;

use common::admin::{assert_error, Admin, KEY};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn config(state: &str) -> String {
    format!(
        r#"
[admin]
addr = "127.0.0.1:0"
api_keys = ["{KEY}"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[state]
path = "{state}"

[[actions]]
name = "profiles"
paths = ["/in/*"]

[[actions]]
name = "send"
methods = ["POST"]

[policies.standard_policy]
name = "Standard"
free = true
mode = "reject"
[policies.standard_policy.limits]
profiles = 100
batch = 40
batch_hours = 1

[policies.strict]
name = "Strict"
description = "One a minute."
free = true
mode = "reject"
[policies.strict.limits]
all_per_minute = 1

[policies.pro]
name = "Pro"
[policies.pro.limits]
all_per_second = 50

[account_types.sales-nav-sync]
policy = "standard_policy"
[account_types.sales-nav-sync.max]
batch = 50
profiles = 300

[[accounts]]
id = "acct-1"
secret = "{SECRET}"
type = "sales-nav-sync"

[[accounts]]
id = "acct-2"
secret = "other-secret"
plan = "paid"
"#
    )
}

#[tokio::test]
async fn keys_are_required_in_any_of_three_headers() {
    let proxy = Proxy::start(&config("memory")).await;
    let base = format!("http://{}", proxy.admin);
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK, "healthz needs no key");
    let missing = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: Value = missing.json().await.expect("envelope");
    assert_eq!(body["type"], "errors/missing_credentials");
    let wrong = client
        .get(format!("{base}/metrics"))
        .header("Authorization", "Bearer nope")
        .send()
        .await
        .expect("metrics");
    let body: Value = wrong.json().await.expect("envelope");
    assert_eq!(body["type"], "errors/invalid_credentials");
    for (name, value) in [
        ("Authorization", format!("Token {KEY}")),
        ("Authorization", format!("Bearer {KEY}")),
        ("X-API-KEY", KEY.to_owned()),
    ] {
        let ok = client
            .get(format!("{base}/v1/accounts/acct-1"))
            .header(name, value)
            .send()
            .await
            .expect("accounts");
        assert_eq!(ok.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn rate_limit_policies_and_plans() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config("memory")).await;
    let admin = Admin::new(&proxy);
    let (status, view) = admin
        .call(Method::GET, "/v2/session/rate-limit?account=acct-1", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "success");
    assert_eq!(view["current_policy"], "standard_policy");
    assert_eq!(view["has_active_plan"], false);
    assert_eq!(view["free_policies"], json!(["standard_policy", "strict"]));
    let policies = view["policies"].as_array().expect("policies");
    let pro = policies.iter().find(|p| p["slug"] == "pro").expect("pro");
    assert_eq!(pro["available"], false);
    assert_eq!(pro["limits"], json!({"all_per_second": 50, "guard": "0s"}));
    let strict = policies
        .iter()
        .find(|p| p["slug"] == "strict")
        .expect("strict");
    assert_eq!(
        (strict["name"].clone(), strict["available"].clone()),
        (json!("Strict"), json!(true))
    );
    assert!(strict["id"].as_u64().is_some());

    let paid_only = admin
        .choose_policy(json!({"account": "acct-1", "policy_slug": "pro"}))
        .await;
    assert_error(&paid_only, 403, "errors/insufficient_privileges");
    let unknown = admin
        .choose_policy(json!({"account": "acct-1", "policy_slug": "nope"}))
        .await;
    assert_error(&unknown, 400, "errors/invalid_parameters");
    let missing = admin.choose_policy(json!({"policy_slug": "strict"})).await;
    assert_error(&missing, 400, "errors/missing_parameters");
    assert!(missing.1["detail"]
        .as_str()
        .unwrap_or("")
        .contains("account"));
    let nobody = admin
        .choose_policy(json!({"account": "nobody", "policy_slug": "strict"}))
        .await;
    assert_error(&nobody, 404, "errors/resource_not_found");

    let (status, view) = admin
        .choose_policy(json!({"account": "acct-1", "policy_slug": "strict"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["current_policy"], "strict");
    let client = proxy.client();
    assert_eq!(
        client
            .get(origin.url("/"))
            .send()
            .await
            .expect("first")
            .status(),
        StatusCode::OK
    );
    let second = client.get(origin.url("/")).send().await.expect("second");
    assert_eq!(
        second.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "strict applies on the next request"
    );
    let other = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(format!("http://acct-2:other-secret@{}", proxy.http))
                .expect("proxy"),
        )
        .build()
        .expect("client");
    for _ in 0..3 {
        let ok = other.get(origin.url("/")).send().await.expect("acct-2");
        assert_eq!(ok.status(), StatusCode::OK, "other accounts are untouched");
    }
    let paid = admin
        .choose_policy(json!({"account": "acct-2", "policy_slug": "pro"}))
        .await;
    assert_eq!(
        paid.0,
        StatusCode::OK,
        "a paid account may choose a paid policy"
    );
}

#[tokio::test]
async fn account_overrides_are_checked_and_report_usage() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config("memory")).await;
    let admin = Admin::new(&proxy);
    let client = proxy.client();
    for _ in 0..3 {
        let ok = client
            .get(origin.url("/in/someone"))
            .send()
            .await
            .expect("profile");
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let above = admin
        .call(
            Method::POST,
            "/v1/accounts",
            Some(
                json!({"account": "acct-1", "type": "sales-nav-sync", "params": {"profiles": 301}}),
            ),
        )
        .await;
    assert_error(&above, 400, "errors/invalid_parameters");
    let detail = above.1["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("profiles") && detail.contains("300"),
        "{detail}"
    );
    let bad_key = admin
        .call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"account": "acct-1", "params": {"nope_per_minute": 3}})),
        )
        .await;
    assert_error(&bad_key, 400, "errors/invalid_parameters");

    let (status, answer) = admin
        .call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"account": "acct-1", "type": "sales-nav-sync",
                        "params": {"batch": 20, "profiles": 150, "batch_hours": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["account"], "acct-1");
    assert_eq!(answer["type"], "sales-nav-sync");
    assert_eq!(
        answer["params"]["default"],
        json!({"profiles": 100, "batch": 40, "batch_hours": 1})
    );
    let user = &answer["params"]["user"];
    assert_eq!(user["profiles"]["limit"], 150);
    assert_eq!(user["profiles"]["value"], 3, "today's usage");
    assert!(user["profiles"]["timestamp"]
        .as_i64()
        .is_some_and(|t| t > 1_700_000_000));
    assert_eq!(user["batch"]["limit"], 20);
    assert_eq!(user["batch"]["current"], 3);
    assert_eq!(user["batch"]["last_batch_at"], Value::Null);
    assert_eq!(user["batch_hours"], json!({"limit": 2}));

    let (_, again) = admin
        .call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"account": "acct-1", "params": {"profiles": 200}})),
        )
        .await;
    assert_eq!(
        again["params"]["user"]["profiles"],
        json!({"limit": 200, "value": 3, "timestamp": user["profiles"]["timestamp"]})
    );
    assert_eq!(
        again["params"]["user"]["batch"]["limit"], 20,
        "earlier overrides stay"
    );

    let (status, account) = admin.call(Method::GET, "/v1/accounts/acct-1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account["policy"], "standard_policy");
    assert_eq!(account["plan"], "free");
    assert_eq!(account["usage"]["all"], 3);
    assert_eq!(account["usage"]["actions"]["profiles"], 3);
    let missing = admin.call(Method::GET, "/v1/accounts/nobody", None).await;
    assert_error(&missing, 404, "errors/resource_not_found");
}

#[tokio::test]
async fn bad_bodies_are_envelopes_and_the_api_keeps_serving() {
    let proxy = Proxy::start(&config("memory")).await;
    let admin = Admin::new(&proxy);
    let url = format!("{}/v1/accounts", admin.base);
    let send = |body: Vec<u8>| {
        admin
            .client
            .post(&url)
            .header("X-API-KEY", KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let garbage: Value = send(b"{not json".to_vec())
        .await
        .expect("answer")
        .json()
        .await
        .expect("envelope");
    assert_eq!(garbage["type"], "errors/malformed_request");
    let huge = format!(
        "{{\"account\":\"acct-1\",\"pad\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let huge_answer = send(huge.into_bytes()).await.expect("answer");
    assert_eq!(huge_answer.status(), StatusCode::BAD_REQUEST);
    let huge_body: Value = huge_answer.json().await.expect("envelope");
    assert_eq!(huge_body["type"], "errors/content_too_large");
    let not_object: Value = send(b"[1,2]".to_vec())
        .await
        .expect("answer")
        .json()
        .await
        .expect("envelope");
    assert_eq!(not_object["type"], "errors/malformed_request");
    let wrong_type = admin
        .call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"account": "acct-1", "params": {"profiles": "many"}})),
        )
        .await;
    assert_error(&wrong_type, 400, "errors/invalid_parameters");
    let unknown_route = admin.call(Method::GET, "/v1/nothing", None).await;
    assert_error(&unknown_route, 404, "errors/resource_not_found");
    let (status, _) = admin.call(Method::GET, "/v1/accounts/acct-1", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn runtime_changes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pacer.db");
    let toml = config(&state.display().to_string());
    let proxy = Proxy::start(&toml).await;
    let admin = Admin::new(&proxy);
    let (status, _) = admin
        .choose_policy(json!({"account": "acct-1", "policy_slug": "strict"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    admin
        .call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"account": "acct-1", "params": {"profiles": 42}})),
        )
        .await;
    assert!(proxy.stop().await);
    let proxy = Proxy::start(&toml).await;
    let (_, account) = Admin::new(&proxy)
        .call(Method::GET, "/v1/accounts/acct-1", None)
        .await;
    assert_eq!(account["policy"], "strict", "{account}");
    assert_eq!(account["limits"]["profiles"]["limit"], 42);
}

#[tokio::test]
async fn metrics_count_requests_by_listener_action_and_outcome() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config("memory")).await;
    let client = proxy.client();
    client
        .get(origin.url("/in/x"))
        .send()
        .await
        .expect("profile");
    let response = admin_text(&proxy, "/metrics").await;
    assert!(
        response
            .contains("pacer_requests_total{listener=\"http\",action=\"all\",outcome=\"ok\",intercepted=\"false\"} 1"),
        "{response}"
    );
    assert!(response.contains("action=\"profiles\""), "{response}");
    assert!(response.contains("pacer_open_connections"), "{response}");
    assert!(
        !response.contains("acct-1"),
        "no per-account series unless enabled"
    );
}

async fn admin_text(proxy: &Proxy, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("http://{}{path}", proxy.admin))
        .header("X-API-KEY", KEY)
        .send()
        .await
        .expect("admin")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn reload_applies_new_accounts_and_refuses_a_bad_file() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, config("memory")).expect("write");
    let proxy = Proxy::start_file(&path).await;
    let admin = Admin::new(&proxy);
    let newcomer = || {
        reqwest::Client::builder()
            .proxy(
                reqwest::Proxy::http(format!("http://acct-3:third@{}", proxy.http)).expect("proxy"),
            )
            .build()
            .expect("client")
    };
    let before = newcomer()
        .get(origin.url("/"))
        .send()
        .await
        .expect("answer");
    assert_eq!(before.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    std::fs::write(
        &path,
        config("memory") + "\n[[accounts]]\nid = \"acct-3\"\nsecret = \"third\"\n",
    )
    .expect("write");
    let (status, answer) = admin.call(Method::POST, "/v1/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["reloaded"]["accounts"], 3);
    let after = newcomer()
        .get(origin.url("/"))
        .send()
        .await
        .expect("answer");
    assert_eq!(after.status(), StatusCode::OK);

    std::fs::write(&path, "[[listeners]]\nbogus = 1\n").expect("write");
    let refused = admin.call(Method::POST, "/v1/reload", None).await;
    assert_error(&refused, 400, "errors/invalid_parameters");
    assert!(
        refused.1["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "{}",
        refused.1
    );
    let still = newcomer()
        .get(origin.url("/"))
        .send()
        .await
        .expect("answer");
    assert_eq!(still.status(), StatusCode::OK, "the running config stays");
}

#[tokio::test]
async fn reload_under_traffic_fails_no_request() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pacer.toml");
    let toml = config("memory")
        .replace("profiles = 100\n", "profiles = 100000\n")
        .replace("batch = 40\nbatch_hours = 1\n", "");
    std::fs::write(&path, &toml).expect("write");
    let proxy = Proxy::start_file(&path).await;
    let admin = Admin::new(&proxy);
    let client = proxy.client();
    let url = origin.url("/in/x");
    let traffic = tokio::spawn(async move {
        let mut failures = 0;
        for _ in 0..300 {
            match client.get(&url).send().await {
                Ok(r) if r.status() == StatusCode::OK => {}
                _ => failures += 1,
            }
        }
        failures
    });
    for round in 0..5 {
        let edited = toml.replace(
            "description = \"One a minute.\"",
            &format!("description = \"round {round}\""),
        );
        std::fs::write(&path, edited).expect("write");
        let (status, _) = admin.call(Method::POST, "/v1/reload", None).await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        traffic.await.expect("traffic"),
        0,
        "no request failed across reloads"
    );
}
