//! The SOCKS5 listener (RFC 1928) on fast-socks5: username/password
//! authentication (RFC 1929) against the accounts, or no authentication on
//! a bound listener; CONNECT to IPv4, IPv6 and domain targets (domains are
//! resolved by pacer going direct, by the upstream otherwise); every other
//! command is answered 0x07. A connection that sent anything is one
//! request closed out once, whichever way it ends: bad credentials, an
//! unsupported command, a handshake that breaks off or times out, a
//! refused CONNECT, or a tunnel.
//!
//! fast-socks5 rejects bad credentials with status 0xFF, where SPEC section
//! 3 asks for 0x01, so the RFC 1929 sub-negotiation is our own
//! [`AuthMethod`], plugged into fast-socks5's negotiation. The CONNECT
//! request and its reply are ours too, so that the client's socket stays
//! at hand while the tunnel is admitted and dialled: a client that hangs
//! up meanwhile (a paced CONNECT) leaves the pacing queue at once and is
//! neither dialled nor charged.

use std::net::SocketAddr;
use std::sync::Arc;

use fast_socks5::server::{
    AuthMethod, AuthMethodSuccessState, NoAuthentication, Socks5ServerProtocol,
};
use fast_socks5::util::target_addr::{read_address, TargetAddr};
use fast_socks5::ReplyError;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::limit::Admission;
use crate::egress::target::Target;
use crate::pipeline::close::CloseOut;
use crate::pipeline::{authenticate, bound_account, tunnel, Engine};
use crate::policy::auth::{Credentials, Field};
use crate::state::accounts::Account;
use crate::telemetry::context::ListenerKind;
use crate::wire::error::ProxyError;

/// The client socket, read through a small buffer: the handshake's many
/// short fields then cost one read each message, not one per field. Tunnel
/// reads are larger than the buffer, so they bypass it.
type ClientStream = BufReader<TcpStream>;

/// Bytes of the client's handshake buffered at once (a whole greeting,
/// credentials or CONNECT request fits).
const HANDSHAKE_BUFFER: usize = 600;

/// Serves one SOCKS5 client: handshake within `header_read_timeout`, then
/// one CONNECT tunnel.
pub async fn serve_connection(
    engine: Arc<Engine>,
    stream: TcpStream,
    peer: SocketAddr,
    bound: Option<Arc<str>>,
    admission: Admission,
) {
    let mut reader = BufReader::with_capacity(HANDSHAKE_BUFFER, stream);
    let timeout = engine.settings.header_read_timeout;
    // A client that leaves without a byte (a port probe) is no request.
    match tokio::time::timeout(timeout, reader.fill_buf()).await {
        Ok(Ok(greeting)) if !greeting.is_empty() => {}
        _ => return,
    }
    let mut close = CloseOut::new(engine.clone(), engine.context(ListenerKind::Socks5, peer));
    close.ctx.method = Some(http::Method::CONNECT);
    // Boxed, as is the tunnel's opening below: the task keeps only the
    // relay's state for the tunnel's life, not these larger futures.
    let handshake = Box::pin(handshake(&mut close, reader, bound.as_deref()));
    let (mut client, account, target) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(broken)) => return close.failed(&broken.error, broken.status),
        Err(_) => return close.failed(&ProxyError::ClientTimeout(timeout), 0),
    };
    if matches!(admission, Admission::Refused(_)) {
        close.ctx.target = Some(target);
        let err = ProxyError::Unavailable("pacer is at its connection limit");
        return refuse(client, close, &err).await;
    }
    let opening = Box::pin(tunnel::open(&engine, &mut close, &account, &target));
    let opened = tokio::select! {
        opened = opening => Some(opened),
        () = hung_up(&client) => None,
    };
    match opened {
        Some(Ok(opened)) => {
            let bound_addr = opened
                .local_addr()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            close.ctx.succeeded(0);
            if reply(&mut client, ReplyError::Succeeded, bound_addr)
                .await
                .is_err()
            {
                return;
            }
            tunnel::relay(close, client, account, opened).await;
            drop(admission);
        }
        Some(Err(err)) => refuse(client, close, &err).await,
        // Gone while waiting or dialling: nothing reached the destination.
        None => close.give_back(),
    }
}

