//! Where a request or tunnel is going: host (name or address) and port,
//! parsed from an absolute `http://` or `https://` URI, a CONNECT
//! authority or a SOCKS5 address.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use http::uri::{Authority, Scheme, Uri};

/// A destination host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lower-cased, resolved by pacer when dialing.
    Name(String),
    /// A literal address.
    Ip(IpAddr),
}

/// A destination: host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host to reach.
    pub host: Host,
    /// The TCP port.
    pub port: u16,
}

impl Target {
    /// A target from a host string (name, IPv4, or IPv6 with or without
    /// brackets) and a port.
    pub fn new(host: &str, port: u16) -> Self {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(bare.to_ascii_lowercase()),
        };
        Target { host, port }
    }

    /// The target of a CONNECT request: authority-form `host:port`, port required.
    pub fn from_connect(uri: &Uri) -> Option<Self> {
        let authority = uri.authority()?;
        if uri.scheme().is_some() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return None;
        }
        Self::from_authority(authority, None)
    }

    /// The target of an absolute-form `http://` (port 80 by default) or
    /// `https://` (port 443) URI.
    pub fn from_absolute(uri: &Uri) -> Option<Self> {
        let default_port = match uri.scheme()? {
            scheme if *scheme == Scheme::HTTP => 80,
            scheme if *scheme == Scheme::HTTPS => 443,
            _ => return None,
        };
        Self::from_authority(uri.authority()?, Some(default_port))
    }

    fn from_authority(authority: &Authority, default_port: Option<u16>) -> Option<Self> {
        let host = authority.host();
        if host.is_empty() || authority.as_str().contains('@') {
            return None;
        }
        let port = authority.port_u16().or(default_port)?;
        Some(Self::new(host, port))
    }

    /// The host as text, without brackets: what action rules match against.
    pub fn host_str(&self) -> Cow<'_, str> {
        match &self.host {
            Host::Name(name) => Cow::Borrowed(name),
            Host::Ip(ip) => Cow::Owned(ip.to_string()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(name) => write!(f, "{name}:{}", self.port),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().expect("test uri")
    }

    #[test]
    fn connect_targets() {
        let t = Target::from_connect(&uri("Example.COM:443")).expect("target");
        assert_eq!(t, Target::new("example.com", 443));
        let t = Target::from_connect(&uri("[::1]:8443")).expect("target");
        assert_eq!(t.host, Host::Ip("::1".parse().expect("ip")));
        assert_eq!(t.to_string(), "[::1]:8443");
        assert!(Target::from_connect(&uri("example.com")).is_none());
        assert!(Target::from_connect(&uri("http://example.com:80/")).is_none());
    }

    #[test]
    fn absolute_targets() {
        let t = Target::from_absolute(&uri("http://127.0.0.1/x?y")).expect("target");
        assert_eq!(t.to_string(), "127.0.0.1:80");
        let t = Target::from_absolute(&uri("https://Example.com/")).expect("target");
        assert_eq!(t.to_string(), "example.com:443");
        assert!(Target::from_absolute(&uri("/relative")).is_none());
        assert!(Target::from_absolute(&uri("ftp://example.com/")).is_none());
        assert!(Target::from_absolute(&uri("http://u:p@example.com/")).is_none());
    }
}
