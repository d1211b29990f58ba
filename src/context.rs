//! One context value per request or tunnel: its id, who sent it, where it
//! goes, and what happened. Errors, the access log and (later) metrics all
//! read it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Method;
use tokio::time::Instant;

use crate::classify::ActionSet;
use crate::error::ProxyError;
use crate::limit::HitKind;
use crate::target::Target;

/// A request id, shown as `req_` and 12 hex digits in the envelope's
/// `instance`, the `X-Request-Id` header and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

impl RequestId {
    /// A fresh id: unique within the process, unpredictable across runs.
    pub fn next() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SEED: OnceLock<u64> = OnceLock::new();
        let seed = *SEED.get_or_init(random_seed);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        RequestId(splitmix64(seed.wrapping_add(n)) & 0xffff_ffff_ffff)
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}

/// A bijective mix, so consecutive counters give unrelated-looking ids.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req_{:012x}", self.0)
    }
}

/// Which kind of listener a request or tunnel came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The HTTP proxy listener (absolute-form and CONNECT).
    Http,
    /// The SOCKS5 listener.
    Socks5,
}

impl ListenerKind {
    /// The listener's name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Http => "http",
            ListenerKind::Socks5 => "socks5",
        }
    }
}

/// Everything known about one request or tunnel, filled in stage by stage.
#[derive(Debug)]
pub struct RequestContext {
    /// The request id.
    pub id: RequestId,
    /// The listener it arrived on.
    pub listener: ListenerKind,
    /// The client's address.
    pub peer: SocketAddr,
    /// The account, once identified.
    pub account: Option<Arc<str>>,
    /// The actions it matched.
    pub actions: ActionSet,
    /// The method (`CONNECT` for tunnels).
    pub method: Method,
    /// The destination, once known.
    pub target: Option<Target>,
    /// The outcome: HTTP status, or the SOCKS5 reply code for SOCKS tunnels.
    pub status: u16,
    /// `ok`, or the envelope type without `errors/` (metrics label).
    pub outcome: &'static str,
    /// The limit that refused it, if one did.
    pub refused_by: Option<HitKind>,
    /// The limit it waited for, if it was paced.
    pub held_by: Option<HitKind>,
    /// Bytes from the client towards the destination.
    pub bytes_up: u64,
    /// Bytes from the destination towards the client.
    pub bytes_down: u64,
    /// Time spent waiting for admission.
    pub waited: Duration,
    /// The upstream of the last attempt (`host:port`, never credentials);
    /// `None` when the request went direct or was never dialed.
    pub upstream: Option<Arc<str>>,
    /// Attempts to reach the destination (direct or through upstreams).
    pub attempts: u32,
    /// When the request head (or SOCKS5 command) was complete.
    pub started: Instant,
}

impl RequestContext {
    /// A context for a new request or tunnel from `peer`.
    pub fn new(listener: ListenerKind, peer: SocketAddr, method: Method) -> Self {
        RequestContext {
            id: RequestId::next(),
            listener,
            peer,
            account: None,
            actions: ActionSet::new(),
            method,
            target: None,
            status: 0,
            outcome: "ok",
            refused_by: None,
            held_by: None,
            bytes_up: 0,
            bytes_down: 0,
            waited: Duration::ZERO,
            upstream: None,
            attempts: 0,
            started: Instant::now(),
        }
    }
}

impl RequestContext {
    /// Records that the request failed with `err` (HTTP status or SOCKS5
    /// reply code in `status`).
    pub fn failed(&mut self, err: &ProxyError, status: u16) {
        self.status = status;
        let kind = err.wire_code().kind;
        self.outcome = kind.strip_prefix("errors/").unwrap_or(kind);
        if let ProxyError::RateLimited { refusal, .. } = err {
            self.refused_by = Some(refusal.hit.kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_well_formed() {
        let a = RequestId::next().to_string();
        let b = RequestId::next().to_string();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.starts_with("req_"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
