//! Pooled origin connections (issue 16): a connection the origin closes is
//! never reused, and a request that meets a reused connection closing
//! before any byte of its answer is sent once more on a fresh one (SPEC
//! section 5 decides the envelope when that one fails too). The origins
//! here are scripted raw sockets that count what they see; every test ends
//! with a request that must still be served.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::clients::raw_get;
use common::routes::{custom_config, detail};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WITHIN: Duration = Duration::from_secs(10);

/// A keep-alive answer.
const HELLO: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// What a scripted server does on each connection it accepts.
#[derive(Clone, Copy)]
enum Script {
    /// Answers the first request with this, then closes.
    AnswerThenClose(&'static str),
    /// Answers the first request with [`HELLO`]; when the next request
    /// arrives, closes without a word: after reading it (the peer sees
    /// EOF) or without (unread bytes: the peer sees a reset).
    AnswerOnceThenDrop { read_first: bool },
    /// Reads the first request and closes without answering.
    DropFirst,
    /// Answers every request with [`HELLO`], and closes after one sent
    /// as HTTP/1.0 (which, without `Connection: keep-alive`, asks for it).
    CloseAfterHttp10,
}

/// A scripted origin (or HTTP proxy: it answers absolute-form requests
/// itself), recording the request lines each connection received.
struct Scripted {
    addr: SocketAddr,
    /// Per accepted connection, in order: its request lines.
    seen: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Scripted {
    /// Serves every connection with `script`.
    async fn start(script: Script) -> Scripted {
        Self::serve(&[script], usize::MAX).await
    }

    /// Serves one connection with `script`, then stops listening: a fresh
    /// connection is refused.
    async fn start_once(script: Script) -> Scripted {
        Self::serve(&[script], 1).await
    }

    /// Serves the n-th connection with the n-th of `scripts` (the last
    /// one for those after), `accepts` connections in all.
    async fn serve(scripts: &[Script], accepts: usize) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let scripts = scripts.to_vec();
        tokio::spawn(async move {
            for _ in 0..accepts {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let index = {
                    let mut seen = record.lock().expect("seen");
                    seen.push(Vec::new());
                    seen.len() - 1
                };
                let script = scripts[index.min(scripts.len() - 1)];
                tokio::spawn(run_script(stream, script, record.clone(), index));
            }
        });
        Scripted { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The request lines of each connection, in order.
    fn seen(&self) -> Vec<Vec<String>> {
        self.seen.lock().expect("seen").clone()
    }
}

async fn run_script(
    mut stream: TcpStream,
    script: Script,
    seen: Arc<Mutex<Vec<Vec<String>>>>,
    index: usize,
) {
    let note = |line: String| seen.lock().expect("seen")[index].push(line);
    let Some(first) = read_head(&mut stream).await else {
        return;
    };
    note(first.clone());
    match script {
        Script::AnswerThenClose(answer) => {
            let _ = stream.write_all(answer.as_bytes()).await;
        }
        Script::AnswerOnceThenDrop { read_first } => {
            let _ = stream.write_all(HELLO.as_bytes()).await;
            if read_first {
                if let Some(next) = read_head(&mut stream).await {
                    note(next);
                }
            } else if matches!(stream.peek(&mut [0u8; 1]).await, Ok(1)) {
                note("(unread)".to_owned());
            }
        }
        Script::DropFirst => {}
        Script::CloseAfterHttp10 => {
            let mut line = first;
            while stream.write_all(HELLO.as_bytes()).await.is_ok() && !line.ends_with("HTTP/1.0") {
                let Some(next) = read_head(&mut stream).await else {
                    return;
                };
                note(next.clone());
                line = next;
            }
        }
    }
}

/// Reads one request head (the tests send no bodies); its request line,
/// or `None` at EOF.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    text.lines().next().map(str::to_owned)
}

/// Reads one response with a `Content-Length` body: status, lower-case
/// head, body.
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(WITHIN, stream.read(&mut byte)).await;
        match read.expect("an answer in time") {
            Ok(1) => head.push(byte[0]),
            _ => panic!(
                "closed before a whole head: {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tokio::time::timeout(WITHIN, stream.read_exact(&mut body))
        .await
        .expect("a body in time")
        .expect("the whole body");
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Two HTTP/1.0 keep-alive requests for `url`, the second sent as soon as
/// the first is answered, over one client connection: both answers.
async fn two_http10_requests(proxy: &Proxy, url: &str) -> [(u16, String, String); 2] {
    let host = url.trim_start_matches("http://").split('/').next();
    let request = format!(
        "GET {url} HTTP/1.0\r\nHost: {}\r\nProxy-Authorization: {}\r\nConnection: keep-alive\r\n\r\n",
        host.unwrap_or_default(),
        basic_auth()
    );
    let mut stream = TcpStream::connect(proxy.http).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let first = read_response(&mut stream).await;
    stream.write_all(request.as_bytes()).await.expect("write");
    let second = read_response(&mut stream).await;
    [first, second]
}

/// An HTTP/1.0 keep-alive client asking an origin that closes after each
/// answer (an HTTP/1.0 one, or HTTP/1.1 with `Connection: close`): both
/// of its requests are answered, each on its own origin connection.
#[tokio::test]
async fn an_http10_keep_alive_client_is_answered_by_an_origin_that_closes() {
    let answers = [
        "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    ];
    let proxy = Proxy::default().await;
    for answer in answers {
        let origin = Scripted::start(Script::AnswerThenClose(answer)).await;
        for (status, head, body) in two_http10_requests(&proxy, &origin.url("/")).await {
            assert_eq!(
                (status, body.as_str()),
                (200, "hello"),
                "{answer:?}: {head}"
            );
        }
        let seen = origin.seen();
        assert_eq!(seen.len(), 2, "one origin connection per request: {seen:?}");
        assert!(seen.iter().all(|requests| requests.len() == 1), "{seen:?}");
    }
    assert_still_serving(&proxy, &Origin::start().await).await;
}

/// pacer speaks HTTP/1.1 to origins whatever the client's version (RFC
/// 9110 section 6.2), so an origin that would close after an HTTP/1.0
/// request keeps the connection for the HTTP/1.0 client's next request
/// (and a pooled connection the origin closes is never sent a request).
#[tokio::test]
async fn an_http10_request_is_forwarded_as_http11_on_a_kept_connection() {
    let proxy = Proxy::default().await;
    let origin = Scripted::start(Script::CloseAfterHttp10).await;
    for (status, head, body) in two_http10_requests(&proxy, &origin.url("/")).await {
        assert_eq!((status, body.as_str()), (200, "hello"), "{head}");
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "the origin connection was kept: {seen:?}");
    assert!(
        seen[0].iter().all(|line| line.ends_with("HTTP/1.1")),
        "{seen:?}"
    );
    let hyper_origin = Origin::start().await;
    let answers = two_http10_requests(&proxy, &hyper_origin.url("/")).await;
    for (status, head, body) in answers {
        assert_eq!((status, body.as_str()), (200, "hello"), "{head}");
    }
    let connections = hyper_origin
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(connections, 1, "the origin connection was kept");
    assert_still_serving(&proxy, &hyper_origin).await;
}

/// Two GETs of `url` one after the other as `account`, each on its own
/// client connection: both raw answers.
async fn two_gets(proxy: &Proxy, account: &str, url: &str) -> [Vec<u8>; 2] {
    let first = raw_get(proxy, account, url).await;
    let second = raw_get(proxy, account, url).await;
    [first, second]
}

fn assert_hello(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello"), "{text}");
}

/// The scripted server's first connection carried two requests (the
/// second met the close) and a second connection carried the retry.
fn assert_retried_on_a_fresh_connection(server: &Scripted) {
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].len(),
        2,
        "the second request reused the connection: {seen:?}"
    );
    assert_eq!(seen[1].len(), 1, "{seen:?}");
}

/// A direct request on a pooled origin connection the origin closes as
/// the request arrives (after reading it, or not) is sent again on a fresh
/// connection and answered.
#[tokio::test]
async fn a_stale_origin_connection_is_retried_on_a_fresh_one() {
    let proxy = Proxy::default().await;
    for read_first in [true, false] {
        let origin = Scripted::start(Script::AnswerOnceThenDrop { read_first }).await;
        for raw in two_gets(&proxy, "acct-1", &origin.url("/")).await {
            assert_hello(&raw);
        }
        assert_retried_on_a_fresh_connection(&origin);
    }
    assert_still_serving(&proxy, &Origin::start().await).await;
}

/// The same through an HTTP upstream proxy that drops the reused
/// connection: answered over a fresh connection to the proxy.
#[tokio::test]
async fn a_stale_upstream_proxy_connection_is_retried_on_a_fresh_one() {
    let origin = Origin::start().await;
    for read_first in [true, false] {
        let upstream = Scripted::start(Script::AnswerOnceThenDrop { read_first }).await;
        let proxy = Proxy::start(&custom_config(&upstream.url(""), "")).await;
        for raw in two_gets(&proxy, "routed", &origin.url("/")).await {
            assert_hello(&raw);
        }
        assert_retried_on_a_fresh_connection(&upstream);
        assert_still_serving(&proxy, &origin).await;
    }
}

/// When the origin is really gone (the fresh connection is refused), the
/// direct request is the destination's refusal: 502 `provider_error`.
#[tokio::test]
async fn a_gone_origin_behind_a_stale_connection_is_a_provider_error() {
    let proxy = Proxy::default().await;
    let origin = Scripted::start_once(Script::AnswerOnceThenDrop { read_first: true }).await;
    let [first, second] = two_gets(&proxy, "acct-1", &origin.url("/")).await;
    assert_hello(&first);
    assert_envelope(&second, 502, "errors/provider_error");
    let detail = detail(&second);
    assert!(
        detail.contains("refused"),
        "the fresh connection was tried: {detail}"
    );
    assert_still_serving(&proxy, &Origin::start().await).await;
}

/// When the upstream proxy is really gone, the request is the SPEC 5
/// upstream failure: 502 `proxy_error`, from the refused fresh connection.
#[tokio::test]
async fn a_gone_upstream_behind_a_stale_connection_is_a_proxy_error() {
    let origin = Origin::start().await;
    let upstream = Scripted::start_once(Script::AnswerOnceThenDrop { read_first: true }).await;
    let proxy = Proxy::start(&custom_config(&upstream.url(""), "")).await;
    let [first, second] = two_gets(&proxy, "routed", &origin.url("/")).await;
    assert_hello(&first);
    assert_envelope(&second, 502, "errors/proxy_error");
    let detail = detail(&second);
    assert!(
        detail.contains("refused"),
        "the fresh connection was tried: {detail}"
    );
    assert_still_serving(&proxy, &origin).await;
}

/// A request is sent again at most once, only after a reused connection
/// failed unanswered, and only while none of its body is sent: a retry
/// that fails too, a fresh connection that fails, and a POST whose body
/// went out on the stale connection are each answered 502
/// `provider_error` with no further connection.
#[tokio::test]
async fn a_request_is_retried_once_only_on_reuse_and_only_before_its_body() {
    let proxy = Proxy::default().await;
    let both_drop = [
        Script::AnswerOnceThenDrop { read_first: true },
        Script::DropFirst,
    ];
    let origin = Scripted::serve(&both_drop, usize::MAX).await;
    let [first, second] = two_gets(&proxy, "acct-1", &origin.url("/")).await;
    assert_hello(&first);
    assert_envelope(&second, 502, "errors/provider_error");
    assert_retried_on_a_fresh_connection(&origin);

    let fresh_drops = Scripted::start(Script::DropFirst).await;
    let raw = raw_get(&proxy, "acct-1", &fresh_drops.url("/")).await;
    assert_envelope(&raw, 502, "errors/provider_error");
    assert_eq!(
        fresh_drops.seen().len(),
        1,
        "a fresh connection is not retried"
    );

    let stale = Scripted::start(Script::AnswerOnceThenDrop { read_first: true }).await;
    assert_hello(&raw_get(&proxy, "acct-1", &stale.url("/")).await);
    let raw = raw_post(&proxy, &stale.url("/"), b"a body").await;
    assert_envelope(&raw, 502, "errors/provider_error");
    assert_eq!(
        stale.seen().len(),
        1,
        "a sent body is not sent again: {:?}",
        stale.seen()
    );
    assert_still_serving(&proxy, &Origin::start().await).await;
}

/// An absolute-form POST of `body` as acct-1, `Connection: close`: the
/// whole raw answer.
async fn raw_post(proxy: &Proxy, url: &str, body: &[u8]) -> Vec<u8> {
    let host = url.trim_start_matches("http://").split('/').next();
    let mut request = format!(
        "POST {url} HTTP/1.1\r\nHost: {}\r\nProxy-Authorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        host.unwrap_or_default(),
        basic_auth(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw_exchange(proxy.http, &request, WITHIN).await
}
