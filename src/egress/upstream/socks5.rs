//! SOCKS5 proxies (RFC 1928), with RFC 1929 username/password.
//!
//! The greeting and the credentials go through fast-socks5's client
//! ([`Socks5Stream::use_stream`]) over a TCP connection pacer opened itself
//! with tokio, so its blocking resolver is never used. The CONNECT request
//! and its reply are written and read here: fast-socks5 maps reply codes
//! with an `unreachable!()` for codes above 0x08, so a misbehaving upstream
//! could panic the task, and the wire mapping needs the raw code anyway.
//! hyper-util's `SocksV5` was not used for the same reason: its errors do
//! not expose the reply code. Domain targets are sent unresolved (address
//! type 0x03): the upstream resolves them.

use std::sync::Arc;

use fast_socks5::client::{Config, Socks5Stream};
use fast_socks5::{AuthenticationMethod, SocksError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::{DestinationAnswer, UpstreamError, UpstreamErrorKind};
use crate::config::UpstreamUrl;
use crate::egress::target::{Host, Target};

const VERSION: u8 = 0x05;
const CMD_CONNECT: u8 = 0x01;
const ATYP_V4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_V6: u8 = 0x04;
const SUCCEEDED: u8 = 0x00;

/// Authenticates with the proxy on `stream` and asks it to connect to
/// `target`; returns the stream, ready to carry the tunnel.
pub async fn connect<S>(
    stream: S,
    target: &Target,
    url: &UpstreamUrl,
    upstream: &Arc<str>,
) -> Result<S, UpstreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = connect_request(target, upstream)?;
    let mut stream = authenticate(stream, url, upstream).await?;
    stream.write_all(&request).await.map_err(|err| {
        UpstreamError::broken(upstream, format!("SOCKS5 CONNECT not sent: {err}"))
    })?;
    let reply = read_reply(&mut stream, upstream).await?;
    if reply != SUCCEEDED {
        return Err(UpstreamError::new(
            upstream,
            UpstreamErrorKind::Destination {
                target: target.to_string(),
                answer: DestinationAnswer::SocksReply(reply),
            },
        ));
    }
    Ok(stream)
}

/// Greeting and (when the URL has a user) RFC 1929 credentials.
async fn authenticate<S>(
    stream: S,
    url: &UpstreamUrl,
    upstream: &Arc<str>,
) -> Result<S, UpstreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let method = url
        .username
        .as_ref()
        .map(|user| AuthenticationMethod::Password {
            username: user.clone(),
            password: url
                .password
                .as_ref()
                .map_or_else(String::new, |p| p.expose().to_owned()),
        });
    match Socks5Stream::use_stream(stream, method, Config::default()).await {
        Ok(socks) => Ok(socks.get_socket()),
        Err(err) => Err(auth_error(err, upstream)),
    }
}

/// Classifies a fast-socks5 handshake error. Its messages are not reused:
/// one of them names the user.
fn auth_error(err: SocksError, upstream: &Arc<str>) -> UpstreamError {
    let kind = match err {
        SocksError::AuthenticationRejected(_) => {
            UpstreamErrorKind::CredentialsRejected("SOCKS5 authentication status not 0".into())
        }
        SocksError::AuthMethodUnacceptable(_) => {
            UpstreamErrorKind::CredentialsRejected("SOCKS5 accepted no offered method".into())
        }
        SocksError::UnsupportedSocksVersion(v) => {
            UpstreamErrorKind::Broken(format!("answered with SOCKS version {v}, not 5"))
        }
        SocksError::Io(err) => UpstreamErrorKind::Broken(format!("SOCKS5 handshake failed: {err}")),
        other => {
            UpstreamErrorKind::Broken(format!("SOCKS5 handshake failed: {}", root_cause(&other)))
        }
    };
    UpstreamError::new(upstream, kind)
}

