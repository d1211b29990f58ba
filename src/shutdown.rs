//! Shutdown: one stop signal, one tracker of connection and tunnel tasks,
//! one grace deadline.
//!
//! On SIGINT/SIGTERM the signal fires: accept loops return and drop their
//! listeners (new connections are refused), keep-alive connections close
//! after their current request, requests that still arrive get 503
//! `errors/service_unavailable`, and in-flight requests and tunnels run on
//! until they end or `server.shutdown_grace` passes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// New work refused because the shutdown has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("pacer is shutting down")]
pub struct ShuttingDown;

/// The stop signal and the tasks that must finish before exit.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    /// Set before the token is cancelled: what every request checks, read
    /// without the token's lock.
    begun: Arc<AtomicBool>,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A running (not stopping) state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: listeners close, no new work is accepted.
    pub fn begin(&self) {
        self.begun.store(true, Ordering::Release);
        self.token.cancel();
        self.tracker.close();
    }

    /// Resolves once the shutdown has begun.
    pub async fn begun(&self) {
        self.token.cancelled().await
    }

    /// Refuses new work once the shutdown has begun.
    pub fn ensure_open(&self) -> Result<(), ShuttingDown> {
        if self.begun.load(Ordering::Acquire) {
            Err(ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Runs a connection or tunnel task that shutdown waits for.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Waits for every tracked task, at most `grace`; true if all ended.
    pub async fn drain(&self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}
