//! `config_load`: what a config of many accounts costs, measured from
//! outside on the `pacer` binary. For each account count it writes a
//! config of that many accounts (one policy with three limits), then
//! times `pacer check`, a start (spawn to both listeners open and
//! `/healthz` answering 200, with pacer's RSS then), and a SIGHUP reload
//! of the same file (signal to the `config reloaded` log line) while four
//! keep-alive clients send
//! requests through pacer to a loopback origin: their latency before and
//! during the reload tells whether the reload stalls requests.
//!
//! Run with `cargo bench --bench config_load -- ACCOUNTS...` (e.g. `1000
//! 10000 100000`); with no argument it explains itself and measures
//! nothing. Loopback only. See BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[path = "support/accounts.rs"]
mod accounts;
#[path = "support/origin.rs"]
mod origin;
#[path = "support/pacer.rs"]
mod pacer;

/// Clients sending requests during the reload.
const CLIENTS: usize = 4;
/// Each client's pause between requests (bounds the load).
const PAUSE: Duration = Duration::from_millis(2);
/// How long the clients run before the signal (the baseline).
const BEFORE: Duration = Duration::from_secs(1);

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    pacer::each_count("config_load", &counts, run);
}

async fn run(accounts: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    std::fs::write(&config, config_text(accounts)).expect("config");
    let check = timed_check(&config).await;
    let started = Instant::now();
    let mut pacer = pacer::Pacer::start(&config).await;
    let health = pacer.admin_get("/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "not healthy: {health}");
    let start = started.elapsed();
    let rss_kib = rss_kib(pacer.child.id());
    let origin = origin::start(origin::Log::default()).await;
    let latencies: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|account| {
            let client = client(pacer.proxy, account);
            tokio::spawn(send_until(client, origin, latencies.clone(), stop.clone()))
        })
        .collect();
    tokio::time::sleep(BEFORE).await;
    let signalled = Instant::now();
    hang_up(pacer.child.id());
    let outcome = reload_outcome(&mut pacer).await;
    let reloaded = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let mut failed = 0;
    for client in clients {
        failed += client.await.unwrap_or(1);
    }
    let _ = pacer.child.kill().await;
    let latencies = std::mem::take(&mut *latencies.lock().await);
    let (before, during): (Vec<_>, Vec<_>) = latencies
        .iter()
        .copied()
        .filter(|(sent, took)| *sent + *took >= signalled - BEFORE / 2)
        .partition(|(sent, took)| *sent + *took < signalled);
    let during: Vec<_> = during
        .into_iter()
        .filter(|(sent, _)| *sent <= reloaded)
        .collect();
    println!(
        "accounts={accounts} config_bytes={} check_ms={:.0} start_ms={:.0} rss_after_start_kib={rss_kib} \
         reload_ms={:.0} ({outcome}) failed_requests={failed} \
         latency_before_reload(n={}) p50/p99/max_ms={} latency_during_reload(n={}) p50/p99/max_ms={}",
        std::fs::metadata(&config).map_or(0, |m| m.len()),
        ms(check),
        ms(start),
        ms(reloaded - signalled),
        before.len(),
        percentiles(&before),
        during.len(),
        percentiles(&during),
    );
}

/// `accounts` accounts on one policy with a rolling limit, a daily cap and
/// a concurrency limit that the bench's load never reaches.
fn config_text(accounts: usize) -> String {
    accounts::config_with_accounts(
        "[server]\nidle_timeout = \"90s\"\n\n[admin]\naddr = \"127.0.0.1:0\"\napi_keys = [\"bench-key\"]\n\n[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n\n[state]\npath = \"memory\"\n\n[policies.standard_policy]\nmode = \"reject\"\n[policies.standard_policy.limits]\nall_per_minute = 1000000\nall_daily_cap = 1000000000\nconcurrent_limit = 64\n",
        accounts,
    )
}

/// How long `pacer check` takes on `config` (it must pass).
async fn timed_check(config: &Path) -> Duration {
    let started = Instant::now();
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .expect("pacer check");
    assert!(status.success(), "pacer check failed on the bench config");
    started.elapsed()
}

/// A keep-alive client through pacer as account `a{account}`.
fn client(proxy: std::net::SocketAddr, account: usize) -> reqwest::Client {
    let url = format!("http://a{account}:s@{proxy}");
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(url).expect("proxy url"))
        .pool_max_idle_per_host(1)
        .build()
        .expect("client")
}

/// Sends requests one after the other until `stop`, logging each one's
/// start and latency; returns how many failed.
async fn send_until(
    client: reqwest::Client,
    origin: std::net::SocketAddr,
    latencies: Arc<Mutex<Vec<(Instant, Duration)>>>,
    stop: tokio_util::sync::CancellationToken,
) -> usize {
    let url = format!("http://{origin}/");
    let mut failed = 0;
    while !stop.is_cancelled() {
        let sent = Instant::now();
        let answered = client.get(&url).send().await;
        let took = sent.elapsed();
        if !matches!(&answered, Ok(r) if r.status() == 200) {
            failed += 1;
        }
        latencies.lock().await.push((sent, took));
        tokio::time::sleep(PAUSE).await;
    }
    failed
}

fn hang_up(pid: Option<u32>) {
    let pid = pid.expect("pacer pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "SIGHUP not sent");
}

/// Waits for the reload's log line: what it said.
async fn reload_outcome(pacer: &mut pacer::Pacer) -> &'static str {
    while let Some(line) = pacer.lines.recv().await {
        if line.contains("config reloaded") {
            return "reloaded";
        }
        if line.contains("config reload refused") {
            return "REFUSED";
        }
    }
    panic!("pacer exited during the reload");
}

fn rss_kib(pid: Option<u32>) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.unwrap_or(0)));
    status
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 / p99 / max of the latencies, in ms.
fn percentiles(samples: &[(Instant, Duration)]) -> String {
    let mut sorted: Vec<Duration> = samples.iter().map(|(_, took)| *took).collect();
    sorted.sort_unstable();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q) as usize)
            .map_or(f64::NAN, |d| ms(*d))
    };
    format!("{:.2}/{:.2}/{:.2}", at(0.5), at(0.99), at(1.0))
}
