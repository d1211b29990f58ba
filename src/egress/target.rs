//! Where a request or tunnel is going: host (name or address) and port,
//! parsed from an absolute `http://` or `https://` URI, a CONNECT
//! authority or a SOCKS5 address.

use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;

use http::uri::{Authority, Scheme, Uri};

/// A destination name that is not a host name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a host name or an IP address with a port")]
pub struct BadName {
    /// The name as asked, escaped and cut for the envelope.
    pub shown: String,
}

/// Why a request line names no usable target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not of the form the request needs.
    #[error("malformed request target")]
    Malformed,
    /// A name pacer will not dial.
    #[error(transparent)]
    BadName(#[from] BadName),
}

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

    /// A destination a client asked for (SPEC section 5): an IP literal, or
    /// a host name of letters, digits, `-`, `_` and `.` (other scripts
    /// through IDNA), at most 253 bytes, with a non-zero port.
    pub fn destination(host: &str, port: u16) -> Result<Self, BadName> {
        let bad = || BadName {
            shown: host.escape_debug().take(80).collect(),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return (port != 0)
                .then_some(Target {
                    host: Host::Ip(ip),
                    port,
                })
                .ok_or_else(bad);
        }
        let ascii = if bare.is_ascii() {
            bare.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii(bare).map_err(|_| bad())?
        };
        // One trailing dot is the DNS root (`example.com.`); more are no name.
        let name = ascii.strip_suffix('.').unwrap_or(&ascii);
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        let well_formed = !name.is_empty()
            && ascii.len() <= 253
            && name.chars().all(allowed)
            && name.split('.').all(|label| !label.is_empty());
        if !well_formed || port == 0 {
            return Err(bad());
        }
        Ok(Target {
            host: Host::Name(ascii),
            port,
        })
    }

    /// The target of a CONNECT request: authority-form `host:port`, port required.
    pub fn from_connect(uri: &Uri) -> Result<Self, TargetError> {
        let authority = uri.authority().ok_or(TargetError::Malformed)?;
        if uri.scheme().is_some() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(TargetError::Malformed);
        }
        Self::from_authority(authority, None)
    }

    /// The target of an absolute-form `http://` (port 80 by default) or
    /// `https://` (port 443) URI.
    pub fn from_absolute(uri: &Uri) -> Result<Self, TargetError> {
        let default_port = match uri.scheme().ok_or(TargetError::Malformed)? {
            scheme if *scheme == Scheme::HTTP => 80,
            scheme if *scheme == Scheme::HTTPS => 443,
            _ => return Err(TargetError::Malformed),
        };
        let authority = uri.authority().ok_or(TargetError::Malformed)?;
        Self::from_authority(authority, Some(default_port))
    }

    fn from_authority(
        authority: &Authority,
        default_port: Option<u16>,
    ) -> Result<Self, TargetError> {
        let host = authority.host();
        if host.is_empty() || authority.as_str().contains('@') {
            return Err(TargetError::Malformed);
        }
        let port = authority
            .port_u16()
            .or(default_port)
            .ok_or(TargetError::Malformed)?;
        Self::destination(host, port).map_err(TargetError::BadName)
    }

    /// The host as text, without brackets: what action rules match against.
    pub fn host_str(&self) -> HostText<'_> {
        match &self.host {
            Host::Name(name) => HostText::Name(name),
            Host::Ip(ip) => HostText::Ip(IpText::of(ip)),
        }
    }
}

/// A host as text: a name borrowed, an address written out in place (no
/// allocation on the request path).
#[derive(Debug, Clone, Copy)]
pub enum HostText<'a> {
    /// A DNS name.
    Name(&'a str),
    /// An IP address.
    Ip(IpText),
}

impl Deref for HostText<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            HostText::Name(name) => name,
            HostText::Ip(ip) => ip.as_str(),
        }
    }
}

/// An IP address's text, in a buffer of its own.
#[derive(Debug, Clone, Copy)]
pub struct IpText {
    bytes: [u8; IP_TEXT_BYTES],
    len: usize,
}

/// Room for the longest text of an IP address (39 bytes as Rust writes
/// IPv6; 45 with a dotted IPv4 tail).
const IP_TEXT_BYTES: usize = 45;

impl IpText {
    fn of(ip: &IpAddr) -> Self {
        use fmt::Write as _;
        let mut text = IpText {
            bytes: [0; IP_TEXT_BYTES],
            len: 0,
        };
        // Every address fits; a failed write would leave the text short.
        let _ = write!(text, "{ip}");
        text
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
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
        assert!(Target::from_connect(&uri("example.com")).is_err());
        assert!(Target::from_connect(&uri("http://example.com:80/")).is_err());
    }

    #[test]
    fn absolute_targets() {
        let t = Target::from_absolute(&uri("http://127.0.0.1/x?y")).expect("target");
        assert_eq!(t.to_string(), "127.0.0.1:80");
        let t = Target::from_absolute(&uri("https://Example.com/")).expect("target");
        assert_eq!(t.to_string(), "example.com:443");
        assert!(Target::from_absolute(&uri("/relative")).is_err());
        assert!(Target::from_absolute(&uri("ftp://example.com/")).is_err());
        assert!(Target::from_absolute(&uri("http://u:p@example.com/")).is_err());
    }

    #[test]
    fn destination_names_follow_spec_section_5() {
        let ok = |h: &str| Target::destination(h, 443).map(|t| t.host_str().to_string());
        assert_eq!(ok("Api.Example.COM."), Ok("api.example.com.".to_owned()));
        assert_eq!(
            ok("under_score-1.example"),
            Ok("under_score-1.example".to_owned())
        );
        assert_eq!(ok("bücher.example"), Ok("xn--bcher-kva.example".to_owned()));
        assert_eq!(ok("[::1]"), Ok("::1".to_owned()));
        for long in [
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
        ] {
            assert_eq!(ok(&format!("[{long}]")), Ok(long.to_owned()));
        }
        assert_eq!(ok("10.0.0.1"), Ok("10.0.0.1".to_owned()));
        let long = format!("{}.example", "a".repeat(250));
        for bad in [
            "",
            "a b.example",
            "evil\u{1}.example",
            "a@b",
            "a/b",
            "a..b",
            "example.com..",
            ".",
            "x!y",
            &long,
        ] {
            assert!(Target::destination(bad, 443).is_err(), "{bad:?}");
        }
        assert!(
            Target::destination("example.com", 0).is_err(),
            "a port is needed"
        );
    }
}
