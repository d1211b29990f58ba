//! [`Plan`]: the attempts of one request. It hands out the next [`Hop`],
//! takes each attempt's outcome (a failed pool member sits out its
//! cooldown; a sticky account remembers the member that worked), and turns
//! the last failure into the request's error.
//!
//! Budget: direct and a custom upstream get one attempt; a country pool up
//! to `max_attempts`, each on a different member. Only an upstream failure
//! moves on to the next member: a destination the upstream could not reach
//! ends the request at once, as does any failure going direct.

use std::sync::Arc;

use tokio::time::Instant;

use super::pick::{choose, first_choice, stable_hash, Choice};
use super::{Member, Route, RouteError, Router, Upstream};
use crate::config::{CountryCode, RoutingStrategy};
use crate::egress::error::EgressError;
use crate::egress::upstream::UpstreamError;

/// One way out for one attempt.
pub enum Hop {
    /// Straight to the destination.
    Direct,
    /// Through the account's own upstream.
    Custom(Arc<Upstream>),
    /// Through a member of the country pool.
    Pooled(Arc<Member>),
}

impl Hop {
    /// The upstream to go through, if any.
    pub fn upstream(&self) -> Option<&Arc<Upstream>> {
        match self {
            Hop::Direct => None,
            Hop::Custom(upstream) => Some(upstream),
            Hop::Pooled(member) => Some(member.upstream()),
        }
    }

    /// The upstream as a metrics label: a pool member's `host:port`, or
    /// `custom` / `direct` (so per-account proxies cannot blow up the
    /// number of series).
    pub fn metric_label(&self) -> &str {
        match self {
            Hop::Direct => "direct",
            Hop::Custom(_) => "custom",
            Hop::Pooled(member) => member.upstream().label(),
        }
    }

    /// `host:port` of the upstream (no credentials), `None` for direct.
    pub fn label(&self) -> Option<&Arc<str>> {
        self.upstream().map(|u| u.label())
    }
}

/// The attempts of one request.
pub struct Plan<'r> {
    router: &'r Router,
    account: Arc<str>,
    route: Route,
    tried: Vec<u64>,
    attempts: u32,
    last: Option<UpstreamError>,
}

impl<'r> Plan<'r> {
    pub(super) fn new(router: &'r Router, account: Arc<str>, route: Route) -> Self {
        Plan {
            router,
            account,
            route,
            tried: Vec::new(),
            attempts: 0,
            last: None,
        }
    }

    /// Attempts handed out so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next hop, or the request's error when none is left.
    pub fn next_hop(&mut self) -> Result<Hop, RouteError> {
        if self.attempts >= self.budget() {
            return Err(self.give_up());
        }
        let hop = match &self.route {
            Route::Direct => Hop::Direct,
            Route::Custom(custom) => Hop::Custom(custom.get(&self.router.settings)),
            Route::Country(country) => match self.pick(*country) {
                Some(member) => {
                    member.attempted();
                    self.tried.push(member.identity);
                    Hop::Pooled(member)
                }
                None => return Err(self.give_up()),
            },
        };
        self.attempts += 1;
        Ok(hop)
    }

    /// Whether no hop can follow the one just handed out (so its request
    /// need not be kept for another attempt).
    pub fn is_last(&self) -> bool {
        match &self.route {
            Route::Direct | Route::Custom(_) => true,
            Route::Country(country) => {
                let members = self.router.pools.get(country).map_or(0, |p| p.ids.len());
                self.attempts >= self.budget().min(members as u32)
            }
        }
    }

    /// Takes a failed attempt's error: `Ok` when the next hop may be tried,
    /// else the request's error.
    pub fn failed(&mut self, hop: &Hop, err: EgressError) -> Result<(), RouteError> {
        let err = match err {
            EgressError::Direct(err) => return Err(RouteError::Destination(err)),
            EgressError::OriginTls(err) => return Err(RouteError::OriginTls(err)),
            EgressError::Upstream(err) => err,
        };
        if !err.is_upstream_failure() {
            return Err(RouteError::Upstream {
                last: err,
                tried: self.attempts,
            });
        }
        if let Hop::Pooled(member) = hop {
            member.failed();
            member.cool_down(Instant::now() + self.router.cooldown);
        }
        self.last = Some(err);
        Ok(())
    }

    /// Notes a successful attempt: a sticky account stays with its member.
    pub fn succeeded(&self, hop: &Hop) {
        if let (Hop::Pooled(member), RoutingStrategy::Sticky) = (hop, self.router.strategy) {
            let pool = self.country().and_then(|c| self.router.pools.get(&c));
            let first =
                pool.and_then(|p| first_choice(stable_hash(self.account.as_bytes()), &p.ids));
            self.router.remember(&self.account, member.identity, first);
        }
    }

    /// The request's error after the last failed attempt (also when the
    /// request cannot be sent again because its body went out).
    pub fn give_up(&mut self) -> RouteError {
        match self.last.take() {
            Some(last) => RouteError::Upstream {
                last,
                tried: self.attempts,
            },
            None => RouteError::NoUpstream {
                country: self.country(),
            },
        }
    }

    fn budget(&self) -> u32 {
        match self.route {
            Route::Direct | Route::Custom(_) => 1,
            Route::Country(_) => self.router.max_attempts,
        }
    }

    fn country(&self) -> Option<CountryCode> {
        match self.route {
            Route::Country(country) => Some(country),
            Route::Direct | Route::Custom(_) => None,
        }
    }

    /// The pool member to try next: not tried yet by this request and not
    /// sitting out a cooldown.
    fn pick(&self, country: CountryCode) -> Option<Arc<Member>> {
        let pool = self.router.pools.get(&country)?;
        let remembered = match self.router.strategy {
            RoutingStrategy::Sticky => self.router.remembered(&self.account),
            RoutingStrategy::RoundRobin | RoutingStrategy::Random => None,
        };
        let choice = Choice {
            strategy: self.router.strategy,
            account: stable_hash(self.account.as_bytes()),
            remembered,
            counter: &pool.counter,
        };
        let now = Instant::now();
        let eligible =
            |i: usize| !self.tried.contains(&pool.ids[i]) && pool.members[i].available(now);
        choose(&choice, &pool.ids, eligible).map(|i| pool.members[i].clone())
    }
}
