//! TLS interception (SPEC section 7): tunnels to `[mitm] hosts` whose
//! client starts TLS are terminated with a leaf of pacer's CA, and every
//! request inside is classified, limited and routed like plain HTTP, over
//! verified TLS to the origin; other tunnels stay opaque.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use common::clients::{http_connect, socks_connect};
use common::routes::CREDS;
use common::upstream::{FakeUpstream, TestCa};
use common::{base_config, echo_server, Proxy};

const WITHIN: Duration = Duration::from_secs(10);

/// An HTTPS origin (certificate of `ca`, for 127.0.0.1 and localhost,
/// HTTP/2 or HTTP/1.1 by ALPN): `/status/N` answers N, anything else 200
/// `secure <path>`; `x-origin-version` tells the version it was asked in.
async fn tls_origin(ca: &TestCa) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = ca.acceptor_offering(&[b"h2", b"http/1.1"]);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service =
                    service_fn(|mut request: Request<hyper::body::Incoming>| async move {
                        if request.uri().path() == "/ws" {
                            return Ok::<_, Infallible>(echo_upgrade(&mut request));
                        }
                        Ok::<_, Infallible>(origin_answer(&request))
                    });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    addr
}

/// `101 Switching Protocols`, then whatever arrives is sent back.
fn echo_upgrade(request: &mut Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut read, &mut write).await;
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert("upgrade", http::HeaderValue::from_static("websocket"));
    headers.insert("connection", http::HeaderValue::from_static("upgrade"));
    response
}

fn origin_answer(request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let mut response = Response::new(Full::new(Bytes::from(format!("secure {path}"))));
    if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse().ok()) {
        *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    }
    let version = format!("{:?}", request.version());
    if let Ok(value) = http::HeaderValue::from_str(&version) {
        response.headers_mut().insert("x-origin-version", value);
    }
    response
}

/// pacer's CA, written for the test.
struct PacerCa {
    dir: tempfile::TempDir,
}

impl PacerCa {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        pacer::intercept::ca::init(dir.path(), false).expect("ca init");
        PacerCa { dir }
    }

    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn section(&self, hosts: &str) -> String {
        format!(
            "[mitm]\nenabled = true\nca_cert = {:?}\nca_key = {:?}\nhosts = [{hosts}]\n",
            self.cert().display().to_string(),
            self.dir.path().join("ca.key").display().to_string()
        )
    }
}

/// The base config, `localhost` intercepted, the origin's CA trusted, and
/// `send_per_minute = 1` (reject) for paths `/send/*`.
fn config(pacer_ca: &PacerCa, origin_ca: &TestCa, extra: &str) -> String {
    let rejecting = base_config("").replace(
        "[policies.standard_policy]\nname = \"Standard\"\n",
        "[policies.standard_policy]\nname = \"Standard\"\nmode = \"reject\"\n",
    );
    let limits = "[[actions]]\nname = \"send\"\npaths = [\"/send/*\"]\n\n[policies.standard_policy.limits]\nsend_per_minute = 1\n";
    let mitm = pacer_ca.section("\"localhost\"");
    format!(
        "{rejecting}\n{mitm}\n{}\n{limits}\n{extra}",
        origin_ca.tls_section()
    )
}

/// pacer's CA, the origin's CA, the origin, and a proxy intercepting
/// `localhost` with [`config`].
async fn intercepting() -> (PacerCa, TestCa, SocketAddr, Proxy) {
    let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
    let origin = tls_origin(&origin_ca).await;
    let proxy = Proxy::start(&config(&pacer_ca, &origin_ca, "")).await;
    (pacer_ca, origin_ca, origin, proxy)
}

/// Writes `bytes` on `stream` and expects them back.
async fn echoes<S>(stream: &mut S, bytes: &[u8])
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(bytes).await.expect("write");
    let mut back = vec![0u8; bytes.len()];
    tokio::time::timeout(WITHIN, stream.read_exact(&mut back))
        .await
        .expect("echo")
        .expect("read");
    assert_eq!(back, bytes);
}

fn trusting(root: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).expect("pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn tls(stream: TcpStream, root: &Path) -> std::io::Result<TlsStream<TcpStream>> {
    tls_offering(stream, root, &[]).await
}

async fn tls_offering(
    stream: TcpStream,
    root: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from("localhost").expect("name");
    let mut config = (*trusting(root)).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
}

