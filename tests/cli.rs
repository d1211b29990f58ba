//! The `pacer` binary as a user runs it: `check`, `ca init`, and a real run
//! driven with curl through both listeners, stopped with SIGTERM.

mod common;

use std::time::Duration;

use common::*;
use tokio::process::Command;

const PACER: &str = env!("CARGO_BIN_EXE_pacer");

fn shipped(name: &str) -> String {
    format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn check_accepts_the_shipped_configs() {
    for name in ["pacer.toml", "example-full.toml"] {
        let out = Command::new(PACER)
            .args(["check", "--config", &shipped(name)])
            .env("ACCT2_SECRET", "from-the-environment")
            .output()
            .await
            .expect("run pacer check");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn check_prints_every_error_with_its_location_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nbogus = 1\n\n[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\nalso_bogus = true\n",
    )
    .expect("write");
    let out = Command::new(PACER)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .await
        .expect("run pacer check");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = path.display().to_string();
    assert!(stderr.contains(&format!("{prefix}:2:1: ")), "{stderr}");
    assert!(stderr.contains(&format!("{prefix}:7:1: ")), "{stderr}");
}

#[tokio::test]
async fn ca_init_writes_a_ca_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let run = || {
        Command::new(PACER)
            .args(["ca", "init", "--dir"])
            .arg(&certs)
            .output()
    };
    assert!(run().await.expect("ca init").status.success());
    assert!(certs.join("ca.pem").exists() && certs.join("ca.key").exists());
    assert!(!run().await.expect("ca init again").status.success());
}

async fn signal(child: &tokio::process::Child, which: &str) {
    let pid = child.id().expect("pid").to_string();
    let sent = Command::new("kill")
        .args([which, &pid])
        .status()
        .await
        .expect("kill");
    assert!(sent.success());
}

/// Retries a curl that prints a status code until it prints 200 (a signal
/// is handled asynchronously), for at most 10 s.
async fn poll_until_ok(args: &[&str]) -> bool {
    for _ in 0..100 {
        if curl(args).await.1 == "200" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn curl_through_both_listeners_then_sigterm_exits_0() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    let toml = base_config("").replace(
        "[[listeners]]\nprotocol = \"socks5\"\naddr = \"127.0.0.1:0\"\naccount = \"bound\"\n",
        "",
    );
    std::fs::write(&config, toml).expect("write config");
    let (mut child, addrs, mut log) = spawn_pacer_logged(&config, 3).await;
    let (http, socks, admin) = (addrs[0].as_str(), addrs[1].as_str(), addrs[2].as_str());
    let url = origin.url("/");

    let proxy = format!("http://acct-1:{SECRET}@{}", http);
    assert_eq!(curl(&["-x", &proxy, &url]).await, (true, "hello".into()));

    let user = format!("acct-1:{SECRET}");
    let socks = curl(&["--socks5-hostname", socks, "--proxy-user", &user, &url]).await;
    assert_eq!(socks, (true, "hello".into()));

    let bare = format!("http://{}", http);
    let (_, body) = curl(&["-x", &bare, &url]).await;
    let envelope: serde_json::Value = serde_json::from_str(&body).expect("envelope");
    assert_eq!(envelope["type"], "errors/missing_credentials");

    let (ok, status) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-x",
        &proxy,
        "http://127.0.0.1:1/",
    ])
    .await;
    assert!(ok);
    assert_eq!(status, "502");

    // SIGHUP: a new account in the file is accepted on the next request;
    // a broken file is refused and the running config stays.
    let added = std::fs::read_to_string(&config).expect("config")
        + "\n[[accounts]]\nid = \"acct-9\"\nsecret = \"ninth\"\n";
    std::fs::write(&config, added).expect("config");
    signal(&child, "-HUP").await;
    let newcomer = format!("http://acct-9:ninth@{http}");
    let reloaded = poll_until_ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-x",
        &newcomer,
        &url,
    ])
    .await;
    assert!(reloaded, "acct-9 is accepted after SIGHUP");
    std::fs::write(&config, "[[listeners]]\nbroken = true\n").expect("config");
    signal(&child, "-HUP").await;
    let refused = ["ERROR", "config reload refused", "unknown key `broken`"];
    let line = log.wait_for(&refused, Duration::from_secs(10)).await;
    assert!(line.contains("trigger=\"SIGHUP\""), "{line}");
    assert_eq!(curl(&["-x", &newcomer, &url]).await, (true, "hello".into()));
    // The same refusal through the admin API is logged the same way.
    let reload = format!("http://{admin}/v1/reload");
    let key = "X-API-KEY: test-admin-key";
    let (_, answer) = curl(&["-X", "POST", "-H", key, "-w", "%{http_code}", &reload]).await;
    assert!(answer.ends_with("400"), "{answer}");
    let line = log.wait_for(&refused, Duration::from_secs(10)).await;
    assert!(line.contains("trigger=\"POST /v1/reload\""), "{line}");
    assert_eq!(curl(&["-x", &newcomer, &url]).await, (true, "hello".into()));

    signal(&child, "-TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// Each core listens on its own SO_REUSEPORT socket; a second pacer on a
/// port that is already served must still fail, not share the port.
#[tokio::test]
async fn a_second_pacer_on_a_served_port_exits_with_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    std::fs::write(&config, base_config("")).expect("write config");
    let (mut first, addrs) = spawn_pacer(&config, 3).await;

    let second = dir.path().join("second.toml");
    let taken = base_config("").replacen(
        "protocol = \"http\"\naddr = \"127.0.0.1:0\"",
        &format!("protocol = \"http\"\naddr = \"{}\"", addrs[0]),
        1,
    );
    std::fs::write(&second, taken).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .arg("--config")
        .arg(&second)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("the second pacer exits")
        .expect("run pacer");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");

    signal(&first, "-TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(20), first.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// The fields of an access line, in order (SPEC section 1).
const ACCESS_FIELDS: [&str; 16] = [
    "id=req_",
    "listener=",
    "client=",
    "account=",
    "actions=",
    "method=",
    "host=",
    "status=",
    "waited_ms=",
    "upstream=",
    "attempts=",
    "bytes_up=",
    "bytes_down=",
    "intercepted=",
    "tunnel=",
    "duration_ms=",
];

fn has_access_fields_in_order(line: &str) -> bool {
    let mut rest = line;
    ACCESS_FIELDS.iter().all(|field| match rest.find(field) {
        Some(at) => {
            rest = &rest[at + field.len()..];
            true
        }
        None => false,
    })
}

/// Access lines go to stderr through the log queue: each in the same
/// format, none dropped under a modest load, and every one written by the
/// time pacer has exited (the queue is flushed at exit), the line of a
/// tunnel cut by the stop itself included.
#[tokio::test]
async fn every_access_line_is_written_by_exit() {
    const REQUESTS: usize = 240;
    let origin = Origin::start().await;
    let echo = echo_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    let toml = base_config("")
        .replace(
            "[[listeners]]\nprotocol = \"socks5\"\naddr = \"127.0.0.1:0\"\naccount = \"bound\"\n",
            "",
        )
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"0s\"");
    std::fs::write(&config, toml).expect("write config");
    let (mut child, addrs, log) = spawn_pacer_logged(&config, 3).await;
    let (http, admin) = (addrs[0].clone(), addrs[2].clone());

    let proxy = reqwest::Proxy::http(format!("http://acct-1:{SECRET}@{http}")).expect("proxy");
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .build()
        .expect("client");
    let url = origin.url("/bytes/100");
    let workers = (0..8).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            for _ in 0..REQUESTS / 8 {
                let body = client.get(&url).send().await.expect("get").bytes().await;
                assert_eq!(body.expect("body").len(), 100);
            }
        })
    });
    for worker in workers.collect::<Vec<_>>() {
        worker.await.expect("worker");
    }
    let mut tunnel = open_tunnel(&http, echo).await;
    tokio::io::AsyncWriteExt::write_all(&mut tunnel, b"ping")
        .await
        .expect("write");
    tokio::io::AsyncWriteExt::shutdown(&mut tunnel)
        .await
        .expect("half-close");
    let back = read_until_close(&mut tunnel, Duration::from_secs(10)).await;
    assert_eq!(back, b"ping");
    let second_echo = echo_server().await;
    let _open = open_tunnel(&http, second_echo).await;

    let metrics = metrics_at(&admin).await;
    assert!(
        metrics.contains("pacer_access_log_dropped_total 0"),
        "{metrics}"
    );

    signal(&child, "-TERM").await;
    let lines = log.until_exit(Duration::from_secs(20)).await;
    let status = child.wait().await.expect("wait");
    assert_eq!(status.code(), Some(0));
    let access: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("pacer::access"))
        .collect();
    let host = format!("host=\"{}\"", origin.addr);
    let gets = access
        .iter()
        .filter(|l| l.contains(&host) && l.contains("method=\"GET\""))
        .filter(|l| l.contains("status=200") && l.contains("bytes_down=100 "))
        .count();
    assert_eq!(gets, REQUESTS, "one access line per request: {access:?}");
    let tunnel_host = format!("host=\"{echo}\"");
    let tunnel_line = access
        .iter()
        .find(|l| l.contains(&tunnel_host))
        .expect("the tunnel's access line");
    for field in [
        "listener=\"http\"",
        "account=\"acct-1\"",
        "method=\"CONNECT\"",
        "status=200",
        "bytes_up=4 ",
        "bytes_down=4 ",
    ] {
        assert!(tunnel_line.contains(field), "{field} in {tunnel_line}");
    }
    let cut = format!("host=\"{second_echo}\"");
    assert!(
        access.iter().any(|l| l.contains(&cut)),
        "the tunnel cut at exit is logged: {access:?}"
    );
    assert!(
        access.iter().all(|line| has_access_fields_in_order(line)),
        "{access:?}"
    );
}

