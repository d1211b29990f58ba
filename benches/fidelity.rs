//! `fidelity`: does an account's rolling limit hold where the platform
//! sees it? N accounts on a pace policy `all_per_second = 2`, each sending
//! K requests at once (2 ms apart, to fix their order) through the `pacer`
//! binary to a loopback origin that logs each request's arrival. Reported:
//! the gap between an account's arrivals k-2 and k at the origin (minimum,
//! percentiles, how many under the 1 s window), pacer's own lateness
//! (`pacer_pace_lateness_seconds`, due time to departure) and FIFO
//! inversions (an account's request k reaching the origin before its
//! request k-2, which it can never share a slot with).
//!
//! Run with `cargo bench --bench fidelity -- ACCOUNTS...` (e.g. `10 100
//! 1000`); with no argument it explains itself and measures nothing. It
//! only ever uses loopback addresses. See BENCHMARKS.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Requests per account.
const PER_ACCOUNT: usize = 6;
/// N and W of the limit.
const LIMIT: usize = 2;
const WINDOW: Duration = Duration::from_secs(1);

/// Arrivals at the origin: (account, sequence, when).
type Log = Arc<Mutex<Vec<(usize, usize, Instant)>>>;

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if counts.is_empty() {
        println!("fidelity: no account counts given, nothing measured. Usage: cargo bench --bench fidelity -- 10 100 1000");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for accounts in counts {
        runtime.block_on(run(accounts));
    }
}

async fn run(accounts: usize) {
    let log: Log = Arc::default();
    let origin = start_origin(log.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    std::fs::write(&config, pacer_config(accounts)).expect("config");
    let mut pacer = tokio::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pacer");
    let addrs = listener_addrs(&mut pacer).await;
    let (proxy, admin) = (addrs[0], addrs[1]);
    let mut clients = Vec::new();
    for account in 0..accounts {
        for seq in 0..PER_ACCOUNT {
            clients.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2 * seq as u64)).await;
                request(proxy, origin, account, seq).await
            }));
        }
    }
    let mut failed = 0;
    for client in clients {
        if !matches!(client.await, Ok(true)) {
            failed += 1;
        }
    }
    let metrics = fetch(admin, "/metrics").await;
    let _ = pacer.kill().await;
    let arrivals = std::mem::take(&mut *log.lock().expect("log"));
    report(accounts, &arrivals, &metrics, failed);
}

fn pacer_config(accounts: usize) -> String {
    let mut toml = String::from(
        "[server]\nidle_timeout = \"90s\"\nmax_connections = 20000\n\n[admin]\naddr = \"127.0.0.1:0\"\napi_keys = [\"bench-key\"]\npublic_metrics = true\n\n[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n\n[state]\npath = \"memory\"\n\n[policies.standard_policy]\nmode = \"pace\"\nmax_wait = \"60s\"\n[policies.standard_policy.limits]\nall_per_second = 2\n",
    );
    for account in 0..accounts {
        toml.push_str(&format!(
            "\n[[accounts]]\nid = \"a{account}\"\nsecret = \"s\"\n"
        ));
    }
    toml
}

/// The proxy's and the admin API's addresses, from pacer's log.
async fn listener_addrs(pacer: &mut tokio::process::Child) -> Vec<SocketAddr> {
    let stderr = pacer.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut addrs = Vec::new();
    while addrs.len() < 2 {
        let Ok(Some(line)) = lines.next_line().await else {
            panic!("pacer exited before listening");
        };
        if let Some(addr) = line.split("addr=").nth(1) {
            addrs.push(addr.trim().parse().expect("addr"));
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    addrs
}

/// One absolute-form GET through pacer as account `a{account}`.
async fn request(proxy: SocketAddr, origin: SocketAddr, account: usize, seq: usize) -> bool {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("a{account}:s"));
    let head = format!(
        "GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\nProxy-Authorization: Basic {token}\r\nX-Account: {account}\r\nX-Seq: {seq}\r\nConnection: close\r\n\r\n"
    );
    let Ok(mut stream) = TcpStream::connect(proxy).await else {
        return false;
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// A keep-alive origin that logs when each request head arrives.
async fn start_origin(log: Log) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("origin");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    let Ok(n) = reader.read_line(&mut line).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let arrived = Instant::now();
                    let (mut account, mut seq) = (None, None);
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let header = line.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let value = |name: &str| {
                            header
                                .split_once(':')
                                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                                .and_then(|(_, v)| v.trim().parse().ok())
                        };
                        account = account.or_else(|| value("x-account"));
                        seq = seq.or_else(|| value("x-seq"));
                    }
                    if let (Some(account), Some(seq)) = (account, seq) {
                        log.lock().expect("log").push((account, seq, arrived));
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if reader.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn fetch(admin: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(admin).await.expect("admin");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
}

fn report(accounts: usize, arrivals: &[(usize, usize, Instant)], metrics: &str, failed: usize) {
    let mut by_account: HashMap<usize, Vec<(usize, Instant)>> = HashMap::new();
    for (account, seq, at) in arrivals {
        by_account.entry(*account).or_default().push((*seq, *at));
    }
    let mut gaps = Vec::new();
    let mut inversions = 0;
    for list in by_account.values_mut() {
        list.sort_by_key(|(_, at)| *at);
        // Requests k-N and k never share a slot: k must reach the origin
        // after k-N (closer ones may be admitted together and race).
        inversions += (0..list.len())
            .flat_map(|i| (i + 1..list.len()).map(move |j| (i, j)))
            .filter(|&(i, j)| list[i].0 >= list[j].0 + LIMIT)
            .count();
        for k in LIMIT..list.len() {
            gaps.push(list[k].1 - list[k - LIMIT].1);
        }
    }
    gaps.sort_unstable();
    let window = WINDOW.as_secs_f64() * 1000.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * p) as usize)
            .map_or(f64::NAN, |d| ms(*d))
    };
    let under = gaps.iter().filter(|g| **g < WINDOW).count();
    let lateness = histogram(metrics, "pacer_pace_lateness_seconds");
    println!(
        "accounts={accounts} requests={} failed={failed} gaps={} min_gap_ms={:.1} (window {window:.0}, min/window {:.4}) p1={:.1} p50={:.1} p99={:.1} under_window={under} lateness_p50_ms<={} p99_ms<={} max_ms<={} fifo_inversions={inversions}",
        arrivals.len(),
        gaps.len(),
        gaps.first().map_or(f64::NAN, |d| ms(*d)),
        gaps.first().map_or(f64::NAN, |d| ms(*d) / window),
        pct(0.01),
        pct(0.5),
        pct(0.99),
        lateness.quantile(0.5),
        lateness.quantile(0.99),
        lateness.quantile(1.0),
    );
}

/// A Prometheus histogram's cumulative buckets (upper bound in ms, count).
struct Buckets(Vec<(f64, u64)>);

impl Buckets {
    /// The upper bound (ms) of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> String {
        let total = self.0.last().map_or(0, |(_, n)| *n);
        if total == 0 {
            return "-".into();
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        self.0
            .iter()
            .find(|(_, n)| *n >= rank)
            .map_or("-".into(), |(le, _)| format!("{le:.1}"))
    }
}

fn histogram(metrics: &str, name: &str) -> Buckets {
    let prefix = format!("{name}_bucket{{le=\"");
    Buckets(
        metrics
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (le, count) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>().ok()? * 1000.0
                };
                Some((le, count.trim().parse().ok()?))
            })
            .collect(),
    )
}
