//! The tunnel entry, for HTTP CONNECT and SOCKS5 CONNECT alike: [`open`]
//! classifies the tunnel (one request with method `CONNECT`, the target
//! host and no path), admits it and reaches the destination; once the
//! listener has told its client, [`relay`] carries the tunnel to its end
//! and closes it out.
//!
//! Interception (SPEC section 7) is decided here. A tunnel to a host of
//! `[mitm] hosts` (while interception is on) is answered before anything
//! is admitted or dialled; its client's first bytes then decide: a TLS
//! ClientHello is intercepted ([`super::mitm`]) and the tunnel itself
//! consumes no limit, anything else is admitted, dialled and relayed as an
//! opaque tunnel.

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::either::Either;

use super::admit::admit;
use super::attempt::{reach, Attempt, Reached};
use super::close::CloseOut;
use super::{mitm, Engine};
use crate::egress::prefix::Prefixed;
use crate::egress::relay::{relay as copy_both_ways, IntoSocket, RelayEnd};
use crate::egress::stream::EgressStream;
use crate::egress::target::Target;
use crate::intercept::sniff;
use crate::policy::classify::RequestShape;
use crate::state::accounts::Account;
use crate::wire::error::ProxyError;

/// A tunnel the client may now be told is open.
pub enum Opened {
    /// Its destination, reached.
    Dialed(EgressStream),
    /// A host that may be intercepted: decided on the client's first bytes.
    Deferred,
}

impl Opened {
    /// The local address of the destination socket (a SOCKS5 reply's
    /// BND.ADDR), when there is one yet.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Opened::Dialed(stream) => stream.local_addr().ok(),
            Opened::Deferred => None,
        }
    }
}

/// Opens a tunnel to `target` for `account`. On an error the caller
/// answers its client and records the failure on `close`
/// ([`CloseOut::failed`]).
pub async fn open(
    engine: &Engine,
    close: &mut CloseOut,
    account: &Account,
    target: &Target,
) -> Result<Opened, ProxyError> {
    close.ctx.method = Some(Method::CONNECT);
    close.ctx.target = Some(target.clone());
    engine.deny.check_target(target)?;
    if engine.interceptor.is_some()
        && close
            .ctx
            .snapshot
            .intercepted_hosts
            .matches(&target.host_str())
    {
        engine.shutdown.ensure_open()?;
        return Ok(Opened::Deferred);
    }
    dial(engine, close, account, target)
        .await
        .map(Opened::Dialed)
}

/// Admits the tunnel and reaches its destination.
async fn dial(
    engine: &Engine,
    close: &mut CloseOut,
    account: &Account,
    target: &Target,
) -> Result<EgressStream, ProxyError> {
    let host = target.host_str();
    let shape = RequestShape {
        method: &Method::CONNECT,
        host: &host,
        path: None,
    };
    admit(engine, close, account, shape).await?;
    match reach(engine, close, &account.id, target, Attempt::Tunnel).await? {
        Reached::Tunnel(stream) => Ok(stream),
        Reached::Response(_) => Err(ProxyError::MalformedRequest("a tunnel got an HTTP answer")),
    }
}

/// Carries an open tunnel between `client` and its destination until it
/// ends, then closes it out. Not an `async fn`: one would hold its
/// arguments besides the relay they are moved into, for the tunnel's life.
pub fn relay<C>(
    close: CloseOut,
    client: C,
    account: Arc<Account>,
    opened: Opened,
) -> impl Future<Output = ()> + Send
where
    C: IntoSocket + AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match opened {
        Opened::Dialed(destination) => Either::Left(copy(close, client, destination, account)),
        // Boxed: the tunnel's task then keeps only the relay's state, not
        // the larger interception (TLS and HTTP serving) it might become.
        Opened::Deferred => Either::Right(Box::pin(deferred(close, client, account))),
    }
}

/// A tunnel to a host that may be intercepted: a TLS ClientHello first is
/// intercepted, anything else admitted, dialled and relayed.
async fn deferred<C>(mut close: CloseOut, client: C, account: Arc<Account>)
where
    C: IntoSocket + AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let engine = close.engine().clone();
    let (first, client) = first_bytes(&engine, client).await;
    let client = Prefixed::new(first.clone(), client);
    if sniff::is_client_hello(&first) {
        return mitm::intercept(close, client, account).await;
    }
    let Some(target) = close.ctx.target.clone() else {
        return;
    };
    match dial(&engine, &mut close, &account, &target).await {
        Ok(destination) => copy(close, client, destination, account).await,
        Err(err) => {
            // The client was told the tunnel is open: it is closed.
            let status = err.wire_code().status.as_u16();
            close.failed(&err, status);
        }
    }
}

/// Up to [`sniff::NEEDED`] of the client's first bytes, waiting at most
/// `header_read_timeout` (a client that says nothing first is opaque).
async fn first_bytes<C: AsyncRead + Unpin>(engine: &Engine, mut client: C) -> (Bytes, C) {
    let mut first = BytesMut::with_capacity(sniff::NEEDED);
    let read = async {
        while first.len() < sniff::NEEDED {
            match client.read_buf(&mut first).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(engine.settings.header_read_timeout, read).await;
    (first.freeze(), client)
}

/// Relays until the tunnel ends, idles out, or its account is deleted.
async fn copy<C>(mut close: CloseOut, client: C, destination: EgressStream, account: Arc<Account>)
where
    C: IntoSocket + AsyncRead + AsyncWrite + Unpin,
{
    let settings = close.engine().relay_settings();
    let outcome = copy_both_ways(client, destination, settings, account.deleted()).await;
    close.ctx.bytes_up = outcome.up;
    close.ctx.bytes_down = outcome.down;
    close.ctx.bytes_spliced = outcome.spliced;
    match &outcome.end {
        RelayEnd::Closed => {}
        RelayEnd::Idle => tracing::debug!(id = %close.ctx.id, "tunnel idle, closed"),
        RelayEnd::Failed(err) => tracing::debug!(id = %close.ctx.id, %err, "tunnel ended by error"),
        RelayEnd::Stopped => {
            tracing::info!(id = %close.ctx.id, "tunnel ended: its account was deleted")
        }
    }
}
