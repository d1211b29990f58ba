//! Fake upstream proxies on loopback, each counting the connections it
//! accepted and recording the targets it was asked for:
//! - [`FakeUpstream::http`]: CONNECT and absolute-form forwarding, optional
//!   Basic credentials; [`FakeUpstream::https`] is the same behind TLS with
//!   a certificate of a [`TestCa`];
//! - [`FakeUpstream::socks5`]: fast-socks5's server, optional RFC 1929;
//! - faults: [`FakeUpstream::silent`] (accepts, never answers),
//!   [`FakeUpstream::dropping`] (reads, then hangs up mid-handshake),
//!   [`FakeUpstream::socks5_replying`] (answers every CONNECT with a code).
//!
//! [`TestCa`] (in `test_ca.rs`) signs the HTTPS fake's certificate.
//!
//! Every fake can be switched off and on ([`FakeUpstream::set_healthy`]):
//! while off it closes each connection at once, still counting it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use fast_socks5::server::{
    AuthMethodSuccessState, NoAuthentication, PasswordAuthentication, Socks5ServerProtocol,
};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::ReplyError;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use super::test_ca::TestCa;

/// User and password a fake upstream demands.
pub type Credentials = Option<(&'static str, &'static str)>;

/// A running fake upstream.
#[derive(Clone)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    scheme: &'static str,
    credentials: Credentials,
    connections: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    targets: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Behaviour {
    HttpProxy,
    Socks5,
    Silent,
    Dropping,
    SocksReply(u8),
}

impl FakeUpstream {
    /// An HTTP proxy.
    pub async fn http(credentials: Credentials) -> Self {
        Self::start("http", credentials, Behaviour::HttpProxy, None).await
    }

    /// An HTTP proxy behind TLS, with a certificate for 127.0.0.1 and
    /// localhost signed by `ca`.
    pub async fn https(ca: &TestCa, credentials: Credentials) -> Self {
        let tls = Some(ca.acceptor());
        Self::start("https", credentials, Behaviour::HttpProxy, tls).await
    }

    /// A SOCKS5 proxy.
    pub async fn socks5(credentials: Credentials) -> Self {
        Self::start("socks5", credentials, Behaviour::Socks5, None).await
    }

    /// Accepts TCP and never says a word.
    pub async fn silent(scheme: &'static str) -> Self {
        Self::start(scheme, None, Behaviour::Silent, None).await
    }

    /// Reads the first bytes of the handshake, then hangs up.
    pub async fn dropping(scheme: &'static str) -> Self {
        Self::start(scheme, None, Behaviour::Dropping, None).await
    }

    /// A SOCKS5 proxy (no auth) answering every CONNECT with `code`.
    pub async fn socks5_replying(code: u8) -> Self {
        Self::start("socks5", None, Behaviour::SocksReply(code), None).await
    }

