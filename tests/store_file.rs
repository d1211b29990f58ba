//! The store file on disk (SPEC section 9): created readable by its owner
//! only, written afresh from memory when it is deleted under a running
//! pacer, and a store that cannot be written is a logged error and a
//! failing `/healthz` until it can again.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const KEY: &str = "test-admin-key";
const WITHIN: Duration = Duration::from_secs(10);

fn config(state: &Path) -> String {
    format!(
        r#"
[admin]
addr = "127.0.0.1:0"
api_keys = ["{KEY}"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[state]
path = "{}"

[policies.standard_policy]
free = true
[policies.standard_policy.limits]
all_daily_cap = 100

[policies.strict]
free = true
[policies.strict.limits]
all_daily_cap = 50

[[accounts]]
id = "acct-1"
secret = "{SECRET}"
"#,
        state.display()
    )
}

/// The permission bits of `path`, in octal.
fn mode(path: &Path) -> String {
    let bits = std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode();
    format!("{:o}", bits & 0o777)
}

async fn admin(
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{admin}{path}"))
        .header("X-API-KEY", KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_through(http: &str, origin: &Origin, times: usize) {
    let proxy = reqwest::Proxy::http(format!("http://acct-1:{SECRET}@{http}")).expect("proxy");
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .build()
        .expect("client");
    for _ in 0..times {
        let response = client.get(origin.url("/")).send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// Polls `/healthz` until it answers `status`, for at most [`WITHIN`].
async fn health_becomes(admin: &str, status: u16) -> Value {
    for _ in 0..100 {
        let response = reqwest::get(format!("http://{admin}/healthz"))
            .await
            .expect("healthz");
        if response.status().as_u16() == status {
            return response.json().await.expect("health json");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/healthz never answered {status}");
}

async fn stop(child: &mut tokio::process::Child) {
    let pid = child.id().expect("pid").to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn the_store_and_its_folder_are_readable_by_the_owner_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("data/nested/pacer.db");
    let proxy = Proxy::start(&config(&db)).await;
    assert_eq!(mode(&db), "600", "the store file");
    assert_eq!(mode(db.parent().expect("folder")), "700", "its folder");
    assert_eq!(mode(&dir.path().join("data")), "700", "every folder made");
    assert!(proxy.stop().await);

    let loose = dir.path().join("loose.db");
    std::fs::write(&loose, b"").expect("empty file");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let proxy = Proxy::start(&config(&loose)).await;
    assert_eq!(mode(&loose), "600", "an existing file is narrowed");
    assert!(proxy.stop().await);
}

#[tokio::test]
async fn a_store_deleted_while_pacer_runs_is_written_afresh_from_memory() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("data/pacer.db");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, config(&db)).expect("config");
    let (mut child, addrs, mut log) = spawn_pacer_logged(&path, 2).await;
    let (http, admin_addr) = (addrs[0].as_str(), addrs[1].as_str());
    get_through(http, &origin, 3).await;
    let strict = json!({"account": "acct-1", "policy_slug": "strict"});
    let patched = admin(
        admin_addr,
        reqwest::Method::PATCH,
        "/v2/session/rate-limit",
        Some(strict),
    );
    assert_eq!(patched.await.0, 200);

    std::fs::remove_file(&db).expect("delete the store");
    let line = log
        .wait_for(
            &["ERROR", "deleted or replaced", "wrote a fresh one"],
            WITHIN,
        )
        .await;
    assert!(db.exists(), "{line}");
    assert_eq!(mode(&db), "600");
    get_through(http, &origin, 2).await;
    stop(&mut child).await;

    let (mut again, addrs) = spawn_pacer(&path, 2).await;
    let (_, account) = admin(&addrs[1], reqwest::Method::GET, "/v1/accounts/acct-1", None).await;
    assert_eq!(account["policy"], "strict", "the runtime change: {account}");
    assert_eq!(account["usage"]["all"], 5, "every request: {account}");
    stop(&mut again).await;
}

#[tokio::test]
async fn a_store_that_cannot_be_written_fails_healthz_until_it_can() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = data.join("pacer.db");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, config(&db)).expect("config");
    let (mut child, addrs, mut log) = spawn_pacer_logged(&path, 2).await;
    let (http, admin_addr) = (addrs[0].as_str(), addrs[1].as_str());
    assert_eq!(health_becomes(admin_addr, 200).await["status"], "ok");

    // The folder becomes a plain file: no store can be written there.
    std::fs::remove_dir_all(&data).expect("remove the folder");
    std::fs::write(&data, b"not a folder").expect("a file in its place");
    // The account has no durable lease yet and none can be written: it
    // is refused rather than admitted beyond what a crash could recount.
    let proxy = reqwest::Proxy::http(format!("http://acct-1:{SECRET}@{http}")).expect("proxy");
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .build()
        .expect("client");
    let refused = client.get(origin.url("/")).send().await.expect("answer");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let refused: Value = refused.json().await.expect("envelope");
    assert_eq!(refused["type"], "errors/rate_limited", "{refused}");
    let line = log
        .wait_for(&["ERROR", "usage not persisted"], WITHIN)
        .await;
    let health = health_becomes(admin_addr, 503).await;
    assert_eq!(health["status"], "failing", "{health}");
    assert!(
        health["store"]
            .as_str()
            .is_some_and(|e| e.contains("cannot create")),
        "{health} / {line}"
    );

    // Writable again: usage is written, and admission (which waits for a
    // durable lease while the store cannot take one) goes on.
    std::fs::remove_file(&data).expect("remove the file");
    log.wait_for(&["state store written again"], WITHIN).await;
    assert_eq!(health_becomes(admin_addr, 200).await["status"], "ok");
    get_through(http, &origin, 2).await;
    stop(&mut child).await;

    let (mut again, addrs) = spawn_pacer(&path, 2).await;
    let (_, account) = admin(&addrs[1], reqwest::Method::GET, "/v1/accounts/acct-1", None).await;
    assert_eq!(account["usage"]["all"], 2, "nothing lost: {account}");
    stop(&mut again).await;
}
