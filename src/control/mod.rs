//! The control plane: what only the admin API, reloads and the usage
//! flusher touch. [`Control`] holds the store, the admin write lock, the
//! config path and the config pacer started with, beside the
//! [`Engine`] whose snapshot it changes. [`admin`] serves the admin API;
//! [`reload`] rebuilds the snapshot from the config file. Nothing here is
//! on a request's path.

pub mod admin;
pub mod reload;
pub mod shared;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::{AdminConfig, Config};
use crate::fleet::Fleet;
use crate::pipeline::Engine;
use crate::state::persist;
use crate::state::store::Store;

/// How often changed usage is written even when no account is near its
/// headroom.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often what idle accounts hold is freed.
const FREE_IDLE_EVERY: Duration = Duration::from_secs(60);

/// The control plane's state.
pub struct Control {
    /// The request path whose snapshot the control plane changes.
    pub engine: Arc<Engine>,
    /// The embedded store.
    pub store: Store,
    /// `[admin]` as started.
    pub admin: AdminConfig,
    /// Serializes every change of runtime state (admin changes and
    /// reloads): read, modify, store, swap.
    pub writes: tokio::sync::Mutex<()>,
    /// The file a reload reads, when started from one.
    pub config_path: OnceLock<PathBuf>,
    /// Wakes the usage flusher; present when usage is persisted.
    pub journal: Option<Arc<Notify>>,
    /// The config pacer started with (restart-only sections are compared
    /// against it on reload).
    pub boot_config: Config,
    /// The config in force (the last one loaded).
    pub in_force: arc_swap::ArcSwap<Config>,
    /// The fleet's shared store, in fleet mode.
    pub fleet: Option<Arc<Fleet>>,
}

impl Control {
    /// Writes changed usage every second, or at once when an account nears
    /// its headroom, until the task is aborted; first checks that the
    /// store file is still the one on disk (a deleted or replaced file is
    /// written afresh from memory). Store writes run on the blocking pool.
    /// A failure is logged when it starts (or changes), and the recovery
    /// when writes succeed again; `/healthz` fails meanwhile.
    pub async fn flush_usage(self: Arc<Self>) {
        let Some(wake) = self.journal.clone() else {
            return;
        };
        let mut every = tokio::time::interval(FLUSH_EVERY);
        let mut failing: Option<String> = None;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = wake.notified() => {}
            }
            let control = self.clone();
            let flushed = tokio::task::spawn_blocking(move || control.flush_once());
            let outcome = match flushed.await {
                Ok(outcome) => outcome.map_err(|err| err.to_string()),
                Err(err) => Err(format!("usage flush task failed: {err}")),
            };
            match (outcome, &failing) {
                (Ok(()), Some(_)) => {
                    tracing::info!("state store written again");
                    failing = None;
                }
                (Ok(()), None) => {}
                (Err(err), Some(before)) if *before == err => {}
                (Err(err), _) => {
                    tracing::error!(%err, "usage not persisted; retrying every second");
                    failing = Some(err);
                }
            }
        }
    }

    /// One flush: the store file checked, then changed usage written.
    fn flush_once(&self) -> Result<(), crate::state::store::StoreError> {
        if self.store.keep_on_disk()? {
            tracing::error!(
                "the state store file was deleted or replaced while pacer ran; \
                 wrote a fresh one with every usage count and runtime change in memory"
            );
        }
        persist::flush(&self.store, &self.engine.snapshot.load(), false).map(|_| ())
    }

    /// Frees what idle accounts hold (rolling windows, sticky choices;
    /// [`crate::state::snapshot::Snapshot::free_idle`]) every minute, on
    /// the blocking pool, until the task is aborted.
    pub async fn free_idle(self: Arc<Self>) {
        let mut every = tokio::time::interval(FREE_IDLE_EVERY);
        loop {
            every.tick().await;
            let engine = self.engine.clone();
            let swept = tokio::task::spawn_blocking(move || {
                engine.snapshot.load().free_idle(&engine.clock);
            });
            if let Err(err) = swept.await {
                tracing::error!(%err, "idle sweep failed");
            }
        }
    }
}
