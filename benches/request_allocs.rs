//! Heap allocations per request on pacer's own thread: an in-process
//! pacer (`bench/peers/pacer.toml`: authentication, an action and limits
//! that apply to every request) runs on a thread of its
//! own whose allocations a counting allocator tallies; the client and a
//! loopback origin run on another thread and are not counted. Modes:
//! `http` (absolute-form GETs on one keep-alive connection), `connect` and
//! `socks5` (a new tunnel with one GET each). `--access-log` turns the
//! access line on (formatted, written to nowhere), as with `RUST_LOG=info`.
//!
//! `cargo bench --bench request_allocs -- [MODE] [REQUESTS] [--access-log]
//! [--where]` (defaults `http 20000`). Prints allocations and bytes per
//! request; `--where` also prints where they are made (the first frame
//! outside the allocator, and the first of pacer's own), over 100 requests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts the allocations of the threads that set [`COUNTED`].
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// While set, each counted allocation's backtrace is kept in [`SITES`].
static TRACING: AtomicBool = AtomicBool::new(false);
static SITES: Mutex<Vec<(usize, Backtrace)>> = Mutex::new(Vec::new());

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    /// Set while a backtrace is being kept (its own allocations are not).
    static KEEPING: Cell<bool> = const { Cell::new(false) };
}

fn tally(size: usize) {
    if !COUNTED.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    if KEEPING.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    if TRACING.load(Ordering::Relaxed) {
        KEEPING.with(|keeping| keeping.set(true));
        let trace = Backtrace::force_capture();
        if let Ok(mut sites) = SITES.lock() {
            sites.push((size, trace));
        }
        KEEPING.with(|keeping| keeping.set(false));
    }
}

/// Frames of the allocator, the standard library and this bench, and
/// inlined frames that carry no path.
fn is_plumbing(frame: &str) -> bool {
    let name = frame.trim_start_matches('<');
    !name.contains("::")
        || ["std::", "alloc::", "core::", "request_allocs::", "__rust"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// The allocation sites kept while tracing, most frequent first: the first
/// frame past the plumbing, and the first of pacer's own.
fn print_sites(requests: u64) {
    let sites = std::mem::take(&mut *SITES.lock().expect("sites"));
    let mut by_site: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for (size, trace) in sites {
        let text = trace.to_string();
        let frames: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter_map(|line| line.split_once(": ").map(|(_, name)| name))
            .collect();
        let site = frames
            .iter()
            .filter(|f| !is_plumbing(f))
            .take(3)
            .map(|f| f.split('<').next().unwrap_or(f))
            .collect::<Vec<_>>()
            .join(" < ");
        let owner = frames
            .iter()
            .find(|f| f.starts_with("pacer::") || f.starts_with("<pacer::"))
            .copied()
            .unwrap_or("-");
        let entry = by_site.entry((site, owner.to_owned())).or_default();
        entry.0 += 1;
        entry.1 += size as u64;
    }
    let mut rows: Vec<_> = by_site.into_iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .0));
    println!("per request | bytes | where | pacer's frame");
    for ((site, owner), (count, bytes)) in rows {
        let n = requests as f64;
        println!(
            "{:.2} | {:.0} | {site} | {owner}",
            count as f64 / n,
            bytes as f64 / n
        );
    }
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        tally(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        tally(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        tally(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bench policy of `bench/compare.sh`, on ports the system picks.
fn config() -> String {
    include_str!("../bench/peers/pacer.toml")
        .replace("@HTTP_PORT@", "0")
        .replace("@SOCKS_PORT@", "0")
        .replace("@ADMIN_PORT@", "0")
}

/// `Basic demo:demo`.
const AUTH: &str = "Basic ZGVtbzpkZW1v";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Http,
    Connect,
    Socks5,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let access_log = args.iter().any(|a| a == "--access-log");
    let show_sites = args.iter().any(|a| a == "--where");
    let mut words = args.iter().filter(|a| !a.starts_with("--"));
    let mode = match words.next().map(String::as_str) {
        None | Some("http") => Mode::Http,
        Some("connect") => Mode::Connect,
        Some("socks5") => Mode::Socks5,
        Some(other) => panic!("unknown mode {other} (http, connect, socks5)"),
    };
    let requests: u64 = words
        .next()
        .map_or(20_000, |n| n.parse().expect("REQUESTS"));
    if access_log {
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_env_filter("info")
            .init();
    }
    let (http, socks) = start_pacer();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    client.block_on(async {
        let origin = origin().await;
        let mut run = Run::new(mode, http, socks, origin).await;
        run.requests(requests / 10 + 100).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (allocations, bytes) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        run.requests(requests).await;
        // The close-out of the last request runs as its body ends.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
        let bytes = BYTES.load(Ordering::Relaxed) - bytes;
        let n = requests as f64;
        println!(
            "{} requests ({}{}): {:.1} allocations and {:.0} bytes per request on pacer's thread",
            requests,
            match mode {
                Mode::Http => "http keep-alive",
                Mode::Connect => "CONNECT, a tunnel per request",
                Mode::Socks5 => "SOCKS5, a tunnel per request",
            },
            if access_log { ", access log on" } else { "" },
            allocations as f64 / n,
            bytes as f64 / n,
        );
        if show_sites {
            TRACING.store(true, Ordering::Relaxed);
            run.requests(100).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            TRACING.store(false, Ordering::Relaxed);
            print_sites(100);
        }
    });
}

/// pacer on a thread of its own whose allocations are counted; its HTTP
/// and SOCKS5 addresses.
fn start_pacer() -> (SocketAddr, SocketAddr) {
    let (ready, addrs) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            COUNTED.with(|counted| counted.set(true));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("pacer runtime");
            runtime.block_on(async {
                let config = pacer::config::parse(&config(), &|_| None).expect("config");
                let server = pacer::server::Server::bind(&config).await.expect("bind");
                let of = |protocol| {
                    server
                        .local_addrs()
                        .into_iter()
                        .find(|(p, _)| *p == protocol)
                        .map(|(_, addr)| addr)
                        .expect("listener")
                };
                let http = of(pacer::config::ListenerProtocol::Http);
                let socks = of(pacer::config::ListenerProtocol::Socks5);
                ready.send((http, socks)).expect("main thread");
                let _ = server.run(std::future::pending::<()>()).await;
            });
        })
        .expect("pacer thread");
    addrs.recv().expect("pacer listening")
}

/// An origin answering every request with 96 bytes.
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(&[b'x'; 96]))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// The client side of one mode.
struct Run {
    mode: Mode,
    http: SocketAddr,
    socks: SocketAddr,
    origin: SocketAddr,
    /// The keep-alive connection of the `http` mode.
    kept: Option<Sender>,
}

