//! Black-box regression tests for known bugs, one section per bug:
//!
//! 1. a forwarded response body that stalls is cut by `idle_timeout` and
//!    frees the account's `concurrent_limit` slot;
//! 2. a proxy probe (`PATCH /v1/accounts/{id}` with `proxy`) does not hold
//!    up other admin changes;
//! 3. a stored override naming an action a new config removed does not stop
//!    pacer from starting;
//! 4. an account removed by a reload and added back keeps its usage;
//! 5. accept errors (EMFILE) back off instead of spinning, on the admin and
//!    the HTTP listener (the real binary under a low open-files limit);
//! 6. every SOCKS5 exit is one finished request in the metrics.
//!
//! Every wait is bounded; every socket is on 127.0.0.1 with port 0.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::clients::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use pacer::config::{self, ListenerProtocol};
use pacer::server::Server;

/// The admin key of every config here.
const KEY: &str = "test-admin-key";

/// The bound on every wait for something that must happen.
const WITHIN: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// An admin call with a JSON body: the status and the JSON answer (`Null`
/// when the answer is not JSON).
async fn admin_call(
    admin: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("admin client");
    let mut request = client
        .request(method, format!("http://{admin}{path}"))
        .header("X-API-KEY", KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET /metrics` with the admin key.
async fn metrics(admin: SocketAddr) -> String {
    let client = reqwest::Client::builder()
        .timeout(WITHIN)
        .build()
        .expect("metrics client");
    client
        .get(format!("http://{admin}/metrics"))
        .header("X-API-KEY", KEY)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text")
}

/// A sample's value (counters and gauges here are whole numbers).
fn sample(value: &str) -> Option<i64> {
    let value = value.trim();
    value
        .parse::<i64>()
        .ok()
        .or_else(|| value.parse::<f64>().ok().map(|v| v as i64))
}

/// The value of the exact series `series` (name and labels), 0 if absent.
fn series_value(text: &str, series: &str) -> i64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .filter_map(sample)
        .sum()
}

/// The sum of every series whose text starts with `prefix`.
fn series_sum(text: &str, prefix: &str) -> i64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| sample(line.rsplit(' ').next()?))
        .sum()
}

const SOCKS_ALL: &str = "pacer_requests_total{listener=\"socks5\",action=\"all\",";
const SOCKS_OPEN: &str = "pacer_open_connections{listener=\"socks5\"}";

fn socks_series(outcome: &str) -> String {
    format!("{SOCKS_ALL}outcome=\"{outcome}\",intercepted=\"false\"}}")
}

/// Polls `GET /metrics` until `done` holds for its text (every 20 ms, at
/// most [`WITHIN`]); fails the test with `what` otherwise.
async fn metrics_until(admin: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        let text = metrics(admin).await;
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WITHIN:?} waiting for {what}; metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no SOCKS5 client connection is open: every connection task
/// has ended, so whatever it was going to count is counted.
async fn socks_connections_closed(admin: SocketAddr) -> String {
    metrics_until(admin, "every SOCKS5 connection to close", |text| {
        series_value(text, SOCKS_OPEN) == 0
    })
    .await
}

/// Checks that the SOCKS5 listener counted exactly one finished request,
/// with outcome `outcome`.
fn assert_one_socks_request(text: &str, outcome: &str) {
    let counted = series_value(text, &socks_series(outcome));
    let all = series_sum(text, SOCKS_ALL);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(SOCKS_ALL))
        .collect();
    assert!(
        counted == 1 && all == 1,
        "expected exactly one SOCKS5 request with outcome `{outcome}`; \
         {} = {counted}, all socks5 outcomes together = {all}: {lines:?}",
        socks_series(outcome)
    );
}

/// Reads from `stream` until the peer closes it (EOF or an error).
async fn read_until_eof(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// Reads a request or response head (up to the blank line) from `stream`;
/// `None` when the peer closes first.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A proxy started from TOML whose start-up failure is reported, not
/// panicked on (section 3 needs to see it).
struct Started {
    http: SocketAddr,
    admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<bool>>,
}

impl Started {
    async fn try_start(toml: &str) -> Result<Started, String> {
        let config = config::parse(toml, &|_| None)
            .map_err(|errors| format!("config invalid: {errors:?}"))?;
        let server = Server::bind(&config)
            .await
            .map_err(|err| format!("Server::bind failed: {err:#}"))?;
        let admin = server.admin_addr().ok_or("no admin address")?;
        let http = server
            .local_addrs()
            .into_iter()
            .find(|(protocol, _)| *protocol == ListenerProtocol::Http)
            .map(|(_, addr)| addr)
            .ok_or("no http listener")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(Started {
            http,
            admin,
            stop: Some(stop),
            task,
        })
    }

    fn client(&self) -> reqwest::Client {
        let proxy =
            reqwest::Proxy::http(format!("http://acct-1:{SECRET}@{}", self.http)).expect("proxy");
        reqwest::Client::builder()
            .proxy(proxy)
            .timeout(WITHIN)
            .build()
            .expect("client")
    }

    async fn stop(mut self) -> Result<bool, String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(WITHIN, &mut self.task).await {
            Ok(Ok(ran)) => ran.map_err(|err| format!("Server::run failed: {err:#}")),
            Ok(Err(err)) => Err(format!("server task: {err}")),
            Err(_) => Err("the server did not stop in time".into()),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. A stalled response body is cut by idle_timeout and frees its slot
// ---------------------------------------------------------------------------

/// The first body bytes the stalling origin sends before it stalls.
const STALL_PREFIX: &[u8] = b"xxxxx";

/// A raw origin: `/stall` answers a head announcing 100000 bytes, sends
/// [`STALL_PREFIX`] and then nothing, keeping the socket open until the
/// peer closes it; any other path answers `ok` and closes.
async fn stalling_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(head) = read_head(&mut stream).await else {
                    return;
                };
                let first_line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if first_line.contains("/stall") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                        .await;
                    let _ = stream.write_all(STALL_PREFIX).await;
                    read_until_eof(&mut stream).await;
                } else {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    addr
}

/// One HTTP listener, the admin API with [`KEY`], `[server]` settings,
/// the store at `state`, then `rest` (actions, policies, accounts).
fn http_config(server: &str, state: &str, rest: &str) -> String {
    format!(
        "[server]\n{server}\n[admin]\naddr = \"127.0.0.1:0\"\napi_keys = [\"{KEY}\"]\n\n[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n\n[state]\npath = \"{state}\"\n\n{rest}"
    )
}

/// `acct-1` with the default secret.
fn acct1() -> String {
    format!("[[accounts]]\nid = \"acct-1\"\nsecret = \"{SECRET}\"\n")
}

fn concurrency_config() -> String {
    let server = "header_read_timeout = \"2s\"\nidle_timeout = \"1s\"\nconnect_timeout = \"2s\"\nshutdown_grace = \"1s\"\n";
    let policy = "[policies.standard_policy]\nname = \"Standard\"\nmode = \"reject\"\n[policies.standard_policy.limits]\nconcurrent_limit = 1\n";
    http_config(server, "memory", &format!("{policy}\n{}", acct1()))
}
#[tokio::test]
async fn stalled_response_body_is_cut_by_idle_timeout_and_frees_the_concurrency_slot() {
    let origin = stalling_origin().await;
    let proxy = Proxy::start(&concurrency_config()).await;

    let mut first = TcpStream::connect(proxy.http).await.expect("connect");
    let request = format!(
        "GET http://{origin}/stall HTTP/1.1\r\nHost: {origin}\r\nProxy-Authorization: {}\r\n\r\n",
        basic_auth()
    );
    first.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    let head_and_prefix = async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                if received.len() >= end + 4 + STALL_PREFIX.len() {
                    return true;
                }
            }
            match first.read(&mut chunk).await {
                Ok(n) if n > 0 => received.extend_from_slice(&chunk[..n]),
                _ => return false,
            }
        }
    };
    let arrived = tokio::time::timeout(WITHIN, head_and_prefix).await;
    assert!(
        matches!(arrived, Ok(true)),
        "the head and the first body bytes reach the client: {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );

    // The body now stalls: with idle_timeout = 1s pacer must cut the client
    // connection (EOF or reset) well within the bound.
    let started = Instant::now();
    let cut = tokio::time::timeout(WITHIN, read_until_eof(&mut first)).await;
    let cut_after = started.elapsed();

    // Then the account's only concurrent_limit slot must be free again.
    let second = proxy
        .client()
        .get(format!("http://{origin}/ok"))
        .timeout(WITHIN)
        .send()
        .await
        .expect("second request answered");
    let second_status = second.status().as_u16();
    let second_body = second.text().await.unwrap_or_default();

    assert!(
        cut.is_ok(),
        "a response body stalled for {cut_after:?} was not cut (idle_timeout = 1s); \
         the next request of the account then got {second_status}: {second_body}"
    );
    assert_eq!(
        second_status, 200,
        "after the stalled response was cut ({cut_after:?}), the account's \
         concurrent_limit slot is free: {second_body}"
    );
    assert_eq!(second_body, "ok");
}

// ---------------------------------------------------------------------------
// 2. A proxy probe does not hold up other admin changes
// ---------------------------------------------------------------------------

/// A fake upstream that accepts one connection, reports it on `accepted`,
/// and holds it without a word until `release` fires; it then answers the
/// CONNECT with 200 and keeps the socket until the peer closes it.
async fn held_upstream() -> (SocketAddr, oneshot::Receiver<()>, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    let (accepted_tx, accepted_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let _ = accepted_tx.send(());
        let _ = release_rx.await;
        if read_head(&mut stream).await.is_some() {
            let _ = stream
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await;
            read_until_eof(&mut stream).await;
        }
    });
    (addr, accepted_rx, release_tx)
}

fn probe_config() -> String {
    let server = "header_read_timeout = \"10s\"\nconnect_timeout = \"30s\"\n";
    let policy = "[policies.standard_policy]\nname = \"Standard\"\nfree = true\n";
    http_config(server, "memory", &format!("{policy}\n{}", acct1()))
}
#[tokio::test]
async fn a_held_proxy_probe_does_not_block_other_admin_changes() {
    let proxy = Proxy::start(&probe_config()).await;
    let (upstream, accepted, release) = held_upstream().await;
    let admin = proxy.admin;
    let patch_proxy = tokio::spawn(async move {
        let body =
            json!({"proxy": {"protocol": "http", "host": "127.0.0.1", "port": upstream.port()}});
        admin_call(admin, Method::PATCH, "/v1/accounts/acct-1", Some(body)).await
    });
    tokio::time::timeout(WITHIN, accepted)
        .await
        .expect("the probe reaches the fake upstream")
        .expect("accepted signal");

    // The probe is now held; another admin change must not wait for it.
    let started = Instant::now();
    let body = json!({"account": "acct-1", "policy_slug": "standard_policy"});
    let other = tokio::time::timeout(
        Duration::from_secs(5),
        admin_call(admin, Method::PATCH, "/v2/session/rate-limit", Some(body)),
    )
    .await;
    let waited = started.elapsed();

    let _ = release.send(());
    let patched = tokio::time::timeout(WITHIN, patch_proxy)
        .await
        .expect("the proxy PATCH ends once the upstream answers")
        .expect("proxy PATCH task");

    let (status, view) = other.unwrap_or_else(|_| {
        panic!(
            "PATCH /v2/session/rate-limit got no answer within {waited:?} while a proxy \
             probe was held: it waits for the probe"
        )
    });
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["current_policy"], "standard_policy", "{view}");
    assert_eq!(patched.0, 200, "{}", patched.1);
    assert_eq!(patched.1["object"], "AccountPatched", "{}", patched.1);
}

// ---------------------------------------------------------------------------
// 3. A stored override naming a removed action does not stop a start
// ---------------------------------------------------------------------------

fn overrides_config(state: &Path, with_profiles: bool) -> String {
    let action = if with_profiles {
        "[[actions]]\nname = \"profiles\"\npaths = [\"/in/*\"]\n"
    } else {
        ""
    };
    let rest = format!(
        "{action}\n[policies.standard_policy]\nname = \"Standard\"\n\n{}",
        acct1()
    );
    http_config("", &state.display().to_string(), &rest)
}
#[tokio::test]
async fn a_stored_override_of_a_removed_action_does_not_stop_the_start() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pacer.db");

    let with = Started::try_start(&overrides_config(&state, true))
        .await
        .expect("pacer starts with the `profiles` action");
    let (status, answer) = admin_call(
        with.admin,
        Method::POST,
        "/v1/accounts",
        Some(json!({"account": "acct-1", "params": {"profiles": 5}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(with.stop().await, Ok(true));

    let without = Started::try_start(&overrides_config(&state, false))
        .await
        .unwrap_or_else(|err| {
            panic!(
                "pacer must start with a config that dropped the `profiles` action \
                 a stored override names; it failed: {err}"
            )
        });
    let served = without
        .client()
        .get(origin.url("/in/x"))
        .send()
        .await
        .expect("request through the proxy");
    assert_eq!(served.status().as_u16(), 200, "acct-1 is served");
    let (status, account) =
        admin_call(without.admin, Method::GET, "/v1/accounts/acct-1", None).await;
    assert_eq!(status, 200, "{account}");
    let limits = account["limits"].as_object().cloned().unwrap_or_default();
    assert!(
        !limits.contains_key("profiles"),
        "no `profiles` limit without the action: {account}"
    );
    let (status, answer) = admin_call(
        without.admin,
        Method::POST,
        "/v1/accounts",
        Some(json!({"account": "acct-1", "params": {"batch": 5, "batch_hours": 1}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["params"]["user"]["batch"]["limit"], 5, "{answer}");
    assert_eq!(without.stop().await, Ok(true));
}

// ---------------------------------------------------------------------------
// 4. An account removed by a reload and added back keeps its usage
// ---------------------------------------------------------------------------

fn capped_config(state: &str, with_acct2: bool) -> String {
    let acct2 = if with_acct2 {
        format!("[[accounts]]\nid = \"acct-2\"\nsecret = \"{SECRET}\"\npolicy = \"capped\"\n")
    } else {
        String::new()
    };
    let policies = "[policies.standard_policy]\nname = \"Standard\"\n\n[policies.capped]\nname = \"Capped\"\nmode = \"reject\"\n[policies.capped.limits]\nall_daily_cap = 2\n";
    http_config("", state, &format!("{policies}\n{}\n{acct2}", acct1()))
}
/// Two requests of acct-2 use up its daily cap of 2; a reload removes
/// acct-2, another adds it back; its next request must be refused.
async fn readded_account_keeps_its_usage(state: &str) {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, capped_config(state, true)).expect("write config");
    let proxy = Proxy::start_file(&path).await;
    for n in 1..=2 {
        let raw = raw_get(&proxy, "acct-2", &origin.url("/")).await;
        let (status, _, _) = parse_envelope(&raw);
        assert_eq!(
            status,
            200,
            "request {n} is within the cap: {}",
            String::from_utf8_lossy(&raw)
        );
    }
    assert_eq!(origin.hits(), 2);

    for (with_acct2, what) in [(false, "without acct-2"), (true, "with acct-2 again")] {
        std::fs::write(&path, capped_config(state, with_acct2)).expect("write config");
        let (status, answer) = admin_call(proxy.admin, Method::POST, "/v1/reload", None).await;
        assert_eq!(status, 200, "reload {what}: {answer}");
    }

    let raw = raw_get(&proxy, "acct-2", &origin.url("/")).await;
    let (status, json, _) = parse_envelope(&raw);
    assert_eq!(
        status,
        429,
        "acct-2 used its all_daily_cap = 2 before it was removed and added back; \
         a third request today must be refused, got: {}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(json["type"], "errors/rate_limited", "{json}");
    assert_eq!(
        origin.hits(),
        2,
        "the third request never reached the origin"
    );
}

#[tokio::test]
async fn an_account_removed_and_added_back_by_reloads_keeps_its_usage_in_memory() {
    readded_account_keeps_its_usage("memory").await;
}

#[tokio::test]
async fn an_account_removed_and_added_back_by_reloads_keeps_its_usage_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("pacer.db");
    readded_account_keeps_its_usage(&state.display().to_string()).await;
}

// ---------------------------------------------------------------------------
// 5. Accept errors (EMFILE) back off instead of spinning
// ---------------------------------------------------------------------------

/// Descriptors pacer may open beyond those it holds once it listens.
const FD_HEADROOM: usize = 16;

/// CPU time a backed-off accept loop may burn over [`CPU_WINDOW`].
const CPU_BUDGET_SECS: f64 = 0.5;

const CPU_WINDOW: Duration = Duration::from_secs(2);

fn emfile_config() -> String {
    // Long head and idle timeouts: the connections that were accepted stay
    // open, so the descriptors stay exhausted while CPU time is measured.
    let server = "header_read_timeout = \"60s\"\nidle_timeout = \"60s\"\nconnect_timeout = \"2s\"\nshutdown_grace = \"1s\"\n";
    let policy = "[policies.standard_policy]\nname = \"Standard\"\n";
    http_config(server, "memory", &format!("{policy}\n{}", acct1()))
}
/// The `pacer` binary on `config`, under an open-files limit of `nofile`
/// when given (`ulimit -n` in a shell that then execs pacer, so the pid is
/// pacer's); its HTTP listener and admin address, read from its log.
async fn spawn_limited(
    config: &Path,
    nofile: Option<usize>,
) -> (tokio::process::Child, SocketAddr, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let pacer = env!("CARGO_BIN_EXE_pacer");
    let mut command = match nofile {
        Some(limit) => {
            let mut sh = tokio::process::Command::new("sh");
            sh.arg("-c")
                .arg("ulimit -n \"$1\" || exit 97; shift; exec \"$@\"")
                .arg("sh")
                .arg(limit.to_string())
                .arg(pacer);
            sh
        }
        None => tokio::process::Command::new(pacer),
    };
    let mut child = command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pacer");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut log = Vec::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.split("addr=").nth(1) {
                if let Ok(addr) = addr.trim().parse() {
                    addrs.push(addr);
                }
            }
            log.push(line);
            if addrs.len() == 2 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
    assert_eq!(
        addrs.len(),
        2,
        "pacer (open files limit {nofile:?}) logs its HTTP and admin addresses: {log:?}"
    );
    // Keep draining the log so that pacer never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addrs[0], addrs[1])
}

/// The descriptors `pid` holds: number and what it points to.
fn open_fds(pid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<(u32, String)> = dir
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let number = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((number, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds
}

/// Descriptors of `pid` numbered below `limit` (the ones `RLIMIT_NOFILE`
/// bounds; a descriptor inherited with a higher number does not count).
fn fds_below(pid: u32, limit: usize) -> usize {
    open_fds(pid)
        .iter()
        .filter(|(number, _)| (*number as usize) < limit)
        .count()
}

/// The descriptors of `pid` once their number stays the same over five
/// looks 50 ms apart (the ingress threads start after pacer logs its
/// addresses), within [`WITHIN`].
async fn settled_fds(pid: u32) -> Vec<(u32, String)> {
    let deadline = Instant::now() + WITHIN;
    let mut last = open_fds(pid);
    let mut same = 0;
    while same < 5 {
        assert!(
            Instant::now() < deadline,
            "pacer's descriptors settle: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = open_fds(pid);
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

/// The admin API answers `/healthz` and the HTTP listener answers a proxy
/// request (407 without credentials), each on a connection it then closes.
async fn assert_serving(http: SocketAddr, admin: SocketAddr) {
    let health = raw_exchange(
        admin,
        b"GET /healthz HTTP/1.1\r\nHost: pacer\r\nConnection: close\r\n\r\n",
        WITHIN,
    )
    .await;
    assert!(
        health.starts_with(b"HTTP/1.1 200"),
        "admin API serving: {:?}",
        String::from_utf8_lossy(&health)
    );
    let proxied = raw_exchange(
        http,
        b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n",
        WITHIN,
    )
    .await;
    assert!(
        proxied.starts_with(b"HTTP/1.1 407"),
        "HTTP listener serving: {:?}",
        String::from_utf8_lossy(&proxied)
    );
}

/// `3 × socket, 2 × anon_inode:[eventpoll], …` for a list of descriptors.
fn fd_summary(fds: &[(u32, String)]) -> String {
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, target) in fds {
        let kind = target.split(':').next().unwrap_or(target);
        let kind = match kind {
            "anon_inode" => target.as_str(),
            other => other,
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    kinds
        .iter()
        .map(|(kind, n)| format!("{n} × {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// utime + stime of `pid`, in clock ticks (fields 14 and 15 of
/// `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a tick count") };
    field(14) + field(15)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[derive(Debug, Clone, Copy)]
enum Port {
    Admin,
    Http,
}

/// Runs pacer with the descriptors it holds once serving plus
/// [`FD_HEADROOM`] (measured on an unlimited run first), exhausts them with
/// connections to `port` that stay open, and returns the CPU seconds pacer
/// burns over [`CPU_WINDOW`] while its accept loop keeps failing.
async fn cpu_while_descriptors_are_exhausted(port: Port) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    std::fs::write(&config, emfile_config()).expect("write config");

    let (mut free, http, admin) = spawn_limited(&config, None).await;
    assert_serving(http, admin).await;
    let at_start = settled_fds(free.id().expect("pid")).await;
    let _ = free.start_kill();
    let _ = free.wait().await;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    eprintln!(
        "pacer holds {} descriptors once it listens ({cores} ingress threads, 1 HTTP \
         listener, admin; stdin, stdout, stderr included): {}; numbers {:?}",
        at_start.len(),
        fd_summary(&at_start),
        at_start.iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    assert!(
        at_start.len() > 3,
        "descriptors of pacer counted: {at_start:?}"
    );

    let limit = at_start.len() + FD_HEADROOM;
    let (mut child, http, admin) = spawn_limited(&config, Some(limit)).await;
    let pid = child.id().expect("pid");
    assert_serving(http, admin).await;
    let target = match port {
        Port::Admin => admin,
        Port::Http => http,
    };
    // More connections than descriptors left: the ones pacer cannot accept
    // wait in the listen backlog, so every accept fails with EMFILE.
    let mut clients = Vec::new();
    for _ in 0..(2 * limit) {
        clients.push(TcpStream::connect(target).await.expect("connect"));
    }
    let deadline = Instant::now() + WITHIN;
    while fds_below(pid, limit) < limit {
        assert!(
            Instant::now() < deadline,
            "pacer's descriptors are exhausted: {} of {limit} open: {:?}",
            fds_below(pid, limit),
            open_fds(pid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ticks_per_second = clock_ticks_per_second();
    let before = cpu_ticks(pid);
    tokio::time::sleep(CPU_WINDOW).await;
    let after = cpu_ticks(pid);
    let still_exhausted = fds_below(pid, limit);
    let _ = child.start_kill();
    let _ = child.wait().await;
    drop(clients);
    let cpu = (after - before) as f64 / ticks_per_second;
    eprintln!(
        "{port:?} listener, all {limit} descriptors in use: {cpu:.2} s CPU in {CPU_WINDOW:?}"
    );
    assert_eq!(
        still_exhausted, limit,
        "descriptors stayed exhausted while CPU time was measured"
    );
    cpu
}

#[tokio::test]
async fn admin_accept_errors_back_off_instead_of_spinning() {
    let cpu = cpu_while_descriptors_are_exhausted(Port::Admin).await;
    assert!(
        cpu < CPU_BUDGET_SECS,
        "the admin accept loop burned {cpu:.2} s of CPU in {CPU_WINDOW:?} while accept \
         failed with EMFILE (busy loop; a backed-off loop stays under {CPU_BUDGET_SECS} s)"
    );
}

#[tokio::test]
async fn http_accept_errors_back_off_instead_of_spinning() {
    let cpu = cpu_while_descriptors_are_exhausted(Port::Http).await;
    assert!(
        cpu < CPU_BUDGET_SECS,
        "the HTTP accept loop burned {cpu:.2} s of CPU in {CPU_WINDOW:?} while accept \
         failed with EMFILE (busy loop; a backed-off loop stays under {CPU_BUDGET_SECS} s)"
    );
}

// ---------------------------------------------------------------------------
// 6. Every SOCKS5 exit is one finished request
// ---------------------------------------------------------------------------

/// The base config with `header_read_timeout = "1s"`.
fn socks_config() -> String {
    let toml = base_config("");
    let short = toml.replace(
        "header_read_timeout = \"2s\"",
        "header_read_timeout = \"1s\"",
    );
    assert_ne!(short, toml, "base_config sets header_read_timeout");
    short
}

#[tokio::test]
async fn socks5_bad_credentials_count_as_invalid_credentials() {
    let proxy = Proxy::start(&socks_config()).await;
    let mut stream = TcpStream::connect(proxy.socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut stream, b"acct-1", b"wrong-secret").await,
        1,
        "RFC 1929 status 0x01"
    );
    tokio::time::timeout(WITHIN, read_until_eof(&mut stream))
        .await
        .expect("pacer closes after refusing the credentials");
    let text = socks_connections_closed(proxy.admin).await;
    assert_one_socks_request(&text, "invalid_credentials");
}

#[tokio::test]
async fn socks5_unsupported_command_counts_as_malformed_request() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&socks_config()).await;
    let mut stream = TcpStream::connect(proxy.socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut stream, b"acct-1", SECRET.as_bytes()).await,
        0
    );
    assert_eq!(
        socks_command(&mut stream, 0x02, origin.addr).await,
        0x07,
        "BIND is answered 0x07"
    );
    tokio::time::timeout(WITHIN, read_until_eof(&mut stream))
        .await
        .expect("pacer closes after refusing the command");
    let text = socks_connections_closed(proxy.admin).await;
    assert_one_socks_request(&text, "malformed_request");
}

/// A SOCKS5 connection whose greeting (username/password only) was
/// answered with method 0x02.
async fn greeted(proxy: &Proxy) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.socks).await.expect("connect");
    stream.write_all(&[5, 1, 2]).await.expect("greeting");
    let mut method = [0u8; 2];
    stream.read_exact(&mut method).await.expect("method");
    assert_eq!(method, [5, 2]);
    stream
}

