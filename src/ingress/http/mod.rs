//! The HTTP proxy listener: absolute-form requests and CONNECT tunnels
//! over HTTP/1.1 keep-alive connections.
//!
//! The first request head is read and checked here, from the accept,
//! within `header_read_timeout`, so that garbage, an oversized head, a
//! slow client or a connection over `max_connections` get pacer's
//! envelope; the connection is then served by
//! [`crate::pipeline::http::serve_http1`], with the socket wrapped to note
//! activity for the watchdog that enforces `idle_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::limit::Admission;
use crate::pipeline::activity::ConnActivity;
use crate::pipeline::http::exchange::Exchange;
use crate::pipeline::http::http1::{read_request_head, refuse_raw};
use crate::pipeline::http::noted::Noted;
use crate::pipeline::http::{serve_http1, HttpClient};
use crate::pipeline::Engine;
use crate::telemetry::context::ListenerKind;
use crate::wire::error::ProxyError;

/// Serves one client connection until it closes, idles out or shutdown
/// ends it.
pub async fn serve_connection(
    engine: Arc<Engine>,
    stream: TcpStream,
    peer: SocketAddr,
    bound: Option<Arc<str>>,
    admission: Admission,
) {
    let activity = Arc::new(ConnActivity::new());
    let mut io = Noted::new(stream, activity.clone());
    // The refusals are boxed: the connection's task then keeps only the
    // larger of reading the head and serving, for its whole life.
    let first = match read_request_head(&engine, &mut io, Bytes::new()).await {
        Ok(head) => head,
        Err(Some(err)) => return Box::pin(refuse(&engine, &mut io, peer, &err)).await,
        Err(None) => return,
    };
    if matches!(admission, Admission::Refused(_)) {
        let err = ProxyError::Unavailable("pacer is at its connection limit");
        return Box::pin(refuse(&engine, &mut io, peer, &err)).await;
    }
    let client = HttpClient {
        peer,
        listener: ListenerKind::Http,
        bound,
        activity,
        held: Box::new(admission),
        inside: None,
        tunnel_socket: socket_of_tunnel,
    };
    serve_http1(engine, io, Some(first), client, std::future::pending()).await;
}

/// A CONNECT's client socket, back from hyper's upgrade, with the bytes
/// read past the CONNECT's head (by hyper, then by pacer).
fn socket_of_tunnel(upgraded: Upgraded) -> Result<(Bytes, TcpStream), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<Exchange<Noted<TcpStream>>>>()?;
    let (unread, io) = parts.io.into_inner().into_tunnel(parts.read_buf);
    Ok((unread, io.into_inner()))
}

async fn refuse(
    engine: &Arc<Engine>,
    io: &mut Noted<TcpStream>,
    peer: SocketAddr,
    err: &ProxyError,
) {
    let ctx = engine.context(ListenerKind::Http, peer);
    refuse_raw(engine, io, ctx, err).await;
}
