//! A plain HTTP request kept so that it can be sent again through the next
//! upstream (or once more on a fresh connection of the same route, see
//! [`super::reuse`]), for as long as nothing of its body has been sent; and
//! the moments it departs.
//!
//! "Nothing of the request reached the origin" is read as: hyper has not
//! polled a single frame of the body. The head may have been written to a
//! proxy that then failed; a request without a body (GET) can therefore
//! always move to the next upstream, a request with one only until hyper
//! starts sending it.
//!
//! "The request departed" is read as: hyper asked its body whether it is
//! empty, or how long it is. Both HTTP/1 and HTTP/2 ask exactly when they
//! encode the request's head onto a connection that is ready for it (the
//! length decides the framing), on the connection's own task, so the
//! moment is taken there and handed to the request's path through
//! [`Departures`]. The head's bytes reach the socket a moment later, in
//! the same poll of that task for HTTP/1 (a thread preempted in between,
//! or a socket whose buffer is full, makes the moment longer): the next
//! write to an egress socket on the same thread ([`socket_written`])
//! marks the request's departure again, so the window counts it from no
//! earlier than its bytes left.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What every attempt of one request shares: the body until an attempt
/// takes it, the request's departures, and the body's bytes sent.
struct Exchange {
    body: Mutex<Option<Incoming>>,
    departures: Marks,
    sent: AtomicU64,
}

/// When a request's head was last written towards its origin or upstream.
struct Marks {
    epoch: Instant,
    /// Nanoseconds since `epoch`, plus one, of the last departure not yet
    /// taken; 0 when none.
    last: AtomicU64,
    signal: Notify,
}

impl Marks {
    fn new() -> Self {
        Marks {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            signal: Notify::new(),
        }
    }

    fn mark(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.last.store(since + 1, Ordering::Release);
        self.signal.notify_one();
    }

    fn take(&self) -> Option<Instant> {
        match self.last.swap(0, Ordering::AcqRel) {
            0 => None,
            since => Some(self.epoch + Duration::from_nanos(since - 1)),
        }
    }

    async fn next(&self) -> Instant {
        loop {
            let signalled = self.signal.notified();
            if let Some(at) = self.take() {
                return at;
            }
            signalled.await;
        }
    }
}

thread_local! {
    /// The exchange whose head hyper encoded last on this thread, until
    /// bytes are next written to an egress socket here.
    static ENCODED: Cell<Option<Arc<Exchange>>> = const { Cell::new(None) };
}

/// Bytes were just written to an egress socket on this thread: the head
/// hyper encoded last here has left, and departs again now.
pub fn socket_written() {
    if let Some(exchange) = ENCODED.take() {
        exchange.departures.mark();
    }
}

/// The request body handed to one attempt.
pub struct AttemptBody {
    exchange: Arc<Exchange>,
    /// The body, once this attempt took it from the shared slot.
    taken: Option<Incoming>,
    /// Whether this attempt's head was written.
    departed: AtomicBool,
}

impl AttemptBody {
    fn body(&mut self) -> Option<&mut Incoming> {
        if self.taken.is_none() {
            self.taken = lock(&self.exchange.body).take();
        }
        self.taken.as_mut()
    }

    /// Reads the body's metadata without taking it out of the slot; hyper
    /// asks as it writes the head: the attempt departs.
    fn peek<T>(&self, f: impl FnOnce(&Incoming) -> T, absent: T) -> T {
        if !self.departed.swap(true, Ordering::Relaxed) {
            self.exchange.departures.mark();
            ENCODED.set(Some(self.exchange.clone()));
        }
        match &self.taken {
            Some(body) => f(body),
            None => lock(&self.exchange.body).as_ref().map_or(absent, f),
        }
    }
}

fn lock(slot: &Mutex<Option<Incoming>>) -> MutexGuard<'_, Option<Incoming>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Body for AttemptBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match this.body() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => return Poll::Ready(None),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let len = data.len() as u64;
                this.exchange.sent.fetch_add(len, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.peek(Body::is_end_stream, true)
    }

    fn size_hint(&self) -> SizeHint {
        self.peek(Body::size_hint, SizeHint::with_exact(0))
    }
}

/// A request that may be sent more than once.
pub struct ReplayableRequest {
    parts: Option<Parts>,
    exchange: Arc<Exchange>,
}

impl ReplayableRequest {
    /// Keeps `request` for its attempts.
    pub fn new(request: Request<Incoming>) -> Self {
        let (parts, body) = request.into_parts();
        ReplayableRequest {
            parts: Some(parts),
            exchange: Arc::new(Exchange {
                body: Mutex::new(Some(body)),
                departures: Marks::new(),
                sent: AtomicU64::new(0),
            }),
        }
    }

    /// Whether another attempt can still send the whole request.
    pub fn can_replay(&self) -> bool {
        self.parts.is_some() && lock(&self.exchange.body).is_some()
    }

    /// The request's departures, one per attempt whose head was written.
    pub fn departures(&self) -> Departures {
        Departures(self.exchange.clone())
    }

