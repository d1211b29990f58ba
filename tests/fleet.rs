//! A fleet of pacers (SPEC section 10): two instances sharing their own
//! `redis-server` on a free loopback port. Limits hold across instances
//! (at the origin, by arrival), a refusal consumes nothing, and with Redis
//! gone `refuse` answers 503 (SOCKS5 0x01) while `local` falls back to the
//! instance's own limits; admission resumes when Redis is back.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::admin::Admin;
use common::{
    assert_envelope, base_config, metrics_at, raw_exchange, socks_authenticate, socks_command,
    Origin, Proxy, SECRET,
};
use tokio::net::TcpStream;

/// A `redis-server` of the test's own, on a free loopback port.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    async fn start() -> Redis {
        let port = free_port().await;
        let mut redis = Redis { port, child: None };
        redis.spawn().await;
        redis
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server) must run for the fleet tests");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Three `redis-server` masters of the test's own, made one Redis Cluster
/// by `redis-cli --cluster create`.
struct Cluster {
    nodes: Vec<Redis>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port().await;
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                ])
                .arg("--cluster-config-file")
                .arg(dir.path().join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server");
            nodes.push(Redis {
                port,
                child: Some(child),
            });
        }
        for node in &nodes {
            wait_for_port(node.port).await;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let status = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "the cluster was not created");
        let first = nodes[0].port.to_string();
        eventually(Duration::from_secs(10), "the cluster is ok", || async {
            let info = Command::new("redis-cli")
                .args(["-p", &first, "cluster", "info"])
                .output()
                .expect("redis-cli");
            String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok")
        })
        .await;
        Cluster { nodes, _dir: dir }
    }

    /// `redis = [...]` and `cluster = true`.
    fn fleet(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"{}\"", n.url()))
            .collect();
        format!("[fleet]\nredis = [{}]\ncluster = true\n", urls.join(", "))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The base config with `[fleet]` on `redis` and `limits` in force.
fn fleet_config(redis: &Redis, fleet_extra: &str, policy: &str) -> String {
    base_config("").replace(
        "[policies.standard_policy]\nname = \"Standard\"\n",
        &format!(
            "[fleet]\nredis = \"{}\"\ntimeout = \"250ms\"\n{fleet_extra}\n\n[[actions]]\nname = \"send\"\npaths = [\"/send*\"]\n\n[policies.standard_policy]\nname = \"Standard\"\n{policy}\n",
            redis.url()
        ),
    )
}

/// Two instances on `config`, both connected to their fleet store.
async fn two_instances(config: &str) -> (Proxy, Proxy) {
    let a = Proxy::start(config).await;
    let b = Proxy::start(config).await;
    healthz_until(&a, "up").await;
    healthz_until(&b, "up").await;
    (a, b)
}

