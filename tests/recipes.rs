//! The README's client recipes, each run for real through the `pacer`
//! binary with the shipped config: the block under `<!-- recipe: NAME -->`
//! is taken from README.md as written, its addresses pointed at this
//! test's pacer and loopback origin, and run with curl, the Python of
//! `target/recipes-venv` (requests, httpx), Node (undici, Playwright) or
//! Debian's Chromium. Each must get the origin's answer, the origin must
//! see the request, and pacer must count it for the recipe's account and
//! no other.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::shipped::{self, Shipped, BROWSER_ACCOUNT};
use common::Origin;

/// How a recipe runs.
#[derive(Clone, Copy)]
enum Runner {
    Shell,
    Python,
    Node,
}

const RUN_LIMIT: Duration = Duration::from_secs(90);

/// The venv `.ci/run` makes, or `PACER_RECIPES_PYTHON`.
fn python() -> PathBuf {
    let python = std::env::var_os("PACER_RECIPES_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| shipped::repo_path("target/recipes-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: `python3 -m venv target/recipes-venv && target/recipes-venv/bin/pip install \
         -r tests/recipes/requirements.txt` (.ci/run does), or set PACER_RECIPES_PYTHON",
        python.display()
    );
    python
}

/// The recipe's text with the README's addresses replaced by this test's.
fn recipe(name: &str, pacer: &Shipped, destination: &str) -> String {
    shipped::readme_block(&format!("recipe: {name}"))
        .replace("127.0.0.1:8080", &pacer.http)
        .replace("127.0.0.1:1081", &pacer.bound_socks)
        .replace("http://example.com/", destination)
}

/// Runs recipe `name`; its stdout.
async fn run(name: &str, runner: Runner, pacer: &Shipped, destination: &str) -> String {
    let code = recipe(name, pacer, destination);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = match runner {
        Runner::Shell => {
            let mut command = tokio::process::Command::new("sh");
            command.arg("-c").arg(&code);
            command
        }
        Runner::Python => {
            let script = dir.path().join("recipe.py");
            std::fs::write(&script, &code).expect("write recipe");
            let mut command = tokio::process::Command::new(python());
            command.arg(script);
            command
        }
        Runner::Node => {
            shipped::require_browser_tools();
            let script = dir.path().join("recipe.mjs");
            std::fs::write(&script, &code).expect("write recipe");
            // ES modules resolve packages from the script's own folder.
            std::os::unix::fs::symlink(
                shipped::browser_dir().join("node_modules"),
                dir.path().join("node_modules"),
            )
            .expect("link node_modules");
            let mut command = tokio::process::Command::new("node");
            command.arg(script);
            command
        }
    };
    command.current_dir(dir.path()).env("TMPDIR", dir.path());
    shipped::run(command, RUN_LIMIT).await
}

/// Runs recipe `name` and checks the origin answered it, saw it, and pacer
/// counted it for `account` only.
async fn proves(name: &str, runner: Runner, account: &str) {
    let origin = Origin::start().await;
    let pacer = Shipped::start().await;
    let other = if account == BROWSER_ACCOUNT {
        "demo"
    } else {
        BROWSER_ACCOUNT
    };
    let (before, other_before) = (pacer.usage(account).await, pacer.usage(other).await);
    let destination = origin.url(&format!("/echo?recipe={name}"));
    let out = run(name, runner, &pacer, &destination).await;
    assert!(
        out.contains("body_len"),
        "{name} printed the origin's answer: {out}"
    );
    let hits = origin.hits();
    assert!(hits >= 1, "the origin saw {name}'s request");
    let deadline = Instant::now() + Duration::from_secs(10);
    let counted = loop {
        let counted = pacer.usage(account).await - before;
        if counted >= 1 || Instant::now() > deadline {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(counted >= 1, "{name} is counted for {account}");
    if account != BROWSER_ACCOUNT {
        // Requests through the HTTP listener are counted one by one (a
        // SOCKS5 tunnel counts once, whatever it carries).
        assert_eq!(counted as usize, hits, "{name}: every request counted once");
    }
    assert_eq!(
        pacer.usage(other).await,
        other_before,
        "{name}: not counted for {other}"
    );
}

#[tokio::test]
async fn curl_through_the_http_listener() {
    proves("curl", Runner::Shell, "demo").await;
}

#[tokio::test]
async fn python_requests_through_the_http_listener() {
    proves("python-requests", Runner::Python, "demo").await;
}

#[tokio::test]
async fn python_httpx_through_the_http_listener() {
    proves("python-httpx", Runner::Python, "demo").await;
}

#[tokio::test]
async fn node_undici_proxy_agent_through_the_http_listener() {
    proves("node-undici", Runner::Node, "demo").await;
}

#[tokio::test]
async fn playwright_chromium_with_proxy_credentials_on_the_http_listener() {
    proves("playwright-http", Runner::Node, "demo").await;
}

#[tokio::test]
async fn chromium_on_the_bound_socks5_listener() {
    shipped::require_chromium();
    proves("chromium-socks5", Runner::Shell, BROWSER_ACCOUNT).await;
}
