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
//! [`AuthMethod`], plugged into fast-socks5's negotiation.
//!
//! The client is any byte stream ([`ClientSocket`]): a TCP socket on the
//! listener, an in-memory stream in the fuzz targets (`fuzz/`).

use std::net::SocketAddr;
use std::sync::Arc;

use fast_socks5::server::{
    states, AuthMethod, AuthMethodSuccessState, NoAuthentication, Socks5ServerProtocol,
};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::limit::Admission;
use crate::egress::target::Target;
use crate::pipeline::close::CloseOut;
use crate::pipeline::{authenticate, bound_account, tunnel, Engine};
use crate::policy::auth::Credentials;
use crate::state::accounts::Account;
use crate::telemetry::context::ListenerKind;
use crate::wire::error::ProxyError;

/// What a SOCKS5 client can be served on.
pub trait ClientSocket: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientSocket for S {}

/// The client socket, read through a small buffer: the handshake's many
/// short fields then cost one read each message, not one per field. Tunnel
/// reads are larger than the buffer, so they bypass it.
type ClientStream<S> = BufReader<S>;
type Authenticated<S> = Socks5ServerProtocol<ClientStream<S>, states::Authenticated>;
type CommandRead<S> = Socks5ServerProtocol<ClientStream<S>, states::CommandRead>;

/// Bytes of the client's handshake buffered at once (a whole greeting,
/// credentials or CONNECT request fits).
const HANDSHAKE_BUFFER: usize = 600;

/// Serves one SOCKS5 client: handshake within `header_read_timeout`, then
/// one CONNECT tunnel.
pub async fn serve_connection<S: ClientSocket>(
    engine: Arc<Engine>,
    stream: S,
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
    let (proto, account, target) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(broken)) => return close.failed(&broken.error, broken.status),
        Err(_) => return close.failed(&ProxyError::ClientTimeout(timeout), 0),
    };
    if matches!(admission, Admission::Refused(_)) {
        close.ctx.target = Some(target);
        let err = ProxyError::Unavailable("pacer is at its connection limit");
        return refuse(proto, close, &err).await;
    }
    match Box::pin(tunnel::open(&engine, &mut close, &account, &target)).await {
        Ok(opened) => {
            let bound_addr = opened
                .local_addr()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            close.ctx.succeeded(0);
            let Ok(client) = proto.reply_success(bound_addr).await else {
                return;
            };
            tunnel::relay(close, client, account, opened).await;
            drop(admission);
        }
        Err(err) => refuse(proto, close, &err).await,
    }
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
async fn handshake<S: ClientSocket>(
    close: &mut CloseOut,
    reader: ClientStream<S>,
    bound: Option<&str>,
) -> Result<(CommandRead<S>, Arc<Account>, Target), Broken> {
    let start = Socks5ServerProtocol::start(reader);
    let (authenticated, account) = match bound {
        Some(id) => {
            let proto = start
                .negotiate_auth(&[NoAuthentication])
                .await
                .map_err(|_| Broken::off())?;
            let account = bound_account(&mut close.ctx, id).map_err(|err| Broken {
                error: err.into(),
                status: 0,
            })?;
            (proto.finish_auth(), account)
        }
        None => {
            let pending = start
                .negotiate_auth(&[Rfc1929])
                .await
                .map_err(|_| Broken::off())?;
            rfc1929(close, pending).await?
        }
    };
    let (proto, target) = read_connect(authenticated).await?;
    close.ctx.target = Some(target.clone());
    Ok((proto, account, target))
}

async fn read_connect<S: ClientSocket>(
    proto: Authenticated<S>,
) -> Result<(CommandRead<S>, Target), Broken> {
    let (proto, command, address) = proto.read_command().await.map_err(|_| Broken::off())?;
    if !matches!(command, Socks5Command::TCPConnect) {
        let _ = proto.reply_error(&ReplyError::CommandNotSupported).await;
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
        Ok(target) => Ok((proto, target)),
        Err(name) => {
            let _ = proto.reply_error(&ReplyError::GeneralFailure).await;
            Err(Broken {
                error: ProxyError::BadDestination(name),
                status: ReplyError::GeneralFailure.as_u8().into(),
            })
        }
    }
}

/// Answers the CONNECT with the error's reply code, closing it out.
async fn refuse<S: ClientSocket>(proto: CommandRead<S>, mut close: CloseOut, err: &ProxyError) {
    let reply = err.socks_reply();
    close.failed(err, reply.as_u8().into());
    tracing::debug!(id = %close.ctx.id, %err, "socks5 connect refused");
    drop(close);
    let _ = proto.reply_error(&reply).await;
}

/// RFC 1929 username/password, method 0x02.
#[derive(Debug, Clone, Copy)]
struct Rfc1929;

/// The socket between method selection and the credentials.
struct Rfc1929Pending<S>(ClientStream<S>);

/// The socket after credentials were accepted.
struct Rfc1929Done<S>(ClientStream<S>);

impl<S> AuthMethod<ClientStream<S>> for Rfc1929 {
    type StartingState = Rfc1929Pending<S>;

    fn method_id(self) -> u8 {
        0x02
    }

    fn new(self, inner: ClientStream<S>) -> Rfc1929Pending<S> {
        Rfc1929Pending(inner)
    }
}

impl<S> AuthMethodSuccessState<ClientStream<S>> for Rfc1929Done<S> {
    fn into_inner(self) -> ClientStream<S> {
        self.0
    }
}

const RFC1929_VERSION: u8 = 0x01;
const AUTH_SUCCEEDED: u8 = 0x00;
const AUTH_FAILED: u8 = 0x01;

/// Reads the credentials and answers 0x00 (the account) or 0x01 (then the
/// connection closes).
async fn rfc1929<S: ClientSocket>(
    close: &mut CloseOut,
    pending: Rfc1929Pending<S>,
) -> Result<(Authenticated<S>, Arc<Account>), Broken> {
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
    Ok((Rfc1929Done(stream).finish_auth(), account))
}

async fn read_credentials<S: ClientSocket>(stream: &mut ClientStream<S>) -> Option<Credentials> {
    let version = stream.read_u8().await.ok()?;
    if version != RFC1929_VERSION {
        return None;
    }
    let id = read_short_field(stream).await?;
    let secret = read_short_field(stream).await?;
    Some(Credentials { id, secret })
}

/// A length-prefixed field of at most 255 bytes.
async fn read_short_field<S: ClientSocket>(stream: &mut ClientStream<S>) -> Option<Vec<u8>> {
    let len = stream.read_u8().await.ok()?;
    let mut field = vec![0; len.into()];
    stream.read_exact(&mut field).await.ok()?;
    Some(field)
}