/// A CONNECT tunnel to `target` through the HTTP listener at `http`.
async fn open_tunnel(http: &str, target: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(http).await.expect("connect");
    let request = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {}\r\n\r\n",
        basic_auth()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("answer byte"));
    }
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{head:?}");
    stream
}

/// Each access line says what happened: a request refused before any route
/// was tried names no upstream, one whose client left while it was paced
/// still gets its line, with status `client_closed`, and an upload counts
/// the bytes sent, chunked ones included.
#[tokio::test]
async fn access_lines_are_exact() {
    use tokio::io::AsyncWriteExt;
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pacer.toml");
    let toml = base_config("").replace(
        "[policies.standard_policy]\nname = \"Standard\"\n",
        "[policies.standard_policy]\nname = \"Standard\"\nmode = \"pace\"\nmax_wait = \"60s\"\n[policies.standard_policy.limits]\nall_per_minute = 1\n",
    );
    std::fs::write(&config, toml).expect("write config");
    let (_child, addrs, mut log) = spawn_pacer_logged(&config, 4).await;
    let http = addrs[0].clone();
    let within = Duration::from_secs(10);

    let url = origin.url("/echo");
    let unauthenticated = format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(&http)
        .await
        .expect("connect");
    stream
        .write_all(unauthenticated.as_bytes())
        .await
        .expect("write");
    let line = log.wait_for(&["pacer::access", "status=407"], within).await;
    assert!(line.contains("upstream=\"-\" attempts=0 "), "{line}");

    let upload = format!(
        "POST {url} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n{}\r\n0\r\n\r\n",
        basic_auth(),
        "u".repeat(1000)
    );
    let mut stream = tokio::net::TcpStream::connect(&http)
        .await
        .expect("connect");
    stream.write_all(upload.as_bytes()).await.expect("write");
    let line = log.wait_for(&["pacer::access", "status=200"], within).await;
    assert!(line.contains("upstream=\"direct\" attempts=1 "), "{line}");
    assert!(line.contains("bytes_up=1000 "), "{line}");

    // The minute's one request is spent: the next is paced, and its
    // client leaves.
    let paced = format!(
        "GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\n\r\n",
        basic_auth()
    );
    let mut stream = tokio::net::TcpStream::connect(&http)
        .await
        .expect("connect");
    stream.write_all(paced.as_bytes()).await.expect("write");
    drop(stream);
    let line = log
        .wait_for(&["pacer::access", "status=client_closed"], within)
        .await;
    assert!(line.contains("account=\"acct-1\""), "{line}");
    assert!(line.contains("upstream=\"-\" attempts=0 "), "{line}");
    assert_eq!(
        origin.hits(),
        1,
        "the request that left never reached the origin"
    );
}