#[tokio::test]
async fn socks5_handshake_timeout_counts_as_request_timeout() {
    let proxy = Proxy::start(&socks_config()).await;
    let mut stream = greeted(&proxy).await;
    // No credentials follow: header_read_timeout (1 s) ends the handshake.
    tokio::time::timeout(WITHIN, read_until_eof(&mut stream))
        .await
        .expect("pacer closes a handshake that times out");
    let text = socks_connections_closed(proxy.admin).await;
    assert_one_socks_request(&text, "request_timeout");
}

#[tokio::test]
async fn socks5_client_leaving_mid_handshake_counts_as_malformed_request() {
    let proxy = Proxy::start(&socks_config()).await;
    let stream = greeted(&proxy).await;
    drop(stream);
    let text = socks_connections_closed(proxy.admin).await;
    assert_one_socks_request(&text, "malformed_request");
}

#[tokio::test]
async fn socks5_client_closing_without_a_byte_counts_nothing() {
    let proxy = Proxy::start(&socks_config()).await;
    let stream = TcpStream::connect(proxy.socks).await.expect("connect");
    metrics_until(
        proxy.admin,
        "pacer to accept the SOCKS5 connection",
        |text| series_value(text, SOCKS_OPEN) == 1,
    )
    .await;
    drop(stream);
    let text = socks_connections_closed(proxy.admin).await;
    let all = series_sum(&text, SOCKS_ALL);
    assert_eq!(
        all,
        0,
        "a client that sent nothing is no request: {:?}",
        text.lines()
            .filter(|line| line.starts_with(SOCKS_ALL))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn socks5_tunnel_counts_once_as_ok() {
    let echo = echo_server().await;
    let proxy = Proxy::start(&socks_config()).await;
    let (reply, stream) = socks_connect(&proxy, "acct-1", "127.0.0.1", echo.port()).await;
    assert_eq!(reply, 0, "CONNECT succeeds");
    let mut stream = stream.expect("tunnel");
    assert_echoes(&mut stream).await;
    stream.shutdown().await.expect("half-close");
    tokio::time::timeout(WITHIN, read_until_eof(&mut stream))
        .await
        .expect("the tunnel ends");
    drop(stream);
    let text = socks_connections_closed(proxy.admin).await;
    assert_one_socks_request(&text, "ok");
}

/// Bug: a reload did not take the admin write lock, so an admin change
/// saved while a reload ran was lost until restart. A reload now waits for
/// the lock that every admin change holds from read to swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_waits_for_the_admin_write_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, common::base_config("")).expect("write config");
    let config = pacer::config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let server = Server::bind(&config)
        .await
        .expect("bind")
        .reload_from(path.clone());
    let control = server.control();
    let writing = control.writes.lock().await;
    let reloading = control.clone();
    let reload = tokio::task::spawn_blocking(move || {
        pacer::control::reload::reload(&reloading, pacer::control::reload::Trigger::Api)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !reload.is_finished(),
        "the reload ran while an admin change held the write lock"
    );
    drop(writing);
    let done = tokio::time::timeout(Duration::from_secs(10), reload)
        .await
        .expect("the reload finishes once the lock is free")
        .expect("reload task");
    assert!(done.is_ok(), "{done:?}");
}
