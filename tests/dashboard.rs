//! The dashboard (`/ui`) in headless Chromium, driven by Playwright
//! (`tests/browser/dashboard.mjs`), against the real `pacer` binary with
//! the shipped config: bad key, the demo account and its usage rising,
//! a policy switched from the page, a refusal by limit, the error and
//! empty states. Its screenshots go to the target folder; with
//! `PACER_UPDATE_SCREENSHOTS=1` also to `docs/` for the README.

mod common;

use std::time::Duration;

use common::shipped::{self, Shipped};
use common::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_demo_account_and_switches_its_policy() {
    shipped::require_browser_tools();
    let origin = Origin::start().await;
    let mut pacer = Shipped::start().await;
    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&screenshots).expect("screenshot folder");
    let admin = format!("http://{}", pacer.admin);
    let origin_url = format!("http://{}", origin.addr);
    let dir = shipped::browser_dir();
    let out = shipped::run_node(
        &dir,
        &dir.join("dashboard.mjs"),
        &[
            ("PACER_ADMIN", &admin),
            ("PACER_ADMIN_KEY", shipped::ADMIN_KEY),
            ("PACER_HTTP", &pacer.http),
            ("ORIGIN", &origin_url),
            ("SCREENSHOTS", &screenshots.to_string_lossy()),
        ],
        Duration::from_secs(300),
    )
    .await;
    assert!(out.contains("dashboard: all checks passed"), "{out}");

    // What the page did is what the API says, and pacer still serves.
    let view = pacer.admin_get("/v2/session/rate-limit?account=demo").await;
    assert_eq!(view["current_policy"], "strict");
    assert_eq!(
        origin.hits(),
        5,
        "3 messages and 2 logins reached the origin"
    );
    let stats = pacer.admin_get("/v1/stats").await;
    assert_eq!(stats["recent_refusals"][0]["limit"], "login_per_5m");
    assert!(pacer.running());

    if std::env::var_os("PACER_UPDATE_SCREENSHOTS").is_some() {
        for name in ["dashboard.png", "dashboard-bad-key.png"] {
            std::fs::copy(
                screenshots.join(name),
                shipped::repo_path("docs").join(name),
            )
            .expect("copy screenshot");
        }
    }
}
