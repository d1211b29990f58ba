//! What valid configs turn into: defaults, resolution of references,
//! environment lookups, routes, limits in file order, and masking.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pacer::config::{
    self, AccountRoute, Config, LimitKey, LimitValue, ListenerProtocol, Plan, PolicyMode,
    RoutingStrategy, ServerConfig, StateConfig, UpstreamScheme,
};

fn env(name: &str) -> Option<String> {
    match name {
        "ACCT_SECRET" | "ACCT2_SECRET" => Some("from-env".into()),
        "PACER_ADMIN_KEYS" => Some(" k1, ,k2 ".into()),
        _ => None,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_path(rel: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let source = std::fs::read_to_string(&path).unwrap();
    config::parse(&source, env).unwrap_or_else(|e| panic!("{rel}: {e:?}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn shipped_default_config_matches_the_spec() {
    let c = config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pacer.toml")).unwrap();
    let listeners: Vec<_> = c
        .listeners
        .iter()
        .map(|l| (l.protocol, l.addr, l.account.clone()))
        .collect();
    assert_eq!(
        listeners,
        [
            (ListenerProtocol::Http, addr("127.0.0.1:8080"), None),
            (ListenerProtocol::Socks5, addr("127.0.0.1:1080"), None),
        ]
    );
    assert_eq!(c.admin.addr, addr("127.0.0.1:9090"));
    assert!(c.admin.api_keys.iter().any(|k| k.matches(b"change-me")));
    assert_eq!(c.state, StateConfig::Path(PathBuf::from("data/pacer.db")));
    let demo = &c.accounts[0];
    assert_eq!(
        (demo.id.as_str(), demo.policy.as_str()),
        ("demo", "standard_policy")
    );
    assert!(demo.secret.matches(b"demo"));
    assert_eq!(demo.route, AccountRoute::Direct);
    assert!(c.policies.contains_key("strict"));
}

#[test]
fn defaults_fill_a_minimal_config() {
    let c = parse_path("tests/fixtures/config/valid/minimal.toml", &no_env);
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.server.idle_timeout, Duration::from_secs(90));
    assert_eq!(c.server.max_header_bytes, 65_536);
    assert_eq!(c.server.splice_pipes, 64);
    assert_eq!(c.admin.addr, addr("127.0.0.1:9090"));
    assert!(c.admin.api_keys.is_empty());
    assert!(!c.admin.public_metrics);
    assert_eq!(c.state, StateConfig::Path(PathBuf::from("data/pacer.db")));
    assert!(c.tls.extra_roots.is_empty());
    assert_eq!(c.routing.strategy, RoutingStrategy::Sticky);
    assert_eq!(c.routing.max_attempts.get(), 3);
    assert_eq!(c.routing.failure_cooldown, Duration::from_secs(30));
    assert_eq!(c.routing.probe_target, ("example.com".to_string(), 443));
    assert!(!c.mitm.enabled);
    assert_eq!(c.mitm.ca_cert, PathBuf::from("certs/ca.pem"));
    assert_eq!(c.mitm.ca_key, PathBuf::from("certs/ca.key"));
    assert!(c.actions.is_empty() && c.policies.is_empty() && c.accounts.is_empty());
}

#[test]
fn admin_keys_come_from_config_and_environment() {
    let c = parse_path("config/example-full.toml", &env);
    let keys: Vec<&str> = c.admin.api_keys.iter().map(|k| k.expose()).collect();
    assert_eq!(keys, ["change-me", "k1", "k2"]);
}

#[test]
fn example_full_resolves_every_reference() {
    let c = parse_path("config/example-full.toml", &env);
    assert_eq!(c.listeners[2].account.as_deref(), Some("browser-1"));
    let by_id = |id: &str| c.accounts.iter().find(|a| a.id == id).unwrap();

    let a1 = by_id("acct-1");
    assert_eq!(
        (a1.policy.as_str(), a1.account_type.as_deref()),
        ("strict", Some("sales-nav-sync"))
    );
    let AccountRoute::Custom(url) = &a1.route else {
        panic!("{:?}", a1.route)
    };
    assert_eq!(
        (url.scheme, url.host.as_str(), url.port),
        (UpstreamScheme::Socks5, "127.0.0.1", 1090)
    );

    let a2 = by_id("acct-2");
    assert!(a2.secret.matches(b"from-env"));
    assert_eq!(a2.plan, Plan::Paid);
    assert_eq!(a2.route, AccountRoute::Country("US".parse().unwrap()));

    assert_eq!(by_id("browser-1").policy, "standard_policy");
    assert_eq!(c.upstreams.len(), 3);
    assert_eq!(c.upstreams[2].country.as_str(), "DE");

    let strict = &c.policies["strict"];
    assert_eq!(strict.day_resets_at.to_string(), "04:00+02:00");
    assert_eq!(strict.jitter, Duration::from_secs(2));
    assert_eq!(c.policies["premium"].mode, PolicyMode::Reject);
    assert!(!c.policies["premium"].free);
    let login = c.actions.iter().find(|a| a.name == "login").unwrap();
    assert_eq!(login.methods, Some(vec![http::Method::POST]));
    assert_eq!(login.hosts, None);
}

#[test]
fn types_give_their_policy_and_countries_are_normalised() {
    let c = parse_path("tests/fixtures/config/valid/accounts_and_routes.toml", &env);
    let policies: Vec<(&str, &str)> = c
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.policy.as_str()))
        .collect();
    assert_eq!(
        policies,
        [
            ("env-account", "standard_policy"),
            ("typed", "cautious"),
            ("typed-default", "standard_policy")
        ]
    );
    assert_eq!(
        c.accounts[0].route,
        AccountRoute::Country("US".parse().unwrap())
    );
    let AccountRoute::Custom(url) = &c.accounts[1].route else {
        panic!()
    };
    assert_eq!(url.username.as_deref(), Some("user@x"));
    assert_eq!(url.password.as_ref().map(|p| p.expose()), Some("p:ss"));
    assert_eq!(url.authority(), "[::1]:1090");
    assert_eq!(c.state, StateConfig::Memory);
    assert_eq!(c.routing.probe_target, ("::1".to_string(), 443));
    assert_eq!(c.account_types["plain"].policy, "standard_policy");
}

#[test]
fn limits_keep_file_order_and_raw_keys() {
    let c = parse_path("tests/fixtures/config/valid/limits.toml", &no_env);
    let p = &c.policies["standard_policy"];
    let raw: Vec<&str> = p.limits.iter().map(|l| l.raw_key.as_str()).collect();
    assert_eq!(
        raw[..3],
        [
            "send_message_per_second",
            "send_message_per_minute",
            "send_message_per_hour"
        ]
    );
    assert_eq!(raw.last(), Some(&"batch_hours"));
    let bare = p
        .limits
        .iter()
        .find(|l| l.raw_key == "send_message")
        .unwrap();
    assert_eq!(
        bare.key,
        LimitKey::DailyCap {
            action: "send_message".into()
        }
    );
    assert_eq!(bare.value, LimitValue::Count(500));
    let hours = p
        .limits
        .iter()
        .find(|l| l.key == LimitKey::BatchHours)
        .unwrap();
    assert_eq!(hours.value, LimitValue::Hours(2.0));
    assert_eq!(
        c.actions[0].methods,
        Some(vec![http::Method::POST, http::Method::PUT])
    );
    let max: Vec<&str> = c.account_types["capped"]
        .max
        .iter()
        .map(|l| l.raw_key.as_str())
        .collect();
    assert_eq!(max, ["send_message", "batch_hours", "batch"]);
}

#[test]
fn debug_output_never_shows_a_secret() {
    let c = parse_path("config/example-full.toml", &env);
    let debug = format!("{c:?}");
    for secret in [
        "s3cret",
        "from-env",
        "browser-secret",
        "change-me",
        "pass\"",
        ":p@",
    ] {
        assert!(!debug.contains(secret), "`{secret}` leaked in Debug output");
    }
    assert!(debug.contains("***"));
}

#[test]
fn backoff_is_parsed_with_its_defaults() {
    let c = parse_path("tests/fixtures/config/valid/backoff.toml", &no_env);
    let set = c.policies["standard_policy"]
        .backoff
        .clone()
        .expect("backoff");
    assert_eq!(set.statuses, [429, 999]);
    assert_eq!(set.default_pause, Duration::from_secs(60));
    assert_eq!(set.max_pause, Duration::from_secs(3600));
    let defaults = c.policies["defaults"].backoff.clone().expect("backoff");
    assert_eq!(defaults, pacer::config::Backoff::default());
    assert_eq!(defaults.statuses, [429]);
    assert!(c.policies.values().any(|p| p.backoff.is_some()));
}
