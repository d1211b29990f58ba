//! A fleet of pacers (SPEC section 10): the shared store (Redis or Valkey)
//! that every instance with the same `[fleet]` Redis and key prefix keeps
//! its limits, runtime changes and upstream cooldowns in.
//!
//! - [`Fleet`] holds the connection ([`conn`]), made in the background and
//!   remade by the client itself after a fault; whether the store answers
//!   (`/healthz`, `pacer_fleet_store_up`); every call bounded by
//!   `timeout`.
//! - [`admission`]: the [`crate::policy::limit::SharedLimiter`] the
//!   request path admits through: one server-side script per admission,
//!   on Redis's own clock, all keys of an account under one hash tag.
//! - [`keys`]: key names.
//! - [`usage`]: an account's usage, fleet-wide, for the admin API.
//! - [`digest`]: the config digest instances compare.
//! - [`runtime`]: runtime changes and runtime accounts, with the version
//!   and notifications instances follow them by.
//!
//! *Invariant: the policy logic stays in [`crate::policy::limit`]; this
//! layer only counts, stores and notifies.*

pub mod admission;
mod conn;
pub mod digest;
pub mod keys;
pub mod runtime;
mod scripts;
pub mod usage;
mod value;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::{FromRedisValue, ScriptInvocation};

use self::conn::{Conn, Dial};
use self::scripts::Scripts;
use crate::config::{FleetConfig, OnUnavailable};
use crate::telemetry::metrics::FleetGauges;

/// How often a connection that could not be made is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Why a call to the store failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No connection yet (the first is still being made, or failed).
    #[error("fleet store not connected")]
    NotConnected,
    /// It took longer than `timeout`.
    #[error("fleet store did not answer within {0:?}")]
    TimedOut(Duration),
    /// A record could not be encoded.
    #[error("cannot encode a runtime record: {0}")]
    Encode(String),
    /// The store answered with an error, or the connection broke.
    #[error("fleet store: {0}")]
    Redis(#[from] redis::RedisError),
}

/// This instance's handle on the fleet store.
pub struct Fleet {
    config: FleetConfig,
    conn: ArcSwapOption<Conn>,
    scripts: Scripts,
    /// This instance's id in the fleet (random at start).
    instance: String,
    next_grant: AtomicU64,
    up: AtomicBool,
    /// Whether the running outage was logged.
    down_logged: AtomicBool,
    gauges: FleetGauges,
    /// The first config section that differs from another live
    /// instance's, while one does ([`digest`]).
    mismatch: std::sync::Mutex<Option<String>>,
    /// PEM roots for `rediss://`.
    roots: Option<Vec<u8>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("instance", &self.instance)
            .field("cluster", &self.config.cluster)
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The handle for `config`, not yet connected (see [`Fleet::connect`]).
    /// `roots` are the PEM files of `[tls] extra_roots`, trusted for
    /// `rediss://` in place of the bundled roots.
    pub fn new(config: FleetConfig, roots: Option<Vec<u8>>, gauges: FleetGauges) -> Arc<Fleet> {
        Arc::new(Fleet {
            config,
            conn: ArcSwapOption::empty(),
            scripts: Scripts::default(),
            instance: format!("{:016x}", fastrand::u64(..)),
            next_grant: AtomicU64::new(0),
            up: AtomicBool::new(false),
            down_logged: AtomicBool::new(false),
            gauges,
            mismatch: std::sync::Mutex::new(None),
            roots,
        })
    }

    /// Makes the connection in the background, trying every second until
    /// it is made (the client remakes it by itself after that), then pings
    /// the store every second. Runs on the caller's runtime until it ends.
    pub fn connect(self: &Arc<Self>) {
        let fleet = self.clone();
        tokio::spawn(async move {
            loop {
                let dial = Dial {
                    config: &fleet.config,
                    roots: fleet.roots.clone(),
                };
                match Conn::open(dial).await {
                    Ok(conn) => {
                        fleet.conn.store(Some(Arc::new(conn)));
                        fleet.mark(true, None);
                        break;
                    }
                    Err(err) => fleet.mark(false, Some(&FleetError::Redis(err))),
                }
                tokio::time::sleep(RECONNECT_EVERY).await;
            }
            // The store's health is known without traffic too (`/healthz`,
            // `pacer_fleet_store_up`).
            loop {
                tokio::time::sleep(RECONNECT_EVERY).await;
                let _ = fleet.query::<String>(&redis::cmd("PING")).await;
            }
        });
    }

    /// The `[fleet]` section in force.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// What admission does while the store is down.
    pub fn on_unavailable(&self) -> OnUnavailable {
        self.config.on_unavailable
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether the store answered the last call in time.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The gauges this fleet sets.
    pub fn gauges(&self) -> &FleetGauges {
        &self.gauges
    }

    /// A fleet-unique id for a new grant.
    fn grant_id(&self) -> String {
        let n = self.next_grant.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.instance)
    }

    /// Notes whether the store answered; an outage is logged once when it
    /// starts and once when it ends.
    fn mark(&self, up: bool, err: Option<&FleetError>) {
        self.up.store(up, Ordering::Relaxed);
        self.gauges.store_up.set(i64::from(up));
        if up {
            if self.down_logged.swap(false, Ordering::Relaxed) {
                tracing::warn!("fleet store available again: admission through the fleet resumes");
            }
            return;
        }
        if !self.down_logged.swap(true, Ordering::Relaxed) {
            let mode = match self.config.on_unavailable {
                OnUnavailable::Refuse => "refusing requests until it is back",
                OnUnavailable::Local => "admitting by this instance's own limits until it is back",
            };
            let error = err.map(ToString::to_string).unwrap_or_default();
            tracing::error!(%error, "fleet store unavailable: {mode}");
        }
    }

    /// Runs `call` against the connection within `timeout`, noting the
    /// outcome.
    async fn run<T, F>(&self, call: impl FnOnce(Arc<Conn>) -> F) -> Result<T, FleetError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn.load_full().ok_or(FleetError::NotConnected);
        let result = match conn {
            Ok(conn) => match tokio::time::timeout(self.config.timeout, call(conn)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(err)) => Err(FleetError::Redis(err)),
                Err(_) => Err(FleetError::TimedOut(self.config.timeout)),
            },
            Err(err) => Err(err),
        };
        match &result {
            Ok(_) => self.mark(true, None),
            Err(FleetError::Redis(err)) if !is_fault(err) => {}
            Err(err) => self.mark(false, Some(err)),
        }
        result
    }

    /// Runs a script on the account's slot.
    async fn invoke<T: FromRedisValue + Send>(
        &self,
        script: ScriptInvocation<'_>,
    ) -> Result<T, FleetError> {
        self.run(|conn| async move { conn.invoke(script).await })
            .await
    }

    /// Runs a pipeline.
    async fn pipeline<T: FromRedisValue + Send>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, FleetError> {
        self.run(|conn| async move { conn.pipeline(pipe).await })
            .await
    }

    /// Runs a command.
    pub async fn query<T: FromRedisValue + Send>(&self, cmd: &redis::Cmd) -> Result<T, FleetError> {
        self.run(|conn| async move { conn.query(cmd).await }).await
    }
}

/// Whether an error means the store is not usable (a connection or I/O
/// fault), rather than a bad answer to one call.
fn is_fault(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || err.is_cluster_error()
}