/// Resolves when the client hangs up (or resets) while its CONNECT is
/// being served; never, once it sent more bytes (they wait for the
/// tunnel).
async fn hung_up(client: &ClientStream) {
    if !client.buffer().is_empty() {
        return std::future::pending().await;
    }
    let mut probe = [0u8; 1];
    match client.get_ref().peek(&mut probe).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Writes the reply to a CONNECT (RFC 1928 section 6).
async fn reply(
    client: &mut ClientStream,
    code: ReplyError,
    bound: SocketAddr,
) -> std::io::Result<()> {
    let mut message = Vec::with_capacity(22);
    message.extend_from_slice(&[SOCKS5_VERSION, code.as_u8(), 0]);
    match bound {
        SocketAddr::V4(v4) => {
            message.push(ADDR_IPV4);
            message.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            message.push(ADDR_IPV6);
            message.extend_from_slice(&v6.ip().octets());
        }
    }
    message.extend_from_slice(&bound.port().to_be_bytes());
    client.write_all(&message).await?;
    client.flush().await
}

const SOCKS5_VERSION: u8 = 0x05;
const CMD_CONNECT: u8 = 0x01;
const ADDR_IPV4: u8 = 0x01;
const ADDR_IPV6: u8 = 0x04;

/// The reply to a CONNECT that is not served.
async fn reply_error(client: &mut ClientStream, code: ReplyError) {
    let _ = reply(client, code, SocketAddr::from(([0, 0, 0, 0], 0))).await;
}

/// A handshake that ended without a CONNECT to serve: the error it is
/// closed out with, and the status (RFC 1929 or SOCKS5 reply code; 0 when
/// nothing was answered).
struct Broken {
    error: ProxyError,
    status: u16,
}

impl Broken {
    fn off() -> Self {
        Broken {
            error: ProxyError::MalformedRequest("SOCKS5 handshake broken off"),
            status: 0,
        }
    }
}

/// Greeting, authentication and command.
async fn handshake(
    close: &mut CloseOut,
    reader: ClientStream,
    bound: Option<&str>,
) -> Result<(ClientStream, Arc<Account>, Target), Broken> {
    let start = Socks5ServerProtocol::start(reader);
    let (mut client, account) = match bound {
        Some(id) => {
            let proto = start
                .negotiate_auth(&[NoAuthentication])
                .await
                .map_err(|_| Broken::off())?;
            let account = bound_account(&mut close.ctx, id).map_err(|err| Broken {
                error: err.into(),
                status: 0,
            })?;
            (proto.into_inner(), account)
        }
        None => {
            let pending = start
                .negotiate_auth(&[Rfc1929])
                .await
                .map_err(|_| Broken::off())?;
            rfc1929(close, pending).await?
        }
    };
    let target = read_connect(&mut client).await?;
    close.ctx.target = Some(target.clone());
    Ok((client, account, target))
}

/// The CONNECT request (RFC 1928 section 4); any other command is
/// answered 0x07.
async fn read_connect(client: &mut ClientStream) -> Result<Target, Broken> {
    let mut head = [0u8; 4];
    client
        .read_exact(&mut head)
        .await
        .map_err(|_| Broken::off())?;
    let [version, command, _reserved, address_type] = head;
    if version != SOCKS5_VERSION {
        return Err(Broken::off());
    }
    let address = match read_address(client, address_type).await {
        Ok(address) => address,
        Err(err) => {
            let code = err.to_reply_error();
            reply_error(client, code).await;
            return Err(Broken {
                error: ProxyError::MalformedRequest("unreadable SOCKS5 destination"),
                status: code.as_u8().into(),
            });
        }
    };
    if command != CMD_CONNECT {
        reply_error(client, ReplyError::CommandNotSupported).await;
        return Err(Broken {
            error: ProxyError::MalformedRequest("only the SOCKS5 CONNECT command is served"),
            status: ReplyError::CommandNotSupported.as_u8().into(),
        });
    }
    let target = match address {
        TargetAddr::Ip(addr) => Target::destination(&addr.ip().to_string(), addr.port()),
        TargetAddr::Domain(name, port) => Target::destination(&name, port),
    };
    match target {
        Ok(target) => Ok(target),
        Err(name) => {
            reply_error(client, ReplyError::GeneralFailure).await;
            Err(Broken {
                error: ProxyError::BadDestination(name),
                status: ReplyError::GeneralFailure.as_u8().into(),
            })
        }
    }
}

/// Answers the CONNECT with the error's reply code, closing it out.
async fn refuse(mut client: ClientStream, mut close: CloseOut, err: &ProxyError) {
    let code = err.socks_reply();
    close.failed(err, code.as_u8().into());
    tracing::debug!(id = %close.ctx.id, %err, "socks5 connect refused");
    drop(close);
    reply_error(&mut client, code).await;
}

/// RFC 1929 username/password, method 0x02.
#[derive(Debug, Clone, Copy)]
struct Rfc1929;

/// The socket between method selection and the credentials.
struct Rfc1929Pending(ClientStream);

impl AuthMethod<ClientStream> for Rfc1929 {
    type StartingState = Rfc1929Pending;

    fn method_id(self) -> u8 {
        0x02
    }

    fn new(self, inner: ClientStream) -> Rfc1929Pending {
        Rfc1929Pending(inner)
    }
}

const RFC1929_VERSION: u8 = 0x01;
const AUTH_SUCCEEDED: u8 = 0x00;
const AUTH_FAILED: u8 = 0x01;

/// Reads the credentials and answers 0x00 (the account) or 0x01 (then the
/// connection closes).
async fn rfc1929(
    close: &mut CloseOut,
    pending: Rfc1929Pending,
) -> Result<(ClientStream, Arc<Account>), Broken> {
    let mut stream = pending.0;
    let credentials = read_credentials(&mut stream)
        .await
        .ok_or_else(Broken::off)?;
    let engine = close.engine().clone();
    let account = match authenticate(&engine, &mut close.ctx, &credentials).await {
        Ok(account) => account,
        Err(err) => {
            let _ = stream.write_all(&[RFC1929_VERSION, AUTH_FAILED]).await;
            let _ = stream.shutdown().await;
            return Err(Broken {
                error: err.into(),
                status: AUTH_FAILED.into(),
            });
        }
    };
    stream
        .write_all(&[RFC1929_VERSION, AUTH_SUCCEEDED])
        .await
        .map_err(|_| Broken::off())?;
    Ok((stream, account))
}

async fn read_credentials(stream: &mut ClientStream) -> Option<Credentials> {
    let version = stream.read_u8().await.ok()?;
    if version != RFC1929_VERSION {
        return None;
    }
    let id = read_short_field(stream).await?;
    let secret = read_short_field(stream).await?;
    Some(Credentials { id, secret })
}

/// A length-prefixed field of at most 255 bytes.
async fn read_short_field(stream: &mut ClientStream) -> Option<Field> {
    let len = stream.read_u8().await.ok()?;
    let mut field = Field::from_elem(0, len.into());
    stream.read_exact(&mut field).await.ok()?;
    Some(field)
}
