//! The tunnel entry, for HTTP CONNECT and SOCKS5 CONNECT alike: [`open`]
//! classifies the tunnel (one request with method `CONNECT`, the target
//! host and no path), admits it and reaches the destination; once the
//! listener has told its client, [`relay`] carries the tunnel to its end
//! and closes it out. Interception (SPEC section 7) is decided in
//! [`relay`], before the first byte moves: everything else is opaque.

use http::Method;
use tokio::io::{AsyncRead, AsyncWrite};

use super::admit::admit;
use super::attempt::{reach, Attempt, Reached};
use super::close::CloseOut;
use super::Engine;
use crate::egress::relay::{relay as copy_both_ways, RelayEnd};
use crate::egress::stream::EgressStream;
use crate::egress::target::Target;
use crate::policy::classify::RequestShape;
use crate::state::accounts::Account;
use crate::wire::error::ProxyError;

/// Opens the destination side of a tunnel to `target` for `account`.
/// On an error the caller answers its client and records the failure on
/// `close` ([`CloseOut::failed`]).
pub async fn open(
    engine: &Engine,
    close: &mut CloseOut,
    account: &Account,
    target: &Target,
) -> Result<EgressStream, ProxyError> {
    close.ctx.method = Some(Method::CONNECT);
    close.ctx.target = Some(target.clone());
    let host = target.host_str();
    let shape = RequestShape {
        method: &Method::CONNECT,
        host: &host,
        path: None,
    };
    admit(engine, close, account, shape).await?;
    match reach(engine, &mut close.ctx, &account.id, target, Attempt::Tunnel).await? {
        Reached::Tunnel(stream) => Ok(stream),
        Reached::Response(_) => Err(ProxyError::MalformedRequest("a tunnel got an HTTP answer")),
    }
}

/// Relays an open tunnel between `client` and `destination` until it
/// ends, then closes it out.
pub async fn relay<C>(mut close: CloseOut, client: &mut C, mut destination: EgressStream)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let idle = close.engine().settings.idle_timeout;
    let outcome = copy_both_ways(client, &mut destination, idle).await;
    close.ctx.bytes_up = outcome.up;
    close.ctx.bytes_down = outcome.down;
    match &outcome.end {
        RelayEnd::Closed => {}
        RelayEnd::Idle => tracing::debug!(id = %close.ctx.id, "tunnel idle, closed"),
        RelayEnd::Failed(err) => tracing::debug!(id = %close.ctx.id, %err, "tunnel ended by error"),
    }
}
