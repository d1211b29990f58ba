//! The wire: opening a connection through each door (TCP, CONNECT, SOCKS5
//! with RFC 1929), the HTTP exchange over it (hyper's client connection),
//! and [`ErrorKind`], the one classification of everything that can fail.
//! Nothing here panics on what a peer sends: every failure is a kind.

use std::time::Instant;

use bytes::Bytes;
use http::header::{ACCEPT, CONNECTION, HOST, PROXY_AUTHORIZATION, USER_AGENT};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::cli::{Door, Plan};

/// The largest CONNECT response head read.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Why a transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// TCP connect to the proxy or origin failed.
    Connect,
    /// The proxy refused the credentials (407, SOCKS5 auth status or no
    /// acceptable method).
    ProxyAuth,
    /// The proxy refused the tunnel (CONNECT non-2xx, SOCKS5 reply != 0).
    TunnelRefused,
    /// A 429 answer.
    RateLimited,
    /// Any other non-2xx answer.
    Status,
    /// The peer closed before the response was complete.
    Closed,
    /// A socket error (reset, broken pipe).
    Io,
    /// The peer broke the protocol (bad head, bad SOCKS5 reply).
    Protocol,
    /// The transaction exceeded `--timeout`.
    Timeout,
    /// A `--bulk` response shorter than 1 MiB.
    ShortBody,
}

impl ErrorKind {
    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::ProxyAuth => "proxy_auth",
            ErrorKind::TunnelRefused => "tunnel_refused",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Status => "status",
            ErrorKind::Closed => "closed",
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ShortBody => "short_body",
        }
    }

    fn of_hyper(err: &hyper::Error) -> ErrorKind {
        if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_parse() || err.is_parse_status() {
            ErrorKind::Protocol
        } else if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
            ErrorKind::Closed
        } else {
            ErrorKind::Io
        }
    }

    fn of_status(status: StatusCode) -> ErrorKind {
        match status {
            StatusCode::PROXY_AUTHENTICATION_REQUIRED => ErrorKind::ProxyAuth,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::RateLimited,
            _ => ErrorKind::Status,
        }
    }

    fn of_read(err: &std::io::Error) -> ErrorKind {
        match err.kind() {
            std::io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            _ => ErrorKind::Io,
        }
    }
}

/// A failure or a value.
pub type Outcome<T> = Result<T, ErrorKind>;

/// An HTTP/1 client connection: its request handle and the task driving it.
/// Dropping it closes the socket.
pub struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    driver: JoinHandle<()>,
}

impl Conn {
    /// Whether the socket is still open.
    pub fn is_open(&self) -> bool {
        !self.driver.is_finished()
    }

    /// Waits until a request can be sent; `false` if the connection closed.
    pub async fn usable(&mut self) -> bool {
        self.sender.ready().await.is_ok()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Opens a connection through the plan's door, ready for HTTP requests
/// (for tunnels: after the CONNECT or SOCKS5 handshake).
pub async fn open(plan: &Plan) -> Outcome<Conn> {
    let stream = match plan.door {
        Door::Direct => dial(plan.target.addr).await?,
        Door::Http => dial(proxy_of(plan)?).await?,
        Door::Connect => {
            let mut stream = dial(proxy_of(plan)?).await?;
            http_connect(&mut stream, &plan.connect_head).await?;
            stream
        }
        Door::Socks5 => {
            let mut stream = dial(proxy_of(plan)?).await?;
            socks5_connect(&mut stream, plan).await?;
            stream
        }
    };
    handshake(stream).await
}

/// The proxy address; the CLI guarantees one for every door but direct.
fn proxy_of(plan: &Plan) -> Outcome<std::net::SocketAddr> {
    plan.proxy.ok_or(ErrorKind::Connect)
}

async fn dial(addr: std::net::SocketAddr) -> Outcome<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn handshake(stream: TcpStream) -> Outcome<Conn> {
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ErrorKind::of_hyper(&e))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { sender, driver })
}

