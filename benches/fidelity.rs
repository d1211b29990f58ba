//! `fidelity`: does an account's rolling limit hold where the platform
//! sees it? N accounts on a pace policy `all_per_second = 2`, each sending
//! K requests in a burst (on connections opened to pacer beforehand, an
//! account's sends `--spacing-ms` apart, 100 by default, to fix their
//! order at pacer) through the `pacer` binary to a loopback origin that
//! logs each request's arrival (the kernel's receive timestamp of its
//! head, so that the origin's own accept queue and scheduling are not
//! counted). The origin runs in a process of its own (this bench started
//! again with `--origin`). Reported: the gap between an account's arrivals k-2 and k at the origin (minimum,
//! percentiles, how many under the 1 s window), pacer's own lateness
//! (`pacer_pace_lateness_seconds`, due time to departure) and FIFO
//! inversions (an account's request k reaching the origin before its
//! request k-2, which it can never share a slot with).
//!
//! A spacing shorter than the time pacer takes to read one burst of heads
//! lets later sends overtake earlier ones on the way in (FIFO is by
//! arrival at pacer's limiter): the inversions then count that, not the
//! queue's order.
//!
//! Run with `cargo bench --bench fidelity -- [--spacing-ms MS] ACCOUNTS...`
//! (e.g. `10 100 1000`); with no account count it explains itself and measures nothing. It
//! only ever uses loopback addresses. See BENCHMARKS.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout};

#[path = "support/accounts.rs"]
mod accounts;
#[path = "support/origin.rs"]
mod origin;
#[path = "support/pacer.rs"]
mod pacer;

/// Requests per account.
const PER_ACCOUNT: usize = 6;
/// N and W of the limit.
const LIMIT: usize = 2;
const WINDOW: Duration = Duration::from_secs(1);
/// Between an account's consecutive sends, unless `--spacing-ms` says.
const SPACING: Duration = Duration::from_millis(100);

/// An arrival at the origin: account, sequence, the kernel's receive time
/// (since the Unix epoch).
type Arrival = (usize, usize, Duration);

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--origin") {
        return serve_origin();
    }
    let mut spacing = SPACING;
    let mut counts: Vec<usize> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--spacing-ms" {
            let ms = args.next().and_then(|ms| ms.parse().ok());
            spacing = Duration::from_millis(ms.expect("--spacing-ms takes milliseconds"));
        } else if let Ok(count) = arg.parse() {
            counts.push(count);
        }
    }
    pacer::each_count("fidelity", &counts, |accounts| run(accounts, spacing));
}

async fn run(accounts: usize, spacing: Duration) {
    let (mut origin_process, origin, arrivals_out) = spawn_origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    std::fs::write(&config, pacer_config(accounts)).expect("config");
    let mut pacer = pacer::Pacer::start(&config).await;
    let proxy = pacer.proxy;
    let clients = accounts * PER_ACCOUNT;
    let connected = Arc::new(tokio::sync::Barrier::new(clients));
    let mut tasks = Vec::with_capacity(clients);
    for account in 0..accounts {
        for seq in 0..PER_ACCOUNT {
            let connected = connected.clone();
            tasks.push(tokio::spawn(async move {
                let stream = TcpStream::connect(proxy).await;
                connected.wait().await;
                tokio::time::sleep(spacing * seq as u32).await;
                match stream {
                    Ok(stream) => send(stream, origin, account, seq).await,
                    Err(_) => false,
                }
            }));
        }
    }
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(true)) {
            failed += 1;
        }
    }
    let metrics = pacer.admin_get("/metrics").await;
    let _ = pacer.child.kill().await;
    let mut warnings = 0;
    while let Ok(line) = pacer.lines.try_recv() {
        warnings += usize::from(line.contains("WARN") || line.contains("ERROR"));
    }
    drop(origin_process.stdin.take());
    let arrivals = read_arrivals(arrivals_out).await;
    let _ = origin_process.wait().await;
    println!("spacing_ms={}", spacing.as_millis());
    report(accounts, &arrivals, &metrics, failed, warnings);
}