    /// What its attempts send of the body, as they send it.
    pub fn uploaded(&self) -> Uploaded {
        Uploaded(self.exchange.clone())
    }

    /// The request for the next attempt, or `None` once part of the body
    /// has been sent (or a last attempt took it). With `last`, the request
    /// is handed over without a copy and no later attempt is possible.
    pub fn attempt(&mut self, last: bool) -> Option<Request<AttemptBody>> {
        if lock(&self.exchange.body).is_none() {
            return None;
        }
        let body = AttemptBody {
            exchange: self.exchange.clone(),
            taken: None,
            departed: AtomicBool::new(false),
        };
        if last {
            return Some(Request::from_parts(self.parts.take()?, body));
        }
        Some(copy_head(self.parts.as_ref()?, body))
    }
}

/// A request's departures, watched by its path while attempts send it.
pub struct Departures(Arc<Exchange>);

impl Departures {
    /// The last departure not yet taken, if any.
    pub fn take(&self) -> Option<Instant> {
        self.0.departures.take()
    }

    /// Waits for the next departure not yet taken.
    pub async fn next(&self) -> Instant {
        self.0.departures.next().await
    }
}

/// How much of a request's body its attempts have sent (the access line's
/// `bytes_up`).
pub struct Uploaded(Arc<Exchange>);

impl Uploaded {
    /// The body's bytes handed to a connection so far.
    pub fn bytes(&self) -> u64 {
        self.0.sent.load(Ordering::Relaxed)
    }
}

fn copy_head(parts: &Parts, body: AttemptBody) -> Request<AttemptBody> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    // Extensions carry hyper's record of the client's header case.
    *request.extensions_mut() = parts.extensions.clone();
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::stream::EgressStream;
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpSocket, TcpStream};
    use tokio::sync::{mpsc, oneshot};

    #[tokio::test(start_paused = true)]
    async fn a_departure_is_taken_once_at_the_moment_it_was_marked() {
        let departures = Marks::new();
        assert!(departures.take().is_none());
        tokio::time::advance(Duration::from_millis(7)).await;
        departures.mark();
        let marked = Instant::now();
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(departures.next().await, marked);
        assert!(departures.take().is_none(), "taken once");
    }

    /// A request as pacer's listener hands it on: read by a hyper server
    /// from a real connection, with the client's end of that connection
    /// (kept open while the request is used).
    async fn received_request() -> (Request<Incoming>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let service = hyper::service::service_fn(move |request| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(request).await;
                    std::future::pending::<Result<http::Response<String>, hyper::Error>>().await
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
        let mut client = TcpStream::connect(addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        (rx.recv().await.expect("request"), client)
    }

    /// A connection to an origin that reads nothing yet, with its send
    /// buffer full: the next write waits until the origin reads.
    async fn clogged_connection() -> (TcpStream, TcpStream) {
        let listening = TcpSocket::new_v4().expect("socket");
        listening.set_recv_buffer_size(4096).expect("rcvbuf");
        listening
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let addr = listening.local_addr().expect("addr");
        let listener = listening.listen(1).expect("listen");
        let connecting = TcpSocket::new_v4().expect("socket");
        connecting.set_send_buffer_size(4096).expect("sndbuf");
        let stream = connecting.connect(addr).await.expect("connect");
        let (origin, _) = listener.accept().await.expect("accept");
        let chunk = [b'.'; 4096];
        for _ in 0..16_384 {
            match stream.try_write(&chunk) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    return (stream, origin)
                }
                Err(err) => panic!("fill: {err}"),
            }
        }
        panic!("the send buffer never filled");
    }

    #[tokio::test]
    async fn a_head_departs_again_when_its_bytes_reach_the_socket() {
        let (received, _client) = received_request().await;
        let mut request = ReplayableRequest::new(received);
        let departures = request.departures();
        let (stream, mut origin) = clogged_connection().await;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(EgressStream::tcp(stream)))
                .await
                .expect("handshake");
        tokio::spawn(connection);
        let attempt = request.attempt(true).expect("attempt");
        tokio::spawn(async move { sender.send_request(attempt).await });
        let encoded = departures.next().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (drained_tx, drained_rx) = oneshot::channel();
        tokio::spawn(async move {
            let draining = Instant::now();
            let mut seen = Vec::new();
            let mut buf = vec![0; 65_536];
            loop {
                let n = origin.read(&mut buf).await.expect("read");
                assert!(n > 0, "the head never arrived");
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(6).any(|w| w == b"GET /x") {
                    break;
                }
                let keep = seen.len().saturating_sub(8);
                seen.drain(..keep);
            }
            let _ = drained_tx.send(draining);
        });
        let written = tokio::time::timeout(Duration::from_secs(10), departures.next())
            .await
            .expect("a departure once the head is written");
        let draining = drained_rx.await.expect("drained");
        assert!(
            encoded < draining,
            "hyper encoded the head before the origin read"
        );
        assert!(
            written >= draining,
            "the departure counts from when the bytes left ({:?} before the origin read)",
            draining - written
        );
    }
}
