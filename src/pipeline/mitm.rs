//! An intercepted tunnel: the client's TLS is terminated with a leaf of the
//! local CA for its SNI, and HTTP is served inside; each request is one
//! request for limits and routing (the request entry, as for plain HTTP),
//! sent to the tunnel's host over TLS that pacer verifies. The tunnel's
//! own close-out is its access line (no limit is consumed by it); a client
//! that rejects the leaf fails its handshake, logged as
//! `client_tls_failed`.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::activity::{watchdog, ConnActivity};
use super::close::CloseOut;
use super::http::noted::Noted;
use super::http::{serve_http1, serve_http2, HttpClient, Inside};
use crate::state::accounts::Account;

/// The outcome of a tunnel whose client failed the TLS handshake.
pub const CLIENT_TLS_FAILED: &str = "client_tls_failed";

/// Terminates the client's TLS on `client` and serves the requests inside
/// until the tunnel ends.
pub async fn intercept<C>(mut close: CloseOut, client: C, account: Arc<Account>)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let engine = close.engine().clone();
    let (Some(interceptor), Some(target)) = (&engine.interceptor, close.ctx.target.clone()) else {
        return;
    };
    close.ctx.intercepted = Some(close.ctx.id);
    let accepted = match interceptor.accept(client, &target.host_str()).await {
        Ok(accepted) => accepted,
        Err(err) => {
            tracing::info!(id = %close.ctx.id, %err, "intercepted tunnel: client TLS failed");
            close.ctx.outcome = CLIENT_TLS_FAILED;
            return;
        }
    };
    let activity = Arc::new(ConnActivity::new());
    let client = HttpClient {
        peer: close.ctx.peer,
        listener: close.ctx.listener,
        bound: Some(account.id.clone()),
        activity: activity.clone(),
        held: Box::new(()),
        inside: Some(Inside {
            target,
            tunnel: close.ctx.id,
        }),
        // Never a plain socket (and no CONNECT is served inside).
        tunnel_socket: Err,
    };
    let stream = Noted::new(accepted.stream, activity.clone());
    if accepted.h2 {
        // HTTP/2 clients send frames (pings, window updates) between
        // requests: `idle_timeout` bounds such a connection.
        let idle = engine.settings.idle_timeout;
        let cut = async move {
            tokio::select! {
                _ = watchdog(&activity, idle) => {}
                () = account.deleted() => {}
            }
        };
        serve_http2(engine, stream, client, cut).await;
    } else {
        let deleted = async move { account.deleted().await };
        serve_http1(engine, stream, None, client, deleted).await;
    }
}
