//! TLS interception against opaque tunnels, in one run, on loopback: an
//! in-process pacer with `[mitm]` on for `localhost`, an HTTPS origin
//! (HTTP/2 and HTTP/1.1 by ALPN), and clients that CONNECT to
//! `localhost:PORT` (intercepted) or `127.0.0.1:PORT` (opaque, TLS to the
//! origin itself). Figures: requests/s over kept tunnels (HTTP/1.1 and
//! HTTP/2), the p50 of a new tunnel with one request (warm leaf cache), and
//! the cost of minting a leaf (cold cache). Bounded in time and count.
//!
//! `cargo bench --bench intercept [-- SECONDS CONNECTIONS]` (defaults 3, 64).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

struct OriginCa {
    root: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

fn origin_ca() -> OriginCa {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    OriginCa {
        root: ca_cert.der().clone(),
        chain: vec![leaf.der().clone(), ca_cert.der().clone()],
        key: leaf_key.serialize_der(),
    }
}

async fn origin(ca: &OriginCa) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            ca.chain.clone(),
            PrivateKeyDer::Pkcs8(ca.key.clone().into()),
        )
        .expect("config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    addr
}

fn client_config(root: CertificateDer<'static>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A CONNECT tunnel to `target` through pacer, with TLS inside.
async fn tunnel(proxy: SocketAddr, target: &str, config: &Arc<rustls::ClientConfig>) -> Tls {
    let mut tcp = TcpStream::connect(proxy).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let auth = "Basic YmVuY2g6YmVuY2g="; // bench:bench
    let head = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {auth}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.expect("answer");
        answer.push(byte[0]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .expect("tls")
}

/// Requests/s over `conns` kept tunnels for `seconds`.
async fn kept(
    proxy: SocketAddr,
    target: String,
    config: Arc<rustls::ClientConfig>,
    h2: bool,
    conns: usize,
    seconds: u64,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (target, config) = (target.clone(), config.clone());
            tokio::spawn(async move {
                let tls = tunnel(proxy, &target, &config).await;
                let uri = format!("https://{target}/");
                let mut done = 0u64;
                if h2 {
                    let (mut send, conn) = hyper::client::conn::http2::handshake(
                        TokioExecutor::new(),
                        TokioIo::new(tls),
                    )
                    .await
                    .expect("h2");
                    tokio::spawn(conn);
                    while Instant::now() < deadline {
                        let request = Request::get(&uri)
                            .body(Empty::<Bytes>::new())
                            .expect("request");
                        let response = send.send_request(request).await.expect("response");
                        let _ = response.into_body().collect().await;
                        done += 1;
                    }
                } else {
                    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                        .await
                        .expect("h1");
                    tokio::spawn(conn);
                    while Instant::now() < deadline {
                        let request = Request::get("/")
                            .header("host", "localhost")
                            .body(Empty::<Bytes>::new())
                            .expect("request");
                        let response = send.send_request(request).await.expect("response");
                        let _ = response.into_body().collect().await;
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    total as f64 / seconds as f64
}

/// The p50 of a new tunnel with one HTTP/1.1 request, over `count`.
async fn fresh(
    proxy: SocketAddr,
    target: String,
    config: Arc<rustls::ClientConfig>,
    count: usize,
) -> Duration {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let tls = tunnel(proxy, &target, &config).await;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1");
        tokio::spawn(conn);
        let request = Request::get("/")
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = send.send_request(request).await.expect("response");
        let _ = response.into_body().collect().await;
        times.push(start.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(3);
    let conns: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(seconds, conns));
}

async fn run(seconds: u64, conns: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = pacer::intercept::ca::init(dir.path(), false).expect("ca");
    let pacer_root: CertificateDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_file(&written.cert).expect("pem");
    let origin_ca = origin_ca();
    let roots = dir.path().join("origin.pem");
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(&origin_ca.root)
    );
    std::fs::write(&roots, pem).expect("write roots");
    let origin = origin(&origin_ca).await;
    let toml = format!(
        "[server]\nmax_connections = 100000\n[admin]\naddr = \"127.0.0.1:0\"\napi_keys = [\"k\"]\n[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n[state]\npath = \"memory\"\n[tls]\nextra_roots = [{:?}]\n[mitm]\nenabled = true\nca_cert = {:?}\nca_key = {:?}\nhosts = [\"localhost\"]\n[policies.standard_policy]\n[policies.standard_policy.limits]\nall_per_second = 1000000\n[[accounts]]\nid = \"bench\"\nsecret = \"bench\"\n",
        roots.display().to_string(),
        written.cert.display().to_string(),
        written.key.display().to_string()
    );
    let config = pacer::config::parse(&toml, &|_| None).expect("config");
    let server = pacer::server::Server::bind_per_core(&config)
        .await
        .expect("bind");
    let proxy = server.local_addrs()[0].1;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let intercepted = format!("localhost:{}", origin.port());
    let opaque = format!("127.0.0.1:{}", origin.port());
    let origin_root = origin_ca.root.clone();
    println!("| figure | intercepted | opaque | ratio |");
    println!("|---|---|---|---|");
    for (name, alpn, h2) in [
        ("HTTP/1.1 req/s, kept tunnels", &b"http/1.1"[..], false),
        ("HTTP/2 req/s, kept tunnels", &b"h2"[..], true),
    ] {
        let mitm = kept(
            proxy,
            intercepted.clone(),
            client_config(pacer_root.clone(), alpn),
            h2,
            conns,
            seconds,
        )
        .await;
        let plain = kept(
            proxy,
            opaque.clone(),
            client_config(origin_root.clone(), alpn),
            h2,
            conns,
            seconds,
        )
        .await;
        println!(
            "| {name} ({conns} conns) | {mitm:.0} | {plain:.0} | {:.2}x |",
            mitm / plain
        );
    }
    let warm = fresh(
        proxy,
        intercepted.clone(),
        client_config(pacer_root.clone(), b"http/1.1"),
        200,
    )
    .await;
    let plain = fresh(
        proxy,
        opaque.clone(),
        client_config(origin_root.clone(), b"http/1.1"),
        200,
    )
    .await;
    println!(
        "| new tunnel + 1 request, p50 (warm leaf) | {} us | {} us | +{} us |",
        warm.as_micros(),
        plain.as_micros(),
        warm.as_micros().saturating_sub(plain.as_micros())
    );
    let ca = pacer::intercept::ca::Ca::load(&written.cert, &written.key).expect("ca");
    let start = Instant::now();
    for n in 0..200 {
        let _ = ca.mint(&format!("host-{n}.example.com")).expect("mint");
    }
    println!(
        "| leaf mint (cold cache) | {} us | - | - |",
        start.elapsed().as_micros() / 200
    );
    let _ = stop.send(());
    let _ = running.await;
}

/// The base64 of `der` in 64-column lines.
fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