/// One request on a kept connection: status, head and body.
async fn exchange<S>(stream: &mut S, path: &str) -> (u16, String, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed mid-response: {}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(at)) = response.parse(&raw) {
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .unwrap_or(0);
                if raw.len() >= at + length {
                    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
                    let body = String::from_utf8_lossy(&raw[at..at + length]).into_owned();
                    return (response.code.unwrap_or(0), head, body);
                }
            }
        }
    };
    tokio::time::timeout(WITHIN, read)
        .await
        .expect("a response")
}

#[tokio::test]
async fn requests_inside_a_tunnel_are_limited_per_path_and_the_tunnel_keeps_serving() {
    let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
    let origin = tls_origin(&origin_ca).await;
    let per_second =
        config(&pacer_ca, &origin_ca, "").replace("send_per_minute", "send_per_second");
    let proxy = Proxy::start(&per_second).await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut inside = tls(tunnel, &pacer_ca.cert())
        .await
        .expect("pacer's leaf is trusted");
    let (status, _, body) = exchange(&mut inside, "/send/1").await;
    assert_eq!((status, body.as_str()), (200, "secure /send/1"));
    let (status, head, body) = exchange(&mut inside, "/send/2").await;
    assert_eq!(status, 429, "{head}{body}");
    assert!(body.contains("errors/rate_limited"), "{body}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("ratelimit-policy: \"send_per_second\";q=1;w=1"),
        "{head}"
    );
    assert!(head.contains("retry-after:"), "{head}");
    let (status, _, body) = exchange(&mut inside, "/view/3").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "secure /view/3"),
        "another path passes"
    );
    let passes_again = async {
        loop {
            if exchange(&mut inside, "/send/4").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WITHIN, passes_again)
        .await
        .expect("the same path passes on the same tunnel after the window");
    proxy.stop().await;
}

#[tokio::test]
async fn a_socks5_tunnel_is_intercepted_too() {
    let (pacer_ca, _origin_ca, origin, proxy) = intercepting().await;
    let (reply, stream) = socks_connect(&proxy, "acct-1", "localhost", origin.port()).await;
    assert_eq!(reply, 0);
    let mut inside = tls(stream.expect("tunnel"), &pacer_ca.cert())
        .await
        .expect("tls");
    let (status, _, body) = exchange(&mut inside, "/a").await;
    assert_eq!((status, body.as_str()), (200, "secure /a"));
    proxy.stop().await;
}

