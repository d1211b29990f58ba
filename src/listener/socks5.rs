//! The SOCKS5 listener (RFC 1928) on fast-socks5: username/password
//! authentication (RFC 1929) against the accounts, or no authentication on
//! a bound listener; CONNECT to IPv4, IPv6 and domain targets (domains are
//! resolved by pacer going direct, by the upstream otherwise); every other
//! command is answered 0x07.
//!
//! fast-socks5 rejects bad credentials with status 0xFF, where SPEC section
//! 3 asks for 0x01, so the RFC 1929 sub-negotiation is our own
//! [`AuthMethod`], plugged into fast-socks5's negotiation.

use std::net::SocketAddr;
use std::sync::Arc;

use fast_socks5::server::{
    states, AuthMethod, AuthMethodSuccessState, NoAuthentication, Socks5ServerProtocol,
};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::Admission;
use crate::accounts::Account;
use crate::app::App;
use crate::context::{ListenerKind, RequestContext};
use crate::error::ProxyError;
use crate::pipeline;
use crate::target::Target;

/// The client socket, read through a small buffer: the handshake's many
/// short fields then cost one read each message, not one per field. Tunnel
/// reads are larger than the buffer, so they bypass it.
type ClientStream = BufReader<TcpStream>;
type Authenticated = Socks5ServerProtocol<ClientStream, states::Authenticated>;
type CommandRead = Socks5ServerProtocol<ClientStream, states::CommandRead>;

/// Bytes of the client's handshake buffered at once (a whole greeting,
/// credentials or CONNECT request fits).
const HANDSHAKE_BUFFER: usize = 600;

/// Serves one SOCKS5 client: handshake within `header_read_timeout`, then
/// one CONNECT tunnel.
pub async fn serve_connection(
    app: Arc<App>,
    stream: TcpStream,
    peer: SocketAddr,
    bound: Option<Arc<Account>>,
    admission: Admission,
) {
    let refused = matches!(admission, Admission::Refused(_));
    // Boxed, as is the tunnel's opening below: the task keeps only the
    // relay's state for the tunnel's life, not these larger futures.
    let handshake = Box::pin(handshake(&app, stream, bound));
    let Ok(Some((proto, account, target))) =
        tokio::time::timeout(app.settings.header_read_timeout, handshake).await
    else {
        return;
    };
    let mut ctx = RequestContext::new(ListenerKind::Socks5, peer, http::Method::CONNECT);
    ctx.account = Some(account.id.clone());
    if refused {
        ctx.target = Some(target);
        let err = ProxyError::Unavailable("pacer is at its connection limit");
        return refuse(&app, proto, ctx, &err).await;
    }
    match Box::pin(pipeline::open_tunnel(&app, &mut ctx, &account, target)).await {
        Ok(tunnel) => {
            let bound_addr = tunnel
                .destination
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let Ok(mut client) = proto.reply_success(bound_addr).await else {
                return;
            };
            pipeline::run_tunnel(&app, ctx, &mut client, tunnel).await;
            drop(admission);
        }
        Err(err) => refuse(&app, proto, ctx, &err).await,
    }
}

/// Greeting, authentication and command. `None` when the client is gone, or
/// was answered already (bad credentials, unsupported command).
async fn handshake(
    app: &App,
    stream: TcpStream,
    bound: Option<Arc<Account>>,
) -> Option<(CommandRead, Arc<Account>, Target)> {
    let start = Socks5ServerProtocol::start(BufReader::with_capacity(HANDSHAKE_BUFFER, stream));
    let (authenticated, account) = match bound {
        Some(account) => {
            let proto = start.negotiate_auth(&[NoAuthentication]).await.ok()?;
            (proto.finish_auth(), account)
        }
        None => {
            let pending = start.negotiate_auth(&[Rfc1929]).await.ok()?;
            rfc1929(app, pending).await?
        }
    };
    read_connect(authenticated)
        .await
        .map(|(proto, target)| (proto, account, target))
}

async fn read_connect(proto: Authenticated) -> Option<(CommandRead, Target)> {
    let (proto, command, address) = proto.read_command().await.ok()?;
    if !matches!(command, Socks5Command::TCPConnect) {
        let _ = proto.reply_error(&ReplyError::CommandNotSupported).await;
        return None;
    }
    let target = match address {
        TargetAddr::Ip(addr) => Target::new(&addr.ip().to_string(), addr.port()),
        TargetAddr::Domain(name, port) => Target::new(&name, port),
    };
    Some((proto, target))
}

/// Answers the CONNECT with the error's reply code and logs the attempt.
async fn refuse(app: &App, proto: CommandRead, mut ctx: RequestContext, err: &ProxyError) {
    let reply = err.socks_reply();
    ctx.failed(err, reply.as_u8().into());
    tracing::debug!(id = %ctx.id, %err, "socks5 connect refused");
    app.finish(&ctx);
    let _ = proto.reply_error(&reply).await;
}

/// RFC 1929 username/password, method 0x02.
#[derive(Debug, Clone, Copy)]
struct Rfc1929;

/// The socket between method selection and the credentials.
struct Rfc1929Pending(ClientStream);

/// The socket after credentials were accepted.
struct Rfc1929Done(ClientStream);

impl AuthMethod<ClientStream> for Rfc1929 {
    type StartingState = Rfc1929Pending;

    fn method_id(self) -> u8 {
        0x02
    }

    fn new(self, inner: ClientStream) -> Rfc1929Pending {
        Rfc1929Pending(inner)
    }
}

impl AuthMethodSuccessState<ClientStream> for Rfc1929Done {
    fn into_inner(self) -> ClientStream {
        self.0
    }
}

const RFC1929_VERSION: u8 = 0x01;
const AUTH_SUCCEEDED: u8 = 0x00;
const AUTH_FAILED: u8 = 0x01;

/// Reads the credentials and answers 0x00 (the account) or 0x01 (then the
/// connection closes).
async fn rfc1929(app: &App, pending: Rfc1929Pending) -> Option<(Authenticated, Arc<Account>)> {
    let mut stream = pending.0;
    let (id, secret) = read_credentials(&mut stream).await?;
    let account = match app.runtime.load().accounts.authenticate(&id, &secret) {
        Ok(account) => account,
        Err(_) => {
            let _ = stream.write_all(&[RFC1929_VERSION, AUTH_FAILED]).await;
            let _ = stream.shutdown().await;
            return None;
        }
    };
    stream
        .write_all(&[RFC1929_VERSION, AUTH_SUCCEEDED])
        .await
        .ok()?;
    Some((Rfc1929Done(stream).finish_auth(), account))
}

async fn read_credentials(stream: &mut ClientStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let version = stream.read_u8().await.ok()?;
    if version != RFC1929_VERSION {
        return None;
    }
    let id = read_short_field(stream).await?;
    let secret = read_short_field(stream).await?;
    Some((id, secret))
}

/// A length-prefixed field of at most 255 bytes.
async fn read_short_field(stream: &mut ClientStream) -> Option<Vec<u8>> {
    let len = stream.read_u8().await.ok()?;
    let mut field = vec![0; len.into()];
    stream.read_exact(&mut field).await.ok()?;
    Some(field)
}