impl Run {
    async fn new(mode: Mode, http: SocketAddr, socks: SocketAddr, origin: SocketAddr) -> Self {
        let kept = match mode {
            Mode::Http => Some(handshake(TcpStream::connect(http).await.expect("connect")).await),
            Mode::Connect | Mode::Socks5 => None,
        };
        Run {
            mode,
            http,
            socks,
            origin,
            kept,
        }
    }

    async fn requests(&mut self, n: u64) {
        for _ in 0..n {
            match (self.mode, &mut self.kept) {
                (Mode::Http, Some(sender)) => {
                    let uri = format!("http://{}/small", self.origin);
                    get(sender, &uri, &self.origin.to_string(), true).await;
                }
                _ => {
                    let stream = self.tunnel().await;
                    let host = self.origin.to_string();
                    get(&mut handshake(stream).await, "/small", &host, false).await;
                }
            }
        }
    }

    /// A new tunnel to the origin.
    async fn tunnel(&self) -> TcpStream {
        let origin = self.origin;
        let (mut stream, request, answer) = if self.mode == Mode::Socks5 {
            let mut hello = vec![
                5, 1, 2, 1, 4, b'd', b'e', b'm', b'o', 4, b'd', b'e', b'm', b'o',
            ];
            hello.extend_from_slice(&[5, 1, 0, 1, 127, 0, 0, 1]);
            hello.extend_from_slice(&origin.port().to_be_bytes());
            (TcpStream::connect(self.socks).await, hello, 14)
        } else {
            let request = format!(
                "CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\nProxy-Authorization: {AUTH}\r\n\r\n"
            );
            (TcpStream::connect(self.http).await, request.into_bytes(), 0)
        };
        let stream_ref = stream.as_mut().expect("connect");
        stream_ref.write_all(&request).await.expect("open");
        if answer > 0 {
            let mut reply = vec![0u8; answer];
            stream_ref
                .read_exact(&mut reply)
                .await
                .expect("SOCKS5 answers");
            assert_eq!(reply[5], 0, "SOCKS5 CONNECT succeeded");
        } else {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(stream_ref.read_u8().await.expect("CONNECT answer"));
            }
            assert!(head.starts_with(b"HTTP/1.1 200"), "CONNECT succeeded");
        }
        stream.expect("connect")
    }
}

async fn handshake(stream: TcpStream) -> Sender {
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

async fn get(sender: &mut Sender, uri: &str, host: &str, through_proxy: bool) {
    let mut request = Request::get(uri).header("host", host);
    if through_proxy {
        request = request.header("proxy-authorization", AUTH);
    }
    let request = request.body(Empty::new()).expect("request");
    sender.ready().await.expect("ready");
    let response = sender.send_request(request).await.expect("response");
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.into_body().collect().await.expect("body");
    assert_eq!(body.to_bytes().len(), 96);
}
