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
use crate::wire::head::RequestHead;

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
    // Boxed: the connection's task is sized for serving only, for its
    // whole life.
    let refused = matches!(admission, Admission::Refused(_));
    let Some(first) = Box::pin(first_head(&engine, &mut io, peer, refused)).await else {
        return;
    };
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

/// The first request head, read within `header_read_timeout` of the
/// accept; `None` once refused with an envelope (a bad or slow head, or
/// `over_limit`: the connection is beyond `max_connections`), or when the
/// client left without a word.
async fn first_head(
    engine: &Arc<Engine>,
    io: &mut Noted<TcpStream>,
    peer: SocketAddr,
    over_limit: bool,
) -> Option<RequestHead> {
    let refusal = match read_request_head(engine, io, Bytes::new()).await {
        Ok(head) if !over_limit => return Some(head),
        Ok(_) => ProxyError::Unavailable("pacer is at its connection limit"),
        Err(Some(err)) => err,
        Err(None) => return None,
    };
    let ctx = engine.context(ListenerKind::Http, peer);
    refuse_raw(engine, io, ctx, &refusal).await;
    None
}

/// A CONNECT's client socket, back from hyper's upgrade, with the bytes
/// read past the CONNECT's head (by hyper, then by pacer).
fn socket_of_tunnel(upgraded: Upgraded) -> Result<(Bytes, TcpStream), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<Exchange<Noted<TcpStream>>>>()?;
    let (unread, io) = parts.io.into_inner().into_tunnel(parts.read_buf);
    Ok((unread, io.into_inner()))
}
