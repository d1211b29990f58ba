//! The HTTP proxy listener: absolute-form requests and CONNECT tunnels
//! over HTTP/1.1 keep-alive connections.
//!
//! The first request head is read and checked here (see [`head`]), so that
//! garbage, an oversized head or a slow client get pacer's envelope; the
//! connection is then served by [`crate::pipeline::http`], with the socket
//! wrapped to note activity ([`conn`]) for the watchdog that enforces
//! `header_read_timeout` and `idle_timeout`.

pub mod conn;
pub mod head;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use self::conn::ClientIo;
use self::head::{read_first_head, HeadError};
use super::limit::Admission;
use crate::pipeline::activity::{watchdog, ConnActivity, Timeouts};
use crate::pipeline::close::CloseOut;
use crate::pipeline::http::{HttpClient, Protocol};
use crate::pipeline::Engine;
use crate::telemetry::context::ListenerKind;
use crate::wire::error::ProxyError;
use crate::wire::problem;

/// Serves one client connection until it closes, idles out or shutdown
/// ends it.
pub async fn serve_connection(
    engine: Arc<Engine>,
    mut stream: TcpStream,
    peer: SocketAddr,
    bound: Option<Arc<str>>,
    admission: Admission,
) {
    // The refusals are boxed: the connection's task then keeps only the
    // larger of reading the head and serving, for its whole life.
    let prefix = match first_head(&engine, &mut stream).await {
        Ok(prefix) => prefix,
        Err(Some(err)) => return Box::pin(refuse_raw(&engine, &mut stream, peer, &err)).await,
        Err(None) => return,
    };
    if matches!(admission, Admission::Refused(_)) {
        let err = ProxyError::Unavailable("pacer is at its connection limit");
        return Box::pin(refuse_raw(&engine, &mut stream, peer, &err)).await;
    }
    let activity = Arc::new(ConnActivity::first_head_read());
    let timeouts = Timeouts {
        header_read: engine.settings.header_read_timeout,
        idle: engine.settings.idle_timeout,
    };
    let io = ClientIo::new(stream, prefix, activity.clone());
    let client = HttpClient {
        peer,
        listener: ListenerKind::Http,
        bound,
        activity: activity.clone(),
        held: Box::new(admission),
        inside: None,
        tunnel_socket: ClientIo::of_tunnel,
    };
    let cut = async move {
        let expired = watchdog(&activity, timeouts).await;
        tracing::debug!(?expired, "client connection cut by watchdog");
    };
    crate::pipeline::http::serve_connection(engine, io, client, Protocol::Http1, cut).await;
}

/// The first head's bytes, or the error to answer with (`None`: the client
/// left without a word).
async fn first_head(engine: &Engine, stream: &mut TcpStream) -> Result<Bytes, Option<ProxyError>> {
    let limit = engine.settings.max_header_bytes;
    let timeout = engine.settings.header_read_timeout;
    match tokio::time::timeout(timeout, read_first_head(stream, limit)).await {
        Ok(Ok(prefix)) => Ok(prefix),
        Ok(Err(HeadError::Closed)) => Err(None),
        Ok(Err(HeadError::Malformed)) => Err(Some(ProxyError::MalformedRequest(
            "not an HTTP/1 proxy request",
        ))),
        Ok(Err(HeadError::TooLarge)) => Err(Some(ProxyError::HeadersTooLarge { limit })),
        Err(_) => Err(Some(ProxyError::ClientTimeout(timeout))),
    }
}

/// Writes an envelope straight to a socket hyper never saw, closes it, and
/// closes the request out.
async fn refuse_raw(
    engine: &Arc<Engine>,
    stream: &mut TcpStream,
    peer: SocketAddr,
    err: &ProxyError,
) {
    let mut close = CloseOut::new(engine.clone(), engine.context(ListenerKind::Http, peer));
    close.failed(err, err.wire_code().status.as_u16());
    let raw = problem::raw_response(err, close.ctx.id);
    let _ = stream.write_all(&raw).await;
    let _ = stream.shutdown().await;
}
