//! Platform feedback (SPEC section 4): an origin's "too fast" answer
//! reaches the client unchanged and pauses the matched actions of that
//! account (or `all`), refused by pacer with the `backoff` headers until
//! the pause ends; durable across restarts and SIGKILL.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use common::clients::{raw_get, socks_connect};
use common::{parse_envelope, Proxy, SECRET};

const KEY: &str = "test-admin-key";

/// An origin answering `/<anything>/status/<code>[/<retry-after>]` with
/// that status (and `Retry-After`), anything else 200 `fine`.
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(answer(request.uri().path()))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

fn answer(path: &str) -> Response<Full<Bytes>> {
    let mut parts = path.split("/status/").nth(1).unwrap_or("").split('/');
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status.and_then(|s| StatusCode::from_u16(s).ok()) else {
        return Response::new(Full::new(Bytes::from_static(b"fine")));
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"origin says slow down")));
    *response.status_mut() = status;
    if let Some(retry) = parts.next() {
        let value = retry.replace("%20", " ");
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}

fn config(state: &str, mode: &str) -> String {
    format!(
        r#"
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
paths = ["/send/*"]

[[actions]]
name = "view"
paths = ["/view/*"]

[policies.standard_policy]
mode = "{mode}"
max_wait = "30s"
[policies.standard_policy.limits]
all_per_minute = 1000
[policies.standard_policy.backoff]
statuses = [429, 999]
default_pause = "1s"
max_pause = "2s"

[[accounts]]
id = "acct-1"
secret = "{SECRET}"

[[accounts]]
id = "acct-2"
secret = "{SECRET}"
"#
    )
}

fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

async fn get(proxy: &Proxy, account: &str, origin: SocketAddr, path: &str) -> Vec<u8> {
    raw_get(proxy, account, &format!("http://{origin}{path}")).await
}

