//! Admission of client connections against `max_connections`, across all
//! proxy listeners. A connection over the limit is not dropped blindly:
//! while a small overflow allowance lasts it is read far enough to be
//! answered (HTTP 503 `errors/service_unavailable`, SOCKS5 reply 0x01);
//! beyond that allowance it is closed at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections answered with a refusal at once, beyond `max_connections`.
const OVERFLOW_ALLOWANCE: usize = 64;

/// Permits for client connections across all proxy listeners.
#[derive(Debug)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
}

/// What a newly accepted connection may do.
#[derive(Debug)]
pub enum Admission {
    /// Served; the permit is held for the connection's life.
    Served(OwnedSemaphorePermit),
    /// Over the limit: answered with a refusal, then closed.
    Refused(OwnedSemaphorePermit),
}

impl ConnectionLimit {
    /// At most `max` connections served at once.
    pub fn new(max: usize) -> Self {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
            overflow: Arc::new(Semaphore::new(OVERFLOW_ALLOWANCE)),
        }
    }

    /// Admission for a new connection; `None` means close it unanswered.
    pub fn admit(&self) -> Option<Admission> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(Admission::Served(permit));
        }
        let permit = self.overflow.clone().try_acquire_owned().ok()?;
        Some(Admission::Refused(permit))
    }
}