    async fn start(
        scheme: &'static str,
        credentials: Credentials,
        behaviour: Behaviour,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let fake = FakeUpstream {
            addr: listener.local_addr().expect("upstream addr"),
            scheme,
            credentials,
            connections: Arc::new(AtomicUsize::new(0)),
            healthy: Arc::new(AtomicBool::new(true)),
            targets: Arc::new(Mutex::new(Vec::new())),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                server.connections.fetch_add(1, Ordering::SeqCst);
                if !server.healthy.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let (server, tls) = (server.clone(), tls.clone());
                tokio::spawn(async move { server.serve(stream, behaviour, tls).await });
            }
        });
        fake
    }

    async fn serve(
        self,
        stream: TcpStream,
        behaviour: Behaviour,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        match (behaviour, tls) {
            (Behaviour::HttpProxy, Some(tls)) => {
                if let Ok(stream) = tls.accept(stream).await {
                    self.serve_http(stream).await;
                }
            }
            (Behaviour::HttpProxy, None) => self.serve_http(stream).await,
            (Behaviour::Socks5, _) => self.serve_socks5(stream).await,
            (Behaviour::Silent, _) => hold_silently(stream).await,
            (Behaviour::Dropping, _) => drop_after_first_bytes(stream).await,
            (Behaviour::SocksReply(code), _) => socks5_reply(stream, code).await,
        }
    }

    /// `scheme://[user:pass@]127.0.0.1:port`.
    pub fn url(&self) -> String {
        match self.credentials {
            Some((user, pass)) => format!("{}://{user}:{pass}@{}", self.scheme, self.addr),
            None => format!("{}://{}", self.scheme, self.addr),
        }
    }

    /// The same proxy with other credentials in its URL.
    pub fn url_with(&self, user: &str, pass: &str) -> String {
        format!("{}://{user}:{pass}@{}", self.scheme, self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Targets asked for so far (CONNECT authority, absolute URI's
    /// authority, SOCKS5 address as received).
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("targets").clone()
    }

    /// Off: every new connection is closed at once.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    fn record(&self, target: String) {
        self.targets.lock().expect("targets").push(target);
    }

    async fn serve_http<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request| {
            let fake = self.clone();
            async move { Ok::<_, Infallible>(fake.answer(request).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.authorized(&request) {
            let mut refusal = status(StatusCode::PROXY_AUTHENTICATION_REQUIRED);
            let challenge = http::HeaderValue::from_static("Basic realm=\"fake\"");
            refusal
                .headers_mut()
                .insert("proxy-authenticate", challenge);
            return refusal;
        }
        let Some(authority) = request.uri().authority().map(|a| a.to_string()) else {
            return status(StatusCode::BAD_REQUEST);
        };
        self.record(authority.clone());
        if request.method() == Method::CONNECT {
            return open_tunnel(request, &authority).await;
        }
        forward_plain(request, &authority).await
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some((user, pass)) = self.credentials else {
            return true;
        };
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let want = format!("Basic {token}");
        request
            .headers()
            .get("proxy-authorization")
            .is_some_and(|got| got.as_bytes() == want.as_bytes())
    }

    async fn serve_socks5(self, stream: TcpStream) {
        let start = Socks5ServerProtocol::start(stream);
        let authenticated = match self.credentials {
            None => match start.negotiate_auth(&[NoAuthentication]).await {
                Ok(proto) => proto.finish_auth(),
                Err(_) => return,
            },
            Some((user, pass)) => {
                let Ok(pending) = start.negotiate_auth(&[PasswordAuthentication]).await else {
                    return;
                };
                let Ok((got_user, got_pass, auth)) = pending.read_username_password().await else {
                    return;
                };
                if (got_user.as_str(), got_pass.as_str()) != (user, pass) {
                    let _ = auth.reject().await;
                    return;
                }
                match auth.accept().await {
                    Ok(done) => done.finish_auth(),
                    Err(_) => return,
                }
            }
        };
        let Ok((proto, _command, target)) = authenticated.read_command().await else {
            return;
        };
        self.record(target.to_string());
        let connected = match &target {
            TargetAddr::Ip(addr) => TcpStream::connect(addr).await,
            TargetAddr::Domain(name, port) => TcpStream::connect((name.as_str(), *port)).await,
        };
        match connected {
            Ok(mut destination) => {
                let bound = destination.local_addr().expect("local addr");
                if let Ok(mut client) = proto.reply_success(bound).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut destination).await;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                let _ = proto.reply_error(&ReplyError::ConnectionRefused).await;
            }
            Err(_) => {
                let _ = proto.reply_error(&ReplyError::HostUnreachable).await;
            }
        }
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// CONNECT: dial the target (502 if it refuses), then relay after 200.
async fn open_tunnel(request: Request<Incoming>, authority: &str) -> Response<Full<Bytes>> {
    let Ok(mut destination) = TcpStream::connect(authority).await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(request).await {
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut destination).await;
        }
    });
    status(StatusCode::OK)
}

/// Absolute-form: one origin connection per request, origin-form there.
async fn forward_plain(request: Request<Incoming>, authority: &str) -> Response<Full<Bytes>> {
    let Ok(origin) = TcpStream::connect(authority).await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(origin)).await
    else {
        return status(StatusCode::BAD_GATEWAY);
    };
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .expect("origin-form");
    parts.headers.remove("proxy-authorization");
    let Ok(response) = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
    else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Response::from_parts(parts, Full::new(body))
}

async fn hold_silently(mut stream: TcpStream) {
    let mut sink = [0u8; 1024];
    let held = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(30), held).await;
}

async fn drop_after_first_bytes(mut stream: TcpStream) {
    let mut first = [0u8; 2];
    let _ = stream.read(&mut first).await;
}

/// Minimal SOCKS5: no auth, then `code` for any CONNECT.
async fn socks5_reply(mut stream: TcpStream, code: u8) {
    let mut greeting = [0u8; 2];
    if stream.read_exact(&mut greeting).await.is_err() {
        return;
    }
    let mut methods = vec![0u8; usize::from(greeting[1])];
    let _ = stream.read_exact(&mut methods).await;
    let _ = stream.write_all(&[5, 0]).await;
    let mut head = [0u8; 4];
    if stream.read_exact(&mut head).await.is_err() {
        return;
    }
    let address_len = match head[3] {
        1 => 4,
        4 => 16,
        _ => usize::from(stream.read_u8().await.unwrap_or(0)),
    };
    let mut rest = vec![0u8; address_len + 2];
    let _ = stream.read_exact(&mut rest).await;
    let _ = stream.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await;
}