#[tokio::test]
async fn other_hosts_and_non_tls_clients_stay_opaque() {
    let (_pacer_ca, origin_ca, origin, proxy) = intercepting().await;
    let outside = http_connect(&proxy, "acct-1", &origin.to_string())
        .await
        .expect("tunnel");
    let mut direct = tls(outside, &origin_ca.pem_path)
        .await
        .expect("the origin's own certificate");
    assert_eq!(exchange(&mut direct, "/x").await.0, 200);
    let echo = echo_server().await;
    let mut plain = http_connect(&proxy, "acct-1", &format!("localhost:{}", echo.port()))
        .await
        .expect("tunnel");
    echoes(&mut plain, b"hello, not TLS").await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_that_rejects_the_leaf_is_counted_and_pacer_keeps_serving() {
    let (pacer_ca, origin_ca, origin, proxy) = intercepting().await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    assert!(
        tls(tunnel, &origin_ca.pem_path).await.is_err(),
        "pacer's leaf is not the origin's"
    );
    let metrics = async {
        loop {
            let text = reqwest::Client::new()
                .get(format!("http://{}/metrics", proxy.admin))
                .header("x-api-key", "test-admin-key")
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            if text.contains("outcome=\"client_tls_failed\",intercepted=\"true\"} 1") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WITHIN, metrics)
        .await
        .expect("counted as client_tls_failed");
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut inside = tls(tunnel, &pacer_ca.cert()).await.expect("tls");
    assert_eq!(exchange(&mut inside, "/again").await.0, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn an_intercepted_request_is_routed_through_the_accounts_upstream() {
    let origin_ca = TestCa::new();
    for upstream in [
        FakeUpstream::http(CREDS).await,
        FakeUpstream::https(&origin_ca, CREDS).await,
        FakeUpstream::socks5(CREDS).await,
    ] {
        routed_through(&origin_ca, upstream).await;
    }
}

async fn routed_through(origin_ca: &TestCa, upstream: FakeUpstream) {
    let pacer_ca = PacerCa::new();
    let origin = tls_origin(origin_ca).await;
    let account = format!(
        "[[accounts]]\nid = \"routed\"\nsecret = \"{}\"\nupstream = \"{}\"\n",
        common::SECRET,
        upstream.url()
    );
    let proxy = Proxy::start(&config(&pacer_ca, origin_ca, &account)).await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "routed", &target)
        .await
        .expect("tunnel");
    assert_eq!(
        upstream.connections(),
        0,
        "nothing dialled for the tunnel itself"
    );
    let mut inside = tls(tunnel, &pacer_ca.cert()).await.expect("tls");
    let (status, _, body) = exchange(&mut inside, "/routed").await;
    assert_eq!((status, body.as_str()), (200, "secure /routed"));
    assert_eq!(
        upstream.targets(),
        [target],
        "a CONNECT to the origin through the upstream"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn an_untrusted_origin_certificate_is_a_provider_error_inside_the_tunnel() {
    let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
    let origin = tls_origin(&origin_ca).await;
    let untrusting = config(&pacer_ca, &origin_ca, "").replace(&origin_ca.tls_section(), "");
    let proxy = Proxy::start(&untrusting).await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut inside = tls(tunnel, &pacer_ca.cert()).await.expect("tls");
    let (status, _, body) = exchange(&mut inside, "/x").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("errors/provider_error") && body.contains("UnknownIssuer"),
        "{body}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn curl_trusting_pacers_ca_reaches_the_origin_over_http1_and_http2() {
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
        let origin = tls_origin(&origin_ca).await;
        let proxy = Proxy::start(&config(&pacer_ca, &origin_ca, "")).await;
        let output = tokio::process::Command::new("curl")
            .args([
                "-sS",
                flag,
                "--max-time",
                "10",
                "-w",
                " %{http_version}",
                "--cacert",
            ])
            .arg(pacer_ca.cert())
            .arg("-x")
            .arg(proxy.http_url())
            .arg(format!("https://localhost:{}/curl", origin.port()))
            .output()
            .await
            .expect("curl runs");
        let body = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(body, format!("secure /curl {version}"), "{stderr}");
        proxy.stop().await;
    }
}

#[tokio::test]
async fn http2_streams_are_requests_each_and_a_paced_one_holds_no_other() {
    use http_body_util::BodyExt;
    let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
    let origin = tls_origin(&origin_ca).await;
    let pacing = config(&pacer_ca, &origin_ca, "")
        .replace("mode = \"reject\"", "mode = \"pace\"")
        .replace("send_per_minute = 1", "send_per_second = 1");
    let proxy = Proxy::start(&pacing).await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let inside = tls_offering(tunnel, &pacer_ca.cert(), &[b"h2"])
        .await
        .expect("tls");
    assert_eq!(
        inside.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "pacer speaks h2"
    );
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(inside))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let get = |path: &str| {
        let mut sender = sender.clone();
        let uri = format!("https://{target}{path}");
        async move {
            let request = Request::get(uri)
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("request");
            let response = sender.send_request(request).await.expect("response");
            let (head, body) = response.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            (head, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (first, body) = get("/send/1").await;
    assert_eq!(
        (first.status, body.as_str()),
        (StatusCode::OK, "secure /send/1")
    );
    assert_eq!(
        first.headers["x-origin-version"], "HTTP/2.0",
        "h2 towards the origin too"
    );
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let paced = {
        let (get, done) = (get("/send/2"), done_tx.clone());
        tokio::spawn(async move {
            let answer = get.await;
            let _ = done.send("paced");
            answer
        })
    };
    let free = {
        let (get, done) = (get("/view/3"), done_tx);
        tokio::spawn(async move {
            let answer = get.await;
            let _ = done.send("free");
            answer
        })
    };
    assert_eq!(
        done_rx.recv().await,
        Some("free"),
        "the unlimited stream is not held"
    );
    let (head, body) = paced.await.expect("paced stream");
    assert_eq!(
        (head.status, body.as_str()),
        (StatusCode::OK, "secure /send/2")
    );
    assert!(head.headers.contains_key("x-pacer-waited"), "{head:?}");
    assert_eq!(free.await.expect("free").0.status, StatusCode::OK);
    proxy.stop().await;
}

#[tokio::test]
async fn a_websocket_upgrade_inside_is_relayed_once_the_origin_switches() {
    let (pacer_ca, _origin_ca, origin, proxy) = intercepting().await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut inside = tls(tunnel, &pacer_ca.cert()).await.expect("tls");
    let handshake = "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n";
    inside.write_all(handshake.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(WITHIN, inside.read_exact(&mut byte))
            .await
            .expect("a 101")
            .expect("read");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    echoes(&mut inside, b"ping over the socket").await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_bound_socks5_tunnel_to_an_ip_gets_a_leaf_for_the_ip() {
    let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
    let origin = tls_origin(&origin_ca).await;
    let toml = config(&pacer_ca, &origin_ca, "").replace(
        "hosts = [\"localhost\"]",
        "hosts = [\"localhost\", \"127.0.0.1\"]",
    );
    let proxy = Proxy::start(&toml).await;
    let mut stream = TcpStream::connect(proxy.bound_socks)
        .await
        .expect("connect");
    stream
        .write_all(&[5, 1, 0])
        .await
        .expect("greeting, no auth");
    let mut method = [0u8; 2];
    stream.read_exact(&mut method).await.expect("method");
    assert_eq!(method, [5, 0]);
    let reply = common::socks_command(&mut stream, 1, origin).await;
    assert_eq!(reply, 0, "CONNECT to 127.0.0.1");
    let ip = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut inside = tokio_rustls::TlsConnector::from(trusting(&pacer_ca.cert()))
        .connect(ip, stream)
        .await
        .expect("a leaf with an IP SAN, chosen without SNI");
    let (status, _, body) = exchange(&mut inside, "/ip").await;
    assert_eq!((status, body.as_str()), (200, "secure /ip"));
    proxy.stop().await;
}

#[tokio::test]
async fn a_reload_applies_mitm_hosts_to_new_tunnels() {
    let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
    let origin = tls_origin(&origin_ca).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pacer.toml");
    let opaque = config(&pacer_ca, &origin_ca, "").replace("hosts = [\"localhost\"]", "hosts = []");
    std::fs::write(&path, &opaque).expect("write");
    let proxy = Proxy::start_file(&path).await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    assert!(
        tls(tunnel, &origin_ca.pem_path).await.is_ok(),
        "opaque before"
    );
    std::fs::write(&path, config(&pacer_ca, &origin_ca, "")).expect("rewrite");
    let reloaded = reqwest::Client::new()
        .post(format!("http://{}/v1/reload", proxy.admin))
        .header("x-api-key", "test-admin-key")
        .send()
        .await
        .expect("reload");
    assert_eq!(reloaded.status(), 200);
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut inside = tls(tunnel, &pacer_ca.cert())
        .await
        .expect("intercepted after");
    assert_eq!(exchange(&mut inside, "/after").await.0, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn an_origins_429_inside_a_tunnel_pauses_the_action_for_the_account() {
    let (pacer_ca, origin_ca) = (PacerCa::new(), TestCa::new());
    let origin = tls_origin(&origin_ca).await;
    let backoff = "[policies.standard_policy.backoff]\nstatuses = [429]\ndefault_pause = \"30s\"\n";
    let toml = config(&pacer_ca, &origin_ca, "").replace(
        "[policies.standard_policy.limits]\n",
        &format!("{backoff}[policies.standard_policy.limits]\n"),
    );
    let proxy = Proxy::start(&toml).await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut inside = tls(tunnel, &pacer_ca.cert()).await.expect("tls");
    let (status, _, body) = exchange(&mut inside, "/status/429").await;
    assert_eq!(
        (status, body.as_str()),
        (429, "secure /status/429"),
        "the origin's own answer"
    );
    let (status, head, body) = exchange(&mut inside, "/other").await;
    assert_eq!(status, 429, "{head}{body}");
    assert!(body.contains("backoff"), "{body}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("ratelimit-policy: \"backoff\";q=0;w=30"),
        "{head}"
    );
    proxy.stop().await;
}

/// Inside an intercepted tunnel pacer reads each HTTP/1 head too: a
/// connection quiet for longer than `header_read_timeout` (2 s) but less
/// than `idle_timeout` (3 s) between requests serves its next one, and a
/// head hyper would refuse gets pacer's envelope.
#[tokio::test]
async fn heads_inside_a_tunnel_are_read_and_checked_by_pacer() {
    let (pacer_ca, _origin_ca, origin, proxy) = intercepting().await;
    let target = format!("localhost:{}", origin.port());
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut inside = tls(tunnel, &pacer_ca.cert())
        .await
        .expect("pacer's leaf is trusted");
    assert_eq!(exchange(&mut inside, "/view/1").await.0, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        exchange(&mut inside, "/view/2").await.0,
        200,
        "a quiet keep-alive connection lives for idle_timeout"
    );
    inside
        .write_all(b"GET /view/3 HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WITHIN, inside.read_to_end(&mut raw)).await;
    common::assert_envelope(&raw, 400, "errors/malformed_request");
    let tunnel = http_connect(&proxy, "acct-1", &target)
        .await
        .expect("tunnel");
    let mut again = tls(tunnel, &pacer_ca.cert()).await.expect("tls");
    assert_eq!(
        exchange(&mut again, "/view/4").await.0,
        200,
        "still serving"
    );
}
