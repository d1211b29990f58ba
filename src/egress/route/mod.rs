//! Route selection (SPEC section 5): which way each request of an account
//! leaves. An account's custom `upstream` is its only choice; else the pool
//! of its `country` (the `[[upstreams]]` of that country); else direct.
//!
//! [`Router`] owns the routes, the pools with each member's cooldown, and
//! the sticky memory (which upstream each account last succeeded with).
//! A request asks it for a [`Plan`] (in `plan.rs`), which hands out hops
//! and takes each attempt's outcome; `pick.rs` chooses within a pool.
//!
//! The sticky memory holds only accounts that left their first choice
//! (the rendezvous order's top member: remembering it would change no
//! choice), and forgets an account that has not succeeded through its pool
//! for [`STICKY_IDLE`] ([`Router::forget_idle`], run by the periodic
//! sweep): its next request starts from its first choice again, as after
//! a restart. So the memory follows the accounts in use, not every
//! account ever routed.
//!
//! A pool member that fails (refused, timed out, broken handshake,
//! credentials rejected) sits out `failure_cooldown`: it is not tried,
//! even when every member of its pool is sitting out (the request then
//! gets 502 `errors/proxy_error` without an attempt). A custom upstream has
//! no cooldown.

mod error;
mod member;
mod pick;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

pub use error::RouteError;
use member::identity;
pub use member::{Member, MemberView};
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
    /// Account id → the pool member it last succeeded with, when that is
    /// not its first choice.
    sticky: Mutex<HashMap<Arc<str>, Sticky>>,
}

/// How long an account's sticky choice outlives its last success.
pub const STICKY_IDLE: Duration = Duration::from_secs(3600);

/// A remembered pool member.
#[derive(Clone, Copy)]
struct Sticky {
    identity: u64,
    /// The last success through it.
    used: Instant,
}

/// Where an account's requests go.
#[derive(Clone)]
enum Route {
    Direct,
    Custom(Arc<CustomUpstream>),
    Country(CountryCode),
}

/// An account's own upstream, built (with its connection pools) on the
/// account's first request through it rather than when the config is
/// loaded: a start or reload of many accounts builds only their URLs.
struct CustomUpstream {
    url: UpstreamUrl,
    built: OnceLock<Arc<Upstream>>,
}

impl CustomUpstream {
    fn get(&self, settings: &Arc<EgressSettings>) -> Arc<Upstream> {
        let built = self
            .built
            .get_or_init(|| Arc::new(Upstream::new(self.url.clone(), settings)));
        built.clone()
    }
}

/// The upstreams of one country.
struct Pool {
    members: Vec<Arc<Member>>,
    /// Identities, in member order (what `pick` chooses among).
    ids: Vec<u64>,
    /// Round-robin position.
    counter: AtomicUsize,
}

/// The index in `pool` of the upstream a sticky `account` tries first
/// when it remembers none and every member may be tried: the same on
/// every run, so an operator (or a test) can tell where an account goes.
pub fn first_choice(account: &str, pool: &[UpstreamUrl]) -> Option<usize> {
    let ids: Vec<u64> = pool.iter().map(identity).collect();
    let first = pick::first_choice(stable_hash(account.as_bytes()), &ids)?;
    ids.iter().position(|&id| id == first)
}

