//! The error enum of the proxy listeners' boundary and its one mapping to
//! the wire: HTTP status, envelope `type` and title, and the SOCKS5 reply
//! code, side by side. Every variant is decided here, with no catch-all arm;
//! converting an error logs nothing (the access log does).

use std::sync::Arc;
use std::time::Duration;

use fast_socks5::ReplyError;
use http::StatusCode;

use crate::dial::{DialError, DialErrorKind};
use crate::limit::Refusal;

/// Why pacer refused or failed a request or tunnel.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client sent something that is not a proxy request.
    #[error("{0}")]
    MalformedRequest(&'static str),
    /// The request head is larger than `server.max_header_bytes`.
    #[error("request head exceeds {limit} bytes")]
    HeadersTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client did not send a whole request head in time.
    #[error("request head not received within {}", humantime::format_duration(*.0))]
    ClientTimeout(Duration),
    /// No credentials were offered.
    #[error("proxy credentials are required")]
    MissingCredentials,
    /// The credentials did not match an account.
    #[error("proxy credentials were not accepted")]
    InvalidCredentials,
    /// A limit of the account's policy refused the request.
    #[error(
        "{} ({}) reached for account {account}; retry in {} s",
        refusal.hit.key,
        refusal.hit.value,
        retry_after_secs(refusal.hit.retry_after)
    )]
    RateLimited {
        /// The account.
        account: Arc<str>,
        /// The limit and the wait.
        refusal: Refusal,
    },
    /// pacer is at `max_connections` or shutting down.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The destination could not be reached.
    #[error(transparent)]
    Destination(#[from] DialError),
    /// The destination was reached but did not answer with a response head
    /// within `idle_timeout`.
    #[error("{target} sent no response within {}", humantime::format_duration(*.after))]
    OriginTimeout {
        /// `host:port` of the origin.
        target: String,
        /// How long pacer waited.
        after: Duration,
    },
    /// The destination was reached but the exchange with it failed.
    #[error("{target} failed: {reason}")]
    OriginFailed {
        /// `host:port` of the origin.
        target: String,
        /// What hyper reported.
        reason: String,
    },
}

/// The wire identity of an error: status, envelope `type` and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireCode {
    /// HTTP status of the envelope.
    pub status: StatusCode,
    /// The envelope's `type`, e.g. `errors/rate_limited`.
    pub kind: &'static str,
    /// The envelope's `title`.
    pub title: &'static str,
}

const fn code(status: u16, kind: &'static str, title: &'static str) -> WireCode {
    match StatusCode::from_u16(status) {
        Ok(status) => WireCode {
            status,
            kind,
            title,
        },
        Err(_) => panic!("invalid status code in the wire table"),
    }
}

const MALFORMED: WireCode = code(400, "errors/malformed_request", "Bad Request");
const TOO_LARGE: WireCode = code(
    431,
    "errors/headers_too_large",
    "Request Header Fields Too Large",
);
const CLIENT_TIMEOUT: WireCode = code(408, "errors/request_timeout", "Request Timeout");
const MISSING_CREDENTIALS: WireCode = code(
    407,
    "errors/missing_credentials",
    "Proxy Authentication Required",
);
const INVALID_CREDENTIALS: WireCode = code(
    407,
    "errors/invalid_credentials",
    "Proxy Authentication Required",
);
const RATE_LIMITED: WireCode = code(429, "errors/rate_limited", "Too Many Requests");
const UNAVAILABLE: WireCode = code(503, "errors/service_unavailable", "Service Unavailable");
const PROVIDER: WireCode = code(502, "errors/provider_error", "Bad Gateway");
const GATEWAY_TIMEOUT: WireCode = code(504, "errors/request_timeout", "Gateway Timeout");

