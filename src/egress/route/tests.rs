//! Plan and Router on a paused clock: failover, cooldown expiry, sticky
//! memory, budgets, and destination answers that cool nothing down.

use std::sync::Arc;
use std::time::Duration;

use super::RouteError;
use super::{Hop, Router, STICKY_IDLE};
use crate::config::{self, TlsConfig};
use crate::egress::error::EgressError;
use crate::egress::tls::TlsClient;
use crate::egress::upstream::{
    DestinationAnswer, EgressSettings, UpstreamError, UpstreamErrorKind,
};

fn router(routing: &str) -> Router {
    build(routing, None)
}

/// The test pool with `[routing]` settings, counts carried from `previous`.
fn build(routing: &str, previous: Option<&Router>) -> Router {
    let toml = format!(
        r#"
[routing]
{routing}
[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"
[policies.standard_policy]
[[accounts]]
id = "a"
secret = "s"
country = "US"
[[accounts]]
id = "custom"
secret = "s"
upstream = "socks5://127.0.0.1:9"
[[upstreams]]
url = "http://127.0.0.1:1"
country = "US"
[[upstreams]]
url = "http://127.0.0.1:2"
country = "US"
"#
    );
    let config = config::parse(&toml, &|_| None).expect("config");
    let settings = Arc::new(EgressSettings {
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        tls: TlsClient::new(&TlsConfig::default()).expect("tls"),
        pools: 1,
    });
    Router::new(&config, settings, previous)
}

fn label(hop: &Hop) -> String {
    hop.label().map(|l| l.to_string()).unwrap_or_default()
}

fn refused(hop: &Hop) -> EgressError {
    let kind = UpstreamErrorKind::Broken("test".into());
    EgressError::Upstream(UpstreamError::new(hop.label().expect("upstream"), kind))
}

fn unreachable_destination(hop: &Hop) -> EgressError {
    let kind = UpstreamErrorKind::Destination {
        target: "example.com:443".into(),
        answer: DestinationAnswer::HttpStatus(502),
    };
    EgressError::Upstream(UpstreamError::new(hop.label().expect("upstream"), kind))
}

/// One plan of `account`: its first hop fails, its second succeeds.
fn fail_over(router: &Router, account: &Arc<str>) -> (Hop, Hop) {
    let mut plan = router.plan(account);
    let first = plan.next_hop().expect("first");
    plan.failed(&first, refused(&first)).expect("may move on");
    let second = plan.next_hop().expect("second");
    plan.succeeded(&second);
    (first, second)
}

#[tokio::test(start_paused = true)]
async fn failover_cooldown_and_sticky_memory() {
    let router = router("failure_cooldown = \"30s\"");
    let account: Arc<str> = Arc::from("a");
    let (first, second) = fail_over(&router, &account);
    assert_ne!(label(&first), label(&second));
    tokio::time::advance(Duration::from_secs(31)).await;
    let mut again = router.plan(&account);
    let hop = again.next_hop().expect("hop");
    assert_eq!(label(&hop), label(&second), "sticks to the new upstream");
    let other: Arc<str> = Arc::from("other-account");
    router.set_route(
        "other-account",
        &crate::config::AccountRoute::Country("US".parse().expect("US")),
    );
    let mut fresh = router.plan(&other);
    let hop = fresh.next_hop().expect("hop");
    fresh.failed(&hop, refused(&hop)).expect("move on");
    let hop = fresh.next_hop().expect("the other member");
    fresh.failed(&hop, refused(&hop)).expect("move on");
    assert!(matches!(
        fresh.next_hop(),
        Err(RouteError::Upstream { tried: 2, .. })
    ));
    let mut cooling = router.plan(&other);
    assert!(matches!(
        cooling.next_hop(),
        Err(RouteError::NoUpstream { .. })
    ));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(
        router.plan(&other).next_hop().is_ok(),
        "back after the cooldown"
    );
}

#[tokio::test(start_paused = true)]
async fn members_show_cooldowns_counts_and_stuck_accounts() {
    let router = router("failure_cooldown = \"30s\"");
    let (first, second) = fail_over(&router, &Arc::from("a"));
    let members = router.members();
    let view = |hop: &Hop| {
        members
            .iter()
            .find(|m| label(hop).ends_with(&m.url.authority()))
            .expect("a member")
    };
    let (failed, live) = (view(&first), view(&second));
    assert!(failed.cooling_until.is_some());
    assert_eq!(
        (failed.attempts, failed.failures, failed.accounts),
        (1, 1, 0)
    );
    assert!(live.cooling_until.is_none());
    assert_eq!((live.attempts, live.failures, live.accounts), (1, 0, 1));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(router.members().iter().all(|m| m.cooling_until.is_none()));
    let rebuilt = build("failure_cooldown = \"30s\"", Some(&router));
    let counts: Vec<(u64, u64)> = rebuilt
        .members()
        .iter()
        .map(|m| (m.attempts, m.failures))
        .collect();
    let before: Vec<(u64, u64)> = members.iter().map(|m| (m.attempts, m.failures)).collect();
    assert_eq!(counts, before, "a reload keeps the counts since start");
    router.forget("a");
    let members = router.members();
    let back = members
        .iter()
        .find(|m| label(&first).ends_with(&m.url.authority()))
        .expect("the first choice");
    assert_eq!(
        back.accounts, 1,
        "a forgotten account is back on its first choice"
    );
    assert_eq!(members.iter().map(|m| m.accounts).sum::<usize>(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_noted_on_the_old_router_cools_the_new_one() {
    let old = router("failure_cooldown = \"30s\"");
    let account: Arc<str> = Arc::from("a");
    // A request planned on the old snapshot fails after a reload built the
    // new router beside it.
    let mut plan = old.plan(&account);
    let first = plan.next_hop().expect("first");
    let new = build("failure_cooldown = \"30s\"", Some(&old));
    plan.failed(&first, refused(&first)).expect("may move on");
    let cooling = new.cooling();
    assert_eq!(cooling.len(), 1, "the new router sees the cooldown");
    assert!(new
        .members()
        .iter()
        .any(|m| m.cooling_until.is_some() && label(&first).ends_with(&m.url.authority())));
    assert_ne!(
        label(&new.plan(&account).next_hop().expect("hop")),
        label(&first),
        "the new router does not try the failed upstream"
    );
}

#[tokio::test(start_paused = true)]
async fn a_destination_answer_ends_the_request_and_cools_nothing() {
    let router = router("strategy = \"round_robin\"");
    let account: Arc<str> = Arc::from("a");
    let mut plan = router.plan(&account);
    let hop = plan.next_hop().expect("hop");
    let err = plan
        .failed(&hop, unreachable_destination(&hop))
        .expect_err("final");
    assert!(matches!(err, RouteError::Upstream { .. }), "{err:?}");
    assert!(!err.to_string().is_empty());
    for _ in 0..2 {
        assert!(router.plan(&account).next_hop().is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn budgets() {
    let router = router("max_attempts = 1");
    let account: Arc<str> = Arc::from("a");
    let mut plan = router.plan(&account);
    let hop = plan.next_hop().expect("hop");
    assert!(plan.is_last());
    plan.failed(&hop, refused(&hop)).expect("recorded");
    assert!(matches!(
        plan.next_hop(),
        Err(RouteError::Upstream { tried: 1, .. })
    ));
    let custom: Arc<str> = Arc::from("custom");
    let mut plan = router.plan(&custom);
    let hop = plan.next_hop().expect("hop");
    assert_eq!(label(&hop), "127.0.0.1:9");
    plan.failed(&hop, refused(&hop)).expect("recorded");
    assert!(
        plan.next_hop().is_err(),
        "a custom upstream gets one attempt"
    );
    assert!(router.plan(&custom).next_hop().is_ok(), "and no cooldown");
    let unknown: Arc<str> = Arc::from("nobody");
    assert!(matches!(router.plan(&unknown).next_hop(), Ok(Hop::Direct)));
}

#[tokio::test(start_paused = true)]
async fn sticky_memory_holds_accounts_off_their_first_choice_until_idle() {
    let router = router("failure_cooldown = \"30s\"");
    let account: Arc<str> = Arc::from("a");
    let mut plan = router.plan(&account);
    let first = plan.next_hop().expect("first");
    plan.succeeded(&first);
    let now = tokio::time::Instant::now;
    assert_eq!(router.forget_idle(now()), 0, "a first choice is not stored");
    let mut plan = router.plan(&account);
    let hop = plan.next_hop().expect("first again");
    assert_eq!(label(&hop), label(&first));
    plan.failed(&hop, refused(&hop)).expect("may move on");
    let second = plan.next_hop().expect("second");
    plan.succeeded(&second);
    assert_eq!(router.forget_idle(now()), 1, "the failover is stored");
    tokio::time::advance(Duration::from_secs(31)).await;
    let mut plan = router.plan(&account);
    let hop = plan.next_hop().expect("hop");
    assert_eq!(label(&hop), label(&second), "sticks after the cooldown");
    plan.succeeded(&hop);
    tokio::time::advance(STICKY_IDLE - Duration::from_secs(1)).await;
    assert_eq!(router.forget_idle(now()), 1, "a success renews it");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(router.forget_idle(now()), 0, "idle for STICKY_IDLE");
    let hop = router.plan(&account).next_hop().expect("hop");
    assert_eq!(label(&hop), label(&first), "back to the first choice");
}

#[tokio::test(start_paused = true)]
async fn a_rebuilt_router_keeps_the_running_cooldowns() {
    let router = router("failure_cooldown = \"30s\"");
    fail_over(&router, &Arc::from("a"));
    let cooling = router.cooling();
    assert_eq!(cooling.len(), 1, "one member failed");
    let rebuilt = build("failure_cooldown = \"30s\"", Some(&router));
    assert_eq!(
        rebuilt.cooling(),
        cooling,
        "still sitting out after a reload"
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(build("failure_cooldown = \"30s\"", Some(&rebuilt))
        .cooling()
        .is_empty());
}