impl Router {
    /// The routes of every configured account, and the pools of
    /// `[[upstreams]]`; each member's attempt counts carry over from the
    /// `previous` router.
    pub fn new(config: &Config, settings: Arc<EgressSettings>, previous: Option<&Router>) -> Self {
        let mut by_country: HashMap<CountryCode, Vec<Arc<Member>>> = HashMap::new();
        for upstream in &config.upstreams {
            let member = Member::new(&upstream.url, upstream.country, &settings, previous);
            let member = Arc::new(member);
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
    /// A custom upstream gets a fresh connection pool (on its first use).
    pub fn set_route(&self, account: &str, route: &AccountRoute) {
        let route = match route {
            AccountRoute::Direct => Route::Direct,
            AccountRoute::Custom(url) => Route::Custom(Arc::new(CustomUpstream {
                url: url.clone(),
                built: OnceLock::new(),
            })),
            AccountRoute::Country(country) => Route::Country(*country),
        };
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        routes.insert(Arc::from(account), route);
    }

    /// Forgets an account's sticky choice (it was deleted: its next
    /// request, should it be created again, starts from its first choice). Its route
    /// stays until the next reload rebuilds the routes: a request of it
    /// still in flight must never fall back to direct.
    pub fn forget(&self, account: &str) {
        let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        sticky.remove(account);
    }

    /// Every pool member, by country then in config order.
    pub fn members(&self) -> Vec<MemberView> {
        let now = Instant::now();
        let stuck = self.stuck_accounts();
        let mut pools: Vec<_> = self.pools.iter().collect();
        pools.sort_by_key(|(country, _)| country.as_str());
        pools
            .into_iter()
            .flat_map(|(_, pool)| &pool.members)
            .map(|member| MemberView {
                url: member.upstream.endpoint().url().clone(),
                country: member.country,
                cooling_until: member.cooling_until(now),
                attempts: member.state.attempts.load(Ordering::Relaxed),
                failures: member.state.failures.load(Ordering::Relaxed),
                accounts: stuck.get(&member.identity).copied().unwrap_or(0),
            })
            .collect()
    }

    /// The members cooling down now: each one's identity (scheme, user and
    /// address) and how long it still sits out, for a fleet to share.
    pub fn cooling(&self) -> Vec<(u64, Duration)> {
        let now = Instant::now();
        self.pools
            .values()
            .flat_map(|pool| &pool.members)
            .filter_map(|m| Some((m.identity, m.cooling_until(now)? - now)))
            .collect()
    }

    /// The member(s) with `identity` sit out at least `left` from now (a
    /// cooldown another instance of the fleet started); a longer one
    /// running is kept.
    pub fn cool(&self, identity: u64, left: Duration) {
        let until = Instant::now() + left;
        for member in self.pools.values().flat_map(|pool| &pool.members) {
            if member.identity == identity
                && member
                    .cooling_until(Instant::now())
                    .is_none_or(|u| u < until)
            {
                member.cool_down(until);
            }
        }
    }

    /// Under `sticky`, how many pool accounts each member serves: the one
    /// remembered, else the account's first choice. Other strategies keep
    /// no sticky choice.
    fn stuck_accounts(&self) -> HashMap<u64, usize> {
        let mut stuck = HashMap::new();
        if self.strategy != RoutingStrategy::Sticky {
            return stuck;
        }
        let pooled: Vec<(Arc<str>, CountryCode)> = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(account, route)| match route {
                Route::Country(country) => Some((account.clone(), *country)),
                Route::Direct | Route::Custom(_) => None,
            })
            .collect();
        let sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        for (account, country) in pooled {
            let Some(pool) = self.pools.get(&country) else {
                continue;
            };
            let member = sticky
                .get(&account)
                .map(|s| s.identity)
                .or_else(|| pick::first_choice(stable_hash(account.as_bytes()), &pool.ids));
            if let Some(identity) = member {
                *stuck.entry(identity).or_default() += 1;
            }
        }
        stuck
    }

    /// The member with `identity`, if the pools have one.
    fn member(&self, identity: u64) -> Option<&Arc<Member>> {
        self.pools
            .values()
            .flat_map(|pool| &pool.members)
            .find(|member| member.identity == identity)
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
        sticky.get(account).map(|s| s.identity)
    }

    /// `account` succeeded through the member `identity` of a pool whose
    /// first choice for it is `first`.
    fn remember(&self, account: &Arc<str>, identity: u64, first: Option<u64>) {
        let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        if first == Some(identity) {
            sticky.remove(account);
            return;
        }
        let used = Instant::now();
        match sticky.get_mut(account) {
            Some(kept) => *kept = Sticky { identity, used },
            None => {
                sticky.insert(account.clone(), Sticky { identity, used });
            }
        }
    }

    /// Forgets the sticky choice of every account whose last success is
    /// [`STICKY_IDLE`] or more before `now`; returns how many accounts
    /// are still remembered.
    pub fn forget_idle(&self, now: Instant) -> usize {
        let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        sticky.retain(|_, kept| now.saturating_duration_since(kept.used) < STICKY_IDLE);
        if sticky.capacity() > 2 * sticky.len() {
            sticky.shrink_to_fit();
        }
        sticky.len()
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
