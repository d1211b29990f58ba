//! Usage survives restarts (SPEC section 9): exact after a graceful stop,
//! and never low after SIGKILL under load, so that no daily cap is exceeded
//! across the two runs.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;

fn config(state: &Path, cap: u32) -> String {
    format!(
        r#"
[admin]
addr = "127.0.0.1:0"
api_keys = ["test-admin-key"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[state]
path = "{}"

[policies.standard_policy]
mode = "reject"
[policies.standard_policy.limits]
all_daily_cap = {cap}

[[accounts]]
id = "acct-1"
secret = "{SECRET}"
"#,
        state.display()
    )
}

#[tokio::test]
async fn a_graceful_restart_restores_exact_counts() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = config(&dir.path().join("pacer.db"), 5);
    let proxy = Proxy::start(&toml).await;
    for _ in 0..3 {
        let ok = proxy
            .client()
            .get(origin.url("/"))
            .send()
            .await
            .expect("send");
        assert_eq!(ok.status(), StatusCode::OK);
    }
    assert!(proxy.stop().await);
    let proxy = Proxy::start(&toml).await;
    let client = proxy.client();
    for _ in 0..2 {
        let ok = client.get(origin.url("/")).send().await.expect("send");
        assert_eq!(ok.status(), StatusCode::OK, "the cap has 2 left");
    }
    let refused = client.get(origin.url("/")).send().await.expect("send");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(origin.hits(), 5);
}

/// Eight clients requesting `url` as fast as they can, each until it is
/// refused (the cap is used up), fails (pacer is gone) or `stop` is set.
async fn hammer(addr: String, url: String, stop: Arc<AtomicBool>) {
    let proxy = reqwest::Proxy::http(format!("http://acct-1:{SECRET}@{addr}")).expect("proxy");
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                for _ in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {}
                        _ => return,
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

#[tokio::test]
async fn sigkill_under_load_never_lets_a_daily_cap_be_exceeded() {
    const CAP: u32 = 200;
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("pacer.toml");
    std::fs::write(&config_path, config(&dir.path().join("pacer.db"), CAP)).expect("config");

    let (mut first, addrs) = spawn_pacer(&config_path, 1).await;
    let addr = addrs[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(hammer(addr, origin.url("/"), stop.clone()));
    // Kill in the middle of the load, once part of the cap is used.
    let reached = async {
        while origin.hits() < CAP as usize / 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .expect("load reaches pacer");
    first.start_kill().expect("SIGKILL");
    let _ = first.wait().await;
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let before_restart = origin.hits();

    let (_second, addrs) = spawn_pacer(&config_path, 1).await;
    let addr = addrs[0].clone();
    hammer(addr, origin.url("/"), Arc::new(AtomicBool::new(false))).await;
    let total = origin.hits();
    eprintln!("killed after {before_restart} reached the origin; {total} in all (cap {CAP})");
    assert!(
        total <= CAP as usize,
        "{total} requests reached the origin for a cap of {CAP}"
    );
    assert!(
        total > before_restart,
        "the second run admitted what the cap had left"
    );
}
