//! Test harness: a loopback origin that reports what it received, the proxy
//! started in-process on port 0 from TOML text, and small raw-socket helpers;
//! fake upstream proxies in [`upstream`], per-account clients in [`clients`].
#![allow(dead_code)]

pub mod admin;
pub mod clients;
pub mod routes;
pub mod shipped;
pub mod test_ca;
pub mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use pacer::config::{self, ListenerProtocol};
use pacer::server::Server;

/// Default test secret of `acct-1`.
pub const SECRET: &str = "s3cret";

/// A config with one HTTP listener, one SOCKS5 listener and one bound
/// SOCKS5 listener (account `bound`), short timeouts, direct routing.
pub fn base_config(server_extra: &str) -> String {
    format!(
        r#"
[server]
header_read_timeout = "2s"
idle_timeout = "3s"
connect_timeout = "500ms"
shutdown_grace = "5s"
{server_extra}

[admin]
addr = "127.0.0.1:0"
api_keys = ["test-admin-key"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[[listeners]]
protocol = "socks5"
addr = "127.0.0.1:0"

[[listeners]]
protocol = "socks5"
addr = "127.0.0.1:0"
account = "bound"

[state]
path = "memory"

[policies.standard_policy]
name = "Standard"

[[accounts]]
id = "acct-1"
secret = "{SECRET}"

[[accounts]]
id = "bound"
secret = "unused-secret"
"#
    )
}

/// A running proxy.
pub struct Proxy {
    pub http: SocketAddr,
    pub socks: SocketAddr,
    pub bound_socks: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<bool>>,
}

impl Proxy {
    /// Starts the proxy from `toml`.
    pub async fn start(toml: &str) -> Proxy {
        let config = match config::parse(toml, &|_| None) {
            Ok(config) => config,
            Err(errors) => panic!("test config invalid: {errors:?}"),
        };
        Self::run(Server::bind(&config).await.expect("bind proxy")).await
    }

    /// Starts the proxy from `toml` on one ingress thread per core, as the
    /// `pacer` binary runs.
    pub async fn start_per_core(toml: &str) -> Proxy {
        let config = match config::parse(toml, &|_| None) {
            Ok(config) => config,
            Err(errors) => panic!("test config invalid: {errors:?}"),
        };
        Self::run(Server::bind_per_core(&config).await.expect("bind proxy")).await
    }

    /// Starts the proxy from a config file it can reload.
    pub async fn start_file(path: &std::path::Path) -> Proxy {
        let config = config::load(path).unwrap_or_else(|errors| panic!("{errors}"));
        let server = Server::bind(&config).await.expect("bind proxy");
        Self::run(server.reload_from(path.to_path_buf())).await
    }

    async fn run(server: Server) -> Proxy {
        let admin = server.admin_addr().expect("admin addr");
        let addrs = server.local_addrs();
        let of = |protocol: ListenerProtocol, nth: usize| {
            addrs
                .iter()
                .filter(|(p, _)| *p == protocol)
                .nth(nth)
                .map(|(_, a)| *a)
        };
        let http = of(ListenerProtocol::Http, 0).expect("http listener");
        let socks = of(ListenerProtocol::Socks5, 0).unwrap_or(http);
        let bound_socks = of(ListenerProtocol::Socks5, 1).unwrap_or(socks);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Proxy {
            http,
            socks,
            bound_socks,
            admin,
            stop: Some(stop),
            task,
        }
    }

    /// The default proxy.
    pub async fn default() -> Proxy {
        Proxy::start(&base_config("")).await
    }

    /// `http://acct-1:s3cret@addr`.
    pub fn http_url(&self) -> String {
        format!("http://acct-1:{SECRET}@{}", self.http)
    }

    /// A reqwest client through the HTTP listener as acct-1.
    pub fn client(&self) -> reqwest::Client {
        let proxy = reqwest::Proxy::http(self.http_url()).expect("proxy url");
        reqwest::Client::builder()
            .proxy(proxy)
            .build()
            .expect("client")
    }

    /// `GET /metrics` on the admin API, with the base config's key.
    pub async fn metrics(&self) -> String {
        metrics_at(&self.admin.to_string()).await
    }

    /// Stops the proxy; returns whether everything drained in the grace.
    pub async fn stop(mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let ran = (&mut self.task).await.expect("server task");
        ran.expect("the server ran")
    }
}

/// `GET /metrics` of the admin API at `admin`, with the base config's key.
pub async fn metrics_at(admin: &str) -> String {
    reqwest::Client::new()
        .get(format!("http://{admin}/metrics"))
        .header("X-API-KEY", "test-admin-key")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// A loopback origin. Paths:
/// - `/echo`: 200, JSON of method, URI, headers (the last of each name),
///   the number of `Host` headers and body length;
/// - `/bytes/N`: N bytes of `x`, content-length;
/// - `/chunked/N`: N bytes of `y` in 1 KiB chunks, no length;
/// - `/slow/MS`: answers "slow" after MS milliseconds;
/// - anything else: "hello".
pub struct Origin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    /// When each request arrived, in order.
    arrivals: Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Self::serve(listener).await
    }

    /// An origin on the IPv6 loopback (which the tests need).
    pub async fn start_v6() -> Origin {
        let listener = TcpListener::bind("[::1]:0")
            .await
            .expect("bind an origin on the IPv6 loopback [::1]");
        Self::serve(listener).await
    }

    async fn serve(listener: TcpListener) -> Origin {
        let addr = listener.local_addr().expect("origin addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let counter = hits.clone();
        let accepted = connections.clone();
        let arrived = arrivals.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let counter = counter.clone();
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        arrived
                            .lock()
                            .expect("arrivals")
                            .push(tokio::time::Instant::now());
                        counter.fetch_add(1, Ordering::SeqCst);
                        origin_answer(req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin {
            addr,
            hits,
            connections,
            arrivals,
        }
    }

    /// When each request arrived, in order.
    pub fn arrivals(&self) -> Vec<tokio::time::Instant> {
        self.arrivals.lock().expect("arrivals").clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

type OriginBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn origin_answer(req: Request<Incoming>) -> Result<Response<OriginBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let number = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|n| n.parse::<usize>().ok())
    };
    if path == "/echo" {
        return Ok(Response::new(full(echo(req).await)));
    }
    if let Some(n) = number("/bytes/") {
        return Ok(Response::new(full(vec![b'x'; n])));
    }
    if let Some(n) = number("/chunked/") {
        let chunks = (0..n)
            .step_by(1024)
            .map(|start| Bytes::from(vec![b'y'; (n - start).min(1024)]))
            .collect();
        return Ok(Response::new(BodyExt::boxed(Chunks(chunks))));
    }
    if let Some(ms) = number("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        return Ok(Response::new(full(b"slow".to_vec())));
    }
    Ok(Response::new(full(b"hello".to_vec())))
}

fn full(bytes: impl Into<Bytes>) -> OriginBody {
    BodyExt::boxed(Full::new(bytes.into()))
}

/// A body of prepared chunks with no length: hyper sends it chunked.
struct Chunks(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

async fn echo(req: Request<Incoming>) -> Vec<u8> {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                serde_json::Value::from(v.to_str().unwrap_or("?")),
            )
        })
        .collect();
    let host_count = req.headers().get_all("host").iter().count();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    serde_json::to_vec(&serde_json::json!({
        "method": method, "uri": uri, "headers": headers, "body_len": body,
        "host_count": host_count,
    }))
    .unwrap_or_default()
}

