//! HTTP/1.1 keep-alive, one exchange at a time: pacer reads and checks
//! every request head (the listener reads the first), hyper serves that
//! request ([`super::exchange`]), and between requests the connection holds
//! neither hyper's state nor (on a socket) a read buffer. A head that is
//! malformed (as hyper would judge it), oversized, or not whole within
//! `header_read_timeout` of its first byte gets pacer's envelope and ends
//! the connection; a connection silent for `idle_timeout` between requests
//! is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::exchange::Exchange;
use super::{drive, service_of, Ended, HttpClient};
use crate::pipeline::activity::watchdog;
use crate::pipeline::close::CloseOut;
use crate::pipeline::Engine;
use crate::telemetry::context::RequestContext;
use crate::wire::error::ProxyError;
use crate::wire::head::{read_head, HeadError, RequestHead};
use crate::wire::problem;

/// The first read of a head between requests (the rest is read as
/// [`read_head`] reads).
const FIRST_READ: usize = 4096;

/// A client stream HTTP/1 is served on.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Resolves once the client has sent bytes (or closed), so that a
    /// connection idle between requests holds no read buffer; at once by
    /// default.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// Serves HTTP/1.1 on `io`, starting with `first` when its head has been
/// read already, until the client closes, a head is refused, `also_cut`
/// resolves, or shutdown ends it after its current request.
pub async fn serve_http1<S: ClientStream>(
    engine: Arc<Engine>,
    mut io: S,
    first: Option<RequestHead>,
    client: HttpClient,
    also_cut: impl Future<Output = ()>,
) {
    let client = Arc::new(client);
    tokio::pin!(also_cut);
    let (mut next, mut ahead) = (first, Bytes::new());
    loop {
        let head = match next.take() {
            Some(head) => head,
            None => match next_head(&engine, &mut io, ahead, &client, also_cut.as_mut()).await {
                Some(head) => head,
                None => return,
            },
        };
        let exchange = Exchange::new(io, head, client.activity.clone());
        // Boxed: between requests the task keeps only this loop's state.
        let served = Box::pin(serve_exchange(
            &engine,
            exchange,
            &client,
            also_cut.as_mut(),
        ));
        let Some((back, rest)) = served.await else {
            return;
        };
        (io, ahead) = (back, rest);
    }
}

/// Serves the one request of `exchange` with hyper; the stream and the
/// bytes read past the request when the connection goes on.
async fn serve_exchange<S: ClientStream>(
    engine: &Arc<Engine>,
    exchange: Exchange<S>,
    client: &Arc<HttpClient>,
    also_cut: Pin<&mut impl Future<Output = ()>>,
) -> Option<(S, Bytes)> {
    let mut connection = hyper::server::conn::http1::Builder::new()
        .max_buf_size(engine.settings.max_header_bytes.max(8192))
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(exchange), service_of(engine, client))
        .with_upgrades();
    let cut = async {
        tokio::select! {
            expired = watchdog(&client.activity, engine.settings.idle_timeout) => {
                tracing::debug!(?expired, "client connection cut by watchdog");
            }
            () = also_cut => {}
        }
    };
    if drive(
        engine,
        Pin::new(&mut connection),
        |c| c.graceful_shutdown(),
        cut,
    )
    .await
        != Ended::Done
    {
        return None;
    }
    // `None` once upgraded: the tunnel has the stream.
    let parts = connection.into_parts()?;
    parts.io.into_inner().next_request(parts.read_buf)
}

/// The next request head on `io` (`ahead`: bytes read past the previous
/// request), or `None` once the connection is over: closed, idle for
/// `idle_timeout`, cut, shut down, or its head refused with an envelope.
async fn next_head<S: ClientStream>(
    engine: &Arc<Engine>,
    io: &mut S,
    ahead: Bytes,
    client: &HttpClient,
    also_cut: Pin<&mut impl Future<Output = ()>>,
) -> Option<RequestHead> {
    let read = async {
        let ahead = if ahead.is_empty() {
            first_bytes(engine, io).await.ok_or(None)?
        } else {
            ahead
        };
        read_request_head(engine, io, ahead).await
    };
    let outcome = tokio::select! {
        outcome = read => outcome,
        () = also_cut => Err(None),
        () = engine.shutdown.begun() => Err(None),
    };
    match outcome {
        Ok(head) => Some(head),
        Err(Some(err)) => {
            let mut ctx = engine.context(client.listener, client.peer);
            ctx.intercepted = client.inside.as_ref().map(|inside| inside.tunnel);
            // Boxed: the connection's task is not sized for this last step.
            Box::pin(refuse_raw(engine, io, ctx, &err)).await;
            None
        }
        Err(None) => None,
    }
}

/// The first bytes of the next request, within `idle_timeout`; `None` when
/// the client stays silent that long, closes or fails. A socket waits for
/// them without a buffer.
async fn first_bytes<S: ClientStream>(engine: &Engine, io: &mut S) -> Option<Bytes> {
    let wait = async {
        io.readable().await?;
        let mut buf = BytesMut::with_capacity(FIRST_READ);
        io.read_buf(&mut buf).await?;
        Ok::<_, io::Error>(buf.freeze())
    };
    match tokio::time::timeout(engine.settings.idle_timeout, wait).await {
        Ok(Ok(bytes)) if !bytes.is_empty() => Some(bytes),
        _ => None,
    }
}

/// Reads a request head from `io` within `header_read_timeout`, starting
/// with `ahead`; the error to answer with (`None`: the client left without
/// a word).
pub async fn read_request_head<S: AsyncRead + Unpin>(
    engine: &Engine,
    io: &mut S,
    ahead: Bytes,
) -> Result<RequestHead, Option<ProxyError>> {
    let limit = engine.settings.max_header_bytes;
    let timeout = engine.settings.header_read_timeout;
    match tokio::time::timeout(timeout, read_head(io, ahead, limit)).await {
        Ok(Ok(head)) => Ok(head),
        Ok(Err(HeadError::Closed)) => Err(None),
        Ok(Err(HeadError::Malformed(why))) => Err(Some(ProxyError::MalformedRequest(why))),
        Ok(Err(HeadError::TooLarge)) => Err(Some(ProxyError::HeadersTooLarge { limit })),
        Err(_) => Err(Some(ProxyError::ClientTimeout(timeout))),
    }
}

/// Writes the envelope of `err` straight to `io` (no hyper connection is
/// serving it), closes it, and closes the request of `ctx` out.
pub async fn refuse_raw<S: AsyncWrite + Unpin>(
    engine: &Arc<Engine>,
    io: &mut S,
    ctx: RequestContext,
    err: &ProxyError,
) {
    let mut close = CloseOut::new(engine.clone(), ctx);
    close.failed(err, err.wire_code().status.as_u16());
    let raw = problem::raw_response(err, close.ctx.id);
    let _ = io.write_all(&raw).await;
    let _ = io.shutdown().await;
}
