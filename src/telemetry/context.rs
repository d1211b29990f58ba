//! One context value per request or tunnel: its id, the snapshot it was
//! served with, who sent it, where it goes, and what happened. Errors, the
//! access log and metrics all read it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::egress::target::Target;
use crate::policy::classify::ActionSet;
use crate::policy::limit::HitKind;
use crate::state::snapshot::Snapshot;
use crate::wire::error::ProxyError;
use crate::wire::request_id::RequestId;

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

/// The outcome of a request whose client went away before it was answered.
pub const CLIENT_CLOSED: &str = "client_closed";

/// Everything known about one request or tunnel, filled in stage by stage.
pub struct RequestContext {
    /// The request id.
    pub id: RequestId,
    /// The snapshot every stage of this request reads (loaded once).
    pub snapshot: Arc<Snapshot>,
    /// The listener it arrived on.
    pub listener: ListenerKind,
    /// The client's address.
    pub peer: SocketAddr,
    /// The account, once identified.
    pub account: Option<Arc<str>>,
    /// The actions it matched.
    pub actions: ActionSet,
    /// The method (`CONNECT` for tunnels), once known.
    pub method: Option<Method>,
    /// The destination, once known.
    pub target: Option<Target>,
    /// The outcome: HTTP status, or the SOCKS5 reply code for SOCKS tunnels
    /// (0 while unanswered).
    pub status: u16,
    /// `ok`, the envelope type without `errors/`, or [`CLIENT_CLOSED`]
    /// (metrics label).
    pub outcome: &'static str,
    /// The limit that refused it, if one did.
    pub refused_by: Option<HitKind>,
    /// That limit's key as written.
    pub refused_limit: Option<Arc<str>>,
    /// The limit it waited for, if it was paced.
    pub held_by: Option<HitKind>,
    /// Bytes from the client towards the destination.
    pub bytes_up: u64,
    /// Bytes from the destination towards the client.
    pub bytes_down: u64,
    /// Of a tunnel's bytes both ways, those moved by `splice(2)`.
    pub bytes_spliced: u64,
    /// Time spent waiting for admission.
    pub waited: Duration,
    /// For a paced request: how long after its limits allowed it the
    /// request left pacer.
    pub lateness: Option<Duration>,
    /// The upstream of the last attempt (`host:port`, never credentials);
    /// `None` when the request went direct or was never dialed.
    pub upstream: Option<Arc<str>>,
    /// Attempts to reach the destination (direct or through upstreams).
    pub attempts: u32,
    /// When the request head (or SOCKS5 command) was complete.
    pub started: Instant,
    /// For an intercepted tunnel and each request inside it: the tunnel's
    /// id.
    pub intercepted: Option<RequestId>,
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("id", &self.id)
            .field("listener", &self.listener)
            .field("account", &self.account)
            .field("target", &self.target)
            .field("status", &self.status)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl RequestContext {
    /// A context for a new request or tunnel from `peer`, served with
    /// `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>, listener: ListenerKind, peer: SocketAddr) -> Self {
        RequestContext {
            id: RequestId::next(),
            snapshot,
            listener,
            peer,
            account: None,
            actions: ActionSet::new(),
            method: None,
            target: None,
            status: 0,
            outcome: CLIENT_CLOSED,
            refused_by: None,
            refused_limit: None,
            held_by: None,
            bytes_up: 0,
            bytes_down: 0,
            bytes_spliced: 0,
            waited: Duration::ZERO,
            lateness: None,
            upstream: None,
            attempts: 0,
            started: Instant::now(),
            intercepted: None,
        }
    }

    /// Records that the request was answered with `status` (HTTP status,
    /// or SOCKS5 reply 0).
    pub fn succeeded(&mut self, status: u16) {
        self.status = status;
        self.outcome = "ok";
    }

    /// Records that the request failed with `err` (HTTP status or SOCKS5
    /// reply code in `status`).
    pub fn failed(&mut self, err: &ProxyError, status: u16) {
        self.status = status;
        let kind = err.wire_code().kind;
        self.outcome = kind.strip_prefix("errors/").unwrap_or(kind);
        if let ProxyError::RateLimited { refusal, .. } = err {
            self.refused_by = Some(refusal.hit.kind);
            self.refused_limit = Some(refusal.hit.key.clone());
        }
    }

    /// The names of the actions it matched, from its own snapshot.
    pub fn action_names(&self) -> SmallVec<[&str; 4]> {
        let classifier = &self.snapshot.classifier;
        self.actions.iter().map(|id| classifier.name(*id)).collect()
    }
}
