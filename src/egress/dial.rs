//! Direct egress: name resolution and TCP connect under
//! `server.connect_timeout`, with failures classified so that the wire
//! mapping can decide from data. [`connect_tcp`] (no deadline of its own)
//! is also how [`crate::egress::upstream`] reaches an upstream proxy.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use std::sync::Arc;

use super::deny::Deny;
use crate::egress::target::{Host, Target};

/// Opens TCP connections to destinations, going direct.
#[derive(Debug, Clone)]
pub struct Dialer {
    connect_timeout: Duration,
    deny: Arc<Deny>,
}

impl Dialer {
    /// A dialer whose resolution plus connect is bounded by
    /// `connect_timeout`, refusing what `deny` refuses.
    pub fn new(connect_timeout: Duration, deny: Arc<Deny>) -> Self {
        Dialer {
            connect_timeout,
            deny,
        }
    }

    /// Resolves `target` (names through the system resolver) and connects to
    /// the first address that answers, all within the connect timeout. A
    /// resolved address that is denied is never dialled.
    pub async fn connect(&self, target: &Target) -> Result<TcpStream, DialError> {
        let attempt = async {
            let addrs = resolve(target).await?;
            for addr in &addrs {
                if let Err(denied) = self.deny.check_address(target, *addr) {
                    let err = io::Error::new(io::ErrorKind::PermissionDenied, denied.to_string());
                    return Err(DialError::new(target, DialErrorKind::Denied, Some(err)));
                }
            }
            connect_addrs(target, addrs).await
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(DialError::new(target, DialErrorKind::TimedOut, None)),
        }
    }
}

/// Resolves `target` and connects to the first address that answers, with
/// `TCP_NODELAY` set; the caller bounds it in time.
pub async fn connect_tcp(target: &Target) -> Result<TcpStream, DialError> {
    let addrs = resolve(target).await?;
    connect_addrs(target, addrs).await
}

async fn connect_addrs(target: &Target, addrs: Vec<SocketAddr>) -> Result<TcpStream, DialError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Small writes (request heads, TLS records) must not wait for
                // Nagle: latency matters more than packet count here.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last = Some(err),
        }
    }
    let err = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
    Err(DialError::new(target, classify_io(&err), Some(err)))
}

async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, DialError> {
    match &target.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, target.port)]),
        Host::Name(name) => {
            let found = tokio::net::lookup_host((name.as_str(), target.port)).await;
            match found {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        Err(DialError::new(target, DialErrorKind::Resolve, None))
                    } else {
                        Ok(addrs)
                    }
                }
                Err(err) => Err(DialError::new(target, DialErrorKind::Resolve, Some(err))),
            }
        }
    }
}

fn classify_io(err: &io::Error) -> DialErrorKind {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => DialErrorKind::Refused,
        io::ErrorKind::TimedOut => DialErrorKind::TimedOut,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            DialErrorKind::Unreachable
        }
        _ => DialErrorKind::Other,
    }
}

/// Why a destination could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialErrorKind {
    /// The name did not resolve.
    Resolve,
    /// The destination actively refused the connection.
    Refused,
    /// No route to the destination.
    Unreachable,
    /// Resolution plus connect took longer than `connect_timeout`.
    TimedOut,
    /// Any other socket error.
    Other,
    /// A destination pacer never dials (it resolved into a denied range,
    /// or to pacer itself).
    Denied,
}

/// A failed attempt to reach a destination.
#[derive(Debug)]
pub struct DialError {
    /// `host:port` that was being dialed.
    pub target: String,
    /// What went wrong, for the wire mapping.
    pub kind: DialErrorKind,
    source: Option<io::Error>,
}

impl DialError {
    fn new(target: &Target, kind: DialErrorKind, source: Option<io::Error>) -> Self {
        DialError {
            target: target.to_string(),
            kind,
            source,
        }
    }
}

impl DialError {
    /// A connector was handed a URI it cannot dial.
    pub fn bad_uri(uri: &http::Uri) -> Self {
        DialError {
            target: uri.to_string(),
            kind: DialErrorKind::Other,
            source: None,
        }
    }

    /// A copy carrying the target and kind (the io source is not `Clone`;
    /// its text is kept).
    pub fn clone_for_wire(&self) -> Self {
        DialError {
            target: self.target.clone(),
            kind: self.kind,
            source: self
                .source
                .as_ref()
                .map(|e| std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[cfg(test)]
impl DialError {
    pub(crate) fn for_test(kind: DialErrorKind) -> Self {
        DialError::new(&Target::new("example.test", 80), kind, None)
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DialErrorKind::Resolve => "could not resolve",
            DialErrorKind::Refused => "connection refused by",
            DialErrorKind::Unreachable => "no route to",
            DialErrorKind::TimedOut => "timed out connecting to",
            DialErrorKind::Other => "could not connect to",
            DialErrorKind::Denied => "refused to dial",
        };
        write!(f, "{what} {}", self.target)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