/// Polls until `account`'s `path` is admitted again; returns how long.
async fn until_admitted(proxy: &Proxy, account: &str, origin: SocketAddr, path: &str) -> Duration {
    let start = Instant::now();
    loop {
        if status_of(&get(proxy, account, origin, path).await) == 200 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never admitted again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_429_pauses_the_action_of_that_account_only_then_lifts() {
    let origin = origin().await;
    let proxy = Proxy::start(&config("memory", "reject")).await;
    let answer = get(&proxy, "acct-1", origin, "/send/status/429/1").await;
    assert_eq!(
        status_of(&answer),
        429,
        "the origin's answer reaches the client"
    );
    assert!(String::from_utf8_lossy(&answer).ends_with("origin says slow down"));
    assert_eq!(
        header(&answer, "content-type").as_deref(),
        None,
        "untouched"
    );

    let refused = get(&proxy, "acct-1", origin, "/send/next").await;
    let (status, envelope, _) = parse_envelope(&refused);
    assert_eq!(status, 429);
    assert_eq!(envelope["type"], "errors/rate_limited");
    let detail = envelope["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("send") && detail.contains("429"),
        "{detail}"
    );
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    assert_eq!(
        header(&refused, "ratelimit-policy").as_deref(),
        Some("\"backoff\";q=0;w=1")
    );
    assert_eq!(
        header(&refused, "ratelimit").as_deref(),
        Some("\"backoff\";r=0;t=1")
    );
    assert_eq!(
        status_of(&get(&proxy, "acct-1", origin, "/view/x").await),
        200
    );
    assert_eq!(
        status_of(&get(&proxy, "acct-2", origin, "/send/x").await),
        200
    );
    let waited = until_admitted(&proxy, "acct-1", origin, "/send/later").await;
    assert!(
        waited >= Duration::from_millis(500),
        "lifted after {waited:?}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn no_retry_after_is_the_default_pause_and_unlisted_statuses_pause_nothing() {
    let origin = origin().await;
    let proxy = Proxy::start(&config("memory", "reject")).await;
    assert_eq!(
        status_of(&get(&proxy, "acct-1", origin, "/send/status/503").await),
        503
    );
    assert_eq!(
        status_of(&get(&proxy, "acct-1", origin, "/send/x").await),
        200,
        "503 is not listed"
    );
    assert_eq!(
        status_of(&get(&proxy, "acct-1", origin, "/send/status/999").await),
        999
    );
    let refused = get(&proxy, "acct-1", origin, "/send/x").await;
    assert_eq!(status_of(&refused), 429);
    assert_eq!(
        header(&refused, "ratelimit-policy").as_deref(),
        Some("\"backoff\";q=0;w=1"),
        "default_pause"
    );
    until_admitted(&proxy, "acct-1", origin, "/send/x").await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_huge_retry_after_is_cut_to_max_pause_and_an_http_date_is_read() {
    let origin = origin().await;
    let proxy = Proxy::start(&config("memory", "reject")).await;
    get(&proxy, "acct-1", origin, "/send/status/429/86400").await;
    let refused = get(&proxy, "acct-1", origin, "/send/x").await;
    assert_eq!(
        header(&refused, "ratelimit-policy").as_deref(),
        Some("\"backoff\";q=0;w=2"),
        "max_pause"
    );
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
    get(
        &proxy,
        "acct-2",
        origin,
        &format!("/view/status/429/{}", date.replace(' ', "%20")),
    )
    .await;
    let refused = get(&proxy, "acct-2", origin, "/view/x").await;
    assert_eq!(status_of(&refused), 429);
    assert_eq!(
        header(&refused, "ratelimit-policy").as_deref(),
        Some("\"backoff\";q=0;w=2"),
        "a date a minute ahead, capped"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_paced_request_is_refused_at_once_and_an_all_pause_holds_tunnels() {
    let origin = origin().await;
    let proxy = Proxy::start(&config("memory", "pace")).await;
    get(&proxy, "acct-1", origin, "/other/status/429/2").await;
    let start = Instant::now();
    let refused = get(&proxy, "acct-1", origin, "/send/x").await;
    assert_eq!(status_of(&refused), 429, "`all` is paused: every request");
    assert!(header(&refused, "x-pacer-waited").is_none());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "not paced through the pause"
    );
    let (reply, _) = socks_connect(&proxy, "acct-1", "127.0.0.1", origin.port()).await;
    assert_eq!(reply, 0x02, "SOCKS5 refusal");
    proxy.stop().await;
}

async fn admin_json(proxy: &Proxy, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("http://{}{path}", proxy.admin))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_pause_is_shown_counted_and_survives_a_restart() {
    let origin = origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pacer.db").display().to_string();
    let toml = config(&state, "reject").replace("max_pause = \"2s\"", "max_pause = \"1h\"");
    let proxy = Proxy::start(&toml).await;
    get(&proxy, "acct-1", origin, "/send/status/429/600").await;
    let account = admin_json(&proxy, "/v1/accounts/acct-1").await;
    assert_eq!(account["backoff"][0]["action"], "send", "{account}");
    assert_eq!(account["backoff"][0]["origin_status"], 429);
    let policies = admin_json(&proxy, "/v2/session/rate-limit?account=acct-1").await;
    let backoff = &policies["policies"][0]["limits"]["backoff"];
    assert_eq!(
        backoff["statuses"],
        serde_json::json!([429, 999]),
        "{policies}"
    );
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", proxy.admin))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("pacer_backoff_pauses_total{action=\"send\"} 1"),
        "{metrics}"
    );
    assert!(proxy.stop().await);
    let proxy = Proxy::start(&toml).await;
    let refused = get(&proxy, "acct-1", origin, "/send/x").await;
    assert_eq!(status_of(&refused), 429, "the pause came back");
    let left: u64 = header(&refused, "retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((590..=600).contains(&left), "not shorter: {left}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_pause_survives_sigkill() {
    let origin = origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pacer.db").display().to_string();
    let toml = config(&state, "reject").replace("max_pause = \"2s\"", "max_pause = \"1h\"");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, &toml).expect("write");
    let (mut child, addrs) = common::spawn_pacer(&path, 1).await;
    let http: SocketAddr = addrs[0].parse().expect("addr");
    let request = |path: String| {
        let token = base64_basic("acct-1");
        format!("GET http://{origin}{path} HTTP/1.1\r\nHost: {origin}\r\nProxy-Authorization: Basic {token}\r\nConnection: close\r\n\r\n")
    };
    let answer = common::raw_exchange(
        http,
        request("/send/status/429/600".into()).as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status_of(&answer), 429);
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let (mut again, addrs) = common::spawn_pacer(&path, 1).await;
    let http: SocketAddr = addrs[0].parse().expect("addr");
    let refused = common::raw_exchange(
        http,
        request("/send/x".into()).as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        status_of(&refused),
        429,
        "{}",
        String::from_utf8_lossy(&refused)
    );
    assert!(String::from_utf8_lossy(&refused).contains("backoff"));
    let _ = again.start_kill();
}

fn base64_basic(account: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{account}:{SECRET}"))
}
