//! Why one attempt to reach a destination failed, direct or through an
//! upstream, classified so that routing decides from data whether to try
//! the next upstream.

use std::fmt;

use super::dial::DialError;
use super::upstream::{UpstreamError, UpstreamErrorKind};

/// Why one attempt to reach the destination failed.
#[derive(Debug)]
pub enum EgressError {
    /// Going direct: the destination itself could not be reached.
    Direct(DialError),
    /// Through an upstream proxy.
    Upstream(UpstreamError),
    /// The destination was reached, but TLS with it failed (its
    /// certificate did not verify, or the handshake broke).
    OriginTls(TlsError),
}

/// TLS with an `https://` origin failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("TLS with {target} failed: {reason}")]
pub struct TlsError {
    /// `host:port` of the origin.
    pub target: String,
    /// Why (expired, unknown issuer, name mismatch, ...).
    pub reason: String,
}

impl EgressError {
    /// The kind of failure, as a metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            EgressError::Direct(_) => "destination",
            EgressError::Upstream(err) => match err.kind {
                UpstreamErrorKind::Connect(_) => "connect",
                UpstreamErrorKind::TimedOut(_) => "timeout",
                UpstreamErrorKind::Broken(_) => "handshake",
                UpstreamErrorKind::CredentialsRejected(_) => "credentials",
                UpstreamErrorKind::Destination { .. } => "destination",
            },
            EgressError::OriginTls(_) => "origin_tls",
        }
    }

    /// A copy for the caller when only a reference is at hand (hyper keeps
    /// the connector's error in its chain).
    pub fn clone_for_wire(&self) -> Self {
        match self {
            EgressError::Direct(err) => EgressError::Direct(err.clone_for_wire()),
            EgressError::Upstream(err) => EgressError::Upstream(err.clone()),
            EgressError::OriginTls(err) => EgressError::OriginTls(err.clone()),
        }
    }
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressError::Direct(err) => err.fmt(f),
            EgressError::Upstream(err) => err.fmt(f),
            EgressError::OriginTls(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for EgressError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EgressError::Direct(err) => Some(err),
            EgressError::Upstream(err) => Some(err),
            EgressError::OriginTls(err) => Some(err),
        }
    }
}