/// The innermost message of an error chain (fast-socks5 wraps io errors in
/// context strings).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// `VER CMD RSV ATYP DST.ADDR DST.PORT`, names unresolved.
fn connect_request(target: &Target, upstream: &Arc<str>) -> Result<Vec<u8>, UpstreamError> {
    let mut request = vec![VERSION, CMD_CONNECT, 0x00];
    match &target.host {
        Host::Ip(std::net::IpAddr::V4(ip)) => {
            request.push(ATYP_V4);
            request.extend_from_slice(&ip.octets());
        }
        Host::Ip(std::net::IpAddr::V6(ip)) => {
            request.push(ATYP_V6);
            request.extend_from_slice(&ip.octets());
        }
        Host::Name(name) => {
            let len = u8::try_from(name.len()).map_err(|_| {
                UpstreamError::new(
                    upstream,
                    UpstreamErrorKind::Destination {
                        target: target.to_string(),
                        answer: DestinationAnswer::NameTooLong,
                    },
                )
            })?;
            request.push(ATYP_DOMAIN);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&target.port.to_be_bytes());
    Ok(request)
}

/// Reads the whole reply (`VER REP RSV ATYP BND.ADDR BND.PORT`) and returns
/// its reply code, whatever its value.
async fn read_reply<S>(stream: &mut S, upstream: &Arc<str>) -> Result<u8, UpstreamError>
where
    S: AsyncRead + Unpin,
{
    let broken = |err: std::io::Error| {
        UpstreamError::broken(upstream, format!("SOCKS5 reply not read: {err}"))
    };
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.map_err(broken)?;
    let [version, reply, _reserved, atyp] = head;
    if version != VERSION {
        return Err(UpstreamError::broken(
            upstream,
            format!("SOCKS5 reply has version {version}"),
        ));
    }
    let address_len = match atyp {
        ATYP_V4 => 4,
        ATYP_V6 => 16,
        ATYP_DOMAIN => usize::from(stream.read_u8().await.map_err(broken)?),
        // A failure reply may carry no usable address: the code is enough.
        _ if reply != SUCCEEDED => return Ok(reply),
        _ => {
            return Err(UpstreamError::broken(
                upstream,
                format!("SOCKS5 reply has address type {atyp}"),
            ))
        }
    };
    let mut bound = vec![0u8; address_len + 2];
    stream.read_exact(&mut bound).await.map_err(broken)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> Arc<str> {
        Arc::from("socks:1080")
    }

    /// Runs the client against a scripted server; returns the result and
    /// every byte the client sent.
    async fn against(
        script: &'static [u8],
        user: bool,
        target: Target,
    ) -> (Result<(), UpstreamError>, Vec<u8>) {
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            theirs.write_all(script).await.expect("script");
            theirs.shutdown().await.expect("half-close");
            let mut got = Vec::new();
            let _ = theirs.read_to_end(&mut got).await;
            got
        });
        let url: UpstreamUrl = if user {
            "socks5://u:p@socks:1080".parse().expect("url")
        } else {
            "socks5://socks:1080".parse().expect("url")
        };
        let result = connect(ours, &target, &url, &label()).await.map(drop);
        (result, server.await.expect("server"))
    }

    #[tokio::test]
    async fn password_auth_then_a_domain_connect() {
        let script = b"\x05\x02\x01\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50";
        let (result, sent) = against(script, true, Target::new("example.com", 80)).await;
        result.expect("connected");
        let mut want = vec![5, 2, 0, 2, 1, 1, b'u', 1, b'p', 5, 1, 0, 3, 11];
        want.extend_from_slice(b"example.com");
        want.extend_from_slice(&[0, 80]);
        assert_eq!(sent, want);
    }

    #[tokio::test]
    async fn rejected_credentials() {
        let (result, _) = against(b"\x05\x02\x01\x01", true, Target::new("example.com", 80)).await;
        let err = result.expect_err("rejected");
        assert!(
            matches!(err.kind, UpstreamErrorKind::CredentialsRejected(_)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn every_reply_code_is_a_destination_answer_without_panicking() {
        for (script, code) in [
            (
                &b"\x05\x00\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"[..],
                0x05,
            ),
            (b"\x05\x00\x05\x09\x00\x01\x00\x00\x00\x00\x00\x00", 0x09),
            (b"\x05\x00\x05\xff\x00\xee", 0xff),
        ] {
            let (ours, mut theirs) = tokio::io::duplex(1024);
            tokio::spawn(async move {
                theirs.write_all(script).await.expect("script");
                let mut sink = Vec::new();
                let _ = theirs.read_to_end(&mut sink).await;
            });
            let url: UpstreamUrl = "socks5://socks:1080".parse().expect("url");
            let target = Target::new("10.0.0.1", 80);
            let err = connect(ours, &target, &url, &label())
                .await
                .expect_err("reply");
            assert!(!err.is_upstream_failure(), "{err}");
            match err.kind {
                UpstreamErrorKind::Destination { answer, .. } => {
                    assert_eq!(answer, DestinationAnswer::SocksReply(code))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_proxy_that_hangs_up_is_broken() {
        let (result, _) = against(b"\x05", false, Target::new("example.com", 80)).await;
        assert!(result.expect_err("cut").is_upstream_failure());
    }
}
