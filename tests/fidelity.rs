//! Throttle fidelity (issue 15, SPEC sections 4 and 9): limits that hold
//! where the platform sees them, and the throttle bugs found from outside,
//! each through the real server with real clients.

mod common;

use std::time::Duration;

use common::clients::socks_connect;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const KEY: &str = "test-admin-key";

/// A proxy with actions `send` (`/send`) and `ping` (`/ping`), policy
/// `standard_policy` with `policy` lines (mode and limits), and `acct-1`
/// of type `t` (whose overrides may go up to 100).
fn config(state: &str, policy: &str) -> String {
    format!(
        r#"
[server]
connect_timeout = "2s"

[admin]
addr = "127.0.0.1:0"
api_keys = ["{KEY}"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[[listeners]]
protocol = "socks5"
addr = "127.0.0.1:0"

[state]
path = "{state}"

[[actions]]
name = "send"
paths = ["/send"]

[[actions]]
name = "ping"
paths = ["/ping"]

[policies.standard_policy]
{policy}

[account_types.t]
policy = "standard_policy"
[account_types.t.max]
batch = 100
ping_per_minute = 100

[[accounts]]
id = "acct-1"
secret = "{SECRET}"
type = "t"
"#
    )
}

async fn admin(
    admin: std::net::SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("http://{admin}{path}"))
        .header("X-API-KEY", KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin answers");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

async fn get(proxy: &Proxy, origin: &Origin, path: &str) -> reqwest::Response {
    proxy
        .client()
        .get(origin.url(path))
        .send()
        .await
        .expect("answered")
}

async fn usage_all(proxy: &Proxy) -> Value {
    admin(proxy.admin, Method::GET, "/v1/accounts/acct-1", None).await["usage"]["all"].clone()
}

#[tokio::test]
async fn a_socks5_client_gone_while_paced_is_neither_dialled_nor_charged() {
    let origin = Origin::start().await;
    let toml = config(
        "memory",
        "max_wait = \"30s\"\n[policies.standard_policy.limits]\nconcurrent_limit = 1",
    );
    let proxy = Proxy::start(&toml).await;
    let host = origin.addr.ip().to_string();
    let (reply, held) = socks_connect(&proxy, "acct-1", &host, origin.addr.port()).await;
    assert_eq!(reply, 0);
    let held = held.expect("the first tunnel");
    for _ in 0..3 {
        let mut waiting = TcpStream::connect(proxy.socks).await.expect("connect");
        waiting.write_all(&[5, 1, 2]).await.expect("greeting");
        let mut method = [0u8; 2];
        tokio::io::AsyncReadExt::read_exact(&mut waiting, &mut method)
            .await
            .expect("method");
        assert_eq!(socks_authenticate_sent(&mut waiting).await, 0);
        let mut connect = vec![5, 1, 0, 1];
        if let std::net::IpAddr::V4(ip) = origin.addr.ip() {
            connect.extend_from_slice(&ip.octets());
        }
        connect.extend_from_slice(&origin.addr.port().to_be_bytes());
        waiting.write_all(&connect).await.expect("connect command");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(waiting);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connections_before = origin.connections.load(std::sync::atomic::Ordering::SeqCst);
    drop(held);
    let (reply, next) = socks_connect(&proxy, "acct-1", &host, origin.addr.port()).await;
    assert_eq!(
        reply, 0,
        "the next tunnel is not queued behind gone clients"
    );
    drop(next);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        usage_all(&proxy).await,
        2,
        "only the two tunnels that ran are charged"
    );
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        connections_before + 1,
        "gone clients were never dialled"
    );
}

/// RFC 1929 credentials of `acct-1` on a stream that was offered method 2.
async fn socks_authenticate_sent(stream: &mut TcpStream) -> u8 {
    let mut auth = vec![1, 6];
    auth.extend_from_slice(b"acct-1");
    auth.push(SECRET.len() as u8);
    auth.extend_from_slice(SECRET.as_bytes());
    stream.write_all(&auth).await.expect("auth");
    let mut status = [0u8; 2];
    tokio::io::AsyncReadExt::read_exact(stream, &mut status)
        .await
        .expect("status");
    status[1]
}

#[tokio::test]
async fn the_protection_gap_never_holds_a_request_of_no_action() {
    let origin = Origin::start().await;
    let toml = config(
        "memory",
        "max_wait = \"30s\"\n[policies.standard_policy.limits]\naccount_protection_seconds = 3\nconcurrent_limit = 10\nall_per_minute = 50",
    );
    let proxy = Proxy::start(&toml).await;
    assert_eq!(get(&proxy, &origin, "/send").await.status(), StatusCode::OK);
    let waiting = {
        let client = proxy.client();
        let url = origin.url("/send");
        tokio::spawn(async move {
            client
                .get(url)
                .send()
                .await
                .map(|r| r.headers().contains_key("x-pacer-waited"))
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page = get(&proxy, &origin, "/page").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        !page.headers().contains_key("x-pacer-waited"),
        "a plain page load is not paced"
    );
    assert!(
        !waiting.is_finished(),
        "the second send still waits out the gap"
    );
    assert_eq!(waiting.await.expect("task").ok(), Some(true));
}

#[tokio::test]
async fn lowering_batch_below_current_admits_nothing_more() {
    let origin = Origin::start().await;
    let toml = config(
        "memory",
        "mode = \"reject\"\n[policies.standard_policy.limits]\nbatch = 10\nbatch_hours = 1",
    );
    let proxy = Proxy::start(&toml).await;
    for _ in 0..8 {
        assert_eq!(get(&proxy, &origin, "/send").await.status(), StatusCode::OK);
    }
    let body = json!({"account": "acct-1", "type": "t", "params": {"batch": 2, "batch_hours": 1}});
    let answer = admin(proxy.admin, Method::POST, "/v1/accounts", Some(body)).await;
    assert_eq!(
        answer["params"]["user"]["batch"]["current"], 2,
        "never above batch"
    );
    let refused = get(&proxy, &origin, "/send").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(origin.hits(), 8);
}

#[tokio::test]
async fn a_changed_rolling_limit_applies_to_the_same_window() {
    let origin = Origin::start().await;
    let toml = config(
        "memory",
        "mode = \"reject\"\n[policies.standard_policy.limits]\nping_per_minute = 5",
    );
    let proxy = Proxy::start(&toml).await;
    for _ in 0..5 {
        assert_eq!(get(&proxy, &origin, "/ping").await.status(), StatusCode::OK);
    }
    let set = |n: u64| json!({"account": "acct-1", "type": "t", "params": {"ping_per_minute": n}});
    admin(proxy.admin, Method::POST, "/v1/accounts", Some(set(6))).await;
    assert_eq!(
        get(&proxy, &origin, "/ping").await.status(),
        StatusCode::OK,
        "raised: one more"
    );
    assert_eq!(
        get(&proxy, &origin, "/ping").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    admin(proxy.admin, Method::POST, "/v1/accounts", Some(set(3))).await;
    assert_eq!(
        get(&proxy, &origin, "/ping").await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "lowered: nothing until the window drains"
    );
    assert_eq!(origin.hits(), 6);
}

#[tokio::test]
async fn changing_day_resets_at_keeps_todays_usage() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pacer.toml");
    let limits = "[policies.standard_policy.limits]\nall_daily_cap = 3";
    let now = time_of_day_in(3600);
    let write = |reset: &str| {
        let policy = format!("mode = \"reject\"\nday_resets_at = \"{reset}+00:00\"\n{limits}");
        std::fs::write(&file, config("memory", &policy)).expect("write config");
    };
    write("00:00");
    let proxy = Proxy::start_file(&file).await;
    for _ in 0..3 {
        assert_eq!(get(&proxy, &origin, "/").await.status(), StatusCode::OK);
    }
    // A reset time an hour ago: a new day under the new setting, holding
    // today's usage.
    write(&now);
    let reloaded = reqwest::Client::new()
        .post(format!("http://{}/v1/reload", proxy.admin))
        .header("X-API-KEY", KEY)
        .send()
        .await
        .expect("reload");
    assert_eq!(reloaded.status(), StatusCode::OK);
    assert_eq!(
        get(&proxy, &origin, "/").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(origin.hits(), 3);
}

/// `HH:MM` (UTC) `secs_ago` seconds ago.
fn time_of_day_in(secs_ago: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let minutes = ((now - secs_ago) % 86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[tokio::test]
async fn guard_is_shown_and_widens_the_window_in_rate_limit_policy() {
    let origin = Origin::start().await;
    let toml = config("memory", "mode = \"reject\"\nguard = \"1500ms\"\n[policies.standard_policy.limits]\nping_per_second = 1");
    let proxy = Proxy::start(&toml).await;
    assert_eq!(get(&proxy, &origin, "/ping").await.status(), StatusCode::OK);
    let refused = get(&proxy, &origin, "/ping").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let policy = refused.headers()["ratelimit-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        policy, "\"ping_per_second\";q=1;w=3",
        "1 s plus 1.5 s of guard, rounded up"
    );
    let limits = admin(
        proxy.admin,
        Method::GET,
        "/v2/session/rate-limit?account=acct-1",
        None,
    )
    .await;
    assert_eq!(limits["policies"][0]["limits"]["guard"], "1s 500ms");
}

#[tokio::test]
async fn a_window_too_long_to_count_is_refused_by_check_with_its_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pacer.toml");
    std::fs::write(
        &file,
        config(
            "memory",
            "[policies.standard_policy.limits]\nall_per_9999999h = 1",
        ),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("pacer check");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = config(
        "memory",
        "[policies.standard_policy.limits]\nall_per_9999999h = 1",
    )
    .lines()
    .position(|l| l.starts_with("all_per_9999999h"))
    .map(|i| i + 1)
    .expect("line");
    assert!(
        stderr.contains(&format!("pacer.toml:{line}:")) && stderr.contains("all_per_9999999h"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigkill_brings_quiet_accounts_back_exact_and_batches_never_past_batch() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pacer.db");
    let file = dir.path().join("pacer.toml");
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nbatch = 4\nbatch_hours = 1";
    let toml = config(&state.display().to_string(), policy);
    std::fs::write(&file, &toml).expect("write");
    let spawn = || spawn_pacer(&file, 3);
    // A quiet account, killed twice.
    for _ in 0..2 {
        let (mut child, _) = spawn().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        child.kill().await.expect("SIGKILL");
    }
    let (mut child, addrs) = spawn().await;
    let admin_addr: std::net::SocketAddr = addrs[2].parse().expect("admin addr");
    let account = admin(admin_addr, Method::GET, "/v1/accounts/acct-1", None).await;
    assert_eq!(
        account["usage"]["all"], 0,
        "a quiet account comes back exact: {account}"
    );
    // Fill the batch, let the usage become durable and the lease lapse.
    let http = addrs[0].clone();
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://acct-1:{SECRET}@{http}")).expect("proxy"))
        .build()
        .expect("client");
    for _ in 0..4 {
        let sent = client.get(origin.url("/send")).send().await.expect("send");
        assert_eq!(sent.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    child.kill().await.expect("SIGKILL");
    for _ in 0..2 {
        let (mut child, addrs) = spawn().await;
        let admin_addr: std::net::SocketAddr = addrs[2].parse().expect("admin addr");
        let body = json!({"account": "acct-1", "type": "t", "params": {}});
        let answer = admin(admin_addr, Method::POST, "/v1/accounts", Some(body)).await;
        assert_eq!(answer["params"]["user"]["batch"]["current"], 4, "{answer}");
        let account = admin(admin_addr, Method::GET, "/v1/accounts/acct-1", None).await;
        assert_eq!(account["usage"]["all"], 4, "exact once quiet: {account}");
        child.kill().await.expect("SIGKILL");
    }
}