/// Waits until the instance's fleet store is `state` in `/healthz`.
async fn healthz_until(proxy: &Proxy, state: &str) -> (u16, serde_json::Value) {
    let url = format!("http://{}/healthz", proxy.admin);
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(&url).await {
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json");
            if body["fleet"]["store"] == state {
                return (status, body);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the fleet store never became {state}");
}

async fn get(proxy: &Proxy, url: &str) -> (u16, String) {
    let response = proxy.client().get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_window_holds_at_the_origin_across_two_instances() {
    let redis = Redis::start().await;
    let origin = Origin::start().await;
    let policy = "mode = \"pace\"\nmax_wait = \"10s\"\n[policies.standard_policy.limits]\nall_per_second = 2\n";
    let config = fleet_config(&redis, "", policy);
    let (a, b) = two_instances(&config).await;
    let mut requests = Vec::new();
    for proxy in [&a, &b, &a, &b, &a, &b, &a, &b] {
        let client = proxy.client();
        let url = origin.url("/");
        requests.push(tokio::spawn(async move {
            client.get(url).send().await.map(|r| r.status().as_u16())
        }));
    }
    for request in requests {
        assert_eq!(request.await.expect("task").expect("answered"), 200);
    }
    let arrivals = origin.arrivals();
    assert_eq!(arrivals.len(), 8);
    let stamps = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "zrange",
            "pacer:{acct-1}:w:all:1000",
            "0",
            "-1",
            "withscores",
        ])
        .output()
        .expect("redis-cli");
    let stamps = String::from_utf8_lossy(&stamps.stdout).into_owned();
    let scores: Vec<u64> = stamps
        .lines()
        .skip(1)
        .step_by(2)
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(scores.len(), 8, "{stamps}");
    assert!(
        scores.iter().any(|us| us % 100 != 0),
        "stamps kept to the microsecond: {scores:?}"
    );
    for k in 2..arrivals.len() {
        let gap = arrivals[k] - arrivals[k - 2];
        // Two per second: requests k-2 and k depart at least 1 s apart;
        // the margin is only loopback transit noise at the origin.
        assert!(
            gap >= Duration::from_millis(985),
            "arrivals {} and {k} only {gap:?} apart",
            k - 2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paced_request_whose_client_leaves_gives_its_reservation_back() {
    let redis = Redis::start().await;
    let origin = Origin::start().await;
    let policy = "mode = \"pace\"\nmax_wait = \"5s\"\n[policies.standard_policy.limits]\nall_per_second = 1\n";
    let config = fleet_config(&redis, "", policy);
    let (a, b) = two_instances(&config).await;
    assert_eq!(get(&a, &origin.url("/")).await.0, 200);
    let impatient = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(b.http_url()).expect("proxy"))
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    assert!(
        impatient.get(origin.url("/")).send().await.is_err(),
        "it left while paced"
    );
    // Its reservation leaves the window once pacer sees the client gone
    // (an asynchronous script call).
    let port = redis.port.to_string();
    eventually(
        Duration::from_millis(900),
        "the reservation given back",
        || async {
            let held = Command::new("redis-cli")
                .args(["-p", &port, "zcard", "pacer:{acct-1}:w:all:1000"])
                .output()
                .expect("redis-cli");
            String::from_utf8_lossy(&held.stdout).trim() == "1"
        },
    )
    .await;
    assert_eq!(get(&a, &origin.url("/")).await.0, 200);
    let arrivals = origin.arrivals();
    assert_eq!(
        arrivals.len(),
        2,
        "the request that left never reached the origin"
    );
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(985) && gap < Duration::from_millis(1700),
        "the next request took the slot given back (1 s after the first), not the one after it: {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daily_cap_holds_across_instances_and_a_refusal_consumes_nothing() {
    let redis = Redis::start().await;
    let origin = Origin::start().await;
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nsend = 3\n";
    let config = fleet_config(&redis, "", policy);
    let (a, b) = two_instances(&config).await;
    let send = origin.url("/send");
    assert_eq!(get(&a, &send).await.0, 200);
    assert_eq!(get(&b, &send).await.0, 200);
    assert_eq!(get(&a, &send).await.0, 200);
    for proxy in [&b, &a, &b] {
        let (status, body) = get(proxy, &send).await;
        assert_eq!(status, 429, "{body}");
        let envelope: serde_json::Value = serde_json::from_str(&body).expect("envelope");
        assert_eq!(envelope["type"], "errors/rate_limited");
        assert!(envelope["detail"]
            .as_str()
            .unwrap_or("")
            .contains("send (3)"));
    }
    assert_eq!(
        origin.hits(),
        3,
        "three sends reached the origin, fleet-wide"
    );
    assert_eq!(
        get(&b, &origin.url("/page")).await.0,
        200,
        "other actions still go"
    );
    for proxy in [&a, &b] {
        let (status, shown) = Admin::new(proxy)
            .call(reqwest::Method::GET, "/v1/accounts/acct-1", None)
            .await;
        assert_eq!(status.as_u16(), 200);
        assert_eq!(shown["usage"]["actions"]["send"], 3, "fleet-wide: {shown}");
        assert_eq!(shown["usage"]["all"], 4, "{shown}");
        assert_eq!(shown["limits"]["send"]["value"], 3, "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_never_reached_the_origin_gives_its_daily_cap_back_fleet_wide() {
    let redis = Redis::start().await;
    let origin = Origin::start().await;
    let closed = common::closed_port().await;
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nall_daily_cap = 1\n";
    let config = fleet_config(&redis, "", policy);
    let (a, b) = two_instances(&config).await;
    let (status, body) = get(&a, &format!("http://{closed}/")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("errors/provider_error"), "{body}");
    // The give-back is one asynchronous script call after the answer.
    eventually(Duration::from_secs(1), "the cap given back", || async {
        get(&b, &origin.url("/")).await.0 == 200
    })
    .await;
    assert_eq!(get(&a, &origin.url("/")).await.0, 429, "and is used now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_limit_counts_tunnels_on_every_instance() {
    let redis = Redis::start().await;
    let echo = common::echo_server().await;
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nconcurrent_limit = 1\n";
    let config = fleet_config(&redis, "", policy);
    let (a, b) = two_instances(&config).await;
    let mut held = TcpStream::connect(a.socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut held, b"acct-1", SECRET.as_bytes()).await,
        0
    );
    assert_eq!(socks_command(&mut held, 1, echo).await, 0, "first tunnel");
    assert_eq!(
        socks_connect(b.socks, echo).await,
        2,
        "refused on the other instance"
    );
    drop(held);
    eventually(
        Duration::from_secs(2),
        "the slot back when the first tunnel closed",
        || async { socks_connect(b.socks, echo).await == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_that_dies_loses_its_concurrency_slots_within_the_lease() {
    let redis = Redis::start().await;
    let echo = common::echo_server().await;
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nconcurrent_limit = 1\n";
    let config = fleet_config(&redis, "", policy);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, &config).expect("config");
    let (mut dying, addrs) = common::spawn_pacer(&path, 4).await;
    let socks: SocketAddr = addrs[1].parse().expect("socks addr");
    let b = Proxy::start(&config).await;
    healthz_until(&b, "up").await;
    let mut held = None;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(socks).await.expect("connect");
        assert_eq!(
            socks_authenticate(&mut stream, b"acct-1", SECRET.as_bytes()).await,
            0
        );
        if socks_command(&mut stream, 1, echo).await == 0 {
            held = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _held = held.expect("a tunnel through the instance that will die");
    dying.start_kill().expect("SIGKILL");
    let _ = dying.wait().await;
    assert_eq!(
        socks_connect(b.socks, echo).await,
        2,
        "the lease outlives its instance for a while"
    );
    // 2 x timeout (250 ms) + 5 s, and the test's own scheduling.
    eventually(
        Duration::from_millis(6500),
        "the dead instance's slot back",
        || async { socks_connect(b.socks, echo).await == 0 },
    )
    .await;
}

async fn socks_connect(socks: SocketAddr, target: SocketAddr) -> u8 {
    let mut stream = TcpStream::connect(socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut stream, b"acct-1", SECRET.as_bytes()).await,
        0
    );
    socks_command(&mut stream, 1, target).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuse_mode_answers_503_while_redis_is_down_then_resumes() {
    let mut redis = Redis::start().await;
    let origin = Origin::start().await;
    let echo = common::echo_server().await;
    let config = fleet_config(&redis, "on_unavailable = \"refuse\"", "");
    let a = Proxy::start(&config).await;
    healthz_until(&a, "up").await;
    assert_eq!(get(&a, &origin.url("/")).await.0, 200);

    redis.stop();
    let (status, body) = healthz_until(&a, "down").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "failing");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nProxy-Authorization: {}\r\nConnection: close\r\n\r\n",
        origin.url("/"),
        origin.addr,
        common::basic_auth()
    );
    let raw = raw_exchange(a.http, request.as_bytes(), Duration::from_secs(3)).await;
    assert_envelope(&raw, 503, "errors/service_unavailable");
    assert!(String::from_utf8_lossy(&raw).contains("fleet store"));
    assert_eq!(
        socks_connect(a.socks, echo).await,
        1,
        "SOCKS5 general failure"
    );
    let hits = origin.hits();
    assert_eq!(hits, 1, "nothing admitted unchecked");
    let metrics = metrics_at(&a.admin.to_string()).await;
    assert!(metrics.contains("pacer_fleet_store_up 0"), "{metrics}");

    redis.spawn().await;
    let (status, _) = healthz_until(&a, "up").await;
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(5),
        "admission through Redis resumed by itself",
        || async { get(&a, &origin.url("/")).await.0 == 200 },
    )
    .await;
    let metrics = metrics_at(&a.admin.to_string()).await;
    assert!(metrics.contains("pacer_fleet_store_up 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_mode_falls_back_to_the_instance_own_limits() {
    let mut redis = Redis::start().await;
    let origin = Origin::start().await;
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nsend = 1\n";
    let config = fleet_config(&redis, "on_unavailable = \"local\"", policy);
    let a = Proxy::start(&config).await;
    healthz_until(&a, "up").await;
    redis.stop();
    let (status, body) = healthz_until(&a, "down").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")));
    let send = origin.url("/send");
    assert_eq!(get(&a, &send).await.0, 200, "admitted by the local limiter");
    let (status, body) = get(&a, &send).await;
    assert_eq!(status, 429, "the local cap holds: {body}");
    assert!(body.contains("errors/rate_limited"));
}

/// A GET through `proxy` as `user:secret`: the status.
async fn get_as(proxy: &Proxy, user: &str, secret: &str, url: &str) -> u16 {
    let through =
        reqwest::Proxy::http(format!("http://{user}:{secret}@{}", proxy.http)).expect("proxy");
    let client = reqwest::Client::builder()
        .proxy(through)
        .build()
        .expect("client");
    client
        .get(url)
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16()
}

/// Polls `check` every 25 ms for at most 1.5 s (the SPEC's 1 s, with the
/// test's own scheduling on a loaded machine).
async fn within_a_second<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually(Duration::from_millis(1500), what, check).await;
}

/// Polls `check` every 25 ms until it holds; panics naming `what` when it
/// does not within `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within {within:?}");
}

/// Waits until something listens on the loopback `port`.
async fn wait_for_port(port: u16) {
    eventually(
        Duration::from_secs(5),
        "a redis-server listening",
        || async { TcpStream::connect(("127.0.0.1", port)).await.is_ok() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_accounts_and_changes_made_on_one_instance_apply_on_the_other() {
    let redis = Redis::start().await;
    let origin = Origin::start().await;
    let config = fleet_config(&redis, "", "");
    let (a, b) = two_instances(&config).await;
    let (admin_a, admin_b) = (Admin::new(&a), Admin::new(&b));
    let url = origin.url("/");
    assert_eq!(get_as(&b, "rt-1", "rt-secret", &url).await, 407);

    let (status, body) = admin_a
        .call(
            reqwest::Method::PUT,
            "/v1/accounts/rt-1",
            Some(serde_json::json!({"secret": "rt-secret"})),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    within_a_second("a runtime account", || async {
        get_as(&b, "rt-1", "rt-secret", &url).await == 200
    })
    .await;

    let params = serde_json::json!({"account": "rt-1", "params": {"send": 7}});
    let (status, body) = admin_a
        .call(reqwest::Method::POST, "/v1/accounts", Some(params))
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    within_a_second("a runtime change", || async {
        let (_, shown) = admin_b
            .call(reqwest::Method::GET, "/v1/accounts/rt-1", None)
            .await;
        shown["limits"]["send"]["limit"] == 7
    })
    .await;

    let (status, body) = admin_b
        .call(reqwest::Method::DELETE, "/v1/accounts/rt-1", None)
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    within_a_second("a deletion", || async {
        get_as(&a, "rt-1", "rt-secret", &url).await == 407
    })
    .await;
    let (status, _) = admin_a
        .call(
            reqwest::Method::PUT,
            "/v1/accounts/rt-2",
            Some(serde_json::json!({"secret": "two"})),
        )
        .await;
    assert_eq!(status.as_u16(), 201);
    let started = Proxy::start(&config).await;
    let admin_started = Admin::new(&started);
    within_a_second("the fleet's accounts at start", || async {
        let (two, _) = admin_started
            .call(reqwest::Method::GET, "/v1/accounts/rt-2", None)
            .await;
        let (one, _) = admin_started
            .call(reqwest::Method::GET, "/v1/accounts/rt-1", None)
            .await;
        (two.as_u16(), one.as_u16()) == (200, 404)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstream_that_failed_on_one_instance_sits_out_on_all() {
    use common::clients::http_connect;
    use common::routes::{detail, pool_config};
    use common::upstream::FakeUpstream;
    let redis = Redis::start().await;
    let upstream = FakeUpstream::http(None).await;
    let fleet = format!("[fleet]\nredis = \"{}\"\n\n[state]", redis.url());
    let config =
        pool_config(&[upstream.url()], "failure_cooldown = \"30s\"").replacen("[state]", &fleet, 1);
    let (a, b) = two_instances(&config).await;
    upstream.set_healthy(false);
    let echo = common::echo_server().await;
    let target = echo.to_string();
    let raw = http_connect(&a, "routed", &target).await.expect_err("down");
    assert!(
        detail(&raw).contains("1 upstream tried"),
        "{}",
        detail(&raw)
    );
    assert_eq!(upstream.connections(), 1);
    let admin_b = Admin::new(&b);
    // Each instance shares its cooldowns every half second: a second
    // there and back, plus the scheduling of a loaded machine.
    eventually(Duration::from_secs(8), "a cooldown shared", || async {
        let (_, listed) = admin_b
            .call(reqwest::Method::GET, "/v1/upstreams", None)
            .await;
        listed["upstreams"][0]["state"] == "cooling_down"
    })
    .await;
    let raw = http_connect(&b, "routed", &target)
        .await
        .expect_err("cooling");
    assert!(
        detail(&raw).contains("0 upstreams tried"),
        "{}",
        detail(&raw)
    );
    assert_eq!(
        upstream.connections(),
        1,
        "never tried by the other instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_with_other_policies_is_named_until_it_leaves() {
    let redis = Redis::start().await;
    let a = Proxy::start(&fleet_config(&redis, "", "")).await;
    let policy = "[policies.standard_policy.limits]\nall_per_minute = 5\n";
    let b = Proxy::start(&fleet_config(&redis, "", policy)).await;
    let health = format!("http://{}/healthz", a.admin);
    within_a_second("a config mismatch", || async {
        let body: serde_json::Value = reqwest::get(&health)
            .await
            .expect("healthz")
            .json()
            .await
            .expect("json");
        body["fleet"]["config_mismatch"] == "[policies]" && body["status"] == "ok"
    })
    .await;
    let metrics = metrics_at(&a.admin.to_string()).await;
    assert!(
        metrics.contains("pacer_fleet_config_mismatch 1"),
        "{metrics}"
    );
    b.stop().await;
    eventually(
        Duration::from_secs(8),
        "the mismatch ends once the other instance is gone",
        || async {
            let body: serde_json::Value = reqwest::get(&health)
                .await
                .expect("healthz")
                .json()
                .await
                .expect("json");
            body["fleet"]["config_mismatch"].is_null()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_cluster_keeps_every_limit_and_runtime_account() {
    let cluster = Cluster::start().await;
    let origin = Origin::start().await;
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nsend = 2\n";
    let config = base_config("").replace(
        "[policies.standard_policy]\nname = \"Standard\"\n",
        &format!(
            "{}\n[[actions]]\nname = \"send\"\npaths = [\"/send*\"]\n\n[policies.standard_policy]\nname = \"Standard\"\n{policy}\n",
            cluster.fleet()
        ),
    );
    let (a, b) = two_instances(&config).await;
    let send = origin.url("/send");
    for (proxy, user, expected) in [
        (&a, "acct-1", 200),
        (&b, "acct-1", 200),
        (&a, "acct-1", 429),
        (&b, "bound", 200),
    ] {
        let secret = if user == "bound" {
            "unused-secret"
        } else {
            SECRET
        };
        assert_eq!(get_as(proxy, user, secret, &send).await, expected, "{user}");
    }
    let (status, body) = Admin::new(&a)
        .call(
            reqwest::Method::PUT,
            "/v1/accounts/rt-c",
            Some(serde_json::json!({"secret": "c"})),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    within_a_second("a runtime account on the cluster", || async {
        get_as(&b, "rt-c", "c", &origin.url("/")).await == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rediss_with_extra_roots_admits_through_a_tls_redis() {
    let ca = common::test_ca::TestCa::new();
    let (cert, key) = ca.server_pem_files();
    let port = free_port().await;
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&ca.pem_path)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server with TLS");
    let redis = Redis {
        port,
        child: Some(child),
    };
    wait_for_port(port).await;
    let origin = Origin::start().await;
    let policy = "mode = \"reject\"\n[policies.standard_policy.limits]\nsend = 1\n";
    let config = fleet_config(&redis, "", policy)
        .replace("redis://127.0.0.1", "rediss://127.0.0.1")
        .replace("[state]", &format!("{}\n[state]", ca.tls_section()));
    let (a, b) = two_instances(&config).await;
    assert_eq!(get(&a, &origin.url("/send")).await.0, 200);
    assert_eq!(
        get(&b, &origin.url("/send")).await.0,
        429,
        "one cap, over TLS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_keeps_the_fleet_runtime_accounts() {
    let redis = Redis::start().await;
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, fleet_config(&redis, "", "")).expect("config");
    let a = Proxy::start_file(&path).await;
    healthz_until(&a, "up").await;
    let admin = Admin::new(&a);
    let (status, body) = admin
        .call(
            reqwest::Method::PUT,
            "/v1/accounts/rt-r",
            Some(serde_json::json!({"secret": "r"})),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    let (status, body) = admin.call(reqwest::Method::POST, "/v1/reload", None).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_eq!(
        get_as(&a, "rt-r", "r", &origin.url("/")).await,
        200,
        "still served after the reload"
    );
}

#[test]
fn fleet_config_is_validated_like_every_section() {
    let parse = |fleet: &str, env: Option<&str>| {
        let toml = base_config("").replace("[state]", &format!("{fleet}\n[state]"));
        let env = env.map(str::to_owned);
        pacer::config::parse(&toml, &move |name| {
            (name == "PACER_REDIS_URL").then(|| env.clone()).flatten()
        })
    };
    let errors = |fleet: &str| match parse(fleet, None) {
        Ok(_) => panic!("accepted: {fleet}"),
        Err(errors) => errors
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
    };
    assert!(errors("[fleet]\nredis = \"http://x\"").contains("redis:// or rediss://"));
    assert!(errors("[fleet]\ncluster = true").contains("needs `redis`"));
    assert!(
        errors("[fleet]\nredis = [\"redis://a:1\", \"redis://b:2\"]").contains("cluster = true")
    );
    assert!(
        errors("[fleet]\nredis = \"redis://a:1\"\nkey_prefix = \"p{x}\"").contains("key_prefix")
    );
    assert!(
        errors("[fleet]\nredis = \"redis://a:1\"\non_unavailable = \"open\"")
            .contains("on_unavailable")
    );
    assert!(errors("[fleet]\nredis = \"redis://a:1\"\ntimeout = \"0ms\"").contains("timeout"));
    let cluster = parse(
        "[fleet]\nredis = [\"rediss://u:p@a:1\", \"redis://b:2\"]\ncluster = true",
        None,
    )
    .expect("cluster");
    let fleet = cluster.fleet.expect("fleet");
    assert_eq!(fleet.nodes.len(), 2);
    assert!(
        !format!("{fleet:?}").contains(":p@"),
        "the password is masked"
    );
    let from_env = parse("", Some("redis://127.0.0.1:1/0")).expect("env alone");
    assert_eq!(from_env.fleet.expect("fleet from env").key_prefix, "pacer:");
    assert!(parse("", None).expect("no fleet").fleet.is_none());
}