/// A TCP echo server (for tunnels): echoes until EOF, then closes.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A host name that no resolver sends a query for: its first label is 64
/// bytes, one over RFC 1035's limit, so the system resolver fails it at
/// once, locally (a name like `no-such-host.invalid` would be asked of the
/// machine's DNS server). pacer's own checks accept it (no label limit).
pub fn unresolvable_name() -> String {
    format!("{}.invalid", "a".repeat(64))
}

/// A loopback port with nothing listening.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

/// Sends raw bytes and reads the whole answer until the server closes;
/// panics when it is still open after `within`.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    read_until_close(&mut stream, within).await
}

/// Reads until the server closes the connection (EOF or reset); panics
/// when it is still open after `within`.
pub async fn read_until_close(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    if read.is_err() {
        let text = String::from_utf8_lossy(&out);
        panic!("the connection is still open after {within:?}; read so far: {text:?}");
    }
    out
}

/// Status and envelope of a raw HTTP response (head + JSON body).
pub fn parse_envelope(raw: &[u8]) -> (u16, serde_json::Value, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, json, head.to_ascii_lowercase())
}

/// Checks an envelope: status, type, and the request id header.
pub fn assert_envelope(raw: &[u8], status: u16, kind: &str) {
    let (got, json, head) = parse_envelope(raw);
    assert_eq!(got, status, "{}", String::from_utf8_lossy(raw));
    assert_eq!(json["type"], kind, "{json}");
    assert_eq!(json["status"], status);
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let id = json["instance"].as_str().expect("instance");
    assert!(head.contains(&format!("x-request-id: {id}")), "{head}");
}

/// One GET through the proxy that must succeed: the proxy is still serving.
pub async fn assert_still_serving(proxy: &Proxy, origin: &Origin) {
    let body = proxy
        .client()
        .get(origin.url("/"))
        .send()
        .await
        .expect("proxy still serving")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "hello");
}

/// `Proxy-Authorization` value for acct-1.
pub fn basic_auth() -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("acct-1:{SECRET}"));
    format!("Basic {token}")
}

