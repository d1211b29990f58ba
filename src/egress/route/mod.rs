//! Route selection (SPEC section 5): which way each request of an account
//! leaves. An account's custom `upstream` is its only choice; else the pool
//! of its `country` (the `[[upstreams]]` of that country); else direct.
//!
//! [`Router`] owns the routes, the pools with each member's cooldown, and
//! the sticky memory (which upstream each account last succeeded with).
//! A request asks it for a [`Plan`] (in `plan.rs`), which hands out hops
//! and takes each attempt's outcome; `pick.rs` chooses within a pool.
//!
//! A pool member that fails (refused, timed out, broken handshake,
//! credentials rejected) sits out `failure_cooldown`: it is not tried,
//! even when every member of its pool is sitting out (the request then
//! gets 502 `errors/proxy_error` without an attempt). A custom upstream has
//! no cooldown.

mod error;
mod pick;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

pub use error::RouteError;
pub use pick::stable_hash;
pub use plan::{Hop, Plan};

use super::forward::Forwarder;
use super::upstream::{EgressSettings, Endpoint};
use crate::config::{AccountRoute, Config, CountryCode, RoutingStrategy, UpstreamUrl};

/// Routes, pools and their state.
pub struct Router {
    strategy: RoutingStrategy,
    max_attempts: u32,
    cooldown: Duration,
    settings: Arc<EgressSettings>,
    pools: HashMap<CountryCode, Pool>,
    routes: RwLock<HashMap<Arc<str>, Route>>,
    /// Account id → identity of the pool member it last succeeded with.
    sticky: Mutex<HashMap<Arc<str>, u64>>,
}

/// Where an account's requests go.
#[derive(Clone)]
enum Route {
    Direct,
    Custom(Arc<Upstream>),
    Country(CountryCode),
}

/// The upstreams of one country.
struct Pool {
    members: Vec<Arc<Member>>,
    /// Identities, in member order (what `pick` chooses among).
    ids: Vec<u64>,
    /// Round-robin position.
    counter: AtomicUsize,
}

/// One upstream of a pool, with its cooldown.
pub struct Member {
    upstream: Arc<Upstream>,
    identity: u64,
    cooling_until: Mutex<Option<Instant>>,
}

impl Member {
    fn new(url: &UpstreamUrl, settings: &Arc<EgressSettings>) -> Self {
        Member {
            upstream: Arc::new(Upstream::new(url.clone(), settings)),
            identity: identity(url),
            cooling_until: Mutex::new(None),
        }
    }

    /// The upstream.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    fn available(&self, now: Instant) -> bool {
        let until = *self
            .cooling_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.is_none_or(|until| now >= until)
    }

    fn cool_down(&self, until: Instant) {
        let mut slot = self
            .cooling_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(until);
    }
}

/// What identifies an upstream across restarts and config edits: scheme,
/// user and address (never the password).
fn identity(url: &UpstreamUrl) -> u64 {
    let user = url.username.as_deref().unwrap_or("");
    let text = format!("{}://{user}@{}", url.scheme.as_str(), url.authority());
    stable_hash(text.as_bytes())
}

impl Router {
    /// The routes of every configured account, and the pools of
    /// `[[upstreams]]`.
    pub fn new(config: &Config, settings: Arc<EgressSettings>) -> Self {
        let mut by_country: HashMap<CountryCode, Vec<Arc<Member>>> = HashMap::new();
        for upstream in &config.upstreams {
            let member = Arc::new(Member::new(&upstream.url, &settings));
            by_country.entry(upstream.country).or_default().push(member);
        }
        let pools = by_country
            .into_iter()
            .map(|(country, members)| (country, Pool::new(members)))
            .collect();
        let router = Router {
            strategy: config.routing.strategy,
            max_attempts: config.routing.max_attempts.get(),
            cooldown: config.routing.failure_cooldown,
            settings,
            pools,
            routes: RwLock::new(HashMap::new()),
            sticky: Mutex::new(HashMap::new()),
        };
        for account in &config.accounts {
            router.set_route(&account.id, &account.route);
        }
        router
    }

    /// Sets (or replaces) an account's route; the admin API calls this.
    /// A custom upstream gets a fresh connection pool.
    pub fn set_route(&self, account: &str, route: &AccountRoute) {
        let route = match route {
            AccountRoute::Direct => Route::Direct,
            AccountRoute::Custom(url) => {
                Route::Custom(Arc::new(Upstream::new(url.clone(), &self.settings)))
            }
            AccountRoute::Country(country) => Route::Country(*country),
        };
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        routes.insert(Arc::from(account), route);
    }

    /// Whether the pool has at least one upstream for `country`.
    pub fn serves_country(&self, country: CountryCode) -> bool {
        self.pools.contains_key(&country)
    }

    /// The plan for one request or tunnel of `account` (unknown accounts
    /// go direct).
    pub fn plan(&self, account: &Arc<str>) -> Plan<'_> {
        let route = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account)
            .cloned()
            .unwrap_or(Route::Direct);
        Plan::new(self, account.clone(), route)
    }

    fn remembered(&self, account: &str) -> Option<u64> {
        let sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        sticky.get(account).copied()
    }

    fn remember(&self, account: &Arc<str>, identity: u64) {
        let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        if sticky.get(account) != Some(&identity) {
            sticky.insert(account.clone(), identity);
        }
    }
}

impl Pool {
    fn new(members: Vec<Arc<Member>>) -> Self {
        Pool {
            ids: members.iter().map(|m| m.identity).collect(),
            members,
            counter: AtomicUsize::new(0),
        }
    }
}

/// An upstream as routing uses it: its endpoint and its own pool of
/// plain-HTTP connections (one pool per upstream, so a pooled connection
/// never carries another route's requests).
pub struct Upstream {
    endpoint: Arc<Endpoint>,
    forwarder: Forwarder,
}

impl Upstream {
    /// The upstream of `url`.
    pub fn new(url: UpstreamUrl, settings: &Arc<EgressSettings>) -> Self {
        let endpoint = Arc::new(Endpoint::new(url, settings.clone()));
        Upstream {
            forwarder: Forwarder::via(endpoint.clone(), settings),
            endpoint,
        }
    }

    /// How to dial it.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `host:port`, without credentials.
    pub fn label(&self) -> &Arc<str> {
        self.endpoint.label()
    }

    /// Its plain-HTTP pool.
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", self.endpoint.url())
            .finish()
    }
}