impl ProxyError {
    /// The status, type and title this error has on the wire.
    pub fn wire_code(&self) -> WireCode {
        match self {
            ProxyError::MalformedRequest(_) => MALFORMED,
            ProxyError::HeadersTooLarge { .. } => TOO_LARGE,
            ProxyError::ClientTimeout(_) => CLIENT_TIMEOUT,
            ProxyError::MissingCredentials => MISSING_CREDENTIALS,
            ProxyError::InvalidCredentials => INVALID_CREDENTIALS,
            ProxyError::RateLimited { .. } => RATE_LIMITED,
            ProxyError::Unavailable(_) => UNAVAILABLE,
            ProxyError::Destination(err) => match err.kind {
                DialErrorKind::TimedOut => GATEWAY_TIMEOUT,
                DialErrorKind::Resolve
                | DialErrorKind::Refused
                | DialErrorKind::Unreachable
                | DialErrorKind::Other => PROVIDER,
            },
            ProxyError::OriginTimeout { .. } => GATEWAY_TIMEOUT,
            ProxyError::OriginFailed { .. } => PROVIDER,
        }
    }

    /// The SOCKS5 reply code (RFC 1928 section 6) for this error.
    pub fn socks_reply(&self) -> ReplyError {
        match self {
            ProxyError::Destination(err) => match err.kind {
                DialErrorKind::Refused => ReplyError::ConnectionRefused,
                DialErrorKind::Resolve | DialErrorKind::Unreachable | DialErrorKind::TimedOut => {
                    ReplyError::HostUnreachable
                }
                DialErrorKind::Other => ReplyError::GeneralFailure,
            },
            ProxyError::OriginTimeout { .. } | ProxyError::ClientTimeout(_) => {
                ReplyError::HostUnreachable
            }
            ProxyError::RateLimited { .. } => ReplyError::ConnectionNotAllowed,
            ProxyError::MalformedRequest(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::MissingCredentials
            | ProxyError::InvalidCredentials
            | ProxyError::Unavailable(_)
            | ProxyError::OriginFailed { .. } => ReplyError::GeneralFailure,
        }
    }

    /// Whether the client connection must be closed after the error response
    /// (its byte stream can no longer be trusted, or pacer is going away).
    pub fn closes_connection(&self) -> bool {
        match self {
            ProxyError::MalformedRequest(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::ClientTimeout(_)
            | ProxyError::Unavailable(_) => true,
            ProxyError::MissingCredentials
            | ProxyError::InvalidCredentials
            | ProxyError::RateLimited { .. }
            | ProxyError::Destination(_)
            | ProxyError::OriginTimeout { .. }
            | ProxyError::OriginFailed { .. } => false,
        }
    }
}

impl ProxyError {
    /// Whether the request failed before anything of it reached the origin,
    /// so that its daily-cap and batch consumption is given back.
    pub fn never_reached_origin(&self) -> bool {
        match self {
            ProxyError::Destination(_) => true,
            ProxyError::MalformedRequest(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::ClientTimeout(_)
            | ProxyError::MissingCredentials
            | ProxyError::InvalidCredentials
            | ProxyError::RateLimited { .. }
            | ProxyError::Unavailable(_)
            | ProxyError::OriginTimeout { .. }
            | ProxyError::OriginFailed { .. } => false,
        }
    }
}

/// Whole seconds to wait, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks_codes_follow_the_spec() {
        let refused = DialError::for_test(DialErrorKind::Refused);
        assert_eq!(
            ProxyError::from(refused).socks_reply().as_u8(),
            0x05,
            "destination refused"
        );
        let timeout = DialError::for_test(DialErrorKind::TimedOut);
        assert_eq!(ProxyError::from(timeout).socks_reply().as_u8(), 0x04);
        assert_eq!(ProxyError::Unavailable("x").socks_reply().as_u8(), 0x01);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(6001)), 7);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn timeouts_are_504_and_refusals_502() {
        let timeout = ProxyError::from(DialError::for_test(DialErrorKind::TimedOut));
        assert_eq!(timeout.wire_code().status, 504);
        assert_eq!(timeout.wire_code().kind, "errors/request_timeout");
        let resolve = ProxyError::from(DialError::for_test(DialErrorKind::Resolve));
        assert_eq!(resolve.wire_code().status, 502);
        assert_eq!(resolve.wire_code().kind, "errors/provider_error");
    }
}
