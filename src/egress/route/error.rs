//! [`RouteError`]: why a request could not leave, once its plan is over:
//! from the last attempt's failure, or because no hop could be tried.

use super::super::dial::DialError;
use super::super::error::TlsError;
use super::super::upstream::{UpstreamError, UpstreamErrorKind};
use crate::config::CountryCode;

/// Why no attempt of a request succeeded.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Going direct, the destination could not be reached.
    #[error(transparent)]
    Destination(#[from] DialError),
    /// TLS with an `https://` origin failed.
    #[error(transparent)]
    OriginTls(#[from] TlsError),
    /// No attempt through the account's upstreams succeeded; the answer
    /// follows from the last attempt's failure.
    #[error("{last} ({})", upstreams_tried(*.tried))]
    Upstream {
        /// The last attempt's failure.
        last: UpstreamError,
        /// How many upstreams were tried.
        tried: u32,
    },
    /// Every upstream of the account's country is sitting out its cooldown,
    /// so none was tried.
    #[error(
        "no upstream{} can be tried: each is sitting out its failure cooldown (0 upstreams tried)",
        .country.map(|c| format!(" for country {c}")).unwrap_or_default()
    )]
    NoUpstream {
        /// The account's country.
        country: Option<CountryCode>,
    },
}

fn upstreams_tried(tried: u32) -> String {
    match tried {
        1 => "1 upstream tried".to_owned(),
        n => format!("{n} upstreams tried"),
    }
}

impl RouteError {
    /// Whether the request failed before anything of it reached the origin,
    /// so that its daily-cap and batch consumption is given back.
    pub fn never_reached_origin(&self) -> bool {
        match self {
            RouteError::Destination(_) | RouteError::NoUpstream { .. } => true,
            // The handshake happened before any request byte was sent.
            RouteError::OriginTls(_) => true,
            RouteError::Upstream { last, .. } => match &last.kind {
                UpstreamErrorKind::Connect(_)
                | UpstreamErrorKind::TimedOut(_)
                | UpstreamErrorKind::CredentialsRejected(_)
                | UpstreamErrorKind::Destination { .. } => true,
                // The proxy may have passed a plain request on before it
                // broke: counted, conservatively.
                UpstreamErrorKind::Broken(_) => false,
            },
        }
    }
}
