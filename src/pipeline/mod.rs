//! The driver: every request and tunnel goes through here, whatever
//! listener it came in on.
//!
//! - [`Engine`]: what the request path reads: server settings, the
//!   current [`Snapshot`] (loaded once per request into its
//!   [`RequestContext`]), the [`Limiter`], the clock, direct egress, the
//!   shutdown signal and the metrics. Nothing of the control plane.
//! - [`http`]: HTTP/1 served on any stream: each request identified, then
//!   handed to [`request`] (plain HTTP) or [`tunnel`] (CONNECT).
//! - [`request`]: one plain request: classify > admit > route > forward.
//! - [`tunnel`]: one tunnel (HTTP CONNECT or SOCKS5): classify > admit >
//!   route > dial, then relay; where interception is decided.
//! - [`mitm`]: an intercepted tunnel: the client's TLS terminated, each
//!   request inside served by [`http`] and [`request`] like plain HTTP.
//! - [`admit`]: classification and admission, shared by both.
//! - [`attempt`]: the one loop over the hops of the account's route plan.
//! - [`feedback`]: the origin's "too fast" answers pause the account.
//! - [`close`]: the one close-out (access line, metrics, limiter release)
//!   that every request and tunnel reaches, on every path.
//! - [`activity`]: an HTTP connection's activity and watchdog.

pub mod activity;
pub mod admit;
pub mod attempt;
pub mod close;
pub mod feedback;
pub mod http;
pub mod mitm;
pub mod request;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::egress::deny::Deny;
use crate::egress::dial::Dialer;
use crate::egress::forward::Forwarder;
use crate::egress::relay::RelaySettings;
use crate::egress::upstream::EgressSettings;
use crate::intercept::Interceptor;
use crate::policy::auth::hashed;
use crate::policy::auth::{AuthError, Credentials};
use crate::policy::limit::clock::Clock;
use crate::policy::limit::Limiter;
use crate::shutdown::Shutdown;
use crate::state::accounts::{Account, AccountSecret, Identified};
use crate::state::snapshot::Snapshot;
use crate::telemetry::context::{ListenerKind, RequestContext};
use crate::telemetry::metrics::Metrics;

/// What the request path reads, shared by every connection.
pub struct Engine {
    /// `[server]` settings.
    pub settings: ServerConfig,
    /// Actions, policies, accounts and routes; swapped whole by a reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Where admission is decided.
    pub limiter: Limiter,
    /// The limiters' clock.
    pub clock: Clock,
    /// Direct egress.
    pub dialer: Dialer,
    /// Pooled plain-HTTP forwarding, direct.
    pub forwarder: Forwarder,
    /// Timeouts and TLS for dialing through upstream proxies.
    pub egress: Arc<EgressSettings>,
    /// The stop signal and task tracker.
    pub shutdown: Shutdown,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// TLS interception, when `[mitm] enabled`.
    pub interceptor: Option<Interceptor>,
    /// Destinations never dialled.
    pub deny: Arc<Deny>,
    /// Slow secret checks running at once (one per core): a flood of
    /// wrong secrets queues here instead of filling the blocking pool.
    pub hashing: Arc<Semaphore>,
}

impl Engine {
    /// The engine of `settings`, serving `snapshot`.
    pub fn new(
        settings: ServerConfig,
        snapshot: Snapshot,
        egress: Arc<EgressSettings>,
        clock: Clock,
        metrics: Metrics,
        interceptor: Option<Interceptor>,
        deny: Arc<Deny>,
    ) -> Self {
        let dialer = Dialer::new(settings.connect_timeout, deny.clone());
        Engine {
            forwarder: Forwarder::direct(dialer.clone(), &egress),
            dialer,
            egress,
            settings,
            snapshot: ArcSwap::from_pointee(snapshot),
            limiter: Limiter::Local,
            clock,
            shutdown: Shutdown::new(),
            metrics,
            interceptor,
            deny,
            hashing: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
        }
    }

    /// How tunnels are relayed.
    pub fn relay_settings(&self) -> RelaySettings {
        RelaySettings {
            idle_timeout: self.settings.idle_timeout,
            splice_pipes: self.settings.splice_pipes,
        }
    }

    /// A context for a new request or tunnel from `peer`, with the
    /// snapshot every stage of it will read.
    pub fn context(&self, listener: ListenerKind, peer: SocketAddr) -> RequestContext {
        RequestContext::new(self.snapshot.load_full(), listener, peer)
    }
}

/// The account `credentials` name in the request's snapshot; the account
/// is noted in the context once it is known. A hashed secret not verified
/// before is checked on the blocking pool.
pub async fn authenticate(
    engine: &Engine,
    ctx: &mut RequestContext,
    credentials: &Credentials,
) -> Result<Arc<Account>, AuthError> {
    let account = match ctx.snapshot.accounts.identify(credentials) {
        Identified::Done(found) => found?,
        Identified::Verify(account) => {
            let checked = account.clone();
            let verified = verify_slowly(engine, credentials, move |candidate| {
                match &checked.secret {
                    AccountSecret::Hashed(hash) => hash.verify(candidate),
                    AccountSecret::Clear(secret) => secret.matches(candidate),
                }
            });
            if !verified.await {
                return Err(AuthError::Invalid);
            }
            account
        }
        Identified::Decoy => {
            verify_slowly(engine, credentials, |candidate| {
                hashed::decoy().verify(candidate)
            })
            .await;
            return Err(AuthError::Invalid);
        }
    };
    ctx.account = Some(account.id.clone());
    Ok(account)
}

/// Runs a slow secret check on the blocking pool, at most one per core at
/// once; false when it could not run.
async fn verify_slowly(
    engine: &Engine,
    credentials: &Credentials,
    check: impl FnOnce(&[u8]) -> bool + Send + 'static,
) -> bool {
    let Ok(_permit) = engine.hashing.acquire().await else {
        return false;
    };
    let candidate = credentials.secret.clone();
    tokio::task::spawn_blocking(move || check(&candidate))
        .await
        .unwrap_or(false)
}

/// The account a bound listener serves, in the request's snapshot.
pub fn bound_account(ctx: &mut RequestContext, id: &str) -> Result<Arc<Account>, AuthError> {
    let account = ctx.snapshot.accounts.get(id).ok_or(AuthError::Invalid)?;
    ctx.account = Some(account.id.clone());
    Ok(account)
}