/// GET `path` from `host:port` through a SOCKS5 listener, with fast-socks5's
/// client (`credentials: None` offers no-auth), and returns the body.
pub async fn socks_get(
    proxy: SocketAddr,
    credentials: Option<(&str, &str)>,
    host: &str,
    port: u16,
    path: &str,
) -> Result<String, String> {
    use fast_socks5::client::{Config, Socks5Stream};
    let config = Config::default();
    let proxy = proxy.to_string();
    let target = host.to_owned();
    let stream = match credentials {
        Some((user, pass)) => {
            Socks5Stream::connect_with_password(
                proxy,
                target,
                port,
                user.into(),
                pass.into(),
                config,
            )
            .await
        }
        None => Socks5Stream::connect(proxy, target, port, config).await,
    }
    .map_err(|e| format!("socks connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", format!("{host}:{port}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

/// Greets with username/password and authenticates; returns the status.
pub async fn socks_authenticate(stream: &mut TcpStream, user: &[u8], pass: &[u8]) -> u8 {
    stream.write_all(&[5, 1, 2]).await.expect("greeting");
    let mut method = [0u8; 2];
    stream.read_exact(&mut method).await.expect("method");
    assert_eq!(method, [5, 2]);
    let mut auth = vec![1, user.len() as u8];
    auth.extend_from_slice(user);
    auth.push(pass.len() as u8);
    auth.extend_from_slice(pass);
    stream.write_all(&auth).await.expect("auth");
    let mut status = [0u8; 2];
    stream.read_exact(&mut status).await.expect("auth status");
    assert_eq!(status[0], 1);
    status[1]
}

/// Sends a command for an IPv4 target; returns the reply code.
pub async fn socks_command(stream: &mut TcpStream, cmd: u8, target: SocketAddr) -> u8 {
    let SocketAddr::V4(v4) = target else {
        panic!("ipv4 only")
    };
    let mut request = vec![5, cmd, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    stream.write_all(&request).await.expect("command");
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.expect("reply");
    reply[1]
}

/// A SOCKS5 CONNECT as acct-1 to the domain `name` (bytes as sent) on
/// port 443: the reply code.
pub async fn socks_domain(socks: SocketAddr, name: &[u8]) -> u8 {
    let mut stream = TcpStream::connect(socks).await.expect("connect");
    assert_eq!(
        socks_authenticate(&mut stream, b"acct-1", SECRET.as_bytes()).await,
        0
    );
    let mut request = vec![5, 1, 0, 3, name.len() as u8];
    request.extend_from_slice(name);
    request.extend_from_slice(&443u16.to_be_bytes());
    stream.write_all(&request).await.expect("write");
    let mut reply = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut reply))
        .await
        .expect("a reply")
        .expect("read");
    reply[1]
}

/// The `pacer` binary running on `config`, and the addresses of its first
/// `listeners` listeners, read from its log.
pub async fn spawn_pacer(
    config: &std::path::Path,
    listeners: usize,
) -> (tokio::process::Child, Vec<String>) {
    let (child, addrs, _log) = spawn_pacer_logged(config, listeners).await;
    (child, addrs)
}

/// The log lines of a spawned pacer, from after its listeners on.
pub struct PacerLog(tokio::sync::mpsc::UnboundedReceiver<String>);

impl PacerLog {
    /// The next line containing every one of `needles`; panics when pacer
    /// logs none within `within` (or exits).
    pub async fn wait_for(&mut self, needles: &[&str], within: Duration) -> String {
        let found = tokio::time::timeout(within, async {
            while let Some(line) = self.0.recv().await {
                if needles.iter().all(|n| line.contains(n)) {
                    return Some(line);
                }
            }
            None
        });
        match found.await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("pacer exited without logging {needles:?}"),
            Err(_) => panic!("pacer logged no {needles:?} within {within:?}"),
        }
    }

    /// Every line until pacer closes its stderr (it exits); panics if that
    /// takes longer than `within`.
    pub async fn until_exit(mut self, within: Duration) -> Vec<String> {
        let mut rest = Vec::new();
        let read = async {
            while let Some(line) = self.0.recv().await {
                rest.push(line);
            }
        };
        tokio::time::timeout(within, read)
            .await
            .expect("pacer closes its log within the time");
        rest
    }
}

/// [`spawn_pacer`], keeping pacer's later log lines.
pub async fn spawn_pacer_logged(
    config: &std::path::Path,
    listeners: usize,
) -> (tokio::process::Child, Vec<String>, PacerLog) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pacer");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut addrs = Vec::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.split("addr=").nth(1) {
                addrs.push(addr.trim().to_owned());
                if addrs.len() == listeners {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("pacer logs its listeners");
    assert_eq!(addrs.len(), listeners, "pacer exited before listening");
    let (log, later) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log.send(line);
        }
    });
    (child, addrs, PacerLog(later))
}