/// The origin process: its address on the first line of its stdout, then,
/// once its stdin closes, one `account seq nanoseconds` line per arrival.
fn serve_origin() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let log = origin::Log::default();
    let addr = runtime.block_on(origin::start(log.clone()));
    println!("{addr}");
    // The runtime's workers serve the origin meanwhile.
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    let arrivals = std::mem::take(&mut *log.lock().expect("log"));
    let mut out = String::new();
    for (account, seq, at) in arrivals {
        out.push_str(&format!("{account} {seq} {}\n", at.as_nanos()));
    }
    print!("{out}");
}

async fn spawn_origin() -> (Child, SocketAddr, BufReader<ChildStdout>) {
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--origin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the origin");
    let mut out = BufReader::new(child.stdout.take().expect("origin stdout"));
    let mut first = String::new();
    out.read_line(&mut first).await.expect("origin address");
    let addr = first.trim().parse().expect("origin address");
    (child, addr, out)
}

async fn read_arrivals(out: BufReader<ChildStdout>) -> Vec<Arrival> {
    let mut lines = out.lines();
    let mut arrivals = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut fields = line.split(' ').filter_map(|f| f.parse::<u64>().ok());
        if let (Some(account), Some(seq), Some(ns)) = (fields.next(), fields.next(), fields.next())
        {
            arrivals.push((account as usize, seq as usize, Duration::from_nanos(ns)));
        }
    }
    arrivals
}

/// One absolute-form GET through pacer as account `a{account}` (secret
/// `s`) on its own connection; whether it was answered 200.
async fn send(mut stream: TcpStream, origin: SocketAddr, account: usize, seq: usize) -> bool {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("a{account}:s"));
    let head = format!(
        "GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\nProxy-Authorization: Basic {token}\r\nX-Account: {account}\r\nX-Seq: {seq}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

fn pacer_config(accounts: usize) -> String {
    accounts::config_with_accounts(
        "[server]\nidle_timeout = \"90s\"\nmax_connections = 20000\n\n[admin]\naddr = \"127.0.0.1:0\"\napi_keys = [\"bench-key\"]\npublic_metrics = true\n\n[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n\n[state]\npath = \"memory\"\n\n[policies.standard_policy]\nmode = \"pace\"\nmax_wait = \"60s\"\n[policies.standard_policy.limits]\nall_per_second = 2\n",
        accounts,
    )
}

fn report(accounts: usize, arrivals: &[Arrival], metrics: &str, failed: usize, warnings: usize) {
    let mut by_account: HashMap<usize, Vec<(usize, Duration)>> = HashMap::new();
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
            gaps.push((list[k].1 - list[k - LIMIT].1, list[k - LIMIT].0, list[k].0));
        }
    }
    gaps.sort_unstable();
    // The sequence numbers of the gaps under the window (first few).
    let under_pairs: Vec<String> = gaps
        .iter()
        .take_while(|(gap, _, _)| *gap < WINDOW)
        .take(5)
        .map(|(_, from, to)| format!("{from}->{to}"))
        .collect();
    let gaps: Vec<Duration> = gaps.into_iter().map(|(gap, _, _)| gap).collect();
    let window = WINDOW.as_secs_f64() * 1000.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * p) as usize)
            .map_or(f64::NAN, |d| ms(*d))
    };
    let under = gaps.iter().filter(|g| **g < WINDOW).count();
    let lateness = histogram(metrics, "pacer_pace_lateness_seconds");
    println!(
        "accounts={accounts} requests={} failed={failed} pacer_warnings={warnings} gaps={} min_gap_ms={:.1} (window {window:.0}, min/window {:.4}) p1={:.1} p50={:.1} p99={:.1} under_window={under} ({}) lateness_p50_ms<={} p99_ms<={} max_ms<={} fifo_inversions={inversions}",
        arrivals.len(),
        gaps.len(),
        gaps.first().map_or(f64::NAN, |d| ms(*d)),
        gaps.first().map_or(f64::NAN, |d| ms(*d) / window),
        pct(0.01),
        pct(0.5),
        pct(0.99),
        under_pairs.join(" "),
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
