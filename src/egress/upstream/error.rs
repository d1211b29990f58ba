//! [`UpstreamError`]: why one attempt through an upstream proxy failed,
//! classified so that routing decides from data whether the upstream
//! failed (cooldown, next upstream) or answered for the destination (final),
//! and so that the wire mapping in [`crate::wire::error`] picks the envelope.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::egress::dial::{DialError, DialErrorKind};

/// One failed attempt through an upstream proxy.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    /// The upstream's `host:port` (never its credentials).
    pub upstream: Arc<str>,
    /// What went wrong.
    pub kind: UpstreamErrorKind,
}

/// What went wrong with an upstream.
#[derive(Debug, Clone)]
pub enum UpstreamErrorKind {
    /// The TCP connection to the proxy failed (its name did not resolve, it
    /// refused, no route); `TimedOut` never appears here, see
    /// [`UpstreamErrorKind::TimedOut`].
    Connect(DialErrorKind),
    /// Connect, TLS and the proxy handshake together took longer than
    /// `server.connect_timeout`.
    TimedOut(Duration),
    /// TLS with the proxy failed, or the proxy broke its protocol: closed
    /// the connection mid-handshake, answered garbage, refused every auth
    /// method.
    Broken(String),
    /// The proxy rejected pacer's credentials (HTTP 407, SOCKS5 auth status
    /// other than 0).
    CredentialsRejected(String),
    /// The proxy worked but could not reach the destination: a CONNECT
    /// answered with a status other than 2xx and 407, or a SOCKS5 CONNECT
    /// answered with a reply code other than 0.
    Destination {
        /// `host:port` of the destination.
        target: String,
        /// The proxy's answer.
        answer: DestinationAnswer,
    },
}

/// How an upstream reported that the destination could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationAnswer {
    /// The HTTP status of the CONNECT response.
    HttpStatus(u16),
    /// The SOCKS5 reply code (RFC 1928 section 6).
    SocksReply(u8),
    /// The destination's name cannot be sent over SOCKS5 (over 255 bytes).
    NameTooLong,
}

impl UpstreamError {
    /// An error of `kind` for the upstream labelled `upstream`.
    pub fn new(upstream: &Arc<str>, kind: UpstreamErrorKind) -> Self {
        UpstreamError {
            upstream: upstream.clone(),
            kind,
        }
    }

    /// A failed TCP connect to the proxy.
    pub fn connect(upstream: &Arc<str>, err: &DialError) -> Self {
        Self::new(upstream, UpstreamErrorKind::Connect(err.kind))
    }

    /// The proxy broke its protocol, for `reason`.
    pub fn broken(upstream: &Arc<str>, reason: impl Into<String>) -> Self {
        Self::new(upstream, UpstreamErrorKind::Broken(reason.into()))
    }

    /// Whether the upstream itself failed (it then sits out its cooldown
    /// and the request may move to the next upstream), as opposed to the
    /// upstream answering that the destination is unreachable.
    pub fn is_upstream_failure(&self) -> bool {
        match self.kind {
            UpstreamErrorKind::Connect(_)
            | UpstreamErrorKind::TimedOut(_)
            | UpstreamErrorKind::Broken(_)
            | UpstreamErrorKind::CredentialsRejected(_) => true,
            UpstreamErrorKind::Destination { .. } => false,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let up = &self.upstream;
        match &self.kind {
            UpstreamErrorKind::Connect(kind) => match kind {
                DialErrorKind::Resolve => write!(f, "upstream {up} did not resolve"),
                DialErrorKind::Refused => write!(f, "upstream {up} refused the connection"),
                DialErrorKind::Unreachable => write!(f, "no route to upstream {up}"),
                DialErrorKind::TimedOut => write!(f, "timed out connecting to upstream {up}"),
                DialErrorKind::Other | DialErrorKind::Denied => {
                    write!(f, "could not connect to upstream {up}")
                }
            },
            UpstreamErrorKind::TimedOut(after) => write!(
                f,
                "upstream {up} did not complete its handshake within {}",
                humantime::format_duration(*after)
            ),
            UpstreamErrorKind::Broken(reason) => write!(f, "upstream {up} failed: {reason}"),
            UpstreamErrorKind::CredentialsRejected(how) => {
                write!(f, "upstream {up} rejected pacer's credentials ({how})")
            }
            UpstreamErrorKind::Destination { target, answer } => {
                write!(f, "upstream {up} could not reach {target}: {answer}")
            }
        }
    }
}

impl fmt::Display for DestinationAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationAnswer::HttpStatus(status) => write!(f, "CONNECT answered {status}"),
            DestinationAnswer::SocksReply(code) => {
                write!(f, "SOCKS5 reply 0x{code:02x} ({})", socks_reply_name(*code))
            }
            DestinationAnswer::NameTooLong => f.write_str("host name too long for SOCKS5"),
        }
    }
}

/// The RFC 1928 name of a reply code.
fn socks_reply_name(code: u8) -> &'static str {
    match code {
        0x01 => "general failure",
        0x02 => "not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned",
    }
}

impl std::error::Error for UpstreamError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> Arc<str> {
        Arc::from("127.0.0.1:3128")
    }

    #[test]
    fn destination_answers_are_not_upstream_failures() {
        let refused = UpstreamError::new(
            &label(),
            UpstreamErrorKind::Destination {
                target: "example.com:443".into(),
                answer: DestinationAnswer::HttpStatus(502),
            },
        );
        assert!(!refused.is_upstream_failure());
        assert_eq!(
            refused.to_string(),
            "upstream 127.0.0.1:3128 could not reach example.com:443: CONNECT answered 502"
        );
        let creds = UpstreamError::new(
            &label(),
            UpstreamErrorKind::CredentialsRejected("HTTP 407".into()),
        );
        assert!(creds.is_upstream_failure());
    }

    #[test]
    fn socks_replies_are_named_even_when_unassigned() {
        let answer = DestinationAnswer::SocksReply(0x05);
        assert_eq!(answer.to_string(), "SOCKS5 reply 0x05 (connection refused)");
        let odd = DestinationAnswer::SocksReply(0x42);
        assert_eq!(odd.to_string(), "SOCKS5 reply 0x42 (unassigned)");
    }
}
