//! The error enum of the proxy listeners' boundary and its one mapping to
//! the wire: HTTP status, envelope `type` and title, and the SOCKS5 reply
//! code, side by side. Every variant is decided here, with no catch-all arm;
//! converting an error logs nothing (the access log does).

use std::sync::Arc;
use std::time::Duration;

use fast_socks5::ReplyError;
use http::StatusCode;

use crate::config::CountryCode;
use crate::dial::{DialError, DialErrorKind};
use crate::limit::Refusal;
use crate::upstream::{DestinationAnswer, UpstreamError, UpstreamErrorKind};

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
const PROXY: WireCode = code(502, "errors/proxy_error", "Bad Gateway");
const PROXY_CREDENTIALS: WireCode = code(502, "errors/invalid_proxy_credentials", "Bad Gateway");

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
            ProxyError::Upstream { last, .. } => upstream_wire_code(&last.kind),
            ProxyError::NoUpstream { .. } => PROXY,
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
            ProxyError::Upstream { last, .. } => upstream_socks_reply(&last.kind),
            ProxyError::MalformedRequest(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::MissingCredentials
            | ProxyError::InvalidCredentials
            | ProxyError::Unavailable(_)
            | ProxyError::OriginFailed { .. }
            | ProxyError::NoUpstream { .. } => ReplyError::GeneralFailure,
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
            | ProxyError::OriginFailed { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::NoUpstream { .. } => false,
        }
    }
}

impl ProxyError {
    /// Whether the request failed before anything of it reached the origin,
    /// so that its daily-cap and batch consumption is given back.
    pub fn never_reached_origin(&self) -> bool {
        match self {
            ProxyError::Destination(_) | ProxyError::NoUpstream { .. } => true,
            ProxyError::Upstream { last, .. } => match &last.kind {
                UpstreamErrorKind::Connect(_)
                | UpstreamErrorKind::TimedOut(_)
                | UpstreamErrorKind::CredentialsRejected(_)
                | UpstreamErrorKind::Destination { .. } => true,
                // The proxy may have passed a plain request on before it
                // broke: counted, conservatively.
                UpstreamErrorKind::Broken(_) => false,
            },
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

/// SPEC 5: credentials refused → `invalid_proxy_credentials`; a time-out →
/// 504; the destination unreachable (reported by the upstream) →
/// `provider_error`; any other upstream failure → `proxy_error`.
fn upstream_wire_code(kind: &UpstreamErrorKind) -> WireCode {
    match kind {
        UpstreamErrorKind::CredentialsRejected(_) => PROXY_CREDENTIALS,
        UpstreamErrorKind::TimedOut(_) | UpstreamErrorKind::Connect(DialErrorKind::TimedOut) => {
            GATEWAY_TIMEOUT
        }
        UpstreamErrorKind::Connect(
            DialErrorKind::Resolve
            | DialErrorKind::Refused
            | DialErrorKind::Unreachable
            | DialErrorKind::Other,
        )
        | UpstreamErrorKind::Broken(_) => PROXY,
        UpstreamErrorKind::Destination { .. } => PROVIDER,
    }
}

/// SPEC 5: destination refused 0x05; destination unreachable or any
/// time-out 0x04; an upstream proxy failure and anything else 0x01.
fn upstream_socks_reply(kind: &UpstreamErrorKind) -> ReplyError {
    match kind {
        UpstreamErrorKind::Destination { answer, .. } => match answer {
            DestinationAnswer::SocksReply(0x05) => ReplyError::ConnectionRefused,
            DestinationAnswer::SocksReply(0x03 | 0x04 | 0x06)
            | DestinationAnswer::HttpStatus(_) => ReplyError::HostUnreachable,
            DestinationAnswer::SocksReply(_) | DestinationAnswer::NameTooLong => {
                ReplyError::GeneralFailure
            }
        },
        UpstreamErrorKind::TimedOut(_) | UpstreamErrorKind::Connect(DialErrorKind::TimedOut) => {
            ReplyError::HostUnreachable
        }
        UpstreamErrorKind::Connect(
            DialErrorKind::Resolve
            | DialErrorKind::Refused
            | DialErrorKind::Unreachable
            | DialErrorKind::Other,
        )
        | UpstreamErrorKind::Broken(_)
        | UpstreamErrorKind::CredentialsRejected(_) => ReplyError::GeneralFailure,
    }
}

#[cfg(test)]
mod tests;