/// Sends the CONNECT head and reads the proxy's answer.
async fn http_connect(stream: &mut TcpStream, head: &[u8]) -> Outcome<()> {
    stream.write_all(head).await.map_err(|_| ErrorKind::Io)?;
    let mut buf = Vec::with_capacity(512);
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() >= MAX_CONNECT_HEAD {
            return Err(ErrorKind::Protocol);
        }
        buf.reserve(512);
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| ErrorKind::of_read(&e))?;
        if n == 0 {
            return Err(ErrorKind::Closed);
        }
    };
    let status = connect_status(&buf[..end])?;
    if !status.is_success() {
        return Err(match status {
            StatusCode::PROXY_AUTHENTICATION_REQUIRED => ErrorKind::ProxyAuth,
            _ => ErrorKind::TunnelRefused,
        });
    }
    if buf.len() > end {
        // Bytes past the head before we sent anything: not a clean tunnel.
        return Err(ErrorKind::Protocol);
    }
    Ok(())
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn connect_status(head: &[u8]) -> Outcome<StatusCode> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ErrorKind::Protocol),
    }
    let code = response.code.ok_or(ErrorKind::Protocol)?;
    StatusCode::from_u16(code).map_err(|_| ErrorKind::Protocol)
}

/// Greeting, RFC 1929 credentials when the plan has them, then CONNECT.
async fn socks5_connect(stream: &mut TcpStream, plan: &Plan) -> Outcome<()> {
    let method = if plan.auth.is_some() { 0x02 } else { 0x00 };
    stream
        .write_all(&[0x05, 0x01, method])
        .await
        .map_err(|_| ErrorKind::Io)?;
    let chosen = read_array::<2>(stream).await?;
    match chosen {
        [0x05, 0xFF] => return Err(ErrorKind::ProxyAuth),
        [0x05, m] if m == method => {}
        _ => return Err(ErrorKind::Protocol),
    }
    if let Some(auth) = &plan.auth {
        socks5_auth(stream, &auth.socks).await?;
    }
    stream
        .write_all(&plan.socks_connect)
        .await
        .map_err(|_| ErrorKind::Io)?;
    socks5_reply(stream).await
}

async fn socks5_auth(stream: &mut TcpStream, request: &[u8]) -> Outcome<()> {
    stream.write_all(request).await.map_err(|_| ErrorKind::Io)?;
    match read_array::<2>(stream).await? {
        [0x01, 0x00] => Ok(()),
        [0x01, _] => Err(ErrorKind::ProxyAuth),
        _ => Err(ErrorKind::Protocol),
    }
}

/// Reads the CONNECT reply and its bound address.
async fn socks5_reply(stream: &mut TcpStream) -> Outcome<()> {
    let [version, reply, _, atyp] = read_array::<4>(stream).await?;
    if version != 0x05 {
        return Err(ErrorKind::Protocol);
    }
    if reply != 0x00 {
        return Err(ErrorKind::TunnelRefused);
    }
    let rest = match atyp {
        0x01 => 4 + 2,
        0x04 => 16 + 2,
        0x03 => usize::from(read_array::<1>(stream).await?[0]) + 2,
        _ => return Err(ErrorKind::Protocol),
    };
    let mut skip = [0u8; 258];
    stream
        .read_exact(&mut skip[..rest])
        .await
        .map_err(|e| ErrorKind::of_read(&e))?;
    Ok(())
}

async fn read_array<const N: usize>(stream: &mut TcpStream) -> Outcome<[u8; N]> {
    let mut buf = [0u8; N];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| ErrorKind::of_read(&e))?;
    Ok(buf)
}

/// The GET the plan sends: absolute-form through an HTTP proxy, else
/// origin-form; `Connection: close` on a connection used once.
pub fn request(plan: &Plan, close: bool) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    let absolute = plan.door == Door::Http;
    *request.uri_mut() = if absolute {
        plan.target.absolute.clone()
    } else {
        plan.target.origin_form.clone()
    };
    let headers = request.headers_mut();
    headers.insert(HOST, plan.target.authority.clone());
    headers.insert(USER_AGENT, HeaderValue::from_static("pacer-loadgen"));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    if absolute {
        if let Some(auth) = &plan.auth {
            headers.insert(PROXY_AUTHORIZATION, auth.basic.clone());
        }
    }
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    request
}

/// A completed exchange.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// Response body bytes.
    pub bytes: u64,
    /// When the last body byte arrived.
    pub done: Instant,
}

/// Sends `request` and reads the whole response body.
pub async fn exchange(
    conn: &mut Conn,
    request: Request<Empty<Bytes>>,
    min_body: u64,
) -> Outcome<Exchange> {
    let response = conn
        .sender
        .send_request(request)
        .await
        .map_err(|e| ErrorKind::of_hyper(&e))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ErrorKind::of_hyper(&e))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    let done = Instant::now();
    if !status.is_success() {
        return Err(ErrorKind::of_status(status));
    }
    if bytes < min_body {
        return Err(ErrorKind::ShortBody);
    }
    Ok(Exchange { bytes, done })
}
