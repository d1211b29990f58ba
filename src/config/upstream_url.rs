//! Upstream proxy addresses: `scheme://[user[:password]@]host[:port]` with
//! scheme `http`, `https` or `socks5`, and `host:port` targets.
//!
//! Split from `types.rs` to keep both files small. The userinfo is
//! percent-decoded; the password is a [`Secret`], so `Debug` and `Display`
//! print it as `***`. Hosts are stored without IPv6 brackets (ready for
//! `TcpStream::connect((host, port))`); [`UpstreamUrl::authority`] puts them
//! back.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::types::Secret;

/// Protocol spoken to an upstream proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamScheme {
    /// Plain HTTP proxy (CONNECT, or absolute-form for plain HTTP).
    Http,
    /// HTTP proxy reached over TLS.
    Https,
    /// SOCKS5 proxy.
    Socks5,
}

impl UpstreamScheme {
    /// Port used when the URL names none: 80, 443, 1080.
    pub fn default_port(self) -> u16 {
        match self {
            UpstreamScheme::Http => 80,
            UpstreamScheme::Https => 443,
            UpstreamScheme::Socks5 => 1080,
        }
    }

    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamScheme::Http => "http",
            UpstreamScheme::Https => "https",
            UpstreamScheme::Socks5 => "socks5",
        }
    }
}

impl FromStr for UpstreamScheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(UpstreamScheme::Http),
            "https" => Ok(UpstreamScheme::Https),
            "socks5" => Ok(UpstreamScheme::Socks5),
            _ => Err(format!(
                "unsupported upstream scheme `{s}` (expected http, https or socks5)"
            )),
        }
    }
}

/// An upstream proxy with optional credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub scheme: UpstreamScheme,
    /// Host name or IP address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Percent-decoded user name.
    pub username: Option<String>,
    /// Percent-decoded password.
    pub password: Option<Secret>,
}

impl UpstreamUrl {
    /// `host:port`, with brackets around an IPv6 host.
    pub fn authority(&self) -> String {
        format_authority(&self.host, self.port)
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or("upstream URL needs a scheme: http://, https:// or socks5://")?;
        let scheme: UpstreamScheme = scheme.parse()?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(format!(
                "upstream `{}` must not have a path, query or fragment",
                Masked(s)
            ));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, password) = userinfo
            .map(parse_userinfo)
            .transpose()?
            .unwrap_or((None, None));
        let (host, port) = parse_host_port(hostport, Some(scheme.default_port()))?;
        Ok(UpstreamUrl {
            scheme,
            host,
            port,
            username,
            password,
        })
    }
}

/// Characters escaped when a user name is printed back into a URL.
const USERINFO: &AsciiSet = &CONTROLS.add(b' ').add(b':').add(b'@').add(b'/').add(b'%');

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if let Some(user) = &self.username {
            write!(f, "{}", utf8_percent_encode(user, USERINFO))?;
            if let Some(password) = &self.password {
                write!(f, ":{password}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.authority())
    }
}

fn parse_userinfo(userinfo: &str) -> Result<(Option<String>, Option<Secret>), String> {
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let user = decode(user, "user name")?;
    let password = password
        .map(|p| decode(p, "password").map(Secret::new))
        .transpose()?;
    Ok((Some(user), password))
}

fn decode(text: &str, what: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("upstream {what} is not valid UTF-8 once percent-decoded"))
}

/// Parses `host:port`, `[v6]:port`, or (with a default port) `host` and
/// `[v6]`. Returns the host without brackets.
pub fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = split_host_port(s)?;
    let port = match (port, default_port) {
        (Some(p), _) => parse_port(p, s)?,
        (None, Some(p)) => p,
        (None, None) => return Err(format!("`{s}` needs a port, e.g. `{s}:443`")),
    };
    check_host(host, s)?;
    Ok((host.to_string(), port))
}

fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{s}`: missing `]` after an IPv6 address"))?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("`{s}`: `{host}` is not an IPv6 address"))?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| format!("`{s}`: expected `:PORT` after `]`")),
        };
    }
    match s.split_once(':') {
        Some((_, p)) if p.contains(':') => Err(format!(
            "`{s}`: IPv6 addresses must be in brackets, e.g. `[::1]:1080`"
        )),
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((s, None)),
    }
}

fn parse_port(p: &str, whole: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{whole}`: port must be a number from 1 to 65535")),
        Ok(port) => Ok(port),
    }
}

