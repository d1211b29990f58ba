//! The error enum of the proxy listeners' boundary and its one mapping to
//! the wire: [`ProxyError::wire`] decides, in a single exhaustive match,
//! each error's HTTP status, envelope `type` and title, SOCKS5 reply code,
//! whether the connection closes, and the extra headers its envelope
//! carries. Converting an error logs nothing (the access log does).

use std::sync::Arc;
use std::time::Duration;

use fast_socks5::ReplyError;
use http::StatusCode;

use crate::egress::deny::Denied;
use crate::egress::dial::DialErrorKind;
use crate::egress::forward::OriginError;
use crate::egress::route::RouteError;
use crate::egress::target::BadName;
use crate::egress::upstream::{DestinationAnswer, UpstreamErrorKind};
use crate::policy::auth::AuthError;
use crate::policy::limit::{Hit, Refusal};
use crate::shutdown::ShuttingDown;

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
    /// The destination is not a host name or an IP address with a port.
    #[error(transparent)]
    BadDestination(#[from] BadName),
    /// A destination pacer never dials.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The client was not identified.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A limit of the account's policy refused the request.
    #[error("{}", refusal_detail(account, refusal))]
    RateLimited {
        /// The account.
        account: Arc<str>,
        /// The limit and the wait (boxed: refusals are rare, and the
        /// error travels by value on every path).
        refusal: Box<Refusal>,
    },
    /// pacer is at `max_connections` or shutting down.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The fleet store could not admit the request (`on_unavailable =
    /// "refuse"`): nothing is admitted unchecked.
    #[error("{0}")]
    StoreUnavailable(Arc<str>),
    /// No way out worked (SPEC section 5).
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The origin was reached but gave no response to pass on.
    #[error(transparent)]
    Origin(#[from] OriginError),
}

impl From<ShuttingDown> for ProxyError {
    fn from(_: ShuttingDown) -> Self {
        ProxyError::Unavailable("pacer is shutting down")
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

/// Headers an envelope carries besides its own.
#[derive(Debug, Clone, Copy)]
pub enum ExtraHeaders<'a> {
    /// None.
    None,
    /// `Proxy-Authenticate: Basic realm="pacer"`.
    ProxyAuthenticate,
    /// `Retry-After`, `RateLimit-Policy` and `RateLimit` for this limit.
    RateLimit(&'a Hit),
}

/// Everything the wire needs to answer an error.
#[derive(Debug, Clone, Copy)]
pub struct Wire<'a> {
    /// Status, type and title of the envelope.
    pub code: WireCode,
    /// The SOCKS5 reply code (RFC 1928 section 6).
    pub socks: ReplyError,
    /// Whether the client connection closes after the answer (its byte
    /// stream can no longer be trusted, or pacer is going away).
    pub close: bool,
    /// Extra headers of the envelope.
    pub headers: ExtraHeaders<'a>,
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
const INVALID_REQUEST: WireCode = code(400, "errors/invalid_request", "Bad Request");
const DENIED: WireCode = code(403, "errors/insufficient_privileges", "Forbidden");
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
    /// How this error is answered: the one mapping to the wire.
    pub fn wire(&self) -> Wire<'_> {
        use ExtraHeaders as H;
        use ReplyError as R;
        let (code, socks, close, headers) = match self {
            ProxyError::MalformedRequest(_) => (MALFORMED, R::GeneralFailure, true, H::None),
            ProxyError::BadDestination(_) => (INVALID_REQUEST, R::GeneralFailure, false, H::None),
            ProxyError::Denied(_) => (DENIED, R::ConnectionNotAllowed, false, H::None),
            ProxyError::HeadersTooLarge { .. } => (TOO_LARGE, R::GeneralFailure, true, H::None),
            ProxyError::ClientTimeout(_) => (CLIENT_TIMEOUT, R::HostUnreachable, true, H::None),
            ProxyError::Auth(AuthError::Missing) => (
                MISSING_CREDENTIALS,
                R::GeneralFailure,
                false,
                H::ProxyAuthenticate,
            ),
            ProxyError::Auth(AuthError::Invalid) => (
                INVALID_CREDENTIALS,
                R::GeneralFailure,
                false,
                H::ProxyAuthenticate,
            ),
            ProxyError::RateLimited { refusal, .. } => (
                RATE_LIMITED,
                R::ConnectionNotAllowed,
                false,
                H::RateLimit(&refusal.hit),
            ),
            ProxyError::Unavailable(_) => (UNAVAILABLE, R::GeneralFailure, true, H::None),
            ProxyError::StoreUnavailable(_) => (UNAVAILABLE, R::GeneralFailure, false, H::None),
            ProxyError::Route(err) => {
                let (code, socks) = route_wire(err);
                (code, socks, false, H::None)
            }
            ProxyError::Origin(OriginError::TimedOut { .. }) => {
                (GATEWAY_TIMEOUT, R::HostUnreachable, false, H::None)
            }
            ProxyError::Origin(OriginError::Failed { .. }) => {
                (PROVIDER, R::GeneralFailure, false, H::None)
            }
        };
        Wire {
            code,
            socks,
            close,
            headers,
        }
    }

    /// The status, type and title this error has on the wire.
    pub fn wire_code(&self) -> WireCode {
        self.wire().code
    }

    /// The SOCKS5 reply code for this error.
    pub fn socks_reply(&self) -> ReplyError {
        self.wire().socks
    }

    /// Whether the request failed before anything of it reached the origin,
    /// so that its daily-cap and batch consumption is given back.
    pub fn never_reached_origin(&self) -> bool {
        match self {
            ProxyError::Route(err) => err.never_reached_origin(),
            ProxyError::MalformedRequest(_)
            | ProxyError::BadDestination(_)
            | ProxyError::Denied(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::ClientTimeout(_)
            | ProxyError::Auth(_)
            | ProxyError::RateLimited { .. }
            | ProxyError::Unavailable(_)
            | ProxyError::StoreUnavailable(_)
            | ProxyError::Origin(_) => false,
        }
    }
}

/// The detail of a refusal: the limit key, its value and the wait, or for
/// a backoff the paused action and the origin's status.
fn refusal_detail(account: &str, refusal: &Refusal) -> String {
    let hit = &refusal.hit;
    let wait = retry_after_secs(hit.retry_after);
    match &hit.paused {
        Some((action, status)) => format!(
            "backoff: action {action} of account {account} is paused after the origin answered {status}; retry in {wait} s"
        ),
        None => format!(
            "{} ({}) reached for account {account}; retry in {wait} s",
            hit.key, hit.value
        ),
    }
}

/// Whole seconds to wait, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// SPEC 5: the destination unreachable (direct, or reported by the
/// upstream) → `provider_error`; credentials refused →
/// `invalid_proxy_credentials`; a time-out → 504; any other upstream
/// failure → `proxy_error`. SOCKS5: destination refused 0x05; destination
/// unreachable or any time-out 0x04; anything else 0x01.
fn route_wire(err: &RouteError) -> (WireCode, ReplyError) {
    use ReplyError as R;
    match err {
        RouteError::Destination(dial) => match dial.kind {
            DialErrorKind::TimedOut => (GATEWAY_TIMEOUT, R::HostUnreachable),
            DialErrorKind::Refused => (PROVIDER, R::ConnectionRefused),
            DialErrorKind::Resolve | DialErrorKind::Unreachable => (PROVIDER, R::HostUnreachable),
            DialErrorKind::Other => (PROVIDER, R::GeneralFailure),
            DialErrorKind::Denied => (DENIED, R::ConnectionNotAllowed),
        },
        RouteError::OriginTls(_) => (PROVIDER, R::GeneralFailure),
        RouteError::NoUpstream { .. } => (PROXY, R::GeneralFailure),
        RouteError::Upstream { last, .. } => match &last.kind {
            UpstreamErrorKind::CredentialsRejected(_) => (PROXY_CREDENTIALS, R::GeneralFailure),
            UpstreamErrorKind::TimedOut(_)
            | UpstreamErrorKind::Connect(DialErrorKind::TimedOut) => {
                (GATEWAY_TIMEOUT, R::HostUnreachable)
            }
            UpstreamErrorKind::Connect(
                DialErrorKind::Resolve
                | DialErrorKind::Refused
                | DialErrorKind::Unreachable
                | DialErrorKind::Other
                | DialErrorKind::Denied,
            )
            | UpstreamErrorKind::Broken(_) => (PROXY, R::GeneralFailure),
            UpstreamErrorKind::Destination { answer, .. } => {
                let socks = match answer {
                    DestinationAnswer::SocksReply(0x05) => R::ConnectionRefused,
                    DestinationAnswer::SocksReply(0x03 | 0x04 | 0x06)
                    | DestinationAnswer::HttpStatus(_) => R::HostUnreachable,
                    DestinationAnswer::SocksReply(_) | DestinationAnswer::NameTooLong => {
                        R::GeneralFailure
                    }
                };
                (PROVIDER, socks)
            }
        },
    }
}

#[cfg(test)]
mod tests;