fn check_host(host: &str, whole: &str) -> Result<(), String> {
    if host.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.is_empty() || host.len() > 253 || !host.chars().all(valid_char) {
        return Err(format!(
            "`{whole}`: `{host}` is not a valid host name or address"
        ));
    }
    Ok(())
}

/// `host:port` with brackets around an IPv6 host.
pub fn format_authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Prints a raw URL with the password part of its userinfo masked, for
/// error messages about a URL that failed to parse.
struct Masked<'a>(&'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str(self.0);
        };
        match rest
            .split_once('@')
            .and_then(|(ui, tail)| ui.split_once(':').map(|(u, _)| (u, tail)))
        {
            Some((user, tail)) => write!(f, "{scheme}://{user}:***@{tail}"),
            None => f.write_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> UpstreamUrl {
        s.parse().unwrap()
    }

    #[test]
    fn parses_schemes_and_default_ports() {
        let u = url("http://127.0.0.1");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (UpstreamScheme::Http, "127.0.0.1", 80)
        );
        assert_eq!(url("https://proxy.example.com/").port, 443);
        assert_eq!(url("socks5://proxy.example.com").port, 1080);
        assert_eq!(url("SOCKS5://h:1090").scheme, UpstreamScheme::Socks5);
        assert_eq!(url("socks5://h:1090").port, 1090);
    }

    #[test]
    fn parses_and_decodes_credentials() {
        let u = url("socks5://us%40er:p%3Ass%40w@127.0.0.1:1090");
        assert_eq!(u.username.as_deref(), Some("us@er"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p:ss@w"));
        let u = url("http://onlyuser@h:3128");
        assert_eq!(u.username.as_deref(), Some("onlyuser"));
        assert!(u.password.is_none());
    }

    #[test]
    fn masks_password_in_display_and_debug() {
        let u = url("http://user:pa55@127.0.0.1:3128");
        assert_eq!(u.to_string(), "http://user:***@127.0.0.1:3128");
        let debug = format!("{u:?}");
        assert!(!debug.contains("pa55"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
        assert_eq!(url("http://h").to_string(), "http://h:80");
        assert_eq!(
            url("http://a%40b:x@h:1").to_string(),
            "http://a%40b:***@h:1"
        );
    }

    #[test]
    fn ipv6_hosts() {
        let u = url("socks5://u:p@[::1]:1090");
        assert_eq!((u.host.as_str(), u.port), ("::1", 1090));
        assert_eq!(u.authority(), "[::1]:1090");
        assert_eq!(u.to_string(), "socks5://u:***@[::1]:1090");
        assert_eq!(url("http://[2001:db8::1]").port, 80);
    }

    #[test]
    fn rejects_bad_urls() {
        let cases = [
            ("127.0.0.1:3128", "needs a scheme"),
            ("ftp://h:21", "unsupported upstream scheme"),
            ("http://h:0", "port must be"),
            ("http://h:99999", "port must be"),
            ("http://h:x", "port must be"),
            ("http://h/path", "must not have a path"),
            ("http://h?q", "must not have a path"),
            ("http://::1:80", "must be in brackets"),
            ("http://[::1", "missing `]`"),
            ("http://[zz]:1", "not an IPv6 address"),
            ("http://", "not a valid host"),
            ("http://u:p@", "not a valid host"),
            ("http://bad host:1", "not a valid host"),
            ("http://u:%FF@h", "not valid UTF-8"),
        ];
        for (text, want) in cases {
            let err = text.parse::<UpstreamUrl>().unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn error_messages_never_show_the_password() {
        let err = "http://u:topsecret@h/x".parse::<UpstreamUrl>().unwrap_err();
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[test]
    fn host_port_targets() {
        assert_eq!(
            parse_host_port("example.com:443", None),
            Ok(("example.com".into(), 443))
        );
        assert_eq!(
            parse_host_port("[::1]:8443", None),
            Ok(("::1".into(), 8443))
        );
        assert!(parse_host_port("example.com", None)
            .unwrap_err()
            .contains("needs a port"));
    }
}
